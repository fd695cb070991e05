"""Where a no-op re-deploy's time goes on a running, deployed lab: phases, operations, commands, CPU.

Run as root with the lab up and deployed (S2S_LAB_PREFIX set if another lab runs beside yours):

    python bench/noop_profile.py [--sites .lab/sites.toml] [--top 25] [--keep DIR]

Two no-op runs, one after the other:
1. `pyinfra -y --debug`, each line of its log stamped as it arrives: the wall time of each of
   pyinfra's phases (start and imports, inventory.py, connecting, loading deploy.py on every
   host, executing, results and disconnecting), the slowest operations of the execution (from
   one operation's first start to the next one's), commands run per host, and the run's CPU
   time (the pyinfra process and its children).
2. The same run under cProfile: its CPU time and the functions that cost the most (own time,
   and cumulative for this project's and pyinfra's), plus the call counts that are round trips:
   SSH channels opened (a command or a port forward each), HTTP requests (Kea and the control
   plane) and the control plane's API calls (each pays Headscale's bcrypt key check).
cProfile slows the process it profiles (two to three times here): read its figures as shares,
the first run's as times. The machine load is printed beside both. No thresholds: figures.
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401 - run as `python -m cProfile` below; imported to fail early if missing
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))

# pyinfra 3.10's own progress lines, in the order they come (pyinfra_cli/cli.py)
PHASES = (
    ("start, imports, config", "--> Loading inventory..."),
    ("inventory.py (site file loaded and planned)", "--> Connecting to hosts..."),
    ("connecting to every host", "--> Preparing operation files..."),
    ("loading deploy.py on every host (reads, operations registered)", "--> Beginning operation run..."),
    ("executing the operations", "--> Results:"),
    ("results, disconnecting, exit", None),
)


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stamped_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, list[tuple[float, str]]]:
    """Run a pyinfra command; (wall s, CPU s of it and its children, [(seconds since start, line)])."""
    cpu0, t0 = cpu_children(), time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.monotonic() - t0, line.rstrip("\n")) for line in proc.stdout]
    if proc.wait() != 0:
        raise SystemExit("pyinfra failed:\n" + "\n".join(line for _, line in lines[-40:]))
    return time.monotonic() - t0, cpu_children() - cpu0, lines


def phases(wall: float, lines: list[tuple[float, str]]) -> list[tuple[str, float]]:
    marks = [0.0]
    for _, marker in PHASES[:-1]:
        marks.append(next((t for t, line in lines if marker in line), marks[-1]))
    marks.append(wall)
    return [(name, marks[i + 1] - marks[i]) for i, (name, _) in enumerate(PHASES)]


def slowest_operations(lines: list[tuple[float, str]], top: int) -> list[tuple[float, str, int]]:
    """(seconds, operation, hosts) per operation of the execution, from its first start to the next's."""
    begun = next((t for t, line in lines if "--> Beginning operation run..." in line), None)
    ended = next((t for t, line in lines if "--> Results:" in line), None)
    if begun is None or ended is None:
        return []
    starts: dict[str, float] = {}
    hosts: Counter = Counter()
    for t, line in lines:
        if begun <= t <= ended and (m := re.search(r"Starting operation (\{.*?\}) on (\S+)", line)):
            starts.setdefault(m[1], t)
            hosts[m[1]] += 1
    order = sorted(starts.items(), key=lambda kv: kv[1]) + [("end", ended)]
    spans = [(order[i + 1][1] - t, name, hosts[name]) for i, (name, t) in enumerate(order[:-1])]
    return sorted(spans, reverse=True)[:top]


def commands_per_host(lines: list[tuple[float, str]]) -> Counter:
    return Counter(m[1] for _, line in lines if (m := re.search(r"Running command on (\S+?):", line)))


def spread(counts: Counter) -> str:
    values = Counter(counts.values())
    return ", ".join(f"{n} host(s) ran {c}" for c, n in sorted(values.items()))


