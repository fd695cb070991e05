"""Write an N-site lab topology (`python -m lab topology --sites N > t.toml`).

Addresses stay inside the lab: the WAN is 192.168.255.0/24, a private range
on purpose (see lab/topology.toml), site k's LAN sits at the start of the private block
10.k.0.0/16 and its extra advertised prefixes are /24s of 172.16.0.0/12 (16 per
site), so no two prefixes of the lab can overlap. The
`mixed` layout cycles through LAN sizes and router/gateway positions (a /24
with the guide's .1/.2, a /16, a /29, a /27 with the router mid-range) so one
lab exercises the general cases; `uniform` gives every site a /24 like the guide's.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from netaddr import IPNetwork

WAN = IPNetwork("192.168.255.0/24")
CONTROL_HOST = 10   # 192.168.255.10, as in the built-in lab
FIRST_ROUTER_WAN = 20
MIN_SITES = 2       # the site file refuses fewer: site-to-site needs two sites to join
MAX_SITES = 200     # WAN addresses .21-.220 for the routers


@dataclass(frozen=True)
class _Shape:
    """Where the gateway, router and DHCP pool sit inside a LAN of one size (offsets from the network)."""

    prefixlen: int
    gateway: int
    router: int
    pool: tuple[int, int]


_UNIFORM = (_Shape(24, 1, 2, (100, 199)),)
_MIXED = (
    _Shape(24, 1, 2, (100, 199)),
    _Shape(16, 1, 200 * 256 + 254, (256 + 10, 256 + 250)),  # router at 10.k.200.254, pool in 10.k.1.0/24
    _Shape(29, 6, 1, (2, 5)),                               # six usable addresses: router first, gateway last
    _Shape(27, 30, 17, (2, 16)),
)
LAYOUTS = {"uniform": _UNIFORM, "mixed": _MIXED}


def site_name(index: int) -> str:
    """a, b, ... z, then s27, s28 ... (host and interface names are built from it)."""
    return string.ascii_lowercase[index] if index < 26 else f"s{index + 1}"


IPV6_BLOCK = "fd5a:b0c0"  # ULA: with --ipv6 site k's LAN is fd5a:b0c0:k::/64


def generate(sites: int, layout: str = "uniform", routes: int = 0, ipv6: bool = False) -> str:
    """A topology file (TOML text) with `sites` sites and `routes` extra advertised prefixes each;
    `ipv6`: dual-stack LANs (a ULA /64 each) with systemd-networkd clients, which take the
    routers' route information (docs/ipv6.md)."""
    if not MIN_SITES <= sites <= MAX_SITES:
        raise ValueError(f"--sites: must be {MIN_SITES}-{MAX_SITES} ({sites})")
    if not 0 <= routes <= 16:
        raise ValueError(f"--routes: must be 0-16 ({routes})")
    shapes = LAYOUTS[layout]
    out = [
        f"# {sites}-site lab topology, written by `python -m lab topology --sites {sites} --layout {layout}"
        f"{f' --routes {routes}' if routes else ''}{' --ipv6' if ipv6 else ''}`.",
        "# Every address lives only inside the lab's namespaces.",
        "",
        "[wan]",
        f'subnet = "{WAN}"',
        "",
        "[control]",
        f'address = "{WAN[CONTROL_HOST]}"',
        "headscale_port = 8080",
        "apt_port = 8081",
        "",
        "[dhcp]",
        "# Past about twenty sites the LANs' option 121 no longer fits a DHCP reply one route per",
        "# site: the deploy picks covering prefixes (docs/scale.md).",
        'summaries = "auto"',
    ]
    for k in range(sites):
        block = IPNetwork(f"10.{k + 1}.0.0/16")
        shape = shapes[k % len(shapes)]
        lan = IPNetwork(f"{block.network}/{shape.prefixlen}")
        extra = [IPNetwork(f"172.{16 + k // 16}.{(k % 16) * 16 + i}.0/24") for i in range(routes)]
        out += [
            "",
            f"[sites.{site_name(k)}]",
            f'subnet = "{lan}"',
            f'gateway = "{lan[shape.gateway]}"',
            f'router = "{lan[shape.router]}"',
            f'router_wan = "{WAN[FIRST_ROUTER_WAN + k + 1]}"',
            f'dhcp_pool = "{lan[shape.pool[0]]} - {lan[shape.pool[1]]}"',
        ]
        if extra:
            out.append(f"routes = [{', '.join(f'{chr(34)}{r}{chr(34)}' for r in extra)}]")
        if ipv6:
            out += [f'subnet6 = "{IPV6_BLOCK}:{k + 1:x}::/64"', 'dhcp_client = "networkd"']
    return "\n".join(out) + "\n"
