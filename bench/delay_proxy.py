"""An SSH ProxyCommand that adds a fixed one-way delay in each direction (a WAN's latency).

    ip netns exec NS python3 bench/delay_proxy.py DELAY_MS HOST PORT

Used by deploy_bench.py --latency-ms inside the lab's own namespaces when the kernel
has no sch_netem (tc netem): stdin/stdout <-> TCP HOST:PORT, every chunk held for
DELAY_MS before it is passed on, order kept. Latency only, no bandwidth limit.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable


def pump(read: Callable[[], bytes], write: Callable[[bytes], object], delay: float) -> None:
    """Copy chunks from read() to write(), each DELAY seconds after it arrived; b"" ends."""
    q: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def reader() -> None:
        while True:
            data = read()
            q.put((time.monotonic() + delay, data))
            if not data:
                return

    threading.Thread(target=reader, daemon=True).start()
    while True:
        due, data = q.get()
        time.sleep(max(0.0, due - time.monotonic()))
        if not data:
            write(b"")
            return
        write(data)


def main() -> None:
    delay_ms, host, port = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def to_stdout(data: bytes) -> None:
        if data:
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
        else:
            os.close(1)

    def to_sock(data: bytes) -> None:
        if data:
            sock.sendall(data)
        else:
            sock.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=pump, args=(lambda: sock.recv(65536), to_stdout, delay_ms / 1000), daemon=True)
    back.start()
    pump(lambda: os.read(0, 65536), to_sock, delay_ms / 1000)
    back.join()


if __name__ == "__main__":
    main()
