"""steps.readahead: a read made at load is recalled only while nothing has run and it is fresh."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import pyinfra_internals
from steps import readahead


class FakeState:
    def __init__(self) -> None:
        self.ops: dict = {"a-router": {}, "control": {}}

    def _get_module(self):
        return self

    def ran(self, host: str, executed: bool) -> None:
        self.ops[host][f"op{len(self.ops[host])}"] = SimpleNamespace(operation_meta=SimpleNamespace(executed=executed))


@pytest.fixture
def fake(monkeypatch):
    state = FakeState()
    monkeypatch.setattr(pyinfra_internals, "state", state)
    monkeypatch.setattr(readahead, "_remembered", {})
    return state


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


def test_not_recalled_when_older_than_max_age(fake, monkeypatch):
    readahead.remember("kea plans", "a-gw", {"x": 1})
    monkeypatch.setattr(readahead, "MAX_AGE", 0.0)  # e.g. pyinfra waited for the user's yes
    assert readahead.recall("kea plans", "a-gw") is None
