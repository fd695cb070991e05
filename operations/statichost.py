"""A static-address LAN host gets the routes to the other sites: step 6 of Tailscale's
site-to-site guide ("configure the other devices in the subnet"), made persistent "in your
network manager or netplan configuration" and applied live.

Each manager's routes live in one file this project owns and marks (RENDERERS); the kernel
gets the same routes with `ip route replace`, so no interface restarts and the SSH session
stays. Nothing else of the host's configuration is touched, and no default route is added.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from netaddr import IPAddress, IPNetwork
from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import FileContents

from operations import owned
from operations.facts.statichost import StaticHost, StaticHostState

MARK = "# Managed by s2s (Tailscale site-to-site): routes to the other sites via the subnet router."
MARK2 = "# Rewritten by every deploy; removed by the removal run. Do not edit."


Route = tuple[IPNetwork, IPAddress]  # a prefix and its next hop (either family)
Persist = Callable[[StaticHostState, list[Route], list[Route]], Iterator[str]]


def _nothing_more(facts: StaticHostState, add: list[Route], drop: list[Route]) -> Iterator[str]:
    return iter(())


@dataclass(frozen=True)
class Renderer:
    """Where one network manager keeps the routes, that file's text, and what else persists them.

    `persist(facts, add, drop)` yields the commands that put the `add` routes into the manager's
    own state and take the `drop` ones (ours, no longer wanted) out of it, beside the file;
    `regenerate` runs after the file changed (netplan renders its YAML for the backend).
    """

    path: Callable[[StaticHostState], str]
    render: Callable[[list[Route], StaticHostState], str]
    mode: str = "644"
    persist: Persist = _nothing_more
    regenerate: tuple[str, ...] = ()


def _networkd_path(facts: StaticHostState) -> str:
    if not facts.networkd_file:
        raise OperationError(f"systemd-networkd applies no .network file to {facts.dev}")
    return f"/etc/systemd/network/{posixpath.basename(facts.networkd_file)}.d/90-s2s-routes.conf"


def _networkd(routes: list[Route], facts: StaticHostState) -> str:
    """A drop-in of the interface's own .network file: one [Route] section per prefix (an IPv6
    link-local Gateway= is on the interface's own link)."""
    body = "".join(f"\n[Route]\nDestination={p}\nGateway={nh}\n" for p, nh in routes)
    return f"{MARK}\n{MARK2}\n{body}"


def _ifupdown(routes: list[Route], facts: StaticHostState) -> str:
    """An if-up.d hook: ifupdown runs it after every `ifup`, with IFACE set."""
    dev = facts.dev or ""
    lines = [_replace(p, nh, dev) for p, nh in routes]
    return "\n".join(["#!/bin/sh", MARK, MARK2, f'[ "$IFACE" = {shlex.quote(dev)} ] || exit 0',
                      *lines, "exit 0", ""])


def _replace(prefix: IPNetwork, next_hop: IPAddress, dev: str) -> str:
    """The live route: `ip` takes the family from the prefix."""
    return f"ip route replace {prefix} via {next_hop} dev {dev} proto static"


def _netplan_path(facts: StaticHostState) -> str:
    if not facts.netplan_type:
        raise OperationError(f"netplan defines no interface named {facts.dev} "
                             "(match-based ids are not supported)")
    return "/etc/netplan/90-s2s-routes.yaml"


def _netplan(routes: list[Route], facts: StaticHostState) -> str:
    """A netplan file of its own: netplan merges it into the interface's definition (its routes
    are appended to the ones the other files give)."""
    body = "".join(f"        - to: {p}\n          via: {nh}\n" for p, nh in routes)
    return (f"{MARK}\n{MARK2}\nnetwork:\n  version: 2\n  {facts.netplan_type}:\n    {facts.dev}:\n"
            f"      routes:\n{body}")


NM_MARKER = "/etc/NetworkManager/s2s-routes"


