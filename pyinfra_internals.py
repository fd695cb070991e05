"""Every use of pyinfra's internals, behind one door.

The deploy leans on a few parts of pyinfra that are not its documented API: the
per-run state object, each operation's meta (did it run a command?), the paramiko
socket under the SSH connector, the byte-code switch its CLI flips, the function that orders
operation calls by the deploy file's line numbers and the one listing its global arguments,
and the two places
where a run learns that a host's SSH connection was lost (to say so in our words). They are
read here and nowhere else, so a pyinfra upgrade is checked in one place:
tests/unit/test_pyinfra_internals.py fails when the shapes used below change.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import paramiko
import pyinfra
import pyinfra.api.arguments as pyinfra_arguments
import pyinfra.api.operations as pyinfra_operations
from pyinfra import logger, state
from pyinfra.api.host import Host
from pyinfra.api.state import State
from pyinfra.connectors.ssh import SSHConnector

from tunnel import keepalive, no_delay

CHECKED_AGAINST = "3.10.0"  # the pyinfra version these shapes were read from (requirements.txt)
_pyinfra_global_arguments = pyinfra_arguments.all_global_arguments  # before cheaper_operation_calls replaces it


def current_run() -> State:
    """The State of the pyinfra run deploy.py is loaded into (pyinfra's context proxy, unwrapped)."""
    return state._get_module()


def run_id() -> int:
    """A key for the current pyinfra run: caches of one run must not leak into the next
    (the tests run several deploys in one process)."""
    return id(state._get_module())


def _ops(run: State | None = None) -> dict[Host, dict[str, Any]]:
    return getattr(run or state._get_module(), "ops", {})


def commands_run(on: Host | None = None) -> int:
    """Operations of this run that have run commands so far, on `on` or on every host.

    A fact read before any of them is still true; after one, any fact may have changed."""
    ops = _ops()
    hosts = [on] if on is not None else list(ops)
    return sum(1 for h in hosts for op in ops.get(h, {}).values() if op.operation_meta.executed)


def current_host() -> Host:
    """The host whose operations are being planned (pyinfra's context host, unwrapped)."""
    from pyinfra import host

    return host._get_module()


def ssh_transport(host: Host) -> Any | None:
    """The paramiko transport of pyinfra's own connection to a host (None for non-SSH connectors)."""
    client = getattr(host.connector, "client", None)
    return client.get_transport() if client is not None else None


def ssh_no_delay(host: Host) -> bool:
    """TCP_NODELAY on pyinfra's SSH socket to this host (paramiko leaves Nagle on)."""
    return no_delay(getattr(ssh_transport(host), "sock", None))


def ssh_keepalive(host: Host) -> bool:
    """Keepalives on pyinfra's SSH connection to this host (pyinfra sets none unless the ssh
    config has ServerAliveInterval): a dead peer ends the command within a bound
    (tunnel.keepalive, docs/faults.md)."""
    return keepalive(ssh_transport(host))


LOST = (OSError, EOFError, paramiko.SSHException)  # a connection gone (TimeoutError: pyinfra's own line)


def name_lost_connections(line: Callable[[Host, BaseException | None], str]) -> None:
    """A host's SSH connection lost mid-run is one line naming the host as the site file does.

    pyinfra logs a lost connection as `Command socket/SSH error: ProxyCommandFailure('<the whole
    proxy command>', 'Broken pipe')` (naming the ProxyCommand, not the host), and a connection
    that closes while a command runs (sshd killed, the host rebooting) not at all: the command
    just fails with no exit status. Both now log `line(host, exception or None)` instead."""
    if getattr(pyinfra_operations.log_host_command_error, "s2s", False):
        return
    pyinfra_log = pyinfra_operations.log_host_command_error
    pyinfra_run = SSHConnector.run_shell_command

    def log_lost(host: Host, exc: BaseException | None) -> None:
        host.log_styled(line(host, exc), fg="red", log_func=logger.error)

    def log_host_command_error(host: Host, e: Exception, timeout: int | None = 0) -> None:
        if isinstance(e, LOST) and not isinstance(e, TimeoutError):
            log_lost(host, e)
        else:
            pyinfra_log(host, e, timeout=timeout)

    def run_shell_command(self: SSHConnector, *args: Any, **kwargs: Any) -> Any:
        ok, output = pyinfra_run(self, *args, **kwargs)
        transport = self.client.get_transport() if self.client is not None else None
        if not ok and (transport is None or not transport.is_active()):
            log_lost(self.host, None)
        return ok, output

    log_host_command_error.s2s = True  # type: ignore[attr-defined]
    pyinfra_operations.log_host_command_error = log_host_command_error
    SSHConnector.run_shell_command = run_shell_command  # type: ignore[method-assign]


def keep_bytecode() -> None:
    """Undo pyinfra's CLI turning Python's byte-code cache off for the whole process, so a run
    does not compile this project's modules from source every time (unless the user asked,
    with PYTHONDONTWRITEBYTECODE)."""
    import os

    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


def let_others_run() -> None:
    """Yield to the other hosts' greenlets while deploy.py loads (pyinfra loads it for every host
    at once), so a router's batched read goes out first."""
    gevent.sleep(0)


@dataclass(frozen=True)
class OpRecord:
    """What pyinfra knows of one operation on one host after (or during) a run."""

    names: tuple[str, ...]
    complete: bool
    succeeded: bool
    executed: bool  # it ran at least one command
    commands: int
    ignore_errors: bool


def op_records(run: State, host: Host) -> Iterator[OpRecord]:
    """The host's operations in run order, as the end-of-run summary needs them."""
    for op_hash in run.get_op_order():
        data = run.ops.get(host, {}).get(op_hash)
        if data is None:
            continue
        meta = data.operation_meta
        yield OpRecord(
            names=tuple(run.get_op_meta(op_hash).names),
            complete=meta.is_complete(),
            succeeded=meta.is_complete() and meta.did_succeed(),
            executed=bool(meta.executed),
            commands=len(meta._commands or []),
            ignore_errors=bool(data.global_arguments.get("_ignore_errors")),
        )


def operation_order(run: State) -> list[int]:
    """pyinfra's `get_operation_order_from_stack`, the same line numbers without `inspect.stack()`.

    pyinfra orders each operation call by the line numbers of the deploy file's frames on the call
    stack. It reads them through `inspect.stack()`, which resolves every frame's source file and
    reads its source line: 2-3 ms per operation call, for every call on every host (a 50-site
    no-op: 1,107 calls on 100 hosts). The frames' own code file and line number are the same
    figures (`getframeinfo` takes the file from `co_filename` and the line from `f_lineno`)."""
    from pyinfra.api.util import PYINFRA_INSTALL_DIR

    frames = []
    frame = sys._getframe(0)  # from this frame out, as stack() in pyinfra's function starts at its own
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    start = 0
    if run.current_deploy_filename:  # the first frame of the deploy file; none: the last frame, as pyinfra's loop
        start = next((k for k, f in enumerate(frames) if f.f_code.co_filename == run.current_deploy_filename),
                     len(frames) - 1)
    numbers = [run.current_op_file_number] if pyinfra.is_cli else []
    own = operation_order.__code__  # skipped like pyinfra's own frame (the only one left when no frame is the file)
    for f in frames[start:]:
        if f.f_code is not own and not f.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR):
            numbers.append(f.f_lineno)
    return numbers


@functools.cache
def _global_argument_types() -> tuple[tuple[str, type], ...]:
    return tuple(_pyinfra_global_arguments())


def global_arguments() -> list[tuple[str, type]]:
    """pyinfra's `all_global_arguments`, computed once: pyinfra evaluates the type hints of its
    global arguments (`get_type_hints`) on every operation call on every host, 0.36 ms each,
    and they never change within a process."""
    return list(_global_argument_types())


def cheaper_operation_calls() -> None:
    """Let pyinfra order operations with operation_order and read its global arguments' types once
    (the same results, a fraction of the CPU per operation call and host)."""
    sys.modules["pyinfra.api.operation"].get_operation_order_from_stack = operation_order  # the module, not
    # the `operation` decorator that pyinfra.api exports under the same name
    pyinfra_arguments.all_global_arguments = global_arguments
