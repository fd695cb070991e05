"""The background prebuild: which caches it builds for the collected tests, its two lanes side
by side, and a stop that lets the entry being built finish."""

from __future__ import annotations

import threading

import pytest

from tests import prebuild


def _fake(name: str, lane: str, build, needed_by=("tests/x/",), built=False) -> prebuild.Entry:
    return prebuild.Entry(name, lane, needed_by, (lambda: built, build))


@pytest.fixture
def entries(monkeypatch):
    def install(*es: prebuild.Entry) -> None:
        monkeypatch.setattr(prebuild, "ENTRIES", es)
        monkeypatch.setattr(prebuild, "BY_NAME", {e.name: e for e in es})
        monkeypatch.setattr(prebuild, "_stop", threading.Event())
    return install


def test_only_the_missing_entries_the_collected_integration_tests_need():
    # every real entry's probe reads the cache, so swap in the answers
    missing = {"kea-2.2", "kea-3.0", "image-sid", "headscale-v0.28.0"}
    real = prebuild.ENTRIES
    try:
        prebuild.ENTRIES = tuple(_fake(e.name, e.lane, None, e.needed_by, e.name not in missing) for e in real)
        assert prebuild.wanted(["tests/kea/test_deploy_step.py::test_x[kea2.2]"]) == ["kea-2.2", "kea-3.0"]
        assert prebuild.wanted(["tests/unit/test_model.py::test_y"]) == []
        assert prebuild.wanted(["tests/e2e/test_clients.py::test_z"]) == ["image-sid"]
        assert prebuild.wanted(["tests/controlplane/test_headscale_028.py::t"]) == ["headscale-v0.28.0"]
    finally:
        prebuild.ENTRIES = real


def test_the_two_lanes_build_side_by_side(entries, capsys):
    # the go lane's entry can only finish once the disk lane's has started: one lane after the
    # other would wait the whole timeout and fail
    disk_started = threading.Event()

    def go_build():
        assert disk_started.wait(timeout=10), "the disk lane did not run beside the go lane"

    entries(_fake("go1", "go", go_build), _fake("disk1", "disk", disk_started.set))
    prebuild.run(["go1", "disk1"])
    out = capsys.readouterr().out
    assert "prebuild: go1: ready in" in out and "prebuild: disk1: ready in" in out


def test_a_stop_lets_the_current_entry_finish_and_starts_no_other(entries, capsys):
    built = []

    def first():
        prebuild._stop.set()  # the session ends while this entry builds
        built.append("first")

    entries(_fake("first", "disk", first), _fake("second", "disk", lambda: built.append("second")))
    prebuild.run(["first", "second"])
    assert built == ["first"]
    assert "prebuild: second: not started (the test session ended)" in capsys.readouterr().out


def test_a_failed_build_is_reported_and_the_lane_goes_on(entries, capsys):
    def broken():
        raise RuntimeError("debootstrap failed (1)")

    built = []
    entries(_fake("broken", "disk", broken), _fake("next", "disk", lambda: built.append("next")))
    prebuild.run(["broken", "next"])
    out = capsys.readouterr().out
    assert "prebuild: broken: FAILED after" in out and "debootstrap failed (1)" in out
    assert built == ["next"]
