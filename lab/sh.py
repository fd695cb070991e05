"""Run host commands for the lab; failures raise with the command's stderr tail."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence


class LabError(RuntimeError):
    """A lab step failed; str() is one readable line (no secrets ever go in commands)."""


def run(cmd: Sequence[str], *, check: bool = True, input: str | None = None,
        capture: bool = True, timeout: float | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError naming it and its last stderr line."""
    proc = subprocess.run(list(cmd), input=input, text=True, timeout=timeout,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None, cwd=cwd, env=env)
    if check and proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["(no stderr)"]
        raise LabError(f"{' '.join(cmd[:6])}: exit {proc.returncode}: {tail[0]}")
    return proc


def ok(cmd: Sequence[str]) -> bool:
    """True when a command exits 0 (used for existence checks)."""
    return subprocess.run(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def ns(netns: str, *cmd: str) -> list[str]:
    """Prefix a command so it runs inside a lab network namespace (never from the host's)."""
    return ["ip", "netns", "exec", netns, *cmd]
