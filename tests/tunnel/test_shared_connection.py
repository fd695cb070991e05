"""The process-wide SSH connection is reused only while it still reaches its host."""

from __future__ import annotations

import paramiko
import pytest

import tunnel


class FakeTransport:
    def __init__(self, reaches: bool) -> None:
        self.reaches, self.sessions = reaches, 0

    def is_active(self) -> bool:
        return True  # what a ProxyCommand connection says after the host behind it is gone

    def open_session(self, timeout: float) -> FakeTransport:
        self.sessions += 1
        if not self.reaches:
            raise paramiko.SSHException("Timeout opening channel.")
        return self

    def close(self) -> None:
        pass


class FakeClient:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport, self.closed = transport, False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    clients: list[FakeClient] = []

    def open_transport(target, ssh_config_file, key_file, user=None):
        clients.append(FakeClient(FakeTransport(reaches=True)))
        return clients[-1]

    monkeypatch.setattr(tunnel, "open_transport", open_transport)
    monkeypatch.setattr(tunnel, "_SHARED", {})
    return clients


def test_a_live_connection_is_reused(opened: list[FakeClient]) -> None:
    first = tunnel.shared_transport("control")
    assert tunnel.shared_transport("control") is first
    assert len(opened) == 1 and first.sessions == 1  # checked once, on reuse


def test_a_connection_whose_host_is_gone_is_replaced(opened: list[FakeClient]) -> None:
    first = tunnel.shared_transport("control")
    first.reaches = False  # the lab behind the ProxyCommand was torn down and rebuilt
    second = tunnel.shared_transport("control")
    assert second is not first and len(opened) == 2 and opened[0].closed
