"""What the real-component test harnesses share: one skip rule, one network-namespace helper.

Skipping: `need(reason)` skips with the reason when a prerequisite is missing;
the suite-wide hook in tests/conftest.py turns that skip of an `integration`
test into a failure under CI=true, so no harness needs a CI rule of its own.

Namespaces: `Namespaces(tag)` creates uniquely named network namespaces
(`s2s-t-<tag>-<pid>-<n>`), so two runs (or two helpers) never share or delete
each other's, and removes only the ones it created. They start with loopback
up and no route anywhere; links between them are the harness's own.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from lab import sh as labsh
from lab.net import add_namespace

T = TypeVar("T")

# the one CI test (the hook in tests/conftest.py reads it; harnesses only call need())
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(reason: str | None) -> None:
    """Skip the test (saying why) when `reason` names a missing prerequisite; None: carry on."""
    if reason:
        pytest.skip(reason)


def sh(*cmd: str, ns: str | None = None, check: bool = True, env: dict | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a command (inside namespace `ns` when given); a failure raises with its stderr's tail."""
    full = labsh.ns(ns, *cmd) if ns else list(cmd)
    return labsh.run(full, check=check, env=env, timeout=timeout)


def free_port() -> int:
    """A TCP port free on this namespace's 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T], timeout: float = 60.0, every: float = 0.3) -> T:
    """Poll `probe` until it returns something true; a probe raising just means "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last  # type: ignore[return-value]
        except Exception as exc:
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


_SERIAL = itertools.count()


class Namespaces:
    """Network namespaces of one harness, uniquely named, removed by `delete()` (only these)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.names: dict[str, str] = {}

    def add(self, role: str) -> str:
        """Create the namespace for `role` (loopback up, nothing else) and return its real name."""
        name = f"s2s-t-{self.tag}-{os.getpid()}-{next(_SERIAL)}"
        add_namespace(name)
        self.names[role] = name
        return name

    def __getitem__(self, role: str) -> str:
        return self.names[role]

    def delete(self) -> None:
        """Remove the namespaces this object created (processes in them must be stopped first)."""
        for name in reversed(list(self.names.values())):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.names.clear()


def netns_prerequisites(*tools: str) -> str | None:
    """Why namespaces cannot be made here, or None: root and the named tools (plus `ip`)."""
    import shutil

    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
