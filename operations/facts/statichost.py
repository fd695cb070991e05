"""What a static-address LAN host holds: its kernel routes, its LAN interface and which network
manager configures that interface (step 6 of Tailscale's site-to-site guide: "configure the
other devices in the subnet", persistently, in the host's own network manager).

One command reads it all, so a static host costs one round trip before the plan is known.
The parsers are pure functions, tested on canned output.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork
from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, json_list, parsed
from operations.facts.addresses import parse_ip_addr_json

MANAGERS = ("networkd", "networkmanager", "ifupdown", "netplan")


@dataclass(frozen=True)
class KernelRoute:
    """One route of the main table (either family), as `ip -j route` shows it."""

    dst: str  # "default" or a CIDR prefix
    gateway: str | None
    dev: str | None
    protocol: str | None = None

    @property
    def prefix(self) -> IPNetwork | None:
        return None if self.dst == "default" else IPNetwork(self.dst)


@dataclass(frozen=True)
class StaticHostState:
    """A static host's routes, the interface facing the site's router, and its network manager."""

    routes: tuple[KernelRoute, ...]
    dev: str | None  # the interface the next hop is reached on (None: not on a connected LAN)
    manager: str | None  # detected: one of MANAGERS, None when none manages `dev`
    networkd_file: str | None = None  # the .network file networkd applies to `dev`
    nm_connection: str | None = None  # the NetworkManager connection active on `dev`
    nm_routes: tuple[tuple[IPNetwork, str], ...] = ()  # its ipv4.routes: (prefix, next hop)
    netplan_type: str | None = None  # the netplan section defining `dev` by name (ethernets, ...)
    routes6: tuple[KernelRoute, ...] = ()  # the IPv6 main table (`ip -j -6 route`)
    has_ipv6: bool = False  # `dev` holds a global or unique local IPv6 address
    nm_routes6: tuple[tuple[IPNetwork, str], ...] = ()  # the connection's ipv6.routes

    def _table(self, version: int) -> tuple[KernelRoute, ...]:
        return self.routes6 if version == 6 else self.routes

    @property
    def default_gateway(self) -> IPAddress | None:
        return self.default_gateway_of(4)

    def default_gateway_of(self, version: int) -> IPAddress | None:
        """The default route's gateway of that family (None: no default route with a gateway)."""
        for route in self._table(version):
            if route.dst == "default" and route.gateway:
                return IPAddress(route.gateway)
        return None

    def route_for(self, prefix: IPNetwork) -> KernelRoute | None:
        """The main-table route for exactly `prefix` (None when the kernel has none)."""
        for route in self._table(prefix.version):
            if route.prefix == prefix:
                return route
        return None


def parse_ip_json_routes(text: str) -> tuple[KernelRoute, ...]:
    """`ip -j -4 route show table main`: a JSON list of route objects (iproute2 >= 4.17)."""
    items = json_list(text, "`ip -j route`")
    routes = []
    for item in items:
        if not isinstance(item, dict) or "dst" not in item:
            raise ParseError(f"not a route object: {item!r}")
        dst = str(item["dst"])
        if dst != "default" and "/" not in dst:
            dst += "/128" if ":" in dst else "/32"  # a host route prints without its length
        routes.append(KernelRoute(dst, item.get("gateway"), item.get("dev"), item.get("protocol")))
    return tuple(routes)


def parse_nm_routes(text: str) -> tuple[tuple[IPNetwork, str], ...]:
    """`nmcli -g ipv4.routes|ipv6.routes connection show CON`: `PREFIX NH [METRIC] [ATTRS]`,
    comma-separated (nmcli -g escapes each `:` of an IPv6 address as `\\:`)."""
    out = []
    for item in text.replace("\n", ",").split(","):
        bits = item.replace("\\:", ":").split()
        if not bits:
            continue
        try:
            out.append((IPNetwork(bits[0]), bits[1] if len(bits) > 1 else ""))
        except (ValueError, TypeError):
            raise ParseError(f"not an ipv4.routes entry: {item!r}") from None
    return tuple(out)


