"""The policy lock of controlplane.lock: a second writer waits, refuses in one line after the wait,
and a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane.lock import PolicyLockBusy, lock_path, policy_lock

HOLD = """
import sys, time
from controlplane.lock import policy_lock
with policy_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_LOCK_DIR", str(tmp_path))


def holder(key: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, key], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_refuses_in_one_line_after_the_wait_naming_the_holder():
    proc = holder("server one")
    try:
        told: list[str] = []
        started = time.monotonic()
        with pytest.raises(PolicyLockBusy) as caught:
            with policy_lock("server one", "http://cp:8080", wait=0.6, on_wait=told.append):
                pass
        assert 0.5 < time.monotonic() - started < 3
        line = str(caught.value)
        assert "\n" not in line and f"pid {proc.pid}" in line and "nothing was changed" in line
        assert "http://cp:8080" in line and told and f"pid {proc.pid}" in told[0]
        with policy_lock("server two", "other"):  # another control server: its own lock
            pass
    finally:
        proc.kill()
        proc.wait()


def test_a_sigkilled_holder_leaves_no_stale_lock():
    proc = holder("server one")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with policy_lock("server one", "test", wait=0.5):
        assert lock_path("server one").read_text().strip() == str(os.getpid())
