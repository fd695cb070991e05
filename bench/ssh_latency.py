"""Per-command latency of an SSH exec with paramiko, with and without TCP_NODELAY.

Run inside a lab namespace against that host's own sshd (a direct TCP connection,
as pyinfra has to a real router):
    ip netns exec s2s-lab-a-router python3 bench/ssh_latency.py [.lab/id_ed25519]
"""

from __future__ import annotations

import socket
import sys
import time

import paramiko


def per_command_ms(client: paramiko.SSHClient, runs: int = 20) -> float:
    start = time.monotonic()
    for _ in range(runs):
        _, out, _ = client.exec_command("true")
        out.channel.recv_exit_status()
    return (time.monotonic() - start) / runs * 1000


def main() -> None:
    key = sys.argv[1] if len(sys.argv) > 1 else ".lab/id_ed25519"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # loopback sshd of a lab host
    client.connect("127.0.0.1", username="root", key_filename=key, look_for_keys=False, allow_agent=False)
    print(f"paramiko default:  {per_command_ms(client):6.1f} ms per command")
    client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"with TCP_NODELAY:  {per_command_ms(client):6.1f} ms per command")
    client.close()


if __name__ == "__main__":
    main()