def parse_state(text: str) -> StaticHostState:
    """The `@@section` blocks the fact's command prints (see StaticHost.command)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ParseError(f"output before the first section: {line!r}")
    if "routes" not in sections or "manager" not in sections:
        raise ParseError("missing @@routes or @@manager section")

    def one(name: str) -> str | None:
        values = [v.strip() for v in sections.get(name, []) if v.strip()]
        return values[0] if values else None

    manager = one("manager")
    if manager not in (*MANAGERS, "none", None):
        raise ParseError(f"unknown manager {manager!r}")
    return StaticHostState(
        routes=parse_ip_json_routes("\n".join(sections["routes"])),
        dev=one("dev"),
        manager=None if manager in ("none", None) else manager,
        networkd_file=one("networkd_file"),
        nm_connection=one("nm_connection"),
        nm_routes=parse_nm_routes("\n".join(sections.get("nm_routes", []))),
        netplan_type=one("netplan_type"),
        routes6=parse_ip_json_routes("\n".join(sections.get("routes6", []))),
        has_ipv6=any(parse_ip_addr_json("\n".join(sections.get("addr6", []))).values()),
        nm_routes6=parse_nm_routes("\n".join(sections.get("nm_routes6", []))),
    )


# Which manager configures DEV, most specific first: netplan renders for networkd or
# NetworkManager (so its files win), then whichever daemon holds DEV, then ifupdown's state.
_DETECT = r"""
if [ -n "$dev" ] && ls /etc/netplan/*.yaml >/dev/null 2>&1 && command -v netplan >/dev/null; then
  echo netplan
elif [ -n "$dev" ] && command -v nmcli >/dev/null && systemctl is-active -q NetworkManager \
    && [ -n "$nmcon" ]; then
  echo networkmanager
elif [ -n "$dev" ] && [ -n "$nwfile" ]; then
  echo networkd
elif [ -n "$dev" ] && command -v ifquery >/dev/null && ifquery --state "$dev" >/dev/null 2>&1; then
  echo ifupdown
else
  echo none
fi
"""


class StaticHost(FactBase[StaticHostState]):
    """Kernel routes (`ip -j -4|-6 route`), the interface towards `next_hop`, its global IPv6
    addresses there, its network manager."""

    def command(self, next_hop: str) -> str:
        nh = shlex.quote(str(IPAddress(next_hop)))
        return "\n".join((
            "echo @@routes", "ip -j -4 route show table main",
            f"dev=$(ip -4 route get {nh} 2>/dev/null"
            " | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1)",
            "echo @@dev", 'echo "$dev"',
            'nwfile=""; nmcon=""',
            'if [ -n "$dev" ] && command -v networkctl >/dev/null '
            "&& systemctl is-active -q systemd-networkd; then",
            '  nwfile=$(networkctl status "$dev" 2>/dev/null | sed -n "s/^ *Network File: //p")',
            '  case "$nwfile" in n/a|"") nwfile="";; esac',
            "fi",
            'if [ -n "$dev" ] && command -v nmcli >/dev/null '
            "&& systemctl is-active -q NetworkManager; then",
            '  nmcon=$(nmcli -g GENERAL.CONNECTION device show "$dev" 2>/dev/null)',
            "fi",
            "echo @@networkd_file", 'echo "$nwfile"',
            "echo @@nm_connection", 'echo "$nmcon"',
            "echo @@nm_routes",
            '[ -n "$nmcon" ] && nmcli -g ipv4.routes connection show "$nmcon" 2>/dev/null',
            "echo @@nm_routes6",
            '[ -n "$nmcon" ] && nmcli -g ipv6.routes connection show "$nmcon" 2>/dev/null',
            "echo @@routes6", "ip -j -6 route show table main 2>/dev/null",
            "echo @@addr6", '[ -n "$dev" ] && ip -j -6 addr show dev "$dev" scope global 2>/dev/null',
            "echo @@netplan_type",
            'if [ -n "$dev" ] && ls /etc/netplan/*.yaml >/dev/null 2>&1 '
            "&& command -v netplan >/dev/null; then",
            "  for t in ethernets bonds bridges vlans; do",
            '    case "$(netplan get "$t.$dev" 2>/dev/null)" in',
            '      ""|null) ;; *) echo "$t"; break;; esac',
            "  done",
            "fi",
            "echo @@manager", _DETECT.strip(),
        ))

    @parsed
    def process(self, output: list[str]) -> StaticHostState:
        return parse_state("\n".join(output))


def parse_lan_link_local(text: str, address: str) -> IPAddress | None:
    """`ip -j addr show`: the link-local IPv6 address of the interface holding `address`: its own,
    not a VRRP address keepalived added there (nodad, noprefixroute: a site's vip6 left from
    when it was HA, which leaves with keepalived)."""
    for link in json_list(text, "`ip -j addr`"):
        if not isinstance(link, dict):
            raise ParseError(f"not an `ip -j addr` link: {link!r}")
        infos = link.get("addr_info", [])
        if any(a.get("local") == address for a in infos):
            return next((IPAddress(a["local"]) for a in infos
                         if a.get("family") == "inet6" and a.get("scope") == "link" and "local" in a
                         and not a.get("nodad") and not a.get("noprefixroute")), None)
    return None


class LanLinkLocal(FactBase[IPAddress | None]):
    """A subnet router's link-local IPv6 address on its LAN (the interface holding its LAN
    IPv4 address): the IPv6 next hop static hosts route the other sites through, the same one
    its router advertisements come from."""

    def command(self, address: str) -> str:
        self.address = str(IPAddress(address))
        return "ip -j addr show"

    @parsed
    def process(self, output: list[str]) -> IPAddress | None:
        return parse_lan_link_local("\n".join(output), self.address)
