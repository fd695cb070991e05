"""Figures for HA subnet routers on the lab (tests/e2e/ha_topology.toml: site a has two routers).

Run as root, with S2S_LAB_PREFIX set: python bench/ha_bench.py [--failovers N] [--runs N]
Prints:
- failover time (median and spread of N power cuts of the primary router under a 10/s
  ping from a-client to b-client): the longest gap in replies; and, separately, how long
  until b-router's tailscaled lists the other router as primary for site a's subnet;
- keepalived state transitions per failover cycle (power cut, then the router back),
  read from both routers' journals: a stable pair makes two (the survivor BACKUP ->
  MASTER; the returning router starting as BACKUP) and no flapping;
- the added no-op cost of an HA site: median no-op re-deploy wall time and commands per
  router on the HA lab against the built-in two-site lab (lab/topology.toml, one router
  per site), each booted fresh here.
The lab is taken down at the end. No thresholds are asserted: these are figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

from bench.deploy_bench import commands_per_host, timed
from lab import api, drive
from lab.failover import measure, primary_for, vrrp_holder
from lab.topology import DEFAULT_PATH, TOPOLOGY_ENV

HA_TOPOLOGY = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "ha_topology.toml"
ROUTERS = ["a-router", "a-router2"]
SUBNET, VIP = "192.0.2.0/24", "192.0.2.3"


def boot(topology: Path) -> Path:
    os.environ[TOPOLOGY_ENV] = str(topology)
    api.down()
    sites = api.ensure_up(topology).sites_file
    timed(sites)  # first deploy
    return sites


def noop_figures(sites: Path, runs: int) -> tuple[float, dict[str, int]]:
    times = [timed(sites)[0] for _ in range(runs)]
    _, log = timed(sites, "--debug")
    return statistics.median(times), dict(commands_per_host(log))


def transitions(router: str, since: float) -> list[str]:
    """keepalived's state changes on `router` since the epoch time `since` (its journal)."""
    out = drive.in_host(router, "journalctl", "-u", "keepalived", "-o", "cat", "--since", f"@{int(since)}",
                        "--no-pager", check=False).stdout
    return re.findall(r"Entering (\w+) STATE", out)


def wait_settled(timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(vrrp_holder(ROUTERS, VIP)) == 1 and primary_for("b-router", SUBNET) in ROUTERS:
            return
        time.sleep(0.5)
    raise SystemExit("the HA pair did not settle (one VRRP holder, one primary)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=5, help="power cuts of the primary (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="no-op deploys per median (default 3)")
    args = parser.parse_args()

    base_sites = boot(DEFAULT_PATH)
    base_noop, base_cmds = noop_figures(base_sites, args.runs)

    sites = boot(HA_TOPOLOGY)
    ha_noop, ha_cmds = noop_figures(sites, args.runs)
    drive.lab("renew", "a-client", "b-client")
    target = drive.client_address("b-client")
    drive.ping("a-client", target)
    gaps, switches, per_cycle = [], [], []
    for i in range(args.failovers):
        wait_settled()
        start = time.time() - 1
        result = measure("a-client", target, "b-router", ROUTERS, SUBNET)
        api.poweron([result.old_primary])
        time.sleep(5)
        wait_settled()
        moved = transitions(result.new_primary or "", start) if result.new_primary else []
        back = transitions(result.old_primary, start)  # its journal starts at this boot
        per_cycle.append(len(moved) + len(back))
        gaps.append(result.gap_s)
        switches.append(result.primary_switch_s)
        print(f"  failover {i + 1}: {result.old_primary} -> {result.new_primary}: gap {result.gap_s}, "
              f"primary switch {result.primary_switch_s}, keepalived: survivor {moved}, returning {back}",
              flush=True)
    changes = drive.planned_changes(sites)
    api.down()

    ok_gaps = [g for g in gaps if g is not None]
    ok_sw = [s for s in switches if s is not None]
    print(f"failover (ping gap), median of {len(ok_gaps)}/{args.failovers}: "
          f"{statistics.median(ok_gaps):5.2f} s  (min {min(ok_gaps):.2f}, max {max(ok_gaps):.2f})")
    print(f"tailnet primary switch seen by b-router, median: {statistics.median(ok_sw):5.2f} s  "
          f"(min {min(ok_sw):.2f}, max {max(ok_sw):.2f})")
    print(f"keepalived transitions per failover cycle: {per_cycle}")
    print(f"no-op re-deploy, median of {args.runs}: HA lab {ha_noop:.2f} s vs built-in lab {base_noop:.2f} s "
          f"(+{ha_noop - base_noop:.2f} s); changes planned after the failovers: {len(changes)}")
    print("commands per host on a no-op run: HA lab " + ", ".join(f"{h} {n}" for h, n in sorted(ha_cmds.items()))
          + " | built-in lab " + ", ".join(f"{h} {n}" for h, n in sorted(base_cmds.items())))


if __name__ == "__main__":
    main()
