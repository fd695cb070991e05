"""Reach a service on a remote host's loopback through SSH (a local port forward).

Kea's Control Agent (Debian's default) and the lab's Headscale listen only on
their host's loopback. Rather than asking users to open them up, the deploy
forwards a local 127.0.0.1 port through an SSH transport: the one pyinfra
already holds for that host, or a new one built from the same ssh config.
"""

from __future__ import annotations

import select
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import paramiko


class TunnelError(Exception):
    """The SSH host could not be reached or refused the forward (one line)."""


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, but closing twice (transport, then client) is not an error."""

    def close(self) -> None:
        try:
            super().close()
        except ProcessLookupError:
            pass


def open_transport(target: str, ssh_config_file: Path | None = None, key_file: Path | None = None,
                   timeout: float = 20.0) -> paramiko.SSHClient:
    """Connect like OpenSSH would: user@host[:port], with HostName/User/Port/IdentityFile/ProxyCommand from the config."""
    user, _, host = target.rpartition("@")
    settings: dict = {}
    if ssh_config_file and ssh_config_file.exists():
        settings = paramiko.SSHConfig.from_path(str(ssh_config_file)).lookup(host)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 (lab/known-hosts policy is the config's)
    keys = [str(key_file)] if key_file else settings.get("identityfile")
    sock = _ProxyCommand(settings["proxycommand"]) if settings.get("proxycommand") else None
    try:
        client.connect(
            settings.get("hostname", host),
            port=int(settings.get("port", 22)),
            username=user or settings.get("user") or "root",
            key_filename=keys,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except (OSError, paramiko.SSHException) as exc:
        raise TunnelError(f"ssh {target}: {exc}") from None
    return client


def _pump(local: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes."""
    try:
        while True:
            readable, _, _ = select.select([local, channel], [], [], 60)
            if not readable:
                continue
            for source, sink in ((local, channel), (channel, local)):
                if source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
    except OSError:
        return
    finally:
        channel.close()
        local.close()


@contextmanager
def forward(transport: paramiko.Transport, remote_host: str, remote_port: int) -> Iterator[int]:
    """Yield a local 127.0.0.1 port whose connections reach remote_host:remote_port as seen from the SSH host."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def accept_loop() -> None:
        # blocking accept, no polling timeout: each connection is served at once (also under
        # pyinfra's gevent); shutting the listener down below ends the loop
        while True:
            try:
                local, peer = listener.accept()
            except OSError:
                return
            local.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), peer)
            except (paramiko.SSHException, OSError):
                local.close()  # the client sees a closed connection: its own error names the URL
                continue
            threading.Thread(target=_pump, args=(local, channel), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        listener.close()
        thread.join(timeout=2)


_SHARED: dict[tuple[str, Path | None, Path | None], paramiko.SSHClient] = {}


def shared_transport(target: str, ssh_config_file: Path | None = None,
                     key_file: Path | None = None) -> paramiko.Transport:
    """One SSH connection per target for the life of the process (a deploy plans and applies
    several steps through the same host; reconnecting each time is most of a no-op run's cost)."""
    key = (target, ssh_config_file, key_file)
    client = _SHARED.get(key)
    if client is None or not client.get_transport() or not client.get_transport().is_active():
        client = _SHARED[key] = open_transport(target, ssh_config_file, key_file)
    return client.get_transport()


@contextmanager
def forwarded_url(url: str, ssh_target: str | None, ssh_config_file: Path | None = None,
                  key_file: Path | None = None, transport: paramiko.Transport | None = None) -> Iterator[str]:
    """The URL itself when no SSH hop is configured, else the same URL on a forwarded local port
    (through `transport`, or the process's shared connection to `ssh_target`)."""
    if not ssh_target:
        yield url
        return
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if transport is None:
        transport = shared_transport(ssh_target, ssh_config_file, key_file)
    with forward(transport, parts.hostname or "127.0.0.1", port) as local_port:
        yield urlunsplit(parts._replace(netloc=f"127.0.0.1:{local_port}"))