def _nm_marker(routes: list[Route], facts: StaticHostState) -> str:
    """NetworkManager keeps the routes in the connection's ipv4.routes and ipv6.routes; this file
    marks which of them this project put there (NetworkManager reads nothing here but its .conf
    files)."""
    lines = [f"route {p} {nh}" for p, nh in routes]
    where = f"# in ipv4.routes/ipv6.routes of connection {facts.nm_connection} (on {facts.dev})"
    return "\n".join([MARK, MARK2, where, *lines, ""])


def _nm_persist(facts: StaticHostState, add: list[Route], drop: list[Route]) -> Iterator[str]:
    if not facts.nm_connection:
        raise OperationError(f"NetworkManager has no connection active on {facts.dev}")
    have = {p: IPAddress(nh) for p, nh in (*facts.nm_routes, *facts.nm_routes6) if nh}
    con = shlex.quote(facts.nm_connection)

    def edit(sign: str, p: IPNetwork, nh: IPAddress) -> str:
        return f"{sign}ipv{p.version}.routes {shlex.quote(f'{p} {nh}')}"

    edits = [edit("-", p, nh) for p, nh in drop if have.get(p) == nh]
    edits += [edit("+", p, nh) for p, nh in add if have.get(p) != nh]
    if edits:  # the connection profile only: the device is not re-activated
        yield f"nmcli connection modify {con} {' '.join(edits)}"


RENDERERS: dict[str, Renderer] = {
    "networkd": Renderer(_networkd_path, _networkd),
    "ifupdown": Renderer(lambda facts: "/etc/network/if-up.d/s2s-routes", _ifupdown, mode="755"),
    "netplan": Renderer(_netplan_path, _netplan, mode="600", regenerate=("netplan generate",)),
    "networkmanager": Renderer(lambda facts: NM_MARKER, _nm_marker, persist=_nm_persist),
}


_DESTINATION = ("Destination", "replace", "to:", "route")
_NEXT_HOP = ("Gateway", "via", "via:")


def owned_routes(lines: list[str] | None) -> list[tuple[IPNetwork, IPAddress | None]]:
    """The routes an owned file of any manager names (what a past deploy installed): each
    destination with the next hop that follows it (on its line or the next one)."""
    found: list[tuple[IPNetwork, IPAddress | None]] = []
    for line in lines or []:
        bits = line.replace("=", " ").split()
        if not bits or bits[0].startswith("#"):
            continue
        for i, bit in enumerate(bits[:-1]):
            value = bits[i + 1].strip('"')
            try:
                if bit in _DESTINATION and (bit != "route" or i == 0) and (bit != "to:" or i == len(bits) - 2):
                    found.append((IPNetwork(value), None))
                elif bit in _NEXT_HOP and found and found[-1][1] is None:
                    found[-1] = (found[-1][0], IPAddress(value))
            except (ValueError, TypeError):
                pass
        if bits[0] == "route" and len(bits) >= 3 and found and found[-1][1] is None:  # NM marker: route P NH
            try:
                found[-1] = (found[-1][0], IPAddress(bits[2]))
            except (ValueError, TypeError):
                pass
    return found


def owned_prefixes(lines: list[str] | None) -> list[IPNetwork]:
    """The prefixes an owned file of any manager names."""
    return [p for p, _ in owned_routes(lines)]


def _route_ok(facts: StaticHostState, prefix: IPNetwork, next_hop: IPAddress) -> bool:
    route = facts.route_for(prefix)
    return route is not None and route.gateway is not None and IPAddress(route.gateway) == next_hop \
        and route.dev == facts.dev


def _via(facts: StaticHostState, prefix: IPNetwork, next_hop: IPAddress | None) -> bool:
    """The kernel routes `prefix` via `next_hop` (on any interface): ours to delete."""
    route = facts.route_for(prefix)
    return next_hop is not None and route is not None and route.gateway is not None \
        and IPAddress(route.gateway) == next_hop


