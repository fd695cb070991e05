"""Reach a service on a remote host's loopback through SSH (a local port forward).

Kea's Control Agent (Debian's default) and the lab's Headscale listen only on
their host's loopback. Rather than asking users to open them up, the deploy
forwards a local 127.0.0.1 port through an SSH transport: the one pyinfra
already holds for that host, or, outside a deploy (`python -m dhcp push`,
`python -m controlplane ...`), a new one made by pyinfra's own SSH client, so
both paths read ssh_config (HostName, Port, User, IdentityFile, ProxyCommand,
ProxyJump), known_hosts and StrictHostKeyChecking the same way.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko
from pyinfra.connectors.sshuserclient.client import SSHClient, get_ssh_config

from sites.model import SshTarget

# StrictHostKeyChecking when the ssh config does not set it: OpenSSH's default ("ask") cannot
# ask without a terminal and then refuses, and so do we. (pyinfra's own default is accept-new;
# a deploy connects through pyinfra, so its hosts follow pyinfra's setting.)
UNSET_STRICT_HOST_KEY_CHECKING = "yes"


def _no_refused_channel_lines(record: logging.LogRecord) -> bool:
    """Drop paramiko's "Secsh channel N open FAILED" log lines: a refused forward is reported once,
    by the caller's own one-line error naming the service as the site file does."""
    return not str(record.msg).startswith("Secsh channel")


logging.getLogger("paramiko.transport").addFilter(_no_refused_channel_lines)

# Outside pyinfra's CLI nothing handles paramiko's log records, and Python's last-resort handler
# printed its transport thread's "Exception (client): Error reading SSH protocol banner" with a
# traceback (`python -m check` with a router powered off) beside the caller's own one line. A
# handler of our own ends that; records still reach any handler the application set up.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_proxy_close = paramiko.ProxyCommand.close


def _close_proxy_once_gone(self: paramiko.ProxyCommand) -> None:
    """paramiko's ProxyCommand.close signals its command without asking whether it still runs.
    When the host went away mid-run (a router powered off), the command has exited and been
    reaped, and the ProcessLookupError surfaced as a traceback at exit (paramiko's atexit join),
    after the run's one-line error for that host. Gone is what close wants."""
    try:
        _proxy_close(self)
    except ProcessLookupError:
        pass


paramiko.ProxyCommand.close = _close_proxy_once_gone  # type: ignore[method-assign]


class TunnelError(Exception):
    """The SSH host could not be reached, was not trusted, or refused the forward (one line)."""


def _quiet_pyinfra_logger() -> None:
    """pyinfra's host-key policies log before raising; outside pyinfra's CLI (no handler) Python's
    last-resort handler would print that as a second line next to our one-line error."""
    log = logging.getLogger("pyinfra")
    if not log.handlers:
        log.addHandler(logging.NullHandler())


