"""The lab's network, read from lab/topology.toml into typed, validated values.

Both labs (namespaces + systemd-nspawn, and the Vagrantfile) are built from this
one description so they are the same network. Bad input is reported as one line
naming the file, the key and the value, before anything is built.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPRange

DEFAULT_PATH = Path(__file__).with_name("topology.toml")
TOPOLOGY_ENV = "S2S_LAB_TOPOLOGY"  # a topology file, as if given with --topology

_TOP_KEYS = {"wan", "control", "sites", "dhcp"}
_DHCP_KEYS = {"summaries"}  # copied into the lab's site file [dhcp]
_WAN_KEYS = {"subnet"}
_CONTROL_KEYS = {"address", "headscale_port", "apt_port"}
_SITE_KEYS = {"subnet", "gateway", "router", "router_wan", "dhcp_pool"}
# Optional per-site keys (one entry per key, so additions merge line by line).
_SITE_OPTIONAL = {
    "routes",  # extra prefixes the site's router advertises (into the lab's site file)
    "subnet6",  # the LAN's IPv6 prefix: the gateway advertises it (SLAAC), the site file carries it
    "router_release",  # Debian suite of the subnet router
    "gw_release",  # Debian suite of the gateway, which picks its Kea release
    "dhcp_client",  # the LAN's DHCP client kind(s), one client host each
    "router2",  # HA: a second subnet router on the LAN (host NAME-router2)
    "router2_wan",  # HA: its WAN address
    "vip",  # HA: the VRRP address both routers share (the LAN's next hop)
    "router3",  # HA: a third subnet router (host NAME-router3); needs the HA keys
    "router3_wan",  # HA: its WAN address
    "static_hosts",  # static-address LAN hosts, one per network manager kind (NAME-static-KIND)
}
_HA_KEYS = ("router2", "router2_wan", "vip")
_THIRD_KEYS = ("router3", "router3_wan")
# A site LAN must hold a gateway, a router and a pool (/29: 6 usable addresses) and stay a LAN.
MIN_SITE_PREFIX, MAX_SITE_PREFIX = 16, 29
ROUTER_RELEASES = ("bookworm", "trixie")          # Debian 12, Debian 13 (nftables-era iptables)
GW_RELEASES = {"bookworm": "2.2", "trixie": "2.6", "sid": "3.0"}  # Debian suite -> Kea it ships
# ISC dhclient, systemd-networkd, dhcpcd, NetworkManager (its own DHCPv4 client)
DHCP_CLIENTS = ("dhclient", "networkd", "dhcpcd", "networkmanager")
STATIC_MANAGERS = ("networkd", "networkmanager", "ifupdown", "netplan")  # sites.model.MANAGERS
STATIC_OFFSET = 50  # NAME-static-KIND: subnet address STATIC_OFFSET + its index in STATIC_MANAGERS


class TopologyError(ValueError):
    """A bad topology file; str() is one line: `file: key: problem (value)`."""


@dataclass(frozen=True)
class LabSite:
    """One LAN: its gateway host (Kea), its subnet router and its DHCP pool."""

    name: str
    subnet: IPNetwork
    gateway: IPAddress
    router: IPAddress
    router_wan: IPAddress
    dhcp_pool: str  # "first - last", the form Kea's subnet4 pools take
    routes: tuple[IPNetwork, ...] = ()  # advertised besides the subnet (nothing in the lab answers there)
    router_release: str = "bookworm"
    gw_release: str = "bookworm"
    dhcp_clients: tuple[str, ...] = ("dhclient",)  # one client host per entry, in this order
    router2: IPAddress | None = None  # HA sites: the second router's LAN address
    router2_wan: IPAddress | None = None
    vip: IPAddress | None = None  # HA sites: the VRRP address
    router3: IPAddress | None = None  # HA sites with three routers: the third one's LAN address
    router3_wan: IPAddress | None = None
    static_hosts: tuple[str, ...] = ()  # network manager kinds, one static-address host each

    def static_address6(self, kind: str) -> IPAddress | None:
        """A static host's IPv6 address on a dual-stack LAN: the same offset in subnet6."""
        if self.subnet6 is None:
            return None
        return IPAddress(self.subnet6.first + STATIC_OFFSET + STATIC_MANAGERS.index(kind))

    @property
    def static_host_list(self) -> list[tuple[str, str, IPAddress]]:
        """(host name, manager, address) per static host: `NAME-static-KIND`."""
        return [(f"{self.name}-static-{kind}", kind,
                 IPAddress(self.subnet.first + STATIC_OFFSET + STATIC_MANAGERS.index(kind)))
                for kind in self.static_hosts]
    subnet6: IPNetwork | None = None  # dual stack: a /64 the gateway's radvd advertises (SLAAC)

    @property
    def ha(self) -> bool:
        return self.router2 is not None

    @property
    def router2_host(self) -> str:
        return f"{self.name}-router2"

    @property
    def routers(self) -> list[tuple[str, IPAddress, IPAddress]]:
        """(host name, LAN address, WAN address) of every subnet router of the site."""
        out = [(self.router_host, self.router, self.router_wan)]
        if self.router2 is not None and self.router2_wan is not None:
            out.append((self.router2_host, self.router2, self.router2_wan))
        if self.router3 is not None and self.router3_wan is not None:
            out.append((f"{self.name}-router3", self.router3, self.router3_wan))
        return out

    @property
    def kea_version(self) -> str:
        """The Kea release the gateway's Debian suite ships ("2.2", "2.6", "3.0")."""
        return GW_RELEASES[self.gw_release]

    @property
    def client_hosts(self) -> list[tuple[str, str]]:
        """(host name, DHCP client kind) per client: `NAME-client`, then `NAME-client2`, ..."""
        return [(self.client_host if i == 0 else f"{self.client_host}{i + 1}", kind)
                for i, kind in enumerate(self.dhcp_clients)]

    @property
    def pool_range(self) -> IPRange:
        first, last = (part.strip() for part in self.dhcp_pool.split("-"))
        return IPRange(first, last)

    # Host names shared by both labs (and by their SSH aliases).
    @property
    def gateway_host(self) -> str:
        return f"{self.name}-gw"

    @property
    def router_host(self) -> str:
        return f"{self.name}-router"

    @property
    def client_host(self) -> str:
        return f"{self.name}-client"


