"""steps.readahead: a read made at load is recalled only while nothing has run and it is fresh."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import pyinfra_internals
from steps import readahead


class FakeState:
    def __init__(self) -> None:
        self.ops: dict = {"a-router": {}, "control": {}}
        self.handlers: list = []

    def add_callback_handler(self, handler) -> None:
        self.handlers.append(handler)

    def begin_execution(self) -> None:
        for handler in self.handlers:
            handler.operation_start(self, "op-hash")

    def _get_module(self):
        return self

    def ran(self, host: str, executed: bool) -> None:
        self.ops[host][f"op{len(self.ops[host])}"] = SimpleNamespace(operation_meta=SimpleNamespace(executed=executed))


@pytest.fixture
def fake(monkeypatch):
    state = FakeState()
    monkeypatch.setattr(pyinfra_internals, "state", state)
    for cache in ("_remembered", "_last_read", "_began"):
        monkeypatch.setattr(readahead, cache, {})
    monkeypatch.setattr(readahead, "_clock", lambda: clock[0])
    clock[0] = 1000.0
    return state


clock = [1000.0]  # the fake monotonic clock, seconds


def test_recalled_while_operations_only_decided_nothing_to_do(fake):
    readahead.remember("control plane", "control", "nodes")
    fake.ran("a-router", executed=False)  # a no-op operation
    assert readahead.recall("control plane", "control") == "nodes"
    assert readahead.recall("control plane", "a-router") is None  # never read there
    assert readahead.recall("kea plans", "control") is None


def test_not_recalled_once_any_host_ran_a_command(fake):
    readahead.remember("control plane", "control", "nodes")
    fake.ran("a-router", executed=True)  # e.g. tailscale set: the routes may have changed
    assert readahead.recall("control plane", "control") is None


def test_before_the_execution_not_recalled_when_older_than_max_age(fake):
    readahead.remember("kea plans", "a-gw", {"x": 1})
    clock[0] += readahead.MAX_AGE - 1
    assert readahead.recall("kea plans", "a-gw") == {"x": 1}
    clock[0] += 2  # e.g. a long change detection
    assert readahead.recall("kea plans", "a-gw") is None


def test_recalled_late_in_a_long_execution_that_ran_no_command(fake):
    """A 50-site no-op run reaches the Kea steps long after the reads, with no command run: the
    reads stand (they once expired there and every Kea host read again)."""
    readahead.remember("control plane", "control", "nodes")
    clock[0] += 30  # the other hosts still loading (their reads are the run's last)
    readahead.remember("kea plans", "a-gw", {"x": 1})
    clock[0] += 1
    fake.begin_execution()
    clock[0] += 60
    fake.ran("a-router", executed=False)
    assert readahead.recall("control plane", "control") == "nodes"
    assert readahead.recall("kea plans", "a-gw") == {"x": 1}


def test_not_recalled_when_the_run_waited_for_the_user(fake):
    readahead.remember("kea plans", "a-gw", {"x": 1})
    clock[0] += readahead.MAX_AGE + 5  # pyinfra showed the changes and waited for a yes
    fake.begin_execution()
    assert readahead.recall("kea plans", "a-gw") is None


def test_the_execution_start_is_watched_once_per_run(fake):
    readahead.remember("kea plans", "a-gw", {"x": 1})
    readahead.remember("kea file", "a-gw", ("/etc/kea/kea-dhcp4.conf", {}))
    assert len(fake.handlers) == 1
