"""controlplane.http under faults: the line names the site file's URL, a read retries once,
a timeout bounds a hung server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from controlplane import http
from controlplane.http import ApiSession, Unreachable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_read_names_the_site_files_url_not_the_forward_port(monkeypatch):
    monkeypatch.setattr(http, "RETRY_DELAY", 0.01)
    port = closed_port()
    api = ApiSession(f"http://127.0.0.1:{port}", "secret-key", shown="http://headscale.example:8080")
    api.via = " (through SSH host control)"
    with pytest.raises(Unreachable) as err:
        api.call("GET", "/api/v1/policy")
    text = str(err.value)
    assert text.startswith("GET http://headscale.example:8080/api/v1/policy (through SSH host control): ")
    assert str(port) not in text and "secret-key" not in text
    assert "2 attempts" in text


def test_a_write_is_never_retried(monkeypatch):
    calls = []
    api = ApiSession(f"http://127.0.0.1:{closed_port()}", "k")
    real = api._client.request
    monkeypatch.setattr(api._client, "request", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    with pytest.raises(Unreachable) as err:
        api.call("PUT", "/api/v1/policy", json={})
    assert len(calls) == 1 and "attempts" not in str(err.value)


def test_a_hung_server_ends_in_the_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers: a SIGSTOPped server
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    api = ApiSession(f"http://127.0.0.1:{listener.getsockname()[1]}", "k", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not answer within 0.5s"):
        api.call("GET", "/api/v1/node")
    assert time.monotonic() - started < 3
    listener.close()
