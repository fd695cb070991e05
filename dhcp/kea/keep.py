"""Routes the user already serves with option 121/249: found, kept, merged with the plan.

Why: a subnet's option 121 replaces, for its clients, any 121 of a wider scope,
and a pool's or reservation's replaces the subnet's. Writing only the plan would
silently take the user's own routes away from every client at its next bind.
So, per Kea scope the push writes:

- the site's subnet gets the plan + the routes of the hand-made 121/249 it
  replaces there + the routes of every wider scope whose 121/249 its clients got
  until now (global, the shared network, client classes);
- a pool or reservation inside the subnet that sets 121/249 itself gets the plan
  + its own routes (so its clients get the plan too, and keep theirs).

Same prefix via another next hop is a conflict: one line naming both, nothing
changed. The routes taken over from a replaced hand-made option are recorded in
the managed option's user-context (`kept-routes`), so later pushes keep exactly
them, with no flip-flop; routes of wider scopes are read again on every push.

Forms read: hex (Kea's every version, `csv-format: false`) and Kea >= 2.5.5's
named form (`classless-static-route`, "10.99.0.0/16 - 192.0.2.1, ..."). Written:
hex, see docs/kea.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netaddr import AddrFormatError, IPAddress, IPNetwork

from dhcp.kea.options import dhcp4_of, is_managed, is_route_option, kept_record, option_bytes, option_code
from dhcp.rfc3442 import Route, RouteEncodingError, decode


class RouteConflict(ValueError):
    """Two routes for the same prefix with different next hops (one line, names both)."""


@dataclass(frozen=True)
class KeptRoute:
    """A route the push keeps, and where it came from (for the report)."""

    prefix: IPNetwork
    via: IPAddress
    origin: str

    @property
    def text(self) -> str:
        return route_text((self.prefix, self.via))


def route_text(route: Route) -> str:
    """Kea's named form of one route: "10.99.0.0/16 - 192.0.2.1"."""
    return f"{route[0]} - {route[1]}"


def parse_route_text(text: str) -> list[Route]:
    """Kea's named classless-static-route data: "prefix - router" pairs, comma separated."""
    routes: list[Route] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        prefix, sep, router = part.partition("-")
        if not sep:
            raise RouteEncodingError(f"not 'prefix - router': {part!r}")
        try:
            net, hop = IPNetwork(prefix.strip()), IPAddress(router.strip())
        except (AddrFormatError, ValueError) as exc:
            raise RouteEncodingError(f"bad route {part!r}: {exc}") from None
        if net.ip != net.network:
            raise RouteEncodingError(f"host bits set in {prefix.strip()}")
        routes.append((net.cidr, hop))
    return routes


def option_routes(option: dict[str, Any]) -> list[Route]:
    """The routes one 121/249 entry carries, hex or named. Raises RouteEncodingError for
    data that is neither (the push then stops: it cannot keep what it cannot read)."""
    data = str(option.get("data", ""))
    if "/" in data:
        return parse_route_text(data)
    raw = option_bytes({**option, "csv-format": False})
    if raw is None:
        raise RouteEncodingError(f"data {data!r} is neither hex nor 'prefix - router'")
    return decode(raw)


def recorded(option: dict[str, Any]) -> list[Route]:
    """The routes a managed entry keeps for the user (its user-context record)."""
    return [r for t in kept_record(option) for r in parse_route_text(str(t))]


def own_routes(option_data: Iterable[dict[str, Any]], label: str) -> list[KeptRoute]:
    """Routes of one scope's 121/249 to keep: a hand-made entry's, or a managed entry's record."""
    found: list[KeptRoute] = []
    for option in option_data:
        if not is_route_option(option):
            continue
        code = option_code(option)
        try:
            routes = recorded(option) if is_managed(option) else option_routes(option)
        except RouteEncodingError as exc:
            raise RouteConflict(f"{label}: option {code} cannot be read ({exc}); fix or remove "
                                "it, the push will not drop routes it cannot read") from None
        origin = f"{label} option {code}" + (" (kept earlier)" if is_managed(option) else "")
        found.extend(KeptRoute(net, hop, origin) for net, hop in routes)
    return found


def wider_routes(config: dict[str, Any], subnet: dict[str, Any],
                 network: dict[str, Any] | None) -> list[KeptRoute]:
    """Hand-made 121/249 routes of scopes wider than the subnet whose clients get them now:
    the shared network, client classes (for their members), global."""
    found: list[KeptRoute] = []
    if network is not None:
        found += own_routes(network.get("option-data") or [],
                            f"shared network {network.get('name')}")
    for klass in dhcp4_of(config).get("client-classes") or []:
        found += own_routes(klass.get("option-data") or [], f"client class {klass.get('name')}")
    found += own_routes(dhcp4_of(config).get("option-data") or [], "global")
    return [k for k in found if "(kept earlier)" not in k.origin]


def merge(plan: Iterable[Route], kept: Iterable[KeptRoute], where: str) -> tuple[list[Route], list[KeptRoute]]:
    """Plan first, then the kept routes not already in it; a prefix with two next hops is a
    RouteConflict naming both. Returns (all routes, the kept ones actually added)."""
    by_prefix: dict[IPNetwork, tuple[IPAddress, str]] = {}
    routes: list[Route] = []
    for net, hop in plan:
        by_prefix[net] = (hop, "the plan")
        routes.append((net, hop))
    added: list[KeptRoute] = []
    for k in kept:
        seen = by_prefix.get(k.prefix)
        if seen is None:
            by_prefix[k.prefix] = (k.via, k.origin)
            routes.append((k.prefix, k.via))
            added.append(k)
        elif seen[0] != k.via:
            raise RouteConflict(f"{where}: {k.prefix} via {seen[0]} ({seen[1]}) conflicts with "
                                f"{k.prefix} via {k.via} ({k.origin}); nothing was changed")
    # The default route last: clients read the list in order and some stop at a default.
    routes.sort(key=lambda r: r[0].prefixlen == 0)
    return routes, added


def dedupe(kept: Iterable[KeptRoute], where: str) -> list[KeptRoute]:
    """One entry per prefix (121 and 249 usually carry the same routes); two next hops for
    one prefix is a conflict."""
    out: dict[IPNetwork, KeptRoute] = {}
    for k in kept:
        seen = out.get(k.prefix)
        if seen is None:
            out[k.prefix] = k
        elif seen.via != k.via:
            raise RouteConflict(f"{where}: {k.prefix} via {seen.via} ({seen.origin}) conflicts "
                                f"with {k.prefix} via {k.via} ({k.origin}); nothing was changed")
    return list(out.values())
