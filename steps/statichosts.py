"""The static-host step of the deploy: step 6 of Tailscale's site-to-site guide for the LAN
hosts with static addresses ([[sites.X.hosts]]): each gets 100.64.0.0/10 and the other sites'
prefixes via its site's next hop (the VRRP address on an HA site, so a failover changes nothing
on them), persistent in its own network manager and live in its kernel.

On a dual-stack site (`subnet6`) a host with an IPv6 address also gets the other sites' IPv6
prefixes and fd7a:115c:a1e0::/48 via the router's link-local address on the LAN: the address its
router advertisements come from (routers forward, so they take no SLAAC address of their own).
It is read from the router itself in the same run. On an HA site the IPv6 next hop is the
site's `vip6` instead, the link-local address keepalived's IPv6 VRRP instance keeps on the same
router as the IPv4 vip (operations/ha.py), so a failover changes nothing on the hosts either.

Called on every host (a no-op on the others, so pyinfra's per-host operation order holds). A
static host the applied record names but the site file no longer declares loses the routes in
the removal run (`--data prune=true`), like a removed router.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from netaddr import IPAddress, IPNetwork
from pyinfra import host, inventory
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError, PyinfraError

from operations.facts.statichost import LanLinkLocal
from operations.statichost import site_routes
from operations.util import warn
from removal.record import AppliedStaticHost
from sites.model import TAILSCALE_ULA, Site, SiteModel, StaticHost
from steps.retire import prune_command

LABEL = "static hosts"


def static_prefixes(model: SiteModel, site: Site) -> list[IPNetwork]:
    """What a static host of `site` routes via its router: 100.64.0.0/10 and the other sites'
    prefixes, and on a dual-stack site fd7a:115c:a1e0::/48 too (what the router's RAs carry)."""
    six = [TAILSCALE_ULA] if site.subnet6 is not None else []
    return [p for p in model.remote_prefixes(site) if p.version == 4 or site.subnet6 is not None] + six


def next_hop6(site: Site) -> IPAddress | None:
    """The IPv6 next hop of a dual-stack site's static hosts: the VRRP link-local `vip6` on an HA
    site, else the router's own link-local address. None on an IPv4-only site."""
    return site.vip6 if site.ha else router_link_local(site)


def router_link_local(site: Site) -> IPAddress | None:
    """The IPv6 next hop of a dual-stack single-router site: its router's LAN link-local address,
    read from the router (a host of this run's inventory). None on an IPv4-only or HA site."""
    if site.subnet6 is None or site.ha:
        return None
    router = site.routers[0]
    found = [h for h in inventory.get_group("routers", default=[]) if h.data.get("router_ssh") == router.ssh]
    if not found:
        raise OperationError(f"site {site.name}'s router {router.ssh} is not in the inventory")
    try:
        address = found[0].get_fact(LanLinkLocal, address=str(router.address))
    except (PyinfraError, OSError) as exc:  # unreachable: fail this host, change nothing (no IPv6 routes dropped)
        raise OperationError(f"site {site.name}'s router {router.ssh}: cannot read its link-local IPv6 address "
                             f"({' '.join(str(exc).split()) or type(exc).__name__}); nothing changed here") from None
    if address is None:
        raise OperationError(f"site {site.name}'s router {router.ssh} has no link-local IPv6 address on the "
                             f"interface holding {router.address}")
    return address


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
            prefixes=static_prefixes(model, site), next_hop=site.next_hop, manager=static.manager,
            next_hop6=next_hop6(site),
        )
    elif removed is not None and prune:
        yield from site_routes._inner(
            prefixes=[], next_hop=IPAddress(removed["next_hop"]), manager=removed.get("manager"), present=False
        )
    else:
        host.noop(f"{LABEL}: not a static host")