def open_transport(target: str, ssh_config_file: Path | None = None, key_file: Path | None = None,
                   timeout: float = 20.0, user: str | None = None) -> paramiko.SSHClient:
    """Connect like pyinfra's SSH connector does: `[user@]host[:port]` (sites.SshTarget), the rest
    from the ssh config (~/.ssh/config when none is given); `user` when the target names none.

    An unknown host key is refused unless the config's StrictHostKeyChecking says otherwise;
    a changed one always is.
    """
    parsed = SshTarget.parse(target)
    config = get_ssh_config(str(ssh_config_file) if ssh_config_file else None)
    host_config = config.lookup(parsed.host) if config else {}
    strict = host_config.get("stricthostkeychecking", UNSET_STRICT_HOST_KEY_CHECKING)
    kwargs: dict = {"timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout}
    if parsed.port is not None:
        kwargs["port"] = parsed.port
    if parsed.user or user:
        kwargs["username"] = parsed.user or user
    if key_file:  # as pyinfra's ssh_key: this key only (a loaded pkey also keeps the config's IdentityFile out)
        try:
            kwargs["pkey"] = paramiko.PKey.from_path(str(key_file))
        except (OSError, paramiko.SSHException) as exc:
            raise TunnelError(f"ssh {target}: key_file {key_file}: {' '.join(str(exc).split())}") from None
        kwargs.update(allow_agent=False, look_for_keys=False)
    _quiet_pyinfra_logger()
    client = SSHClient()
    try:
        client.connect(parsed.host, _pyinfra_ssh_config_file=str(ssh_config_file) if ssh_config_file else None,
                       _pyinfra_ssh_strict_host_key_checking=strict, **kwargs)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise TunnelError(
            f"ssh {target}: host key for {exc.hostname} does not match known_hosts (it changed: "
            f"possible man-in-the-middle); not connecting. If expected: ssh-keygen -R {exc.hostname}"
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "StrictPolicy" in reason:
            reason = (f"no host key for {parsed.host} in known_hosts (StrictHostKeyChecking {strict}); "
                      "not connecting")
        raise TunnelError(f"ssh {target}: {reason}") from None
    keepalive(client.get_transport())
    return client


def relay(local: socket.socket, remote: socket.socket | paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes, then close both. Why one function: the
    SSH forward here and the tests' namespace forward relay the same way (both sides select())."""
    try:
        while True:
            readable, _, _ = select.select([local, remote], [], [], 60)
            for source, sink in ((local, remote), (remote, local)):
                if source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
    except OSError:
        return
    finally:
        remote.close()
        local.close()



def no_delay(sock: object) -> bool:
    """Turn off Nagle's algorithm on a TCP socket; True if it applied.

    An SSH exec's small packets otherwise wait for delayed ACKs (docs/noop.md has the
    figures). A ProxyCommand connection has no TCP socket of ours to tune."""
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True


# A dead peer (power lost, cable cut, a NAT that forgot the flow) sends nothing back: without these
# a command waiting on it waits for TCP's own give-up (about 15 minutes of retransmissions, or
# forever on an idle connection). SSH keepalives every SSH_KEEPALIVE s keep data in flight, and the
# kernel ends a connection whose data stays unacknowledged for TCP_USER_TIMEOUT_S (or whose idle
# keepalive probes, from TCP_KEEPIDLE_S on every TCP_KEEPINTVL_S, go unanswered): a dead peer is
# seen within DEAD_PEER_BOUND_S. docs/faults.md states the bound.
SSH_KEEPALIVE = 10
TCP_KEEPIDLE_S, TCP_KEEPINTVL_S, TCP_KEEPCNT = 10, 5, 3
TCP_USER_TIMEOUT_S = 30
DEAD_PEER_BOUND_S = SSH_KEEPALIVE + TCP_USER_TIMEOUT_S


def keepalive(transport: paramiko.Transport | None) -> bool:
    """SSH keepalives on `transport`, and TCP keepalive plus TCP_USER_TIMEOUT on its socket when
    it is a TCP socket of ours (True then). Through a ProxyCommand the proxy's own connection
    decides how soon a dead peer is seen: the SSH keepalives still go out through it."""
    if transport is None:
        return False
    transport.set_keepalive(SSH_KEEPALIVE)
    sock = transport.sock
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, TCP_KEEPIDLE_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, TCP_KEEPINTVL_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, TCP_KEEPCNT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_S * 1000)
    return True


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
            no_delay(local)
            try:
                channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), peer)
            except (paramiko.SSHException, OSError):
                local.close()  # the client sees a closed connection: its own error names the URL
                continue
            threading.Thread(target=relay, args=(local, channel), daemon=True).start()

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


_SHARED: dict[tuple[str, Path | None, Path | None, str | None], paramiko.SSHClient] = {}


def shared_transport(target: str, ssh_config_file: Path | None = None,
                     key_file: Path | None = None, user: str | None = None) -> paramiko.Transport:
    """One SSH connection per target for the life of the process (a deploy plans and applies
    several steps through the same host; reconnecting each time is most of a no-op run's cost)."""
    key = (target, ssh_config_file, key_file, user)
    client = _SHARED.get(key)
    if client is None or not _answers(client.get_transport()):
        if client is not None:
            client.close()
        client = _SHARED[key] = open_transport(target, ssh_config_file, key_file, user=user)
    return client.get_transport()


def _answers(transport: paramiko.Transport | None, timeout: float = 5.0) -> bool:
    """True if a kept connection still reaches its host: one channel round trip.

    Why: a connection through a ProxyCommand stays "active" after the host behind it is
    gone (the proxy keeps its socket), and a long-lived process (a test session, a lab
    rebuilt under it) would then forward into nothing.
    """
    if transport is None or not transport.is_active():
        return False
    try:
        transport.open_session(timeout=timeout).close()
    except (paramiko.SSHException, OSError, EOFError):
        return False
    return True


def close_shared() -> None:
    """Close the process's shared connections: for a process that outlives the hosts it reached
    (a test session booting one lab after another), where a connection into a lab that is gone
    can still look active and would be reused."""
    while _SHARED:
        _, client = _SHARED.popitem()
        client.close()


@contextmanager
def forwarded_url(url: str, ssh_target: str | None, ssh_config_file: Path | None = None,
                  key_file: Path | None = None, transport: paramiko.Transport | None = None,
                  user: str | None = None) -> Iterator[str]:
    """The URL itself when no SSH hop is configured, else the same URL on a forwarded local port
    (through `transport`, or the process's shared connection to `ssh_target`)."""
    if not ssh_target:
        yield url
        return
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if transport is None:
        transport = shared_transport(ssh_target, ssh_config_file, key_file, user)
    with forward(transport, parts.hostname or "127.0.0.1", port) as local_port:
        yield urlunsplit(parts._replace(netloc=f"127.0.0.1:{local_port}"))
