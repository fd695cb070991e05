"""The end-of-run summary: every host that failed, and the state the run left it in.

pyinfra stops a failed host's remaining operations and goes on with the other
hosts; its own results table counts operations but does not say what a failed
host now looks like. Each step is idempotent, so the summary names the steps
that changed the host before the failure (rerun the deploy to finish them).
"""

from __future__ import annotations

from dataclasses import dataclass

import paramiko
from pyinfra import logger
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback, State

from pyinfra_internals import name_lost_connections, op_records


@dataclass(frozen=True)
class StepOutcome:
    """One step (operation) on one host, as the run left it."""

    name: str
    ran: bool  # pyinfra executed it (or tried)
    changed: bool  # it ran at least one command
    failed: bool = False
    ignored: bool = False  # failed, but the step is optional (a warning)


def left_in(steps: list[StepOutcome]) -> str:
    """One line on what a failed host looks like now."""
    failed = next((s for s in steps if s.failed and not s.ignored), None)
    changed = [s.name for s in steps if s.changed and not (s.failed and not s.ignored)]
    if failed is None:
        return "fully changed" if changed else "as it was"
    where = f"failed at '{failed.name}'"
    if failed.changed:
        changed.append(f"{failed.name} (in part)")
    if not changed:
        return f"as it was ({where})"
    return f"partially changed ({where}); steps that changed it: " + "; ".join(changed)


def _outcomes(state: State, host: Host) -> list[StepOutcome]:
    out = []
    for op in op_records(state, host):
        # "Configure Tailscale subnet router | Enable ..." -> "Enable ..." (the step, without its deploy)
        name = ", ".join(sorted(n.rpartition(" | ")[2] for n in op.names)) or "(unnamed step)"
        if not op.complete:
            out.append(StepOutcome(name, ran=False, changed=False))
            continue
        ok = op.succeeded
        ignored = not ok and op.ignore_errors
        # a failed step's last command is the one that failed
        changed = op.executed and (ok or op.commands > 1)
        out.append(StepOutcome(name, ran=True, changed=changed, failed=not ok, ignored=ignored))
    return out


def site_file_ssh(host: Host) -> str:
    """The host as the site file names it (its `ssh` value), not pyinfra's connection details."""
    for key in ("router_ssh", "static_ssh"):
        if host.data.get(key):
            return str(host.data.get(key))
    kea = host.data.get("kea_ssh") or []
    return str(kea[0]) if kea else host.name


def lost_connection_line(host: Host, exc: BaseException | None) -> str:
    """`ssh: connection to a-router lost (...)`: the one line for an SSH host gone mid-run."""
    if isinstance(exc, paramiko.ProxyCommandFailure):  # its text is the whole ProxyCommand
        why = f"its ProxyCommand ended: {exc.error}"
    elif exc is None:
        why = "closed while a command ran, no exit status"
    else:
        why = " ".join(str(exc).split()) or type(exc).__name__
    return f"ssh: connection to {site_file_ssh(host)} lost ({why}); its remaining steps did not run"


def summary_lines(state: State) -> list[str]:
    lines = []
    for host in state.inventory:
        steps = _outcomes(state, host)
        warned = [s.name for s in steps if s.ignored]
        if host in state.failed_hosts:
            if not any(s.ran for s in steps):
                lines.append(
                    f"{host.name}: FAILED before any step ran (could not connect, or could not read its facts): "
                    "as it was"
                )
            else:
                lines.append(f"{host.name}: FAILED, left {left_in(steps)}; a rerun finishes it")
        for name in warned:
            lines.append(f"{host.name}: warning: optional step '{name}' failed; the rest of the deploy went on")
    return lines


class RunSummary(BaseStateCallback):
    """Prints the summary once, when pyinfra disconnects from the first host (every step has run)."""

    def __init__(self) -> None:
        self.printed = False

    def host_disconnect(self, state: State, host: Host) -> None:
        if self.printed:
            return
        self.printed = True
        lines = summary_lines(state)
        if lines:
            logger.warning("--> Failed hosts and optional steps:")
            for line in lines:
                logger.warning("    %s", line)


_registered: set[int] = set()


def register(state: State) -> None:
    """Add the summary to this run once (deploy.py runs once per host); an SSH host lost mid-run
    is named in one line (lost_connection_line)."""
    name_lost_connections(lost_connection_line)
    if id(state) not in _registered:
        _registered.add(id(state))
        state.add_callback_handler(RunSummary())