def profile_lines(prof: Path, top: int) -> list[str]:
    stats = pstats.Stats(str(prof))
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append((tottime, cumtime, ncalls, f"{short(path)}:{line}({func})"))
    out = ["own time (s)  cumulative (s)  calls  function"]
    out += [f"{t:11.3f}  {c:14.3f}  {n:5d}  {name}" for t, c, n, name in sorted(rows, reverse=True)[:top]]
    # greenlet switches make the waits' cumulative times meaningless: the project's and pyinfra's only
    mine = [r for r in rows if r[3].startswith(OWN)]
    out += ["", "cumulative, this project's and pyinfra's functions:"]
    out += [f"{c:8.3f} s  {n:6d} calls  {name}" for t, c, n, name in sorted(mine, key=lambda r: -r[1])[:top]]
    counted = {
        "SSH channels opened (commands + port forwards)": ("paramiko/transport.py", "open_channel"),
        "HTTP requests (Kea and control plane, jsonhttp)": ("jsonhttp.py", "request"),
        "control plane: list_nodes": ("controlplane/headscale.py", "list_nodes"),
        "control plane: read_policy": ("controlplane/headscale.py", "read_policy"),
        "control plane: server_version": ("controlplane/headscale.py", "server_version"),
        "operation calls (pyinfra's decorator)": ("pyinfra/api/operation.py", "decorated_func"),
        "inspect.stack() calls": ("inspect.py", "stack"),
        "facts read (get_facts)": ("pyinfra/api/facts.py", "_get_fact"),
    }
    out.append("")
    for label, (suffix, func) in counted.items():
        calls = sum(v[1] for k, v in stats.stats.items() if k[0].endswith(suffix) and k[2] == func)
        cum = max((v[3] for k, v in stats.stats.items() if k[0].endswith(suffix) and k[2] == func), default=0.0)
        out.append(f"{label}: {calls} calls, {cum:.2f} s cumulative")
    return out


OWN = ("pyinfra/", "pyinfra_cli/", "deploy.py", "inventory.py", "steps/", "operations/", "controlplane/",
       "dhcp/", "sites/", "jsonhttp.py", "pyinfra_internals.py", "tunnel/", "removal/")


def short(path: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=Path, default=ROOT / ".lab" / "sites.toml")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="keep the profile and the debug log in this directory")
    args = parser.parse_args()
    env = dict(os.environ, SITES=str(args.sites.resolve()), PYTHONUNBUFFERED="1")  # lines stamped as written
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-code cached, as a user's runs (deploy_bench.py)
    with tempfile.TemporaryDirectory(prefix="s2s-noop-profile-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0]
        wall, cpu, lines = stamped_run([PYINFRA, "-y", "inventory.py", "deploy.py", "--debug"], env)
        (out / "debug.log").write_text("\n".join(f"{t:9.3f} {line}" for t, line in lines))
        print(f"no-op run with --debug: {wall:.2f} s wall, {cpu:.2f} s CPU (pyinfra and its children), "
              f"load {load:.1f} before, {os.getloadavg()[0]:.1f} after")
        for name, seconds in phases(wall, lines):
            print(f"  {seconds:7.2f} s  {name}")
        cmds = commands_per_host(lines)
        print(f"commands: {sum(cmds.values())} on {len(cmds)} hosts ({spread(cmds)})")
        print("slowest operations of the execution (first start to the next operation's first start):")
        for seconds, name, n in slowest_operations(lines, 8):
            print(f"  {seconds:7.3f} s  {name} ({n} hosts)")
        prof = out / "noop.prof"
        load = os.getloadavg()[0]
        wall, cpu, _ = stamped_run([sys.executable, "-m", "cProfile", "-o", str(prof), PYINFRA, "-y",
                                    "inventory.py", "deploy.py"], env)
        print(f"\nno-op run under cProfile: {wall:.2f} s wall, {cpu:.2f} s CPU, load {load:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after")
        print("\n".join(profile_lines(prof, args.top)))


if __name__ == "__main__":
    main()
