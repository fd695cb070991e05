"""The process's shared SSH connections can be dropped (a test session that boots one lab after another)."""

from __future__ import annotations

import tunnel


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_close_shared_closes_and_forgets_every_connection(monkeypatch):
    clients = {("control", None, None, None): FakeClient(), ("other", None, None, "op"): FakeClient()}
    monkeypatch.setattr(tunnel, "_SHARED", dict(clients))
    tunnel.close_shared()
    assert tunnel._SHARED == {} and all(c.closed for c in clients.values())
    tunnel.close_shared()  # nothing left: nothing to do
