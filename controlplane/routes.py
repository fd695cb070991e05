"""Route arithmetic for 'replace the whole list' APIs (Headscale approve_routes, Tailscale routes)."""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import IPNetwork


def canonical(prefix: str) -> str:
    """One spelling per prefix, so sets compare (10.1.2.3/8 -> 10.0.0.0/8, ::/0 stays)."""
    return str(IPNetwork(prefix).cidr)


def desired(approved: Iterable[str], advertised: Iterable[str], ours: Iterable[str],
            retired: Iterable[str] = ()) -> tuple[str, ...]:
    """What to send: every approved route that is not ours, plus ours that the node advertises.

    Both APIs replace the list they are given, so anything approved by someone
    else must be sent back or it would be dropped. One of ours that the node no
    longer advertises is dropped (its site no longer routes it). `retired`: prefixes
    this project approved on the node earlier (the applied record) that its site no
    longer declares; dropped once the node stops advertising them, never approved anew.
    """
    mine = {canonical(p) for p in ours}
    adv = {canonical(p) for p in advertised}
    gone = {canonical(p) for p in retired} - mine - adv
    keep = {canonical(p) for p in approved if canonical(p) not in mine and canonical(p) not in gone}
    return tuple(sorted(keep | (mine & adv), key=lambda p: (IPNetwork(p).version, IPNetwork(p))))


def without(approved: Iterable[str], prefixes: Iterable[str]) -> tuple[str, ...]:
    """The approved list with `prefixes` taken out (a removed router's routes), order kept."""
    drop = {canonical(p) for p in prefixes}
    return tuple(canonical(p) for p in approved if canonical(p) not in drop)
