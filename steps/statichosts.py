"""The static-host step of the deploy: step 6 of Tailscale's site-to-site guide for the LAN
hosts with static addresses ([[sites.X.hosts]]): each gets 100.64.0.0/10 and the other sites'
prefixes via its site's next hop (the VRRP address on an HA site, so a failover changes nothing
on them), persistent in its own network manager and live in its kernel.

Called on every host (a no-op on the others, so pyinfra's per-host operation order holds). A
static host the applied record names but the site file no longer declares loses the routes in
the removal run (`--data prune=true`), like a removed router.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from netaddr import IPAddress
from pyinfra import host
from pyinfra.api import operation

from operations.statichost import site_routes
from operations.util import warn
from removal.record import AppliedStaticHost
from sites.model import Site, SiteModel, StaticHost
from steps.retire import prune_command

LABEL = "static hosts"


@operation()
def routes_given(
    model: SiteModel,
    entry: tuple[Site, StaticHost] | None,
    removed: dict | None,
    prune: bool,
    gone: list[AppliedStaticHost] | None = None,
    coordinating: bool = False,
) -> Generator[Any, None, None]:
    """This static host has the site's routes (or, removed and pruning, has them no more).

    + model: the validated site model
    + entry: (site, static host) when this host is a declared static host
    + removed: the record entry when this host is a removed static host (removal run only)
    + prune: `--data prune=true` was given
    + gone: removed static hosts (the coordinating host warns when not pruning)
    + coordinating: this is the coordinating host
    """
    if coordinating and gone and not prune:
        names = ", ".join(f"{g.host} (site {g.site})" for g in gone)
        warn(
            f"the site file no longer declares static host(s) {names} that an earlier deploy gave "
            f"routes; remove them with `{prune_command(model)}`"
        )
    if entry is not None:
        site, static = entry
        yield from site_routes._inner(
            prefixes=list(model.remote_prefixes(site)), next_hop=site.next_hop, manager=static.manager
        )
    elif removed is not None and prune:
        yield from site_routes._inner(
            prefixes=[], next_hop=IPAddress(removed["next_hop"]), manager=removed.get("manager"), present=False
        )
    else:
        host.noop(f"{LABEL}: not a static host")
