"""Reads done while pyinfra loads deploy.py, recalled by the steps while nothing has changed yet.

pyinfra loads deploy.py for all hosts at once (one greenlet each), then runs the
operations one after another. The control-plane and Kea steps decide from
reads through SSH port forwards; made at execution time, each read waits for
the operations before it. Made at load instead, they overlap the routers' own
(batched) fact reads, so a no-op run pays for them once, in parallel.

A recalled read is as good as a fresh one only while no operation of this run
has run a command on any host (a router that re-advertised, a policy written,
a Kea config changed): from the first command on, every step reads afresh, so a
run that changes something decides exactly as before. --dry runs no command.
Nor is a read recalled when the run waited between its reads and its execution:
without -y pyinfra shows the changes and waits for the user's yes, and the
execution then reads the live systems again, as it always did. What counts is
that wait (from the run's last read to its first operation), not the read's own
age: on a large site file the execution reaches the Kea steps tens of seconds
after the reads while running no command, and reading again there cost every Kea
host a second command and every server a second config-get (docs/scale.md).
Before the execution (the change detection without -y) a read older than
MAX_AGE is not recalled.
"""

from __future__ import annotations

import time
from typing import Any

from pyinfra.api.state import BaseStateCallback, State

from pyinfra_internals import commands_run, current_run, run_id

MAX_AGE = 10.0  # seconds; a run that waits longer between its reads and its execution reads live

_clock = time.monotonic
# (state, step, host name) -> (when, what the step read at load)
_remembered: dict[tuple[int, str, str], tuple[float, Any]] = {}
_last_read: dict[int, float] = {}  # run -> when its last read was made
_began: dict[int, float] = {}  # run -> when its first operation started (pyinfra's operation_start)


class _ExecutionStart(BaseStateCallback):
    """Notes when a run's execution begins (its first operation starts)."""

    def operation_start(self, state: State, op_hash: str) -> None:
        _began.setdefault(id(state), _clock())


def remember(step: str, host_name: str, value: Any) -> None:
    run = run_id()
    if run not in _last_read:
        current_run().add_callback_handler(_ExecutionStart())
    now = _clock()
    _remembered[(run, step, host_name)] = (now, value)
    _last_read[run] = now


def recall(step: str, host_name: str) -> Any | None:
    """What `step` read at load on this host, if still valid (no command run since, and the run did
    not wait MAX_AGE or more between its reads and its execution); else None."""
    if commands_run():
        return None
    run = run_id()
    when, value = _remembered.get((run, step, host_name), (0.0, None))
    if value is None:
        return None
    began = _began.get(run)
    waited = began - _last_read[run] if began is not None else _clock() - when
    return value if waited < MAX_AGE else None
