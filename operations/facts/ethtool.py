"""Facts read with `ethtool -k`: the UDP GRO forwarding features of an interface (default: the WAN one)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed

# The interface of the preferred IPv4 default route, in the shell: the first `dev X` of
# `ip -4 route show default`, as DefaultRouteInterface parses it (multipath lines included).
DEFAULT_ROUTE_DEV = "$(ip -4 route show default 2>/dev/null | tr -s ' ' '\\n' | sed -n '/^dev$/{n;p;q}')"


def interface_word(interface: str | None) -> str:
    """A shell word naming INTERFACE, or the default route's interface when None."""
    return shlex.quote(interface) if interface else f'"{DEFAULT_ROUTE_DEV}"'


@dataclass(frozen=True)
class Feature:
    enabled: bool
    fixed: bool


_FEATURE = re.compile(r"^\s*([A-Za-z0-9_-]+):\s+(on|off)(?:\s+\[(fixed|requested (?:on|off))\])?\s*$")


def parse_ethtool_features(text: str) -> dict[str, Feature]:
    """Parse `ethtool -k IF` (first line `Features for IF:`)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Features for "):
        raise ParseError("missing 'Features for' header")
    features = {}
    for line in lines[1:]:
        m = _FEATURE.match(line)
        if not m:
            raise ParseError(f"not a feature line: {line!r}")
        features[m.group(1)] = Feature(m.group(2) == "on", m.group(3) == "fixed")
    return features


@dataclass(frozen=True)
class UdpGro:
    """The two features Tailscale's throughput advice sets on the WAN interface."""

    interface: str
    supported: bool  # rx-udp-gro-forwarding exists and is changeable
    forwarding: bool  # rx-udp-gro-forwarding on
    gro_list: bool  # rx-gro-list on (should be off)
    gro_list_fixed: bool

    @property
    def wanted(self) -> bool:
        return self.forwarding and not self.gro_list


def udp_gro_state(interface: str, features: dict[str, Feature]) -> UdpGro:
    fwd = features.get("rx-udp-gro-forwarding")
    lst = features.get("rx-gro-list", Feature(False, True))
    return UdpGro(
        interface=interface,
        supported=fwd is not None and not (fwd.fixed and not fwd.enabled),
        forwarding=bool(fwd and fwd.enabled),
        gro_list=lst.enabled,
        gro_list_fixed=lst.fixed,
    )


def features_interface(text: str) -> str:
    """The interface named by the `Features for IF:` header."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.startswith("Features for ") or not first.rstrip().endswith(":"):
        raise ParseError("missing 'Features for' header")
    return first.strip()[len("Features for "):-1]


class UdpGroForwarding(FactBase[UdpGro | None]):
    """UDP GRO forwarding features of INTERFACE (default: the IPv4 default route's) from `ethtool -k`;
    None: no ethtool, no such interface, or no default route."""

    def requires_command(self, interface: str | None = None) -> str:
        return "ethtool"

    def command(self, interface: str | None = None) -> str:
        dev = interface_word(interface)
        return f"dev={dev}; if [ -n \"$dev\" ] && [ -e \"/sys/class/net/$dev\" ]; then ethtool -k \"$dev\"; fi"

    @parsed
    def process(self, output: list[str]) -> UdpGro:
        text = "\n".join(output)
        return udp_gro_state(features_interface(text), parse_ethtool_features(text))
