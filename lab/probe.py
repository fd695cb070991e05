"""Readiness probes that run INSIDE a lab namespace (never from the host's network stack).

Each probe is one short python3 process started with `ip netns exec`, polling
until the service answers or the deadline passes.
"""

from __future__ import annotations

import subprocess
import sys

from lab.sh import ns

_SCRIPT = r"""
import socket, sys, time, urllib.request
mode, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
path = sys.argv[5] if len(sys.argv) > 5 else "/"
deadline = time.monotonic() + timeout
while True:
    try:
        if mode == "tcp":
            with socket.create_connection((host, port), timeout=1) as s:
                if port == 22:
                    s.settimeout(2)
                    if not s.recv(8).startswith(b"SSH-"):
                        raise OSError("no ssh banner")
        else:
            urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2).read()
        sys.exit(0)
    except Exception as e:
        if time.monotonic() > deadline:
            print(f"{mode} {host}:{port}: {e}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)
"""


def wait_tcp(netns: str, host: str, port: int, timeout: float = 60.0) -> bool:
    """True once host:port accepts a TCP connection (an SSH banner for port 22)."""
    return _probe(netns, "tcp", host, port, timeout)


def wait_http(netns: str, host: str, port: int, path: str = "/", timeout: float = 60.0) -> bool:
    """True once an HTTP GET of path answers 2xx/3xx."""
    return _probe(netns, "http", host, port, timeout, path)


def _probe(netns: str, mode: str, host: str, port: int, timeout: float, path: str = "/") -> bool:
    proc = subprocess.run(ns(netns, sys.executable, "-c", _SCRIPT, mode, host, str(port), str(timeout), path),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc.returncode == 0
