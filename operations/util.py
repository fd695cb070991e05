"""Small helpers shared by the operations: warnings printed once, prefs-style diffs."""

from __future__ import annotations

from typing import Any

from pyinfra import host, logger
from pyinfra.api.util import format_text

from pyinfra_internals import run_id

_warned: set[tuple[int, str, str]] = set()  # (run, host, message) already shown


def warn(message: str) -> None:
    """Log a warning for the current host once per run (op generators run twice)."""
    key = (run_id(), str(host.name), message)
    if key in _warned:
        return
    _warned.add(key)
    host.log_styled(f"warning: {message}", fg="yellow", log_func=logger.warning)


def log_changes(title: str, changes: list[tuple[str, Any, Any]]) -> None:
    """Print `name: old -> new` lines once per host and run (so `--dry` shows them; file diffs need --diff).

    Pref changes are a few short lines, unlike file diffs, so they are shown without --diff.
    """
    if not changes:
        return
    key = (run_id(), str(host.name), title + repr(changes))
    if key in _warned:
        return
    _warned.add(key)
    host.log(f"Will change {format_text(title, bold=True)}", logger.info)
    for name, old, new in changes:
        logger.info("  %s: %s -> %s", name, format_text(_show(old), "red"), format_text(_show(new), "green"))
    logger.info("")


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
