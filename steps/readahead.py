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
A read older than MAX_AGE seconds is not recalled either: without -y pyinfra
shows the changes and waits for the user before executing, and the execution
then reads the live systems again, as it always did.
"""

from __future__ import annotations

import time
from typing import Any

from pyinfra_internals import commands_run, run_id

MAX_AGE = 10.0  # seconds; a no-op run plans within a second or a few of loading (else: read live)

# (state, step, host name) -> (when, what the step read at load)
_remembered: dict[tuple[int, str, str], tuple[float, Any]] = {}


def remember(step: str, host_name: str, value: Any) -> None:
    _remembered[(run_id(), step, host_name)] = (time.monotonic(), value)


def recall(step: str, host_name: str) -> Any | None:
    """What `step` read at load on this host, if still valid (no command run since, younger than
    MAX_AGE); else None."""
    if commands_run():
        return None
    when, value = _remembered.get((run_id(), step, host_name), (0.0, None))
    return value if time.monotonic() - when < MAX_AGE else None
