"""Figures for static-address hosts: the deploy time each one adds ([[sites.X.hosts]]).

Run as root: python bench/static_hosts_bench.py [--runs N] [--reuse-lab]
Boots a fresh lab of tests/e2e/static_topology.toml (two sites, a static host per network manager
on each: networkd, NetworkManager, ifupdown, netplan) unless --reuse-lab, deploys the routers
once, then on copies of its site file: the median no-op deploy without static hosts (the
baseline), the first deploy that gives every static host its routes, and the median no-op
deploy with them. Prints each one's wall time and the time added per static host beyond the
baseline. The lab is left running (with --reuse-lab the first-deploy figure only means
something on a lab whose static hosts never had the routes). No thresholds are asserted: these
are figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOPOLOGY = REPO / "tests/e2e/static_topology.toml"


def timed(sites: Path, *args: str) -> float:
    from lab import drive

    started = time.monotonic()
    result = drive.pyinfra(sites, *args)
    if result.returncode != 0:
        raise SystemExit(f"deploy failed:\n{drive.why_failed(result)}")
    return time.monotonic() - started


def without_static_hosts(text: str) -> str:
    entry = r"\[\[sites\.[a-z0-9_-]+\.hosts\]\]\nssh = \"[^\"]+\"\n(manager = \"[a-z]+\"\n)?"
    return re.sub(entry, "", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="no-op runs per median (default 3)")
    parser.add_argument("--reuse-lab", action="store_true", help="use the running lab as it is")
    args = parser.parse_args()
    from lab import api  # after sys.path has the repository

    if not args.reuse_lab:
        api.down()  # the first deploy's figure needs static hosts that never had the routes
    info = api.ensure_up(TOPOLOGY if not args.reuse_lab else None)
    text = info.sites_file.read_text()
    count = len(re.findall(r"\[\[sites\.[^]]+\.hosts\]\]", text))
    if not count:
        raise SystemExit("the lab's site file lists no static hosts (not the static topology?)")
    with tempfile.TemporaryDirectory() as tmp:
        bare, full = Path(tmp) / "bare.toml", Path(tmp) / "full.toml"
        bare.write_text(without_static_hosts(text))
        full.write_text(text)
        timed(bare)  # the routers and Kea brought into line first
        baseline = statistics.median(timed(bare) for _ in range(args.runs))
        record = (Path(tmp) / "bare.toml.applied.json").read_text()
        (Path(tmp) / "full.toml.applied.json").write_text(record)
        first = timed(full)
        noop = statistics.median(timed(full) for _ in range(args.runs))
    print(f"static hosts: {count} (lab {TOPOLOGY.name})")
    print(f"no-op deploy without them (median of {args.runs}): {baseline:.2f} s")
    print(f"first deploy giving them routes: {first:.2f} s  "
          f"(+{(first - baseline) / count:.3f} s per host)")
    print(f"no-op deploy with them (median of {args.runs}):    {noop:.2f} s  "
          f"(+{(noop - baseline) / count:.3f} s per host)")


if __name__ == "__main__":
    main()
