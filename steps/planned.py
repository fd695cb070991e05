"""One shape for the deploy steps that wrap a plan/apply pair of another package.

The control plane and the Kea push (any system the deploy changes through its own
API) offer a plan (reads only; returns a change set with `.empty` and `.render()`:
controlplane.ChangeSet, dhcp.push.ServerPlan) and an apply that re-plans against
the live system and writes. A deploy step
turns that pair into a pyinfra operation the same way every time: plan while
pyinfra decides (no change: a no-op; `--diff`: the plan's rendering), apply at
execution time, each failure one red line and pyinfra's failed command, never a
traceback. The step says what to plan, what to apply and which errors are its
system's; this module says how a plan/apply pair becomes an operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import paramiko
from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, OperationError
from pyinfra.api.host import Host
from pyinfra.api.state import State

from tunnel import TunnelError

Failures = tuple[type[Exception], ...]
Apply = Callable[[Host], Iterable[str]]


class Plan(Protocol):
    """What a plan must offer the step: whether anything changes, and a text for --diff."""

    @property
    def empty(self) -> bool: ...

    def render(self) -> str: ...


# A connection dropped under a step (an SSH host gone mid-run, a tunnel's channel refused): the
# system's own error classes cover the rest; both end in one line, never a traceback.
NETWORK: Failures = (OSError, EOFError, paramiko.SSHException, TunnelError)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _failed(state: State, host: Host, message: str) -> bool:
    """The failed command of a step whose plan could not be made (its line is already logged)."""
    return False


def _apply(state: State, host: Host, label: str, apply: Apply, failures: Failures) -> bool:
    """Execution time: run the apply; False (pyinfra's failed command) with one line on failure."""
    try:
        done = list(apply(host))
    except failures + NETWORK as exc:
        host.log_styled(f"{label}: {one_line(exc)}", fg="red", log_func=logger.error)
        return False
    for line in done or ["already as planned"]:
        host.log(f"{label}: {line}")
    return True


def plan_then_apply(label: str, plan: Callable[[], Plan], apply: Apply, *, failures: Failures,
                    done: str, defer: Failures = ()) -> Iterator[FunctionCommand]:
    """The body of a plan/apply operation (use with `yield from`).

    + label: prefix of every line it logs ("control plane", "kea")
    + plan: reads only; called now, while pyinfra decides
    + apply: called at execution time with the host; re-plans against the live system and
      returns what it did
    + failures: the system's one-line errors (anything else is a bug and keeps its traceback)
    + done: the no-op message when the plan is empty
    + defer: errors of `plan` that mean "decide at execution time" (an earlier step of the
      same run creates what the plan needs): the apply is yielded unplanned
    """
    try:
        changes = plan()
    except defer as exc:
        host.log(f"{label}: {one_line(exc)}; deciding at execution time", logger.info)
        yield FunctionCommand(_apply, (label, apply, failures), {})
        return
    except failures + NETWORK as exc:
        # one red line and pyinfra's failed command: raising here instead would end the whole run
        # with a greenlet traceback (pyinfra runs this generator at execution time) and stop the
        # other hosts' independent steps
        message = f"{label}: {one_line(exc)}"
        if "nothing was changed" not in message:
            message += "; nothing was changed by this step"
        if not state.is_executing:  # --dry plans before running anything: pyinfra's own one-line error
            raise OperationError(message) from None
        host.log_styled(message, fg="red", log_func=logger.error)
        yield FunctionCommand(_failed, (message,), {})
        return
    if changes.empty:
        host.noop(f"{label}: {done}")
        return
    if state.config.DIFF:
        host.log(f"Will change {label}", logger.info)
        for line in changes.render().splitlines():
            logger.info("  %s", line)
    yield FunctionCommand(_apply, (label, apply, failures), {})
