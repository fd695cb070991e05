"""RFC 3442 classless static routes: the bytes of DHCP options 121 and 249.

Each route is: one octet of prefix width, the ceil(width/8) significant octets
of the destination, then the four octets of the router. Kea 2.2 does no content
check on this hex, so both directions here are strict.
"""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import AddrFormatError, IPAddress, IPNetwork

Route = tuple[IPNetwork, IPAddress]


class RouteEncodingError(ValueError):
    """A route that RFC 3442 cannot carry, or bytes that are not valid option 121 data."""


def _as_route(prefix: IPNetwork | str, router: IPAddress | str) -> Route:
    try:
        net = prefix if isinstance(prefix, IPNetwork) else IPNetwork(prefix)
        hop = router if isinstance(router, IPAddress) else IPAddress(router)
    except (AddrFormatError, ValueError, TypeError) as exc:
        raise RouteEncodingError(f"bad route {prefix!s} via {router!s}: {exc}") from None
    if net.version != 4 or hop.version != 4:
        raise RouteEncodingError(f"IPv6 cannot be carried by option 121: {prefix!s} via {router!s}")
    if net.value != net.first:  # integers: a 10,000-site plan encodes 150,000 routes
        raise RouteEncodingError(f"host bits set in {prefix!s} (did you mean {net.cidr}?)")
    return net, hop


def route_size(prefixlen: int) -> int:
    """Bytes one route of this width takes in the option."""
    return 1 + (prefixlen + 7) // 8 + 4


def encode(routes: Iterable[tuple[IPNetwork | str, IPAddress | str]]) -> bytes:
    """Encode (prefix, router) pairs as option 121/249 data."""
    out = bytearray()
    for prefix, router in routes:
        net, hop = _as_route(prefix, router)
        width = net.prefixlen
        out.append(width)
        out += net.first.to_bytes(4, "big")[: (width + 7) // 8]
        out += int(hop).to_bytes(4, "big")
    return bytes(out)


def decode(data: bytes) -> list[Route]:
    """Decode option 121/249 data; rejects widths over 32, host bits, truncated or trailing bytes."""
    routes: list[Route] = []
    i = 0
    while i < len(data):
        width = data[i]
        if width > 32:
            raise RouteEncodingError(f"prefix width {width} at byte {i} is over 32")
        significant = (width + 7) // 8
        end = i + 1 + significant + 4
        if end > len(data):
            raise RouteEncodingError(f"truncated route at byte {i}: needs {end - i} bytes, {len(data) - i} left")
        dest = data[i + 1 : i + 1 + significant] + bytes(4 - significant)
        net = IPNetwork((int.from_bytes(dest, "big"), width))
        if net.ip != net.network:
            raise RouteEncodingError(f"host bits set in {net} at byte {i}")
        routes.append((net.cidr, IPAddress(int.from_bytes(data[end - 4 : end], "big"))))
        i = end
    return routes
