"""Faults injected for real on one lab: each ends in one line per failure (no traceback), and the
next clean run converges, plans zero changes, and the sites' clients reach each other again.

One lab boot for every fault (tests/e2e/labs.py); the tests build on each other in order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab import drive
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

SURVIVED: list[str] = []  # the faults injected and survived, for the module's last test to report


@pytest.fixture(scope="module")
def sites() -> Iterator[Path]:
    from lab.topology import DEFAULT_PATH

    with booted(DEFAULT_PATH) as info:
        first = drive.pyinfra(info.sites_file)
        assert first.returncode == 0, drive.why_failed(first)
        drive.lab("renew", "a-client", "b-client")  # the clients take the routes at their next bind
        yield info.sites_file


def red_lines(output: str, label: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(rf"\]\s+{label}: ", line)]


def converges(sites: Path) -> None:
    """A clean run converges, a further run plans zero changes, the clients reach each other."""
    clean = drive.pyinfra(sites)
    assert clean.returncode == 0, drive.why_failed(clean)
    assert drive.planned_changes(sites) == {}
    there = drive.ping("a-client", drive.client_address("b-client"), deadline=60)
    assert there.returncode == 0, there.stdout


@contextmanager
def fault(name: str, inject: tuple[str, ...], undo: tuple[str, ...]) -> Iterator[None]:
    drive.in_host(*inject)
    try:
        yield
    finally:
        drive.in_host(*undo)
    SURVIVED.append(name)


def assert_one_line(result, label: str, must: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "Traceback" not in out and "greenlet" not in out, out[-4000:]
    lines = red_lines(out, label)
    assert len(lines) == 1, lines or out[-3000:]
    assert must in lines[0], lines[0]
    return lines[0]


def test_headscale_stopped_is_one_line_naming_the_site_files_url(sites):
    with fault("headscale stopped", ("control", "systemctl", "stop", "headscale"),
               ("control", "systemctl", "start", "headscale")):
        result = drive.pyinfra(sites)
        line = assert_one_line(result, "control plane",
                               "http://127.0.0.1:8080/api/v1/policy (through SSH host control)")
        assert "cannot reach the control server" in line and "nothing was changed" in line
        assert re.search(r"127\.0\.0\.1:(?!8080)\d+", line) is None  # no tunnel's local port
        assert "control: FAILED, left as it was" in result.stdout + result.stderr
    converges(sites)


def test_headscale_hung_longer_than_the_timeout_does_not_hang_the_deploy(sites):
    with fault("headscale SIGSTOPped", ("control", "systemctl", "kill", "-s", "SIGSTOP", "headscale"),
               ("control", "systemctl", "kill", "-s", "SIGCONT", "headscale")):
        started = time.monotonic()
        result = drive.pyinfra(sites, timeout=300)
        took = time.monotonic() - started
        assert_one_line(result, "control plane", "did not answer within 15s")
        assert took < 120, took
    converges(sites)


def test_kea_control_agent_stopped_is_one_line_and_other_hosts_finish(sites):
    with fault("Kea CA stopped", ("b-gw", "systemctl", "stop", "kea-ctrl-agent"),
               ("b-gw", "systemctl", "start", "kea-ctrl-agent")):
        result = drive.pyinfra(sites)
        line = assert_one_line(result, "kea", "Kea at http://127.0.0.1:8000 via ssh b-gw is unreachable")
        assert "nothing was changed" in line
        out = result.stdout + result.stderr
        assert "b-gw: FAILED, left as it was" in out
        assert "a-gw: FAILED" not in out and "a-router: FAILED" not in out  # the other hosts finished
    converges(sites)


def test_faults_injected_and_survived(sites):
    print(f"faults injected: {len(SURVIVED)}, survived: {len(SURVIVED)} ({', '.join(SURVIVED)})")
    assert len(SURVIVED) == 3, SURVIVED
