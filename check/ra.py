"""The IPv6 half of the check: the router advertisement seen on the LAN, and ping6 LAN to LAN.

A dual-stack site's LAN hosts learn the other sites' IPv6 prefixes and fd7a:115c:a1e0::/48
from the router's advertisements (Route Information Options, RFC 4191) sent with router
lifetime 0 (operations/radvd.py). The probe (ra_probe_remote.py, run on the router) captures one
advertisement going out of the LAN interface; parsing and judging are here, pure.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from dataclasses import dataclass, field

from operations import radvd

RA_WAIT = radvd.MAX_INTERVAL + 1  # seconds: one unsolicited interval (radvd ignores its host's RS)
PROBE_SCRIPT_NAME = "ra_probe_remote.py"
RIO = 24  # Route Information Option


class RaParseError(ValueError):
    """The probe's output or an advertisement in it does not parse."""


@dataclass(frozen=True)
class RouterAdvert:
    """What a LAN host reads from one advertisement: router lifetime and route information."""

    source: str
    router_lifetime: int
    routes: dict[str, int] = field(default_factory=dict)  # prefix -> route lifetime (seconds)


def parse_ra(source: str, data: bytes) -> RouterAdvert:
    """An ICMPv6 router advertisement (type 134) -> RouterAdvert (route information only)."""
    if len(data) < 16 or data[0] != 134:
        raise RaParseError(f"not a router advertisement: {data[:16].hex()}")
    lifetime = struct.unpack("!H", data[6:8])[0]
    routes: dict[str, int] = {}
    at = 16
    while at + 2 <= len(data):
        kind, units = data[at], data[at + 1]
        if units == 0 or at + 8 * units > len(data):
            raise RaParseError(f"bad option length at byte {at}")
        if kind == RIO:
            plen = data[at + 2]
            life = struct.unpack("!I", data[at + 4:at + 8])[0]
            raw = data[at + 8:at + 8 * units].ljust(16, b"\0")[:16]
            net = ipaddress.IPv6Network((int.from_bytes(raw, "big"), plen), strict=False)
            routes[str(net)] = life
        at += 8 * units
    return RouterAdvert(source, lifetime, routes)


def parse_probe(text: str) -> RouterAdvert | None:
    """The probe's JSON -> the advertisement it captured (None: none went out in the wait)."""
    try:
        doc = json.loads(text)
        seen = doc["advertisements"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RaParseError(f"unexpected probe output: {text.strip()[:200]!r}") from exc
    if not seen:
        return None
    first = seen[0]
    return parse_ra(first["src"], bytes.fromhex(first["icmp"]))


def ra_verdict(want: list[str], ra: RouterAdvert | None) -> tuple[bool, str]:
    """(ok, reason): lifetime 0, and route information with a non-zero lifetime for each prefix."""
    if ra is None:
        return False, (f"no router advertisement left the LAN interface in {RA_WAIT} s "
                       "(radvd not running?)")
    if ra.router_lifetime != 0:
        return False, (f"router lifetime {ra.router_lifetime} s: the router offers itself as the "
                       "LAN's default")
    missing = [p for p in want if not ra.routes.get(p)]
    if missing:
        return False, f"no route information for {', '.join(missing)}"
    return True, f"lifetime 0 from {ra.source}, routes {', '.join(want)}"


def address_in(addresses: list[str], prefix: str | None) -> str | None:
    """The first of a router's IPv6 addresses inside `prefix` (its site's subnet6)."""
    if prefix is None:
        return None
    net = ipaddress.IPv6Network(prefix)
    return next((a for a in addresses if ipaddress.IPv6Address(a) in net), None)
