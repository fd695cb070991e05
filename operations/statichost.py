"""A static-address LAN host gets the routes to the other sites: step 6 of Tailscale's
site-to-site guide ("configure the other devices in the subnet"), made persistent "in your
network manager or netplan configuration" and applied live.

Each manager's routes live in one file this project owns and marks (RENDERERS); the kernel
gets the same routes with `ip route replace`, so no interface restarts and the SSH session
stays. Nothing else of the host's configuration is touched, and no default route is added.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork
from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import FileContents

from operations import owned
from operations.facts.statichost import StaticHost, StaticHostState

MARK = "# Managed by s2s (Tailscale site-to-site): routes to the other sites via the subnet router."
MARK2 = "# Rewritten by every deploy; removed by the removal run. Do not edit."


@dataclass(frozen=True)
class Renderer:
    """Where one network manager keeps the routes, and that file's text."""

    path: Callable[[StaticHostState], str]
    render: Callable[[list[IPNetwork], IPAddress, str], str]
    mode: str = "644"


def _networkd_path(facts: StaticHostState) -> str:
    if not facts.networkd_file:
        raise OperationError(f"systemd-networkd applies no .network file to {facts.dev}")
    return f"/etc/systemd/network/{posixpath.basename(facts.networkd_file)}.d/90-s2s-routes.conf"


def _networkd(prefixes: list[IPNetwork], next_hop: IPAddress, dev: str) -> str:
    """A drop-in of the interface's own .network file: one [Route] section per prefix."""
    body = "".join(f"\n[Route]\nDestination={p}\nGateway={next_hop}\n" for p in prefixes)
    return f"{MARK}\n{MARK2}\n{body}"


def _ifupdown(prefixes: list[IPNetwork], next_hop: IPAddress, dev: str) -> str:
    """An if-up.d hook: ifupdown runs it after every `ifup`, with IFACE set."""
    lines = [f"ip route replace {p} via {next_hop} dev {dev} proto static" for p in prefixes]
    return "\n".join(["#!/bin/sh", MARK, MARK2, f'[ "$IFACE" = {shlex.quote(dev)} ] || exit 0',
                      *lines, "exit 0", ""])


RENDERERS: dict[str, Renderer] = {
    "networkd": Renderer(_networkd_path, _networkd),
    "ifupdown": Renderer(lambda facts: "/etc/network/if-up.d/s2s-routes", _ifupdown, mode="755"),
}


def owned_prefixes(lines: list[str] | None) -> list[IPNetwork]:
    """The prefixes an owned file of any manager names (the routes a past deploy installed)."""
    found: list[IPNetwork] = []
    for line in lines or []:
        bits = line.replace("=", " ").split()
        for i, bit in enumerate(bits[:-1]):
            if bit in ("Destination", "replace") or (bit == "to:" and i == len(bits) - 2):
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
                present: bool = True):
    """The host reaches `prefixes` via `next_hop`: in its manager's config and in the kernel.

    + prefixes: 100.64.0.0/10 and every other site's prefixes
    + next_hop: the site's router (the VRRP address on an HA site)
    + manager: networkd | ifupdown (None: detected; the plan names what was found)
    + present: False removes the owned file and the routes it named (the removal run)
    """
    facts = host.get_fact(StaticHost, next_hop=str(next_hop))
    if facts.dev is None:
        raise OperationError(f"{next_hop} is on no connected network of this host")
    kind = manager or facts.manager
    if manager is None:  # the plan names what was found
        host.log(f"network manager detected: {kind or 'none'} (on {facts.dev})", logger.info)
    if kind is None:
        raise OperationError(f"no known network manager configures {facts.dev} (name it: manager = ...)")
    if kind not in RENDERERS:
        raise OperationError(f"manager {kind} is not supported yet (supported: {', '.join(RENDERERS)})")
    renderer = RENDERERS[kind]
    path = renderer.path(facts)
    current = host.get_fact(owned.OwnedFile, path=path)
    gateway_is_router = facts.default_gateway == next_hop
    if not present or gateway_is_router:
        if gateway_is_router and present:
            host.log(f"default gateway already is the site's router {next_hop}: no routes needed", logger.info)
        yield from _removed(facts, path, current, next_hop)
        return
    yield from _stale(facts, path, current, prefixes, next_hop)
    yield from owned.put(path, renderer.render(list(prefixes), next_hop, facts.dev), mode=renderer.mode,
                         current=current)
    for prefix in prefixes:
        if not _route_ok(facts, prefix, next_hop):
            yield f"ip route replace {prefix} via {next_hop} dev {facts.dev} proto static"


def _stale(facts: StaticHostState, path: str, current: owned.FileState | None, prefixes: list[IPNetwork],
           next_hop: IPAddress) -> Iterator[str]:
    """Routes a past deploy installed that are no longer wanted (a site left the file)."""
    if current is None:
        return
    for prefix in owned_prefixes(host.get_fact(FileContents, path=path)):
        if prefix not in prefixes and facts.route_for(prefix) is not None \
                and facts.route_for(prefix).gateway == str(next_hop):  # type: ignore[union-attr]
            yield f"ip route del {prefix} via {next_hop}"


def _removed(facts: StaticHostState, path: str, current: owned.FileState | None,
             next_hop: IPAddress) -> Iterator[str]:
    """The owned file and the kernel routes it named gone; nothing else of the host touched."""
    if current is None:
        return
    for prefix in owned_prefixes(host.get_fact(FileContents, path=path)):
        route = facts.route_for(prefix)
        if route is not None and route.gateway == str(next_hop):
            yield f"ip route del {prefix} via {next_hop}"
    yield f"rm -f {shlex.quote(path)}"
