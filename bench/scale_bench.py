"""Figures for N-site labs: lab up time, lab memory, first deploy, no-op deploy, commands per host.

Run as root (S2S_LAB_PREFIX set if another lab runs beside yours):

    python bench/scale_bench.py                  # 2, 4, 8 and 12 sites
    python bench/scale_bench.py --sites 2 4 --runs 5

For each N: a generated uniform topology (`python -m lab topology --sites N`),
`lab down`, a warm `lab up` (timed), the lab's memory (PSS of every process in
its namespaces, split by role), the first deploy, the no-op re-deploy and an
empty pyinfra deploy on the same hosts (medians), and the commands pyinfra ran
per host on a no-op run (from --debug). The lab is taken down at the end.
Machine load (1-min load average) is printed beside each row: the machine may be
shared, and the figures move with it. No thresholds: these are figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from lab_bench import pss_kib  # noqa: E402

from lab import api, container, drive, net, progress  # noqa: E402
from lab.generate import generate  # noqa: E402


def timed(sites: Path, *args: str, deploy: str = "deploy.py") -> tuple[float, str]:
    start = time.monotonic()
    result = drive.pyinfra(sites, *args, deploy=deploy, timeout=1800)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"pyinfra {deploy} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stderr


def median_of(runs: int, sites: Path, *args: str, deploy: str = "deploy.py") -> float:
    return statistics.median(timed(sites, *args, deploy=deploy)[0] for _ in range(runs))


def memory_by_role(info: api.LabInfo) -> dict[str, float]:
    """MiB of PSS per role (all hosts of the role together), and 'total'."""
    out: dict[str, float] = defaultdict(float)
    for h in info.hosts:
        pids = set(net.pids(h.netns))
        if h.container and (pid := container.nspawn_pid(h.name)):
            pids.add(pid)
        mib = sum(pss_kib(p) for p in pids) / 1024
        out[h.role] += mib
        out["total"] += mib
    return dict(out)


def up_phases(topo: Path) -> tuple[api.LabInfo, float, dict[str, float]]:
    """`ensure_up` timed, with the duration of each of its steps (from its progress lines)."""
    phases: dict[str, float] = {}
    original = progress.say

    def capture(msg: str) -> None:
        if m := re.match(r"(.+): done in ([\d.]+)s$", msg):
            phases[m[1].split(" (")[0].split(",")[0]] = float(m[2])
        original(msg)

    progress.say = capture
    try:
        t0 = time.monotonic()
        info = api.ensure_up(topo)
        return info, time.monotonic() - t0, phases
    finally:
        progress.say = original


def load1() -> float:
    return os.getloadavg()[0]


def one_size(n: int, runs: int, workdir: Path) -> dict:
    topo = workdir / f"sites-{n}.toml"
    topo.write_text(generate(n))
    api.down()
    info, up, phases = up_phases(topo)
    mem_up = memory_by_role(info)
    first, _ = timed(info.sites_file)
    mem_deployed = memory_by_role(info)
    noop = median_of(runs, info.sites_file)
    empty = median_of(runs, info.sites_file, deploy="bench/empty_deploy.py")
    _, debug_log = timed(info.sites_file, "--debug")
    per_host = Counter(re.findall(r"Running command on (\S+?):", debug_log))
    role = {h.name: h.role for h in info.hosts}
    by_role: dict[str, list[int]] = defaultdict(list)
    for host, count in per_host.items():
        by_role[role.get(host, host)].append(count)
    changes = drive.planned_changes(info.sites_file)
    return {
        "n": n,
        "up": up,
        "mem_up": mem_up,
        "mem_deployed": mem_deployed,
        "first": first,
        "noop": noop,
        "empty": empty,
        "cmds": {r: (min(c), max(c)) for r, c in by_role.items()},
        "changes": len(changes),
        "load": load1(),
        "phases": phases,
    }


def fmt_cmds(cmds: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{r} {lo}" + (f"-{hi}" if hi != lo else "") for r, (lo, hi) in sorted(cmds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 4, 8, 12])
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="s2s-scale-") as tmp:
        try:
            for n in args.sites:
                row = one_size(n, args.runs, Path(tmp))
                rows.append(row)
                print(
                    f"{n:>2} sites: up {row['up']:5.1f} s, memory {row['mem_up']['total']:5.0f} MiB "
                    f"-> {row['mem_deployed']['total']:5.0f} MiB deployed, first deploy {row['first']:5.1f} s, "
                    f"no-op {row['noop']:5.2f} s (empty {row['empty']:5.2f} s, {row['noop'] / row['empty']:.2f}x), "
                    f"commands/host {fmt_cmds(row['cmds'])}, changes after {row['changes']}, "
                    f"load {row['load']:.1f}",
                    flush=True,
                )
                print("    up: " + ", ".join(f"{k} {v:.1f} s" for k, v in row["phases"].items()), flush=True)
        finally:
            api.down()
    print(
        "\n| sites | lab up | lab memory (up -> deployed) | first deploy | no-op deploy (empty) | "
        "commands per host on a no-op run | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['n']} | {r['up']:.1f} s | {r['mem_up']['total']:.0f} -> {r['mem_deployed']['total']:.0f} MiB | "
            f"{r['first']:.1f} s | {r['noop']:.2f} s ({r['empty']:.2f} s) | {fmt_cmds(r['cmds'])} | {r['load']:.1f} |"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        dn = b["n"] - a["n"]
        print(
            f"\nper extra site ({a['n']} -> {b['n']} sites): up +{(b['up'] - a['up']) / dn:.2f} s, "
            f"first deploy +{(b['first'] - a['first']) / dn:.2f} s, no-op +{(b['noop'] - a['noop']) / dn:.3f} s, "
            f"empty +{(b['empty'] - a['empty']) / dn:.3f} s"
        )
        for key in ("gw", "router", "client"):
            per = b["mem_deployed"].get(key, 0) / b["n"]
            print(f"  memory per {key:<6} (deployed, {b['n']} sites): {per:5.1f} MiB")
        print(
            f"  control host: {b['mem_deployed'].get('control', 0):.0f} MiB at {b['n']} sites, "
            f"{a['mem_deployed'].get('control', 0):.0f} MiB at {a['n']}"
        )


if __name__ == "__main__":
    main()
