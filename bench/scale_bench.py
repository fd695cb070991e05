"""Figures for N-site labs: lab up, memory, first deploy, no-op deploy, commands per host, the check, pings.

Run as root (S2S_LAB_PREFIX set if another lab runs beside yours):

    python bench/scale_bench.py                  # 2, 4, 8 and 12 sites
    python bench/scale_bench.py --sites 2 50     # the scale target: 50 sites beside 2
    python bench/scale_bench.py --sites 2 4 --runs 5 --layout mixed

For each N: a generated topology (`s2s lab topology --sites N --layout L`, deployed as
generated: its [dhcp] summaries = "auto"), `lab down`, a warm `lab up` (timed), the lab's memory
(PSS of every process in its namespaces, split by role), the first deploy, a wait until the
lab's hosts are at rest again (the routers and Headscale exchange network maps for a minute or
two after 50 joins), the no-op re-deploy and an empty pyinfra deploy on the same hosts (medians,
the two in turn), the CPU a no-op costs beyond an empty run (the deploy, and each role's lab
hosts, which share this machine's cores: the figure that does not move with the machine's load),
the commands pyinfra ran per host on a no-op run (from --debug), the changes a --dry run still
plans after the deploy (0 is idempotent), every client re-bound, `s2s check` (its wall time and
verdict), and a ping sample: every client to three random other clients (seeded, one ping each,
one reply awaited up to 10 s). The lab is taken down at the end. The no-op of each N is also
given as a multiple of the first N's (the target: 50 sites at most 3x 2 sites). Machine load
(1-min load average) is printed beside each row: the machine may be shared, and the figures move
with it. No thresholds: these are figures.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from check_bench import one_with_rows  # noqa: E402
from deploy_bench import _cpu_by_namespace, _pid_namespace  # noqa: E402
from lab_bench import pss_kib  # noqa: E402

from lab import api, container, drive, net, progress  # noqa: E402
from lab.generate import LAYOUTS, generate  # noqa: E402

IDLE_WINDOW = 10.0  # seconds the lab is watched doing nothing (its background CPU rate)
SETTLED = 0.3  # CPU-seconds per second of the lab's hosts under which a deployed lab counts as settled
SETTLE_WINDOW, SETTLE_TIMEOUT = 5.0, 300.0
PYINFRA_ARGS: list[str] = []  # --pyinfra-arg: given to every pyinfra run (e.g. --parallel 100)
FAILED_RUNS: list[str] = []  # runs that failed (a host unreachable...): said, not hidden, and not timed


def timed(sites: Path, *args: str, deploy: str = "deploy.py", must: bool = True) -> tuple[float | None, str]:
    """One pyinfra run's wall time and its log; a failed run raises when `must`, else is recorded
    (with the lines naming its errors) and gives no time."""
    start = time.monotonic()
    result = drive.pyinfra(sites, *PYINFRA_ARGS, *args, deploy=deploy, timeout=1800)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        why = drive.why_failed(result, tail=1500)
        if must:
            raise SystemExit(f"pyinfra {deploy} {' '.join(args)} failed:\n{why}")
        FAILED_RUNS.append(f"pyinfra {deploy} {' '.join(args)} failed after {elapsed:.1f} s:\n{why}")
        print(FAILED_RUNS[-1], flush=True)
        return None, result.stderr
    return elapsed, result.stderr


def _namespaces(info: api.LabInfo) -> dict[str, str]:
    """Each container host's PID namespace (its processes' CPU is read by namespace)."""
    return {h.name: ns for h in info.hosts if h.container
            and (pid := container.leader_pid(h.name)) and (ns := _pid_namespace(pid))}


def settle(info: api.LabInfo) -> tuple[float, float]:
    """Wait until the deployed lab's hosts use under SETTLED CPU-seconds per second (seconds
    waited, last rate). Right after a first deploy 50 routers and Headscale exchange network maps
    for a minute or two (Headscale alone near one core); a no-op run on a real network meets a
    tailnet at rest, and one timed here would be charged for the joins' aftermath."""
    namespaces, t0, rate = _namespaces(info), time.monotonic(), float("inf")
    while time.monotonic() - t0 < SETTLE_TIMEOUT:
        before, w0 = _cpu_by_namespace(namespaces), time.monotonic()
        time.sleep(SETTLE_WINDOW)
        after = _cpu_by_namespace(namespaces)
        rate = sum(after[n] - before[n] for n in namespaces) / (time.monotonic() - w0)
        if rate < SETTLED:
            break
    return time.monotonic() - t0, rate


