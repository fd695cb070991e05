"""A tiny TCP sink and source for the end-to-end tests, run inside lab client namespaces.

    python tcp_probe.py sink PORT RESULT_FILE [COUNT]  # accept COUNT connections (1), count bytes, record peers
    python tcp_probe.py send HOST PORT BYTES            # send BYTES, print JSON {bytes, seconds}

The sink writes {"peer": ADDRESS, "bytes": N, "peers": {ADDRESS: N, ...}} so a test
can tell whether the subnet routers rewrote the source address (SNAT) and whether
every byte came.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def sink(port: int, result_file: str, count: int = 1) -> None:
    peers: dict[str, int] = {}
    first = ""
    with socket.create_server(("0.0.0.0", port), backlog=count) as server:
        server.settimeout(120)
        for _ in range(count):
            conn, (peer, _) = server.accept()
            first = first or peer
            total = 0
            with conn:
                conn.settimeout(120)
                while chunk := conn.recv(1 << 16):
                    total += len(chunk)
                conn.sendall(json.dumps({"bytes": total}).encode())
            peers[peer] = peers.get(peer, 0) + total
    with open(result_file, "w") as f:
        json.dump({"peer": first, "bytes": peers[first], "peers": peers}, f)


def _connect(host: str, port: int, wait: float = 30) -> socket.socket:
    """Connect, retrying while the sink is still starting (a refused connection, not a timeout)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_connection((host, port), timeout=60)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def send(host: str, port: int, count: int) -> None:
    block = b"\x5a" * (1 << 16)
    start = time.monotonic()
    with _connect(host, port) as conn:
        left = count
        while left:
            n = min(left, len(block))
            conn.sendall(block[:n])
            left -= n
        conn.shutdown(socket.SHUT_WR)
        reply = conn.recv(1024)
    seconds = time.monotonic() - start
    print(json.dumps({"bytes": count, "seconds": seconds, "acked": json.loads(reply or b"{}").get("bytes")}))


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
