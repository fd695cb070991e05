"""failpoint: a no-op unless asked for; asked for, it holds until the suite says go."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import failpoint


def test_unset_is_a_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(failpoint.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    failpoint.reached(failpoint.KEA_AFTER_SET)
    assert list(tmp_path.iterdir()) == []


def test_asked_for_it_holds_until_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(failpoint.ENV, f"other,{failpoint.POLICY_BEFORE_PUT}")
    monkeypatch.setenv(failpoint.DIR_ENV, str(tmp_path))
    failpoint.reached(failpoint.KEA_AFTER_SET)  # not asked for: passes
    done = threading.Event()
    def hold() -> None:
        failpoint.reached(failpoint.POLICY_BEFORE_PUT)
        done.set()

    worker = threading.Thread(target=hold)
    worker.start()
    reached = tmp_path / f"{failpoint.POLICY_BEFORE_PUT}.reached"
    deadline = time.monotonic() + 5
    while not reached.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reached.exists() and not done.wait(0.5)  # held
    (tmp_path / f"{failpoint.POLICY_BEFORE_PUT}.go").touch()
    assert done.wait(5)
    worker.join()


def test_the_tailscale_cli_hold_is_a_command_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, `tailscale up`/`set` runs with no extra command (a no-op run stays one command)."""
    from pyinfra.api import FunctionCommand

    from operations.tailscale import _failpoint

    monkeypatch.delenv(failpoint.ENV, raising=False)
    assert _failpoint() == []
    monkeypatch.setenv(failpoint.ENV, failpoint.TAILSCALE_CLI)
    assert failpoint.armed(failpoint.TAILSCALE_CLI) and not failpoint.armed(failpoint.KEA_AFTER_SET)
    held = _failpoint()
    assert len(held) == 1 and isinstance(held[0], FunctionCommand)
