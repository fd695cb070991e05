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

MANAGERS = ("networkd", "networkmanager", "ifupdown", "netplan")


@dataclass(frozen=True)
class KernelRoute:
    """One IPv4 route of the main table, as `ip -j route` shows it."""

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

    @property
    def default_gateway(self) -> IPAddress | None:
        for route in self.routes:
            if route.dst == "default" and route.gateway:
                return IPAddress(route.gateway)
        return None

    def route_for(self, prefix: IPNetwork) -> KernelRoute | None:
        """The main-table route for exactly `prefix` (None when the kernel has none)."""
        for route in self.routes:
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
            dst += "/32"  # a host route prints without its length
        routes.append(KernelRoute(dst, item.get("gateway"), item.get("dev"), item.get("protocol")))
    return tuple(routes)


def parse_nm_routes(text: str) -> tuple[tuple[IPNetwork, str], ...]:
    """`nmcli -g ipv4.routes connection show CON`: `PREFIX NH [METRIC] [ATTRS]`, comma-separated."""
    out = []
    for item in text.replace("\n", ",").split(","):
        bits = item.split()
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
    """Kernel routes (`ip -j -4 route`), the interface towards `next_hop`, its network manager."""

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
