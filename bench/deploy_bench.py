"""Figures for the router deploy on the built-in lab (a fresh lab is booted; it is left running).

Run as root: python bench/deploy_bench.py [--runs N] [--latency-ms MS] [--reuse-lab]
Prints: first deploy and no-op re-deploy wall time, the no-op re-deploy against an
empty pyinfra deploy on the same hosts (ratio, target < 1.2x), commands run per
host on a no-op run, the CPU time a no-op run costs each lab host and the deploy machine
beyond an empty run (the lab shares this machine's cores with the deploy, so this is
where the no-op's extra wall time comes from), ping RTT and TCP throughput client to
client across the tunnel.
--latency-ms adds that much round-trip time to the lab's SSH path, half each way, as a
WAN between the deploy and the routers would: tc netem on the loopback of each
SSH-reached lab host's own namespace (removed at the end) where the kernel has
sch_netem, else bench/delay_proxy.py as the ProxyCommand inside the same namespaces
(a copy of the lab's ssh_config and site file in a temp dir).
No-op and empty runs alternate, so the machine's load hits both alike.
The pyinfra runs keep Python's byte-code cache, as a user's do: with PYTHONDONTWRITEBYTECODE
set (this project's sessions set it) every run compiled the ~50 project modules the deploy
imports from source, 0.05-0.1 s that only the no-op run paid. --no-pyc keeps the variable.
No thresholds are asserted: these are figures.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lab import api, container, drive
from lab.paths import PREFIX

SSH_HOSTS = ("control", "a-gw", "b-gw", "a-router", "b-router")  # hosts pyinfra reaches over SSH


def netem(delay_ms: float | None) -> bool:
    """Add (or, with None, remove) a delay on loopback inside the lab's own namespaces only: the lab's
    ProxyCommand reaches each host's sshd on 127.0.0.1 inside that host's namespace. False: no netem."""
    for name in SSH_HOSTS:
        ns = f"{PREFIX}-{name}"
        if delay_ms is None:
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root"],
                           capture_output=True)
        elif subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "lo", "root", "netem",
                             "delay", f"{delay_ms}ms"], capture_output=True).returncode != 0:
            return False
    return True


def delayed_site_file(sites: Path, delay_ms: float, tmp: Path) -> Path:
    """A copy of the lab's site file whose ssh_config reaches sshd through bench/delay_proxy.py
    (run inside the same lab namespace the lab's own socat ProxyCommand runs in)."""
    text = sites.read_text()
    config = Path(re.search(r'config_file = "([^"]+)"', text)[1])
    proxy = f"{sys.executable} {Path(__file__).with_name('delay_proxy.py')} {delay_ms:g} 127.0.0.1 22"
    ssh = re.sub(r"socat STDIO TCP:127\.0\.0\.1:22,nodelay", proxy, config.read_text())
    assert proxy in ssh, "the lab's ProxyCommand changed: cannot add the delay"
    (tmp / "ssh_config").write_text(ssh)
    (tmp / "sites.toml").write_text(text.replace(str(config), str(tmp / "ssh_config")))
    return tmp / "sites.toml"


def loopback_rtt(name: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", f"{PREFIX}-{name}", "ping", "-n", "-c", "3", "127.0.0.1"],
                         capture_output=True, text=True).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return f"{m[1]} ms" if m else "?"


def timed(sites: Path, *args: str, deploy: str = "deploy.py") -> tuple[float, str]:
    start = time.monotonic()
    result = drive.pyinfra(sites, *args, deploy=deploy)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"pyinfra {deploy} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stderr


def medians_alternating(runs: int, sites: Path) -> tuple[float, float]:
    """Medians of RUNS no-op deploys and RUNS empty deploys, run in turn."""
    noop, empty = [], []
    for _ in range(runs):
        noop.append(timed(sites)[0])
        empty.append(timed(sites, deploy="bench/empty_deploy.py")[0])
    return statistics.median(noop), statistics.median(empty)


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _cpu_by_namespace(namespaces: dict[str, str]) -> dict[str, float]:
    """CPU seconds (own + reaped children) of every process in each lab host's PID namespace."""
    ticks = dict.fromkeys(namespaces, 0)
    by_ns = {ns: name for name, ns in namespaces.items()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = by_ns.get(_pid_namespace(int(pid)))
        if name is not None:
            ticks[name] += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return {name: t / os.sysconf("SC_CLK_TCK") for name, t in ticks.items()}


def cpu_per_host(runs: int, sites: Path) -> dict[str, float]:
    """Median extra CPU seconds a no-op run costs each lab host and the deploy (pyinfra and its
    ssh children) over an empty run, the two alternating."""
    namespaces = {}
    for name in SSH_HOSTS:
        leader = container.leader_pid(name)
        if leader is not None and _pid_namespace(leader) is not None:
            namespaces[name] = _pid_namespace(leader)

    def one(deploy: str) -> dict[str, float]:
        before, mine = _cpu_by_namespace(namespaces), resource.getrusage(resource.RUSAGE_CHILDREN)
        timed(sites, deploy=deploy)
        after, mine_after = _cpu_by_namespace(namespaces), resource.getrusage(resource.RUSAGE_CHILDREN)
        used = {name: after[name] - before[name] for name in namespaces}
        used["deploy (pyinfra)"] = (mine_after.ru_utime + mine_after.ru_stime) - (mine.ru_utime + mine.ru_stime)
        return used

    extra: dict[str, list[float]] = {}
    for _ in range(runs):
        noop, empty = one("deploy.py"), one("bench/empty_deploy.py")
        for name in noop:
            extra.setdefault(name, []).append(noop[name] - empty[name])
    return {name: statistics.median(values) for name, values in extra.items()}


def commands_per_host(debug_log: str) -> Counter:
    return Counter(re.findall(r"Running command on (\S+?):", debug_log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--latency-ms", type=float, default=0, help="added RTT on the lab's SSH path")
    parser.add_argument("--reuse-lab", action="store_true", help="keep a running lab (no first-deploy figure)")
    parser.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if set")
    args = parser.parse_args()
    if not args.no_pyc:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    if args.reuse_lab and api.is_running():
        sites = api.ensure_up().sites_file
        first = None
        timed(sites)  # converge first
    else:
        api.down()
        sites = api.ensure_up().sites_file
        first, _ = timed(sites)
    how = ""
    with tempfile.TemporaryDirectory(prefix="s2s-bench-") as tmp:
        run_sites = sites
        if args.latency_ms:
            if netem(args.latency_ms / 2):
                how = f"tc netem on lo in each lab host's namespace (loopback RTT there: {loopback_rtt('a-router')})"
            else:
                run_sites = delayed_site_file(sites, args.latency_ms / 2, Path(tmp))
                how = "no sch_netem in this kernel: bench/delay_proxy.py as the ProxyCommand in the lab namespaces"
        try:
            noop, empty = medians_alternating(args.runs, run_sites)
            cpu = cpu_per_host(args.runs, run_sites)
            _, debug_log = timed(run_sites, "--debug")
            per_host = commands_per_host(debug_log)
            changes = drive.planned_changes(run_sites)
        finally:
            if args.latency_ms:
                netem(None)
    if args.latency_ms:
        print(f"added latency on the SSH path: {args.latency_ms:g} ms RTT, {args.latency_ms / 2:g} ms each way ({how})")

    drive.lab("renew", "a-client", "b-client")
    b_addr = drive.client_address("b-client")
    drive.ping("a-client", b_addr, count=3)  # warm the WireGuard handshake
    ping = drive.ping("a-client", b_addr, count=20, deadline=40)
    rtt = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)", ping.stdout)
    size = 200 * 1024 * 1024
    transfers = [drive.tcp_transfer("a-client", "b-client", size, port=5201 + i) for i in range(3)]
    mbit = statistics.median(t["bytes"] * 8 / t["seconds"] / 1e6 for t in transfers)

    if first is not None:
        print(f"first deploy (fresh lab, 2 routers + 2 Kea hosts):  {first:6.2f} s")
    print(f"no-op re-deploy (median of {args.runs}):                {noop:6.2f} s  "
          f"(changes planned afterwards: {len(changes)})")
    print(f"empty pyinfra deploy, same hosts (median of {args.runs}):  {empty:6.2f} s")
    print("machine load average after the runs (1/5/15 min): " + " / ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"no-op / empty ratio:                               {noop / empty:6.2f}x  (target < 1.2x)")
    print("extra CPU of a no-op run over an empty one (s):    "
          + ", ".join(f"{h} {c:.2f}" for h, c in cpu.items()) + f"; total {sum(cpu.values()):.2f} on "
          f"{os.cpu_count()} cores shared by the deploy and the lab")
    print("commands run per host on a no-op run:             "
          + ", ".join(f"{h} {n}" for h, n in sorted(per_host.items())))
    if rtt:
        print(f"ping a-client -> b-client (20 pings):              min {rtt[1]} / avg {rtt[2]} / max {rtt[3]} ms")
    print(f"TCP a-client -> b-client, 200 MB x3 (median):      {mbit:8.0f} Mbit/s "
          f"(peer seen by b-client: {transfers[0]['peer']})")


if __name__ == "__main__":
    main()
