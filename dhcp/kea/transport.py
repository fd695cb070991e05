"""Swappable ways to send Kea control commands.

Kea 2.x is driven through the Control Agent (CA), which forwards a command to a
named service and answers with a list; Kea >= 3.0 servers take HTTP commands
themselves (no "service" key, the answer may be a bare object) and 3.2 drops the
CA. Everything above this module sees one call, `command(name, arguments)`, so the
push does not care which one it talks to.

Secrets: the password lives only in the auth tuple sent with each request; it never
appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import jsonhttp

log = logging.getLogger(__name__)

# Kea's result codes (src/lib/cc/command_interpreter.h).
RESULT_SUCCESS = 0
RESULT_ERROR = 1
RESULT_UNSUPPORTED = 2
RESULT_EMPTY = 3

DEFAULT_TIMEOUT = 10.0


class KeaError(Exception):
    """Kea answered a command with an error; str() is Kea's own text, prefixed by where."""

    def __init__(self, message: str, *, command: str | None = None, result: int | None = None,
                 text: str | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.result = result
        self.text = text if text is not None else message


class KeaUnsupported(KeaError):
    """Result 2: this Kea does not know the command (e.g. config-hash-get on 2.2)."""


class KeaUnreachable(KeaError):
    """No usable answer at all: connection refused, timeout, not JSON, HTTP error."""


class KeaAuthError(KeaError):
    """HTTP 401: the user/password pair was refused."""


@runtime_checkable
class KeaTransport(Protocol):
    """What the push needs from a connection to one Kea server."""

    url: str
    round_trips: int
    commands: list[str]

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """Send one command; return the answer's arguments ({} when there are none; a list for
        list-commands)."""
        ...


def redact_url(url: str) -> str:
    """The URL without any user:password@ part, safe to print."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class _HttpTransport:
    """Shared HTTP plumbing: one POST per command, counted, basic auth if a user is given."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 session: jsonhttp.Client | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.user = user
        self.timeout = timeout
        self.round_trips = 0
        self.commands: list[str] = []  # names sent, in order: tests and the benchmark read it
        self.label: str | None = None  # how messages name the server (a tunnel's local URL means nothing)
        self._session = session or jsonhttp.Client()
        self._auth = (user, password or "") if user else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={redact_url(self.url)!r}, user={self.user!r})"

    @property
    def where(self) -> str:
        return self.label or f"Kea at {redact_url(self.url)}"

    def _body(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"command": name}
        if arguments is not None:
            body["arguments"] = arguments
        return body

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        self.round_trips += 1
        self.commands.append(name)
        log.debug("%s: sending %s", self.where, name)
        try:
            resp = self._session.request("POST", self.url, json=self._body(name, arguments), auth=self._auth,
                                         timeout=self.timeout)
        except jsonhttp.RequestFailed as exc:
            # The exception text may carry the URL, never the password (auth is not in the URL).
            raise KeaUnreachable(f"{self.where} is unreachable ({type(exc).__name__}: "
                                 f"{_short(exc)})", command=name) from None
        if resp.status_code == 401:
            who = f"user {self.user!r}" if self.user else "no credentials"
            raise KeaAuthError(f"{self.where} refused {who} (HTTP 401): check the site file's kea "
                               "user and password", command=name)
        try:
            payload = resp.json()
        except ValueError:
            raise KeaUnreachable(f"{self.where} answered {name} with HTTP {resp.status_code} and "
                                 f"no JSON: {resp.text[:200]!r}", command=name) from None
        answer = self._single(payload, name)
        result = answer.get("result")
        text = str(answer.get("text", ""))
        if result in (RESULT_SUCCESS, RESULT_EMPTY):
            args = answer.get("arguments")
            return args if isinstance(args, (dict, list)) else {}
        cls = KeaUnsupported if result == RESULT_UNSUPPORTED else KeaError
        raise cls(f"{self.where}: {name} failed: {text}", command=name, result=result, text=text)

    def _single(self, payload: Any, name: str) -> dict[str, Any]:
        """Unwrap the answer: a one-element list from the CA, a bare object from a server."""
        if isinstance(payload, list):
            if len(payload) != 1 or not isinstance(payload[0], dict):
                raise KeaUnreachable(f"{self.where} answered {name} with {len(payload)} answers, "
                                     "expected one", command=name)
            return payload[0]
        if isinstance(payload, dict) and "result" in payload:
            return payload
        raise KeaUnreachable(f"{self.where} answered {name} with unexpected JSON: "
                             f"{json.dumps(payload)[:200]}", command=name)


class ControlAgentTransport(_HttpTransport):
    """Kea 2.x/3.0 Control Agent: every command names the service it is for."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 service: str = "dhcp4", session: jsonhttp.Client | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(url, user, password, session, timeout)
        self.service = service

    def __repr__(self) -> str:
        return (f"ControlAgentTransport(url={redact_url(self.url)!r}, user={self.user!r}, "
                f"service={self.service!r})")

    def _body(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        body = super()._body(name, arguments)
        body["service"] = [self.service]
        return body


class DirectHttpTransport(_HttpTransport):
    """Kea >= 3.0 HTTP control socket on the DHCP server itself: no "service" key."""


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."
