"""Suite-wide rules: real-component tests may never be skipped in CI; the caches the
collected tests need are built in the background from the start (tests/prebuild.py).

The skip hook is the only CI rule: harnesses skip with tests.support.need(reason)
and never check CI themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from tests import prebuild
from tests.support import IN_CI

_prebuild: dict[str, object] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Outside CI a missing prerequisite may skip an integration test (with its reason);
    in CI the same skip is a failure, so CI can never pass without the real programs."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("integration") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"integration test skipped in CI (not allowed): {reason}"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building, in the background, the missing caches the collected integration tests
    need (none on a machine with the caches built); S2S_PREBUILD=0 turns it off."""
    if os.environ.get("S2S_PREBUILD") == "0" or session.config.option.collectonly:
        return
    names = prebuild.wanted(i.nodeid for i in session.items if i.get_closest_marker("integration"))
    if not names:
        return
    log = tempfile.NamedTemporaryFile("w+", prefix="s2s-prebuild-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "tests.prebuild", *names], cwd=session.config.rootpath,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _prebuild.update(proc=proc, log=log.name)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"prebuild: building {len(names)} missing caches in the background "
                            f"({', '.join(names)}); log {log.name}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let the background build finish the entry it is on and stop (never kill a debootstrap)."""
    proc = _prebuild.get("proc")
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def pytest_terminal_summary(terminalreporter) -> None:
    """Each background build's time, for the run's log (how long a fresh machine built)."""
    log = _prebuild.get("log")
    if isinstance(log, str) and os.path.exists(log):
        with open(log) as f:
            lines = [line.rstrip() for line in f if line.startswith("prebuild: ")]
        terminalreporter.write_sep("-", "background builds")
        for line in lines:
            terminalreporter.write_line(line)
