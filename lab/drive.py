"""Drive the deploy and the lab's hosts from tests and benchmarks.

Everything runs inside the lab's namespaces (`python -m lab exec`) or through the
lab's SSH config, never from the machine's own network namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the `pyinfra` script: `python -m pyinfra` imports paramiko before gevent patches it
# and then never connects through the lab's ProxyCommand
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def pyinfra(sites: Path, *args: str, deploy: str = "deploy.py", timeout: float = 600) -> subprocess.CompletedProcess:
    """`pyinfra [-y] inventory.py DEPLOY ARGS` from the repo root against the site file `sites`.

    -y (no prompt) only for real runs: with --dry it would also skip the planning pass that
    prints the diffs.
    """
    env = dict(os.environ, SITES=str(sites))
    yes = [] if "--dry" in args else ["-y"]
    return subprocess.run([PYINFRA, *yes, "inventory.py", deploy, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def why_failed(result: subprocess.CompletedProcess, tail: int = 3000) -> str:
    """What a failed pyinfra run said: every line naming an error (with the lines just before
    it: the failing command's own output), then the run's end. Why: a run's end holds only the
    summary, and the cause of a failed host is printed where its operation ran."""
    lines = (result.stdout + result.stderr).splitlines()
    picked: set[int] = set()  # line numbers, so error lines close together show their context once
    for i, line in enumerate(lines):
        if "error" in line.lower() and "Error   No Change" not in line:
            picked.update(range(max(0, i - 8), i + 1))
    return "\n".join(lines[i] for i in sorted(picked)[-120:]) + "\n...\n" + "\n".join(lines)[-tail:]


def planned_changes(sites: Path, *args: str) -> dict[str, list[str]]:
    """Operation name -> hosts it would change, from `pyinfra --dry --json` (empty: a no-op run)."""
    result = pyinfra(sites, "--dry", "--json", *args)
    if result.returncode != 0:
        raise RuntimeError(f"pyinfra --dry --json failed: {result.stderr[-2000:]}")
    plan = json.loads(result.stdout)["plan"]
    return {op["name"]: sorted(op["hosts_with_change"] + op["hosts_with_conditional_change"])
            for op in plan if op["hosts_with_change"] or op["hosts_with_conditional_change"]}


def in_host(host: str, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command inside a lab host (container or client namespace)."""
    result = subprocess.run([sys.executable, "-m", "lab", "exec", host, *cmd], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{host}: {' '.join(cmd)} failed: {result.stdout[-500:]}{result.stderr[-500:]}")
    return result


def lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m lab ARGS`, failing loudly."""
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=True)


def client_address(host: str) -> str:
    out = in_host(host, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    return out.split()[3].split("/")[0]


def ping(src: str, dst: str, count: int = 3, deadline: int = 30) -> subprocess.CompletedProcess:
    """Ping until `count` replies or `deadline` seconds (the first packets may race a WireGuard handshake)."""
    return in_host(src, "ping", "-n", "-c", str(count), "-w", str(deadline), dst, check=False, timeout=deadline + 10)


def tcp_transfer(src: str, dst: str, nbytes: int, port: int = 5201) -> dict:
    """Send nbytes from client `src` to client `dst`; the sink reports the peer address it saw."""
    probe = str(REPO / "tests/e2e/tcp_probe.py")
    result_file = Path(f"/tmp/s2s-tcp-{os.getpid()}-{port}.json")
    result_file.unlink(missing_ok=True)
    sink = subprocess.Popen([sys.executable, "-m", "lab", "exec", dst, sys.executable, probe, "sink", str(port),
                             str(result_file)], cwd=REPO)
    try:
        time.sleep(0.5)
        sent = json.loads(in_host(src, sys.executable, probe, "send", client_address(dst), str(port),
                                  str(nbytes), timeout=180).stdout)
        sink.wait(timeout=30)
        seen = json.loads(result_file.read_text())
    finally:
        if sink.poll() is None:
            sink.kill()
        result_file.unlink(missing_ok=True)
    return {**sent, "peer": seen["peer"], "received": seen["bytes"]}


def tcp_mesh(clients: list[str], nbytes: int = 4096, port: int = 5202) -> dict[str, dict[str, int]]:
    """Every client sends nbytes to every other at once; destination -> {source address seen: bytes}.

    One sink per destination takes all the others' connections, so the whole mesh
    costs about one connection's time plus the process starts.
    """
    probe = str(REPO / "tests/e2e/tcp_probe.py")
    addr = {c: client_address(c) for c in clients}
    files = {c: Path(f"/tmp/s2s-mesh-{os.getpid()}-{c}.json") for c in clients}
    sinks = []
    try:
        for c in clients:
            files[c].unlink(missing_ok=True)
            sinks.append(subprocess.Popen([sys.executable, "-m", "lab", "exec", c, sys.executable, probe, "sink",
                                           str(port), str(files[c]), str(len(clients) - 1)], cwd=REPO))
        time.sleep(1.0)
        senders = {(src, dst): subprocess.Popen(
            [sys.executable, "-m", "lab", "exec", src, sys.executable, probe, "send", addr[dst], str(port),
             str(nbytes)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for src in clients for dst in clients if src != dst}
        failed = {}
        for pair, s in senders.items():
            _, err = s.communicate(timeout=120)
            if s.returncode != 0:
                failed[f"{pair[0]}->{pair[1]}"] = (err or "").strip().splitlines()[-1:]
        if failed:
            raise RuntimeError(f"TCP mesh: these sends failed: {failed}")
        for s in sinks:
            s.wait(timeout=30)
        return {c: json.loads(files[c].read_text())["peers"] for c in clients}
    finally:
        for s in sinks:
            if s.poll() is None:
                s.kill()
        for f in files.values():
            f.unlink(missing_ok=True)
