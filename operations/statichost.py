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


Persist = Callable[[StaticHostState, list[IPNetwork], list[IPNetwork], IPAddress], Iterator[str]]


def _nothing_more(facts: StaticHostState, add: list[IPNetwork], drop: list[IPNetwork],
                  next_hop: IPAddress) -> Iterator[str]:
    return iter(())


@dataclass(frozen=True)
class Renderer:
    """Where one network manager keeps the routes, that file's text, and what else persists them.

    `persist(facts, add, drop, next_hop)` yields the commands that put the `add` routes into the
    manager's own state and take the `drop` ones (ours, no longer wanted) out of it, beside the
    file; `regenerate` runs after the file changed (netplan renders its YAML for the backend).
    """

    path: Callable[[StaticHostState], str]
    render: Callable[[list[IPNetwork], IPAddress, StaticHostState], str]
    mode: str = "644"
    persist: Persist = _nothing_more
    regenerate: tuple[str, ...] = ()


def _networkd_path(facts: StaticHostState) -> str:
    if not facts.networkd_file:
        raise OperationError(f"systemd-networkd applies no .network file to {facts.dev}")
    return f"/etc/systemd/network/{posixpath.basename(facts.networkd_file)}.d/90-s2s-routes.conf"


def _networkd(prefixes: list[IPNetwork], next_hop: IPAddress, facts: StaticHostState) -> str:
    """A drop-in of the interface's own .network file: one [Route] section per prefix."""
    body = "".join(f"\n[Route]\nDestination={p}\nGateway={next_hop}\n" for p in prefixes)
    return f"{MARK}\n{MARK2}\n{body}"


def _ifupdown(prefixes: list[IPNetwork], next_hop: IPAddress, facts: StaticHostState) -> str:
    """An if-up.d hook: ifupdown runs it after every `ifup`, with IFACE set."""
    dev = facts.dev or ""
    lines = [f"ip route replace {p} via {next_hop} dev {dev} proto static" for p in prefixes]
    return "\n".join(["#!/bin/sh", MARK, MARK2, f'[ "$IFACE" = {shlex.quote(dev)} ] || exit 0',
                      *lines, "exit 0", ""])


def _netplan_path(facts: StaticHostState) -> str:
    if not facts.netplan_type:
        raise OperationError(f"netplan defines no interface named {facts.dev} "
                             "(match-based ids are not supported)")
    return "/etc/netplan/90-s2s-routes.yaml"


def _netplan(prefixes: list[IPNetwork], next_hop: IPAddress, facts: StaticHostState) -> str:
    """A netplan file of its own: netplan merges it into the interface's definition (its routes
    are appended to the ones the other files give)."""
    routes = "".join(f"        - to: {p}\n          via: {next_hop}\n" for p in prefixes)
    return (f"{MARK}\n{MARK2}\nnetwork:\n  version: 2\n  {facts.netplan_type}:\n    {facts.dev}:\n"
            f"      routes:\n{routes}")


NM_MARKER = "/etc/NetworkManager/s2s-routes"


def _nm_marker(prefixes: list[IPNetwork], next_hop: IPAddress, facts: StaticHostState) -> str:
    """NetworkManager keeps the routes in the connection's ipv4.routes; this file marks which of
    them this project put there (NetworkManager reads nothing here but its .conf files)."""
    lines = [f"route {p} {next_hop}" for p in prefixes]
    where = f"# in ipv4.routes of connection {facts.nm_connection} (on {facts.dev})"
    return "\n".join([MARK, MARK2, where, *lines, ""])


def _nm_persist(facts: StaticHostState, add: list[IPNetwork], drop: list[IPNetwork],
                next_hop: IPAddress) -> Iterator[str]:
    if not facts.nm_connection:
        raise OperationError(f"NetworkManager has no connection active on {facts.dev}")
    have = {p: nh for p, nh in facts.nm_routes}
    con = shlex.quote(facts.nm_connection)
    nh = str(next_hop)
    edits = [f"-ipv4.routes {shlex.quote(f'{p} {nh}')}" for p in drop if have.get(p) == nh]
    edits += [f"+ipv4.routes {shlex.quote(f'{p} {nh}')}" for p in add if have.get(p) != nh]
    if edits:  # the connection profile only: the device is not re-activated
        yield f"nmcli connection modify {con} {' '.join(edits)}"


