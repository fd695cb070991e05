"""Transport wire handling against a loopback HTTP endpoint that records requests.

The real Control Agent (Kea 2.2, 2.6, 3.0) and kea-dhcp4 3.0's own HTTP socket are
exercised by the integration suites; this pins the wire forms byte for byte (no
"service" on the direct socket, bare-object answers) and that secrets stay out of
reprs and errors.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dhcp.kea.transport import (
    ControlAgentTransport,
    DirectHttpTransport,
    KeaAuthError,
    KeaError,
    KeaUnreachable,
    KeaUnsupported,
)
from tests.support import free_port

SECRET = "s3cret-pw-42"


class Endpoint:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, Any]] = []


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"body": body, "auth": self.headers.get("Authorization")})
            status, answer = state.answers.pop(0)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_control_agent_names_the_service_and_unwraps_the_list(endpoint):
    state, url = endpoint
    state.answers = [(200, [{"result": 0, "arguments": {"Dhcp4": {}}}])]
    t = ControlAgentTransport(url, "kea-api", SECRET)
    assert t.command("config-get") == {"Dhcp4": {}}
    assert state.requests[0]["body"] == {"command": "config-get", "service": ["dhcp4"]}
    assert state.requests[0]["auth"].startswith("Basic ")
    assert t.round_trips == 1 and t.commands == ["config-get"]


def test_direct_socket_sends_no_service_and_takes_a_bare_object(endpoint):
    state, url = endpoint
    state.answers = [(200, {"result": 0, "arguments": {"hash": "AB"}}),
                     (200, [{"result": 3, "text": "empty"}])]
    t = DirectHttpTransport(url)
    assert t.command("config-hash-get") == {"hash": "AB"}
    assert t.command("config-test", {"Dhcp4": {}}) == {}
    assert state.requests[1]["body"] == {"command": "config-test", "arguments": {"Dhcp4": {}}}
    assert state.requests[0]["auth"] is None
    assert t.round_trips == 2


def test_errors_carry_keas_text(endpoint):
    state, url = endpoint
    state.answers = [(200, [{"result": 1, "text": "subnet 5 is bogus"}]),
                     (200, [{"result": 2, "text": "'config-hash-get' command not supported."}])]
    t = ControlAgentTransport(url, "kea-api", SECRET)
    with pytest.raises(KeaError, match="config-set failed: subnet 5 is bogus") as err:
        t.command("config-set", {})
    assert err.value.result == 1 and err.value.text == "subnet 5 is bogus"
    with pytest.raises(KeaUnsupported):
        t.command("config-hash-get")


def test_401_and_the_password_never_shows(endpoint):
    state, url = endpoint
    state.answers = [(401, {"result": 401, "text": "Unauthorized"})]
    t = ControlAgentTransport(url, "kea-api", SECRET)
    with pytest.raises(KeaAuthError, match="refused user 'kea-api' \\(HTTP 401\\)") as err:
        t.command("config-get")
    assert SECRET not in str(err.value) and SECRET not in repr(t)


def test_unreachable_and_garbage():
    t = ControlAgentTransport(f"http://127.0.0.1:{free_port()}/", "kea-api", SECRET, timeout=2)
    with pytest.raises(KeaUnreachable, match="unreachable") as err:
        t.command("config-get")
    assert SECRET not in str(err.value)


def test_not_json_is_unreachable(endpoint):
    state, url = endpoint
    state.answers = [(200, ["a", "b"])]
    with pytest.raises(KeaUnreachable, match="2 answers"):
        ControlAgentTransport(url).command("config-get")


def test_userinfo_in_url_is_redacted():
    t = ControlAgentTransport(f"http://kea-api:{SECRET}@127.0.0.1:1/")
    assert SECRET not in repr(t) and SECRET not in t.where
