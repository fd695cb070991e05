"""Warnings a subnet-router operator needs; these operations never change anything.

They report what the seed's known pains look like on a host: a firewall
front end that filters forwarding, a FORWARD chain that drops, and a router
whose own LAN another router also advertises while it accepts routes (the
tailnet's table 52 route would then hijack its own LAN).
"""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import IPNetwork, IPSet

from pyinfra import host
from pyinfra.api import operation

from operations import batch
from operations.facts import FirewallFrontends, ForwardFilter
from operations.util import warn


def lan_overlaps(own: Iterable[str | IPNetwork], others: Iterable[str | IPNetwork]) -> list[str]:
    """Other routers' routes that overlap this router's own LAN prefixes."""
    mine = IPSet(IPNetwork(str(p)) for p in own)
    return sorted({str(IPNetwork(str(o)).cidr) for o in others if mine & IPSet([IPNetwork(str(o))])})


def preflight_facts() -> list[batch.Fact]:
    """What `preflight` decides from (read in one batch)."""
    return [(FirewallFrontends, {}), (ForwardFilter, {"version": 4}), (ForwardFilter, {"version": 6})]


@operation()
def preflight(
    own_routes: Iterable[str] = (),
    other_routes: Iterable[str] = (),
    accept_routes: bool = True,
):
    """
    Warn about ufw/firewalld, a dropping FORWARD chain, and an own LAN advertised by another router.

    + own_routes: prefixes this router advertises (its LAN first)
    + other_routes: prefixes the other routers advertise
    + accept_routes: whether this router will --accept-routes
    """
    fw, *forward = batch.read(*preflight_facts())
    for name in fw.active:
        warn(f"{name} is active: it filters forwarded traffic; allow forwarding between the LAN and tailscale0")
    for version, fwd in zip((4, 6), forward):
        if fwd and fwd.blocks:
            cmd = "iptables" if version == 4 else "ip6tables"
            note = (" (tailscaled's ts-forward accepts tailnet traffic, but LAN-bound replies"
                    " still need a rule)" if fwd.ts_forward else " and tailscaled's ts-forward is not hooked in")
            warn(f"{cmd} FORWARD policy is {fwd.policy}: forwarding is blocked{note}")
    if accept_routes:
        overlaps = lan_overlaps(own_routes, other_routes)
        if overlaps:
            warn(
                "another router advertises " + ", ".join(overlaps) + " which overlaps this router's own LAN; "
                "with --accept-routes the tailnet route (table 52) wins and hijacks the LAN"
            )
    host.noop("preflight checks done")
    return
    yield  # a generator that never yields: pyinfra reports no change
