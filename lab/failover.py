"""Measure an HA site's failover in the lab: data-plane gap and the tailnet's primary switch.

A continuous ping (10 per second, timestamped) runs from a LAN client of the HA site to
a client of another site, inside the lab's namespaces; the primary router is powered
off (`lab.api.poweroff`, hard by default: a power cut). Two figures come out:
- failover: the longest gap between two ping replies around the power-off (what a LAN
  client sees: VRRP moving the next hop plus the control plane moving the primary);
- primary switch: from the power-off until a peer at the other site (its router's
  `tailscale status --json`) lists the surviving router as primary for the site's subnet.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from lab import api, drive
from lab.drive import REPO

PING_INTERVAL = 0.1
WINDOW = 15.0  # seconds after the power cut that replies are watched for at least


@dataclass(frozen=True)
class Failover:
    """One measured failover."""

    old_primary: str
    new_primary: str | None
    gap_s: float | None  # longest reply gap around the power-off; None: traffic never resumed
    primary_switch_s: float | None  # power-off -> the peer sees the new primary; None: never
    replies: int


def primaries(observer: str) -> dict[str, list[str]]:
    """Peer host name -> its PrimaryRoutes, as the router `observer` sees the tailnet."""
    status = json.loads(drive.in_host(observer, "tailscale", "status", "--json").stdout)
    return {p.get("HostName", ""): list(p.get("PrimaryRoutes") or []) for p in (status.get("Peer") or {}).values()}


def primary_for(observer: str, prefix: str) -> str | None:
    """The peer `observer` currently routes `prefix` through (None: none)."""
    return next((host for host, routes in primaries(observer).items() if prefix in routes), None)


def vrrp_holder(routers: list[str], vip: str) -> list[str]:
    """Which of `routers` hold the VRRP address now (exactly one when all is well), IPv4 or IPv6."""
    family, inet = ("-6", "inet6") if ":" in vip else ("-4", "inet")
    return [r for r in routers if re.search(rf"\b{inet} {re.escape(vip)}/",
                                            drive.in_host(r, "ip", family, "-o", "addr", check=False).stdout)]


def single_holder(routers: list[str], vip: str, timeout: float = 20) -> list[str]:
    """The routers holding the VRRP address once exactly one does, or whoever holds it after
    `timeout` (VRRP settles within a few advertisement intervals after a change)."""
    deadline = time.time() + timeout
    while True:
        holders = vrrp_holder(routers, vip)
        if len(holders) == 1 or time.time() > deadline:
            return holders
        time.sleep(0.5)


def reply_times(text: str) -> list[float]:
    """Timestamps of the replies in `ping -D` output."""
    return [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]


def longest_gap(times: list[float], after: float) -> float | None:
    """The longest gap between consecutive replies that ends after `after` (the power-off);
    None when no reply came after it."""
    later = [t for t in times if t > after]
    if not later:
        return None
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > after]
    return max(gaps) if gaps else None


def measure(client: str, target: str, observer: str, routers: list[str], subnet: str, *,
            hard: bool = True, settle: float = 3.0, timeout: float = 40.0) -> Failover:
    """Power off the router `observer` sees as primary for `subnet`; measure until traffic and
    the primary both moved (or `timeout`). The powered-off router is left off."""
    old = primary_for(observer, subnet)
    if old not in routers:
        raise RuntimeError(f"{observer} sees {old!r} as primary for {subnet}, not one of {routers}")
    ping = subprocess.Popen([sys.executable, "-m", "lab", "exec", client, "ping", "-n", "-D", "-i", str(PING_INTERVAL),
                             "-W", "1", "-w", str(int(timeout + settle + WINDOW + 5)), target],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(settle)
        off = time.time()
        api.poweroff([old], hard=hard)
        switched, new = None, None
        while time.time() - off < timeout:
            now = primary_for(observer, subnet)
            if now is not None and now != old:
                switched, new = time.time() - off, now
                break
            time.sleep(0.2)
        # keep pinging until well after the switch and at least WINDOW after the cut, so a gap
        # of up to WINDOW (a missed gratuitous ARP, a slow probe) is measured, not "never resumed"
        time.sleep(max(settle + 2, WINDOW - (time.time() - off)))
    finally:
        # `lab exec` of a bare-namespace client (ISC dhclient kind) execs ping itself: this is its pid
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=30)
    times = reply_times(out)
    return Failover(old, new, longest_gap(times, off), switched, len(times))
