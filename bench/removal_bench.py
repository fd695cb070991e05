"""Figures for the removal run (`--data prune=true`): its preview, the run, the re-run, a plain deploy.

Run as root (S2S_LAB_PREFIX set if another lab runs beside yours):

    python bench/removal_bench.py [--sites 3] [--runs 3]

Each run: a generated uniform N-site lab (`lab down`, `lab up`), a first deploy of
all sites (it writes the applied record), the last site deleted from a copy of the
site file, then timed: the removal's `--dry`, the removal run, the re-run (a no-op)
and a plain no-op deploy of the remaining sites for comparison. Medians over the
runs, the machine's 1-minute load beside them. The lab is taken down at the end.
No thresholds: these are figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from lab import api, drive  # noqa: E402
from lab.generate import generate  # noqa: E402


def timed(sites: Path, *args: str) -> float:
    start = time.monotonic()
    result = drive.pyinfra(sites, *args, timeout=1800)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"pyinfra {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def one_run(n: int, where: Path) -> dict[str, float]:
    topo = where / "topology.toml"
    topo.write_text(generate(n, "uniform", 0))
    api.down()
    info = api.ensure_up(topo)
    sites = where / "sites.toml"
    sites.write_text(info.sites_file.read_text())
    Path(f"{sites}.applied.json").unlink(missing_ok=True)
    out = {"first deploy": timed(sites)}
    last = sorted(info.topology.sites)[-1]
    sites.write_text(re.sub(rf"\n\[sites\.{last}(\.[a-z_]+)?\]\n(?:(?!\n\[).)*", "", sites.read_text(), flags=re.S))
    out["removal --dry"] = timed(sites, "--dry", "--data", "prune=true")
    out["removal run"] = timed(sites, "--data", "prune=true")
    out["removal re-run (no-op)"] = timed(sites, "--data", "prune=true")
    out["plain no-op deploy"] = timed(sites)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="s2s-removal-bench-") as tmp:
            for i in range(args.runs):
                runs.append(one_run(args.sites, Path(tmp)))
                print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    finally:
        api.down()
    print(f"\n{args.sites} sites, last one removed; medians of {len(runs)} (load {os.getloadavg()[0]:.1f}):")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"  {key:24} {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
