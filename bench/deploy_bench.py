"""Figures for the router deploy on the built-in lab (a fresh lab is booted; it is left running).

Run as root: python bench/deploy_bench.py [--runs N]
Prints: first deploy and no-op re-deploy wall time, the no-op re-deploy against an
empty pyinfra deploy on the same hosts (ratio, target < 1.5x), commands run per
host on a no-op run, ping RTT and TCP throughput client to client across the tunnel.
No thresholds are asserted: these are figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import api, drive  # noqa: E402


def timed(sites: Path, *args: str, deploy: str = "deploy.py") -> tuple[float, str]:
    start = time.monotonic()
    result = drive.pyinfra(sites, *args, deploy=deploy)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"pyinfra {deploy} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stderr


def median_of(runs: int, sites: Path, *args: str, deploy: str = "deploy.py") -> float:
    return statistics.median(timed(sites, *args, deploy=deploy)[0] for _ in range(runs))


def commands_per_host(debug_log: str) -> Counter:
    return Counter(re.findall(r"Running command on (\S+?):", debug_log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    args = parser.parse_args()

    api.down()
    sites = api.ensure_up().sites_file
    first, _ = timed(sites)
    noop = median_of(args.runs, sites)
    empty = median_of(args.runs, sites, deploy="bench/empty_deploy.py")
    _, debug_log = timed(sites, "--debug")
    per_host = commands_per_host(debug_log)
    changes = drive.planned_changes(sites)

    drive.lab("renew", "a-client", "b-client")
    b_addr = drive.client_address("b-client")
    drive.ping("a-client", b_addr, count=3)  # warm the WireGuard handshake
    ping = drive.ping("a-client", b_addr, count=20, deadline=40)
    rtt = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)", ping.stdout)
    size = 200 * 1024 * 1024
    transfers = [drive.tcp_transfer("a-client", "b-client", size, port=5201 + i) for i in range(3)]
    mbit = statistics.median(t["bytes"] * 8 / t["seconds"] / 1e6 for t in transfers)

    print(f"first deploy (fresh lab, 2 routers + 2 Kea hosts):  {first:6.2f} s")
    print(f"no-op re-deploy (median of {args.runs}):                {noop:6.2f} s  "
          f"(changes planned afterwards: {len(changes)})")
    print(f"empty pyinfra deploy, same hosts (median of {args.runs}):  {empty:6.2f} s")
    print(f"no-op / empty ratio:                               {noop / empty:6.2f}x  (target < 1.5x)")
    print("commands run per host on a no-op run:             "
          + ", ".join(f"{h} {n}" for h, n in sorted(per_host.items())))
    if rtt:
        print(f"ping a-client -> b-client (20 pings):              min {rtt[1]} / avg {rtt[2]} / max {rtt[3]} ms")
    print(f"TCP a-client -> b-client, 200 MB x3 (median):      {mbit:8.0f} Mbit/s "
          f"(peer seen by b-client: {transfers[0]['peer']})")


if __name__ == "__main__":
    main()