@dataclass(frozen=True)
class Topology:
    """The whole lab: WAN segment, control host (Headscale + apt repo), sites in file order."""

    path: Path
    wan_subnet: IPNetwork
    control_address: IPAddress
    headscale_port: int
    apt_port: int
    sites: dict[str, LabSite]
    dhcp_summaries: str | tuple[str, ...] | None = None  # [dhcp] summaries: "auto" or prefixes, for the site file

    control_host = "control"

    @property
    def headscale_url(self) -> str:
        """Headscale as the routers see it on the WAN (their login server)."""
        return f"http://{self.control_address}:{self.headscale_port}"

    @property
    def apt_url(self) -> str:
        """The lab's apt repository as the routers see it on the WAN."""
        return f"http://{self.control_address}:{self.apt_port}"

    def host_names(self) -> list[str]:
        """Every lab host, control first, then per site gateway, router, client."""
        names = [self.control_host]
        for site in self.sites.values():
            names += [site.gateway_host, *(name for name, _, _ in site.routers),
                      *(name for name, _ in site.client_hosts),
                      *(name for name, _, _ in site.static_host_list)]
        return names


def load_topology(path: str | Path | None = None) -> Topology:
    """Read and validate a topology file (default: lab/topology.toml; which one a verb acts on,
    $S2S_LAB_TOPOLOGY included, is lab.api.resolve_topology's decision)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: not valid TOML ({exc})") from None
    return _Parser(path).topology(data)


class _Parser:
    """Turns the raw TOML tables into dataclasses, raising TopologyError with the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, value: Any = None) -> TopologyError:
        shown = "" if value is None else f" ({value!r})" if not isinstance(value, str) else f" ({value})"
        return TopologyError(f"{self.path}: {key}: {problem}{shown}")

    def table(self, data: dict[str, Any], key: str, required: set[str],
              optional: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            raise self.fail(key, "missing table")
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table", value)
        unknown = sorted(set(value) - required - optional)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", "unknown key", value[unknown[0]])
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{key}.{missing[0]}", "missing key")
        return value

    def network(self, key: str, value: Any) -> IPNetwork:
        if not isinstance(value, str) or "/" not in value:
            raise self.fail(key, "must be a prefix like 192.0.2.0/24", value)
        try:
            net = IPNetwork(value)
        except (AddrFormatError, ValueError):
            raise self.fail(key, "invalid prefix", value) from None
        if net.version != 4:
            raise self.fail(key, "must be IPv4", value)
        if net.ip != net.network:
            raise self.fail(key, "host bits set", value)
        return net

    def address(self, key: str, value: Any, inside: IPNetwork, where: str) -> IPAddress:
        if not isinstance(value, str):
            raise self.fail(key, "must be an address string", value)
        try:
            addr = IPAddress(value)
        except (AddrFormatError, ValueError):
            raise self.fail(key, "invalid address", value) from None
        if addr.version != 4 or addr not in inside:
            raise self.fail(key, f"not inside {where} {inside}", value)
        if inside.prefixlen < 31 and addr in (inside.network, inside.broadcast):
            raise self.fail(key, f"is the network or broadcast address of {inside}", value)
        return addr

    def port(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.fail(key, "must be a TCP port 1-65535", value)
        return value

    def topology(self, data: dict[str, Any]) -> Topology:
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise self.fail(unknown[0], "unknown key", data[unknown[0]])
        wan = self.table(data, "wan", _WAN_KEYS)
        wan_subnet = self.network("wan.subnet", wan["subnet"])
        control = self.table(data, "control", _CONTROL_KEYS)
        control_address = self.address("control.address", control["address"], wan_subnet, "wan.subnet")
        headscale_port = self.port("control.headscale_port", control["headscale_port"])
        apt_port = self.port("control.apt_port", control["apt_port"])
        if apt_port == headscale_port:
            raise self.fail("control.apt_port", "same port as control.headscale_port", apt_port)

        raw_sites = data.get("sites")
        if not isinstance(raw_sites, dict) or not raw_sites:
            raise self.fail("sites", "need at least one [sites.NAME] table", raw_sites)
        sites: dict[str, LabSite] = {}
        wan_used = {control_address: "control.address"}
        for name in raw_sites:
            site = self.site(name, self.table(raw_sites, f"sites.{name}", _SITE_KEYS, _SITE_OPTIONAL), wan_subnet)
            self.no_overlap(site, sites, wan_subnet)
            for key, wan_addr in (("router_wan", site.router_wan), ("router2_wan", site.router2_wan),
                                  ("router3_wan", site.router3_wan)):
                if wan_addr is None:
                    continue
                if wan_addr in wan_used:
                    raise self.fail(f"sites.{name}.{key}", f"already used by {wan_used[wan_addr]}", str(wan_addr))
                wan_used[wan_addr] = f"sites.{name}.{key}"
            sites[name] = site
        return Topology(self.path, wan_subnet, control_address, headscale_port, apt_port, sites,
                        self.summaries(data.get("dhcp")))

    def summaries(self, dhcp: Any) -> str | tuple[str, ...] | None:
        """`[dhcp] summaries`: "auto" or IPv4 prefixes, handed to the site file as written."""
        if dhcp is None:
            return None
        if not isinstance(dhcp, dict):
            raise self.fail("dhcp", "must be a table", dhcp)
        unknown = sorted(set(dhcp) - _DHCP_KEYS)
        if unknown:
            raise self.fail(f"dhcp.{unknown[0]}", "unknown key", dhcp[unknown[0]])
        value = dhcp.get("summaries")
        if value is None or value == "auto":
            return value
        if not isinstance(value, list):
            raise self.fail("dhcp.summaries", 'must be "auto" or a list of IPv4 prefixes', value)
        return tuple(str(self.network(f"dhcp.summaries[{i}]", v)) for i, v in enumerate(value))

    def no_overlap(self, site: LabSite, earlier: dict[str, LabSite], wan_subnet: IPNetwork) -> None:
        """Every prefix of a site (subnet, routes) is disjoint from the WAN and every earlier site's."""
        taken: list[tuple[str, IPNetwork]] = [("wan.subnet", wan_subnet)]
        for other in earlier.values():
            taken.append((f"sites.{other.name}.subnet", other.subnet))
            taken += [(f"sites.{other.name}.routes[{i}]", r) for i, r in enumerate(other.routes)]
        mine = [(f"sites.{site.name}.subnet", site.subnet)]
        mine += [(f"sites.{site.name}.routes[{i}]", r) for i, r in enumerate(site.routes)]
        if site.subnet6 is not None:
            mine.append((f"sites.{site.name}.subnet6", site.subnet6))
        taken += [(f"sites.{o.name}.subnet6", o.subnet6) for o in earlier.values()
                  if o.subnet6 is not None]
        for key, prefix in mine:
            for other_key, other in taken:
                if prefix in other or other in prefix:
                    raise self.fail(key, f"overlaps {other_key} {other}", str(prefix))

    def routes(self, key: str, value: Any, subnet: IPNetwork) -> tuple[IPNetwork, ...]:
        if not isinstance(value, list):
            raise self.fail(key, 'must be a list of prefixes like ["198.18.0.0/24"]', value)
        out: list[IPNetwork] = []
        for i, raw in enumerate(value):
            route = self.network(f"{key}[{i}]", raw)
            for j, earlier in enumerate([subnet, *out]):
                if route in earlier or earlier in route:
                    where = f"{key.rsplit('.', 1)[0]}.subnet" if j == 0 else f"{key}[{j - 1}]"
                    raise self.fail(f"{key}[{i}]", f"overlaps {where} {earlier}", raw)
            out.append(route)
        return tuple(out)

    def site(self, name: str, raw: dict[str, Any], wan_subnet: IPNetwork) -> LabSite:
        key = f"sites.{name}"
        if not name.replace("-", "").isalnum() or not name[0].isalpha() or len(name) > 8:
            # Host names and interface names (15 chars max) are built from it.
            raise self.fail(key, "site name must be 1-8 letters/digits/dashes starting with a letter", name)
        subnet = self.network(f"{key}.subnet", raw["subnet"])
        if not MIN_SITE_PREFIX <= subnet.prefixlen <= MAX_SITE_PREFIX:
            raise self.fail(f"{key}.subnet", f"must be a /{MIN_SITE_PREFIX} to /{MAX_SITE_PREFIX}", str(subnet))
        where = f"{key}.subnet"
        gateway = self.address(f"{key}.gateway", raw["gateway"], subnet, where)
        router = self.address(f"{key}.router", raw["router"], subnet, where)
        if router == gateway:
            raise self.fail(f"{key}.router", "same address as the gateway", str(router))
        router_wan = self.address(f"{key}.router_wan", raw["router_wan"], wan_subnet, "wan.subnet")
        pool = raw["dhcp_pool"]
        parts = pool.split("-") if isinstance(pool, str) else []
        if len(parts) != 2:
            raise self.fail(f"{key}.dhcp_pool", 'must be "first - last"', pool)
        first = self.address(f"{key}.dhcp_pool", parts[0].strip(), subnet, where)
        last = self.address(f"{key}.dhcp_pool", parts[1].strip(), subnet, where)
        if first > last:
            raise self.fail(f"{key}.dhcp_pool", "first address is after the last", pool)
        ha = self.ha(key, raw, subnet, wan_subnet, {"gateway": gateway, "router": router})
        for role, addr in (("gateway", gateway), ("router", router), ("router2", ha.get("router2")),
                           ("vip", ha.get("vip")), ("router3", ha.get("router3"))):
            if addr is not None and first <= addr <= last:
                raise self.fail(f"{key}.dhcp_pool", f"contains the {role} address {addr}", pool)
        routes = self.routes(f"{key}.routes", raw.get("routes", []), subnet)
        site = LabSite(name, subnet, gateway, router, router_wan, f"{first} - {last}", routes,
                       **self.site_options(key, raw), **ha,
                       subnet6=self.subnet6(f"{key}.subnet6", raw))
        taken = {gateway, router, *(ha.get(k) for k in ("router2", "vip", "router3") if ha.get(k))}
        for host, _, addr in site.static_host_list:
            if addr in taken or first <= addr <= last or addr not in subnet \
                    or addr == subnet.broadcast:
                raise self.fail(f"{key}.static_hosts", f"{host}'s address {addr} is not free "
                                "on the LAN", raw["static_hosts"])
        return site

    def subnet6(self, key: str, raw: dict[str, Any]) -> IPNetwork | None:
        """`subnet6`: a /64 (SLAAC needs one) of global unicast or unique local space."""
        if "subnet6" not in raw:
            return None
        value = raw["subnet6"]
        try:
            net = IPNetwork(value) if isinstance(value, str) and "/" in value else None
        except (AddrFormatError, ValueError):
            net = None
        if net is None or net.version != 6 or net.prefixlen != 64:
            raise self.fail(key, "must be an IPv6 /64 like 2001:db8:a::/64", value)
        if net.ip != net.network:
            raise self.fail(key, "host bits set", value)
        if not (net in IPNetwork("2000::/3") or net in IPNetwork("fc00::/7")) \
                or net in IPNetwork("fd7a:115c:a1e0::/48"):
            raise self.fail(key, "must be global unicast or unique local, outside "
                            "fd7a:115c:a1e0::/48", value)
        return net

    def ha(self, key: str, raw: dict[str, Any], subnet: IPNetwork, wan_subnet: IPNetwork,
           taken: dict[str, IPAddress]) -> dict[str, Any]:
        """router2, router2_wan and vip: all three (an HA site) or none; router3 and router3_wan: a
        third router of an HA site (both or none)."""
        given = [k for k in _HA_KEYS if k in raw]
        if not given:
            third = next((k for k in _THIRD_KEYS if k in raw), None)
            if third is not None:
                raise self.fail(f"{key}.{third}", f"a third router needs an HA site ({', '.join(_HA_KEYS)})")
            return {}
        if len(given) != len(_HA_KEYS):
            missing = next(k for k in _HA_KEYS if k not in raw)
            raise self.fail(f"{key}.{missing}", f"an HA site needs all of {', '.join(_HA_KEYS)}")
        out: dict[str, Any] = {}
        for name in ("router2", "vip"):
            addr = self.address(f"{key}.{name}", raw[name], subnet, f"{key}.subnet")
            for other, used in taken.items():
                if addr == used:
                    raise self.fail(f"{key}.{name}", f"same address as {other}", str(addr))
            taken[name] = out[name] = addr
        out["router2_wan"] = self.address(f"{key}.router2_wan", raw["router2_wan"], wan_subnet, "wan.subnet")
        third = [k for k in _THIRD_KEYS if k in raw]
        if third:
            if len(third) != len(_THIRD_KEYS):
                missing = next(k for k in _THIRD_KEYS if k not in raw)
                raise self.fail(f"{key}.{missing}", f"a third router needs both of {', '.join(_THIRD_KEYS)}")
            addr = self.address(f"{key}.router3", raw["router3"], subnet, f"{key}.subnet")
            for other, used in taken.items():
                if addr == used:
                    raise self.fail(f"{key}.router3", f"same address as {other}", str(addr))
            taken["router3"] = out["router3"] = addr
            out["router3_wan"] = self.address(f"{key}.router3_wan", raw["router3_wan"], wan_subnet, "wan.subnet")
        return out

    def site_options(self, key: str, raw: dict[str, Any]) -> dict[str, Any]:
        """The optional per-site keys: releases per role and DHCP client kinds."""
        out: dict[str, Any] = {}
        for opt, choices in (("router_release", ROUTER_RELEASES), ("gw_release", tuple(GW_RELEASES))):
            if opt in raw:
                if raw[opt] not in choices:
                    raise self.fail(f"{key}.{opt}", f"must be one of {', '.join(choices)}", raw[opt])
                out[opt] = raw[opt]
        if "dhcp_client" in raw:
            value = raw["dhcp_client"]
            kinds = [value] if isinstance(value, str) else value
            if not isinstance(kinds, list) or not kinds or len(kinds) > 9:
                raise self.fail(f"{key}.dhcp_client", "must be a client kind or a list of 1-9 of them", value)
            for kind in kinds:
                if kind not in DHCP_CLIENTS:
                    raise self.fail(f"{key}.dhcp_client", f"must be one of {', '.join(DHCP_CLIENTS)}", kind)
            out["dhcp_clients"] = tuple(kinds)
        if "static_hosts" in raw:
            kinds = raw["static_hosts"]
            if not isinstance(kinds, list) or len(set(map(str, kinds))) != len(kinds):
                raise self.fail(f"{key}.static_hosts", "must be a list of distinct manager kinds",
                                kinds)
            for kind in kinds:
                if kind not in STATIC_MANAGERS:
                    raise self.fail(f"{key}.static_hosts",
                                    f"must be one of {', '.join(STATIC_MANAGERS)}", kind)
            out["static_hosts"] = tuple(kinds)
        return out
