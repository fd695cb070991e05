"""The check's view of static-address LAN hosts ([[sites.X.hosts]]): does each one's kernel
route 100.64.0.0/10 and every other site's prefixes via its site's next hop?

Read over SSH like the routers (one command each, in parallel: `ip -j -4 route`, `ip -j -6
route` and the host's global IPv6 addresses); judged here too, one row per static host under
step `static`: ok, broken naming the missing routes, or unknown when the host cannot be read.
On a dual-stack site a host with an IPv6 address must also route the other sites' IPv6
prefixes and fd7a:115c:a1e0::/48 via a link-local next hop (the router's, as the deploy sets
it; on an HA site exactly the VRRP address `vip6`). Sites without static hosts get no row.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork

from check.judge import Row, Status
from check.remote import RemoteError, Router
from operations.facts._parsing import ParseError
from operations.facts.addresses import parse_ip_addr_json
from operations.facts.statichost import KernelRoute, parse_ip_json_routes
from sites.model import Site, SiteModel, SshTarget
from steps.statichosts import static_prefixes

STEP = "static"
COMMAND = ("ip -j -4 route show table main; echo @@; ip -j -6 route show table main 2>/dev/null; echo @@; "
           "ip -j -6 addr show scope global 2>/dev/null")
LINK_LOCAL = IPNetwork("fe80::/10")


@dataclass
class StaticState:
    """One static host as read: its main-table routes, or why they could not be read."""

    site: str
    ssh: str
    routes: tuple[KernelRoute, ...] = ()
    error: str | None = None
    routes6: tuple[KernelRoute, ...] = ()
    has_ipv6: bool = False  # a global or unique local IPv6 address on some interface


def read_one(model: SiteModel, site: Site, ssh: str) -> StaticState:
    state = StaticState(site.name, ssh)
    try:
        host = Router(ssh, model.ssh)
        try:
            result = host.run(COMMAND)
        finally:
            host.close()
    except RemoteError as exc:
        state.error = str(exc)
        return state
    if result.rc != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        state.error = f"`{COMMAND}` failed: {last}"
        return state
    try:
        four, six, addr6 = (result.stdout.split("@@\n") + ["", ""])[:3]
        state.routes, state.routes6 = parse_ip_json_routes(four), parse_ip_json_routes(six)
        state.has_ipv6 = any(parse_ip_addr_json(addr6).values())
    except ParseError as exc:
        state.error = f"routes did not parse: {exc}"
    return state


def read_static_hosts(model: SiteModel) -> list[StaticState]:
    """Every static host of every site, read in parallel."""
    todo = [(site, h.ssh) for site in model.sites.values() for h in site.hosts]
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        return list(pool.map(lambda t: read_one(model, *t), todo))


def _missing6(model: SiteModel, site: Site, state: StaticState) -> list[str]:
    """The IPv6 routes a dual-stack site's host lacks: via a link-local next hop (the router's
    own), or exactly via `vip6` on an HA site."""
    if site.subnet6 is None or not state.has_ipv6:
        return []
    by_prefix = {r.prefix: r for r in state.routes6 if r.prefix is not None}

    def ok(gateway: str | None) -> bool:
        if gateway is None:
            return False
        return IPAddress(gateway) == site.vip6 if site.ha else IPAddress(gateway) in LINK_LOCAL

    hop = str(site.vip6) if site.ha else "the router's link-local address"
    return [f"{p} via {hop}" for p in static_prefixes(model, site)
            if p.version == 6 and not ok(by_prefix[p].gateway if p in by_prefix else None)]


def static_row(model: SiteModel, state: StaticState) -> Row:
    site = model.sites[state.site]
    name = SshTarget.parse(state.ssh).name
    if state.error:
        return Row(site.name, STEP, Status.UNKNOWN, f"{name}: not readable: {state.error}")
    nh = str(site.next_hop)
    default = next((r.gateway for r in state.routes if r.dst == "default"), None)
    router_default = default is not None and IPAddress(default) == site.next_hop
    by_prefix = {r.prefix: r for r in state.routes if r.prefix is not None}
    missing = [] if router_default else [
        f"{p} via {nh}" for p in static_prefixes(model, site)
        if p.version == 4 and (by_prefix.get(p) is None or by_prefix[p].gateway != nh)]
    missing += _missing6(model, site, state)
    if missing:
        fix = (f"SITES={shlex.quote(str(model.path))} pyinfra -y inventory.py deploy.py "
               f"--limit {shlex.quote(name)}")
        return Row(site.name, STEP, Status.BROKEN, f"{name}: missing {', '.join(missing)}", fix)
    if router_default:
        return Row(site.name, STEP, Status.OK, f"{name}: default gateway is the site's router {nh}")
    hop6 = f"the VRRP address {site.vip6}" if site.ha else "the router's link-local address"
    six = f" (IPv6 via {hop6})" if site.subnet6 is not None and state.has_ipv6 else ""
    return Row(site.name, STEP, Status.OK, f"{name}: routes to every other site via {nh}{six}")


def static_rows(model: SiteModel, states: list[StaticState]) -> list[Row]:
    return [static_row(model, s) for s in states]