RENDERERS: dict[str, Renderer] = {
    "networkd": Renderer(_networkd_path, _networkd),
    "ifupdown": Renderer(lambda facts: "/etc/network/if-up.d/s2s-routes", _ifupdown, mode="755"),
    "netplan": Renderer(_netplan_path, _netplan, mode="600", regenerate=("netplan generate",)),
    "networkmanager": Renderer(lambda facts: NM_MARKER, _nm_marker, persist=_nm_persist),
}


def owned_prefixes(lines: list[str] | None) -> list[IPNetwork]:
    """The prefixes an owned file of any manager names (the routes a past deploy installed)."""
    found: list[IPNetwork] = []
    for line in lines or []:
        bits = line.replace("=", " ").split()
        for i, bit in enumerate(bits[:-1]):
            if bit in ("Destination", "replace") or (bit == "to:" and i == len(bits) - 2) \
                    or (bit == "route" and i == 0):
                try:
                    found.append(IPNetwork(bits[i + 1].strip('"')))
                except (ValueError, TypeError):
                    pass
    return found


def _route_ok(facts: StaticHostState, prefix: IPNetwork, next_hop: IPAddress) -> bool:
    route = facts.route_for(prefix)
    return route is not None and route.gateway == str(next_hop) and route.dev == facts.dev


@operation()
def site_routes(prefixes: list[IPNetwork], next_hop: IPAddress, manager: str | None = None,
                present: bool = True) -> Generator[Any, None, None]:
    """The host reaches `prefixes` via `next_hop`: in its manager's config and in the kernel.

    + prefixes: 100.64.0.0/10 and every other site's prefixes
    + next_hop: the site's router (the VRRP address on an HA site)
    + manager: networkd | networkmanager | ifupdown | netplan (None: detected; the plan names it)
    + present: False removes the owned file and the routes it named (the removal run)
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
    text = renderer.render(list(prefixes), next_hop, facts)
    gateway_is_router = facts.default_gateway == next_hop
    keep = present and not gateway_is_router
    # what a past deploy put there: only read when the file is not already what is wanted (a
    # no-op run costs the host two commands, this fact's and the file's state)
    same = current is not None and current.sha256 == hashlib.sha256(text.encode()).hexdigest()
    before = owned_prefixes(host.get_fact(FileContents, path=path)) \
        if current is not None and not (keep and same) else []
    if not keep:
        if gateway_is_router and present:
            host.log(f"default gateway already is the site's router {next_hop}: no routes needed",
                     logger.info)
        yield from _removed(facts, path, current, before, next_hop, renderer)
        return
    stale = [p for p in before if p not in prefixes]
    # the owned file first: under --dry, pyinfra showed no diff for a file put after another command
    changed = list(owned.put(path, text, mode=renderer.mode, current=current))
    yield from changed
    yield from renderer.persist(facts, list(prefixes), stale, next_hop)
    if changed:
        yield from renderer.regenerate
    for prefix in stale:
        route = facts.route_for(prefix)
        if route is not None and route.gateway == str(next_hop):
            yield f"ip route del {prefix} via {next_hop}"
    for prefix in prefixes:
        if not _route_ok(facts, prefix, next_hop):
            yield f"ip route replace {prefix} via {next_hop} dev {facts.dev} proto static"


def _removed(facts: StaticHostState, path: str, current: owned.FileState | None,
             before: list[IPNetwork], next_hop: IPAddress, renderer: Renderer) -> Iterator[str]:
    """The owned file and the routes it named gone (kernel and manager); nothing else touched."""
    if current is None:
        return
    yield from renderer.persist(facts, [], before, next_hop)
    for prefix in before:
        route = facts.route_for(prefix)
        if route is not None and route.gateway == str(next_hop):
            yield f"ip route del {prefix} via {next_hop}"
    yield f"rm -f {shlex.quote(path)}"
    yield from renderer.regenerate