def wanted_routes(facts: StaticHostState, prefixes: list[IPNetwork], next_hop: IPAddress,
                  next_hop6: IPAddress | None) -> tuple[list[Route], list[str]]:
    """The routes this host gets, per family, and why a family gets none (for the plan): IPv4
    via `next_hop`, IPv6 via `next_hop6` where the host has an IPv6 address; none for a family
    whose default route already goes via the router."""
    routes: list[Route] = []
    why: list[str] = []
    for version, hop in ((4, next_hop), (6, next_hop6)):
        family = [p for p in prefixes if p.version == version]
        if not family:
            continue
        if version == 6 and not facts.has_ipv6:
            why.append(f"no IPv6 address on {facts.dev}: no IPv6 routes")
        elif hop is None:
            why.append("no IPv6 next hop for this site (see docs/static-hosts.md): no IPv6 routes")
        elif facts.default_gateway_of(version) == hop:
            why.append(f"default gateway already is the site's router {hop}: no routes needed")
        else:
            routes += [(p, hop) for p in family]
    return routes, why


@operation()
def site_routes(prefixes: list[IPNetwork], next_hop: IPAddress, manager: str | None = None,
                present: bool = True, next_hop6: IPAddress | None = None) -> Generator[Any, None, None]:
    """The host reaches `prefixes` via the site's router: in its manager's config and in the kernel.

    + prefixes: 100.64.0.0/10 and every other site's prefixes (IPv6 ones too, with fd7a:115c:a1e0::/48)
    + next_hop: the site's router (the VRRP address on an HA site)
    + manager: networkd | networkmanager | ifupdown | netplan (None: detected; the plan names it)
    + present: False removes the owned file and the routes it named (the removal run)
    + next_hop6: the router's link-local address on the LAN, for the IPv6 prefixes (None: none)
    """
    facts = host.get_fact(StaticHost, next_hop=str(next_hop))
    if facts.dev is None:
        raise OperationError(f"{next_hop} is on no connected network of this host")
    kind = manager or facts.manager
    if manager is None:  # the plan names what was found
        host.log(f"network manager detected: {kind or 'none'} (on {facts.dev})", logger.info)
    if kind is None:
        raise OperationError(f"no known network manager configures {facts.dev} "
                             "(name it: manager = ...)")
    if kind not in RENDERERS:
        raise OperationError(f"manager {kind} is not supported (supported: {', '.join(RENDERERS)})")
    renderer = RENDERERS[kind]
    path = renderer.path(facts)
    current = host.get_fact(owned.OwnedFile, path=path)
    routes, why = wanted_routes(facts, list(prefixes), next_hop, next_hop6) if present else ([], [])
    for reason in why:
        host.log(reason, logger.info)
    text = renderer.render(routes, facts)
    keep = bool(routes)
    # what a past deploy put there: only read when the file is not already what is wanted (a
    # no-op run costs the host two commands, this fact's and the file's state)
    same = current is not None and current.sha256 == hashlib.sha256(text.encode()).hexdigest()
    before = owned_routes(host.get_fact(FileContents, path=path)) \
        if current is not None and not (keep and same) else []
    if not keep:
        yield from _removed(facts, path, current, before, renderer)
        return
    wanted = dict(routes)
    stale = [(p, nh) for p, nh in before if p not in wanted]
    # the owned file first: under --dry, pyinfra showed no diff for a file put after another command
    changed = list(owned.put(path, text, mode=renderer.mode, current=current))
    yield from changed
    yield from renderer.persist(facts, routes, [(p, nh) for p, nh in stale if nh is not None])
    if changed:
        yield from renderer.regenerate
    for prefix, old in stale:
        if _via(facts, prefix, old):
            yield f"ip route del {prefix} via {old}"
    for prefix, hop in routes:
        if not _route_ok(facts, prefix, hop):
            yield _replace(prefix, hop, facts.dev)


def _removed(facts: StaticHostState, path: str, current: owned.FileState | None,
             before: list[tuple[IPNetwork, IPAddress | None]], renderer: Renderer) -> Iterator[str]:
    """The owned file and the routes it named gone (kernel and manager); nothing else touched."""
    if current is None:
        return
    yield from renderer.persist(facts, [], [(p, nh) for p, nh in before if nh is not None])
    for prefix, old in before:
        if _via(facts, prefix, old):
            yield f"ip route del {prefix} via {old}"
    yield f"rm -f {shlex.quote(path)}"
    yield from renderer.regenerate
