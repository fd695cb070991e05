"""The check's view of static-address LAN hosts ([[sites.X.hosts]]): does each one's kernel
route 100.64.0.0/10 and every other site's prefixes via its site's next hop?

Read over SSH like the routers (one `ip -j -4 route` each, in parallel); judged here too, one
row per static host under step `static`: ok, broken naming the missing routes, or unknown
when the host cannot be read. Sites without static hosts get no row.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from netaddr import IPAddress

from check.judge import Row, Status
from check.remote import RemoteError, Router
from operations.facts._parsing import ParseError
from operations.facts.statichost import KernelRoute, parse_ip_json_routes
from sites.model import Site, SiteModel, SshTarget

STEP = "static"
COMMAND = "ip -j -4 route show table main"


@dataclass
class StaticState:
    """One static host as read: its main-table routes, or why they could not be read."""

    site: str
    ssh: str
    routes: tuple[KernelRoute, ...] = ()
    error: str | None = None


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
        state.routes = parse_ip_json_routes(result.stdout)
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


def static_row(model: SiteModel, state: StaticState) -> Row:
    site = model.sites[state.site]
    name = SshTarget.parse(state.ssh).name
    if state.error:
        return Row(site.name, STEP, Status.UNKNOWN, f"{name}: not readable: {state.error}")
    nh = str(site.next_hop)
    default = next((r.gateway for r in state.routes if r.dst == "default"), None)
    if default is not None and IPAddress(default) == site.next_hop:
        return Row(site.name, STEP, Status.OK, f"{name}: default gateway is the site's router {nh}")
    by_prefix = {r.prefix: r for r in state.routes if r.prefix is not None}
    missing = [f"{p} via {nh}" for p in model.remote_prefixes(site)
               if by_prefix.get(p) is None or by_prefix[p].gateway != nh]
    if missing:
        fix = (f"SITES={shlex.quote(str(model.path))} pyinfra -y inventory.py deploy.py "
               f"--limit {shlex.quote(name)}")
        return Row(site.name, STEP, Status.BROKEN, f"{name}: missing {', '.join(missing)}", fix)
    return Row(site.name, STEP, Status.OK, f"{name}: routes to every other site via {nh}")


def static_rows(model: SiteModel, states: list[StaticState]) -> list[Row]:
    return [static_row(model, s) for s in states]