def alternating(runs: int, info: api.LabInfo) -> tuple[float, float, dict[str, float]]:
    """Medians of RUNS no-op and RUNS empty deploys, run in turn (the machine's load hits both alike),
    and the median CPU seconds a no-op costs beyond an empty run: the deploy (pyinfra and its
    children) and each role's lab hosts together (every process in their PID namespaces), less the
    lab's idle CPU rate times how much longer the no-op ran. On this machine the lab's hosts share
    the deploy's cores, so their CPU is part of the no-op's wall time."""
    namespaces = _namespaces(info)
    role = {h.name: h.role for h in info.hosts}

    def one(deploy: str) -> tuple[float | None, dict[str, float]]:
        before, mine = _cpu_by_namespace(namespaces), resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = timed(info.sites_file, deploy=deploy, must=False)[0]
        after, mine_after = _cpu_by_namespace(namespaces), resource.getrusage(resource.RUSAGE_CHILDREN)
        used: dict[str, float] = defaultdict(float)
        for name in namespaces:
            used[role[name]] += after[name] - before[name]
        used["deploy"] = (mine_after.ru_utime + mine_after.ru_stime) - (mine.ru_utime + mine.ru_stime)
        return wall, used

    walls: dict[str, list[float]] = {"noop": [], "empty": []}
    pairs = []
    for _ in range(runs):
        (noop, cpu_noop), (empty, cpu_empty) = one("deploy.py"), one("bench/empty_deploy.py")
        walls["noop"] += [noop] if noop is not None else []
        walls["empty"] += [empty] if empty is not None else []
        pairs.append(((noop or 0.0) - (empty or 0.0), cpu_noop, cpu_empty))
    if not walls["noop"] or not walls["empty"]:
        raise SystemExit("every no-op or every empty run failed")
    # the lab's own background CPU (tailscaled, Headscale's map sessions, Kea, systemd) per second,
    # watched after the runs (right after the first deploy Headscale is still busy): a no-op that
    # takes longer than an empty run is not charged for the lab merely running longer
    before, t0 = _cpu_by_namespace(namespaces), time.monotonic()
    time.sleep(IDLE_WINDOW)
    after, idle_s = _cpu_by_namespace(namespaces), time.monotonic() - t0
    idle: dict[str, float] = defaultdict(float)
    for name in namespaces:
        idle[role[name]] += (after[name] - before[name]) / idle_s
    extra: dict[str, list[float]] = defaultdict(list)
    for longer, cpu_noop, cpu_empty in pairs:
        for key in cpu_noop:
            extra[key].append(cpu_noop[key] - cpu_empty[key] - idle.get(key, 0.0) * longer)
    cpu = {key: statistics.median(v) for key, v in sorted(extra.items())}
    cpu["total"] = sum(cpu.values())
    cpu["lab idle (CPU s per s)"] = sum(idle.values())
    return statistics.median(walls["noop"]), statistics.median(walls["empty"]), cpu


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


def say(line: str) -> None:
    """A figure as soon as it is measured (a run that fails later keeps what it had)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {line}", flush=True)


def load1() -> float:
    return os.getloadavg()[0]


MESH_PEERS = 3  # each client pings this many random other clients


def ping_sample(info: api.LabInfo, seed: int) -> tuple[int, int, list[str]]:
    """Every client to MESH_PEERS random other clients, one ping each: (answered, sent, failed pairs)."""
    clients = [s.client_host for s in info.topology.sites.values()]
    with ThreadPoolExecutor(max_workers=8) as pool:  # each is a `python -m lab exec` process
        addr = dict(zip(clients, pool.map(drive.client_address, clients), strict=True))
        rng = random.Random(seed)
        pairs = [(src, dst) for src in clients
                 for dst in rng.sample([c for c in clients if c != src], min(MESH_PEERS, len(clients) - 1))]
        results = list(pool.map(lambda p: drive.ping(p[0], addr[p[1]], count=1, deadline=10), pairs))
    failed = [f"{s}->{d}" for (s, d), r in zip(pairs, results, strict=True) if r.returncode != 0]
    return len(pairs) - len(failed), len(pairs), failed


def check_verdict(sites: Path) -> tuple[float, float, str]:
    """`s2s check`'s wall time, the time it reports itself, and its verdict in a few words."""
    wall, inner, code, rows = one_with_rows(sites, timeout=900)  # a loaded machine: the figure, not a timeout
    if code == 0:
        return wall, inner, f"all {len(rows)} ok"
    bad = [f"{r['site']}:{r['step']} {r['status']} ({r['reason'][:120]})" for r in rows if r["status"] != "ok"]
    return wall, inner, f"{len(rows) - len(bad)} of {len(rows)} ok; " + "; ".join(bad[:5])


