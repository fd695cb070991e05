"""Figures for `python -m check` on the built-in lab (booted and deployed if needed; left running).

Run as root: python bench/check_bench.py [--runs N]
Prints the wall time of a whole `python -m check` process on a healthy lab
(median, min, max of N runs), the time the check itself reports (state read
and judged, without Python's start-up), and the same with one router's
tailscaled stopped (the slowest common fault: pings wait for their timeout).
No thresholds are asserted: these are figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab import api, drive

REPO = Path(__file__).resolve().parents[1]


def one(sites: Path) -> tuple[float, float, int]:
    wall, seconds, code, _ = one_with_rows(sites)
    return wall, seconds, code


def one_with_rows(sites: Path, timeout: float = 120) -> tuple[float, float, int, list[dict]]:
    """One `python -m check --json` run: wall time, the check's own time, exit code, its rows."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "check", "--sites", str(sites), "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"check failed: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    return wall, report["seconds"], result.returncode, report["rows"]


def series(sites: Path, runs: int, label: str) -> None:
    got = [one(sites) for _ in range(runs)]
    walls, inner = [g[0] for g in got], [g[1] for g in got]
    codes = sorted({g[2] for g in got})
    print(f"{label}: wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}); "
          f"check's own time median {statistics.median(inner):.2f} s; exit {codes}; {runs} runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    info = api.ensure_up()
    if drive.planned_changes(info.sites_file):
        deployed = drive.pyinfra(info.sites_file)
        if deployed.returncode != 0:
            raise SystemExit(deployed.stderr[-3000:])
    series(info.sites_file, args.runs, "healthy lab (2 sites)")
    drive.in_host("a-router", "systemctl", "stop", "tailscaled")
    try:
        series(info.sites_file, args.runs, "a-router's tailscaled stopped")
    finally:
        drive.in_host("a-router", "systemctl", "start", "tailscaled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
