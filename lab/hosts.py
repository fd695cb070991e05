"""The lab's hosts as plain data, derived from the topology (no side effects here).

Every host lives in its own network namespace; the three L2 segments (one LAN
per site and the WAN) are bridges in a separate "switch" namespace that has no
addresses at all, so nothing in the lab is reachable from the host's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.paths import PREFIX, VETH_PREFIX
from lab.topology import Topology

SWITCH_NS = f"{PREFIX}-sw"
_ROLE_LETTER = {"gw": "g", "router": "r", "client": "c", "control": "ctl", "static": "s"}


@dataclass(frozen=True)
class Link:
    """One interface of a host: its name inside the host, the segment, its address (None: DHCP)."""

    ifname: str
    segment: str
    cidr: str | None
    switch_port: str  # the veth end left in the switch namespace


@dataclass(frozen=True)
class Host:
    """A lab host: a booted container (sshd, systemd) or a bare namespace (DHCP client)."""

    name: str
    role: str  # control | gw | router | client
    site: str | None
    links: tuple[Link, ...]
    default_via: str | None = None
    release: str = "bookworm"       # the Debian suite of its image (lab/image.py)
    dhcp_client: str | None = None  # clients: dhclient | networkd | dhcpcd | networkmanager
    manager: str | None = None  # static hosts: the network manager setting address and routes
    gateway: str | None = None  # static hosts: the default gateway their manager configures
    address6: str | None = None  # static hosts on a dual-stack LAN: the IPv6 address/64 their manager sets

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def container(self) -> bool:
        """dhclient clients are plain namespaces running the machine's dhclient; everything
        else boots systemd (systemd-networkd and NetworkManager need it; dhcpcd runs as a unit
        beside it)."""
        return self.role != "client" or self.dhcp_client not in (None, "dhclient")

    @property
    def self_configured(self) -> bool:
        """A static host's own network manager sets its address and routes (the lab does not)."""
        return self.role == "static"

    @property
    def addresses(self) -> list[str]:
        return [link.cidr for link in self.links if link.cidr]


def bridge(segment: str) -> str:
    """Bridge name in the switch namespace for a segment (wan or a site name)."""
    return f"br-{segment}"


def _port(site: str | None, role: str, index: int) -> str:
    name = f"{VETH_PREFIX}{site + '-' if site else ''}{_ROLE_LETTER[role]}{index}"
    assert len(name) <= 15, name
    return name


def lab_hosts(topo: Topology) -> list[Host]:
    """All hosts in start order: control first (apt + Headscale), then each site."""
    wan_len = topo.wan_subnet.prefixlen
    hosts = [Host("control", "control", None,
                  (Link("eth0", "wan", f"{topo.control_address}/{wan_len}", _port(None, "control", 0)),))]
    for s in topo.sites.values():
        plen = s.subnet.prefixlen
        hosts.append(Host(s.gateway_host, "gw", s.name,
                          (Link("eth0", s.name, f"{s.gateway}/{plen}", _port(s.name, "gw", 0)),),
                          release=s.gw_release))
        for i, (name, lan, wan) in enumerate(s.routers):  # one, or an HA site's two
            hosts.append(Host(name, "router", s.name,
                              (Link("eth0", s.name, f"{lan}/{plen}", _port(s.name, "router", 2 * i)),
                               Link("eth1", "wan", f"{wan}/{wan_len}", _port(s.name, "router", 2 * i + 1))),
                              # Only so tailscaled sees a usable uplink; the control host forwards nothing.
                              default_via=str(topo.control_address), release=s.router_release))
        for i, (name, kind) in enumerate(s.client_hosts):
            hosts.append(Host(name, "client", s.name, (Link("eth0", s.name, None, _port(s.name, "client", i)),),
                              dhcp_client=kind))
        for i, (name, kind, addr) in enumerate(s.static_host_list):
            # the address is the manager's to set (every boot): the namespace gets none of its own
            hosts.append(Host(name, "static", s.name, (Link("eth0", s.name, f"{addr}/{plen}",
                                                            _port(s.name, "static", i)),),
                              manager=kind, gateway=str(s.gateway),
                              address6=f"{s.static_address6(kind)}/64" if s.subnet6 is not None else None))
    return hosts


def segments(topo: Topology) -> list[str]:
    return ["wan", *topo.sites]
