"""Warnings a subnet-router operator needs; these operations never change anything.

They report what the known pains of Tailscale's site-to-site guide look like on a host: a firewall
front end that filters forwarding and a FORWARD chain that drops. (A LAN that
another router also advertises cannot happen here: the site file's validation
refuses overlapping site prefixes.)
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import operation

from operations import batch
from operations.facts import FirewallFrontends, ForwardFilter
from operations.util import warn


def preflight_facts() -> dict[str, batch.Fact]:
    """What `preflight` decides from (read in one batch)."""
    return {"frontends": (FirewallFrontends, {}), "forward4": (ForwardFilter, {"version": 4}),
            "forward6": (ForwardFilter, {"version": 6})}


@operation()
def preflight() -> Generator[Any, None, None]:
    """
    Warn about ufw/firewalld and a dropping FORWARD chain.
    """
    facts = batch.read(**preflight_facts())
    fw, forward = facts["frontends"], (facts["forward4"], facts["forward6"])
    for name in fw.active:
        warn(f"{name} is active: it filters forwarded traffic; allow forwarding between the LAN and tailscale0")
    for version, fwd in zip((4, 6), forward, strict=True):
        if fwd and fwd.blocks:
            cmd = "iptables" if version == 4 else "ip6tables"
            note = (" (tailscaled's ts-forward accepts tailnet traffic, but LAN-bound replies"
                    " still need a rule)" if fwd.ts_forward else " and tailscaled's ts-forward is not hooked in")
            warn(f"{cmd} FORWARD policy is {fwd.policy}: forwarding is blocked{note}")
    host.noop("preflight checks done")
    return
    yield  # a generator that never yields: pyinfra reports no change