def one_size(n: int, runs: int, workdir: Path, layout: str) -> dict:
    topo = workdir / f"sites-{n}.toml"
    topo.write_text(generate(n, layout))
    api.down()
    info, up, phases = up_phases(topo)
    mem_up = memory_by_role(info)
    first, _ = timed(info.sites_file)
    assert first is not None
    say(f"{n} sites: up {up:.1f} s, first deploy {first:.1f} s")
    mem_deployed = memory_by_role(info)
    settled = settle(info)
    say(f"{n} sites: lab settled after {settled[0]:.0f} s (its hosts at {settled[1]:.2f} CPU-s/s)")
    noop, empty, cpu = alternating(runs, info)
    say(f"{n} sites: no-op {noop:.2f} s, empty {empty:.2f} s (medians of {runs}, alternating); extra CPU of a "
        "no-op: " + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()))
    _, debug_log = timed(info.sites_file, "--debug", must=False)
    per_host = Counter(re.findall(r"Running command on (\S+?):", debug_log))
    role = {h.name: h.role for h in info.hosts}
    by_role: dict[str, list[int]] = defaultdict(list)
    for host, count in per_host.items():
        by_role[role.get(host, host)].append(count)
    changes = drive.planned_changes(info.sites_file)
    drive.lab("renew", *[s.client_host for s in info.topology.sites.values()], timeout=1800)
    say(f"{n} sites: {len(changes)} changes planned after; clients re-bound")
    check_wall, check_inner, check_says = check_verdict(info.sites_file)
    say(f"{n} sites: check {check_wall:.1f} s wall, {check_says}")
    answered, sent, failed = ping_sample(info, seed=n)
    return {
        "n": n,
        "up": up,
        "mem_up": mem_up,
        "mem_deployed": mem_deployed,
        "first": first,
        "settled": settled,
        "noop": noop,
        "empty": empty,
        "cpu": cpu,
        "cmds": {r: (min(c), max(c)) for r, c in by_role.items()},
        "changes": len(changes),
        "load": load1(),
        "phases": phases,
        "check": (check_wall, check_inner, check_says),
        "pings": (answered, sent, failed),
    }


def fmt_cmds(cmds: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{r} {lo}" + (f"-{hi}" if hi != lo else "") for r, (lo, hi) in sorted(cmds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 4, 8, 12])
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="uniform")
    parser.add_argument("--pyinfra-arg", action="append", default=[], metavar="ARG",
                        help="give every pyinfra run ARG (repeat it: --pyinfra-arg=--parallel --pyinfra-arg=100)")
    args = parser.parse_args()
    PYINFRA_ARGS.extend(args.pyinfra_arg)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-code cached, as a user's runs (deploy_bench.py)
    rows = []
    with tempfile.TemporaryDirectory(prefix="s2s-scale-") as tmp:
        try:
            for n in args.sites:
                row = one_size(n, args.runs, Path(tmp), args.layout)
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
                print(f"    settled after the first deploy in {row['settled'][0]:.0f} s "
                      f"(lab hosts at {row['settled'][1]:.2f} CPU-s/s) before the no-op runs", flush=True)
                print("    extra CPU of a no-op over an empty run (medians): "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in row["cpu"].items()), flush=True)
                answered, sent, failed = row["pings"]
                print(f"    check: {row['check'][0]:.1f} s wall ({row['check'][1]:.1f} s its own), "
                      f"{row['check'][2]}; pings {answered}/{sent} answered"
                      + (f" (failed: {', '.join(failed[:10])})" if failed else ""), flush=True)
        finally:
            api.down()
    if FAILED_RUNS:
        print(f"\n{len(FAILED_RUNS)} pyinfra run(s) failed (not in the medians); the first:\n{FAILED_RUNS[0]}")
    print(
        "\n| sites | lab up | lab memory (up -> deployed) | first deploy | no-op deploy (empty) | "
        "no-op / first N's | commands per host on a no-op run | changes after | s2s check | "
        "pings answered | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['n']} | {r['up']:.1f} s | {r['mem_up']['total']:.0f} -> {r['mem_deployed']['total']:.0f} MiB | "
            f"{r['first']:.1f} s | {r['noop']:.2f} s ({r['empty']:.2f} s) | {r['noop'] / rows[0]['noop']:.2f}x | "
            f"{fmt_cmds(r['cmds'])} | {r['changes']} | {r['check'][0]:.1f} s, {r['check'][2]} | "
            f"{r['pings'][0]}/{r['pings'][1]} | {r['load']:.1f} |"
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
