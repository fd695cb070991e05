"""HTTP calls for the Kea and control-plane clients, on urllib3, answered in one small shape.

Why not requests: on a no-op deploy these clients make the run's only HTTP calls, and
importing requests brings charset_normalizer (and the CJK codecs it loads) with it: the
deploy's imports took 0.135 s of CPU with requests and 0.082 s without (medians of 7 on a
loaded machine, docs/noop.md). urllib3 is what
requests sends with anyway; certifi's CA bundle is kept, as requests uses it.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as _Urllib3Timeout


class RequestFailed(Exception):
    """No answer: str() names the failure's kind only (never the URL's credentials or a header)."""


class Timeout(RequestFailed):
    """The server accepted no connection or sent no answer within the timeout."""


class ConnectionFailed(RequestFailed):
    """The connection was refused, could not be made, or dropped before an answer."""


@dataclass(frozen=True)
class Response:
    status_code: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return jsonlib.loads(self.content)


class Client:
    """One connection pool with fixed headers; no retries, no redirects, no proxy from the environment
    (the callers decide what to retry, and talk to the server they were given)."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.headers = dict(headers or {})
        self._pool = urllib3.PoolManager(retries=False, ca_certs=certifi.where())

    def request(self, method: str, url: str, *, timeout: float, json: Any = None, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None) -> Response:
        sent = {**self.headers, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        parts = urlsplit(url)
        if parts.username is not None:  # user:password@ in the URL: basic auth, as requests sent it
            auth = auth or (unquote(parts.username), unquote(parts.password or ""))
            netloc = parts.netloc.rsplit("@", 1)[1]
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        if auth is not None:
            sent.update(urllib3.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        if params:
            url = f"{url}?{urlencode(params)}"
        try:
            resp = self._pool.request(method, url, body=body, headers=sent, timeout=timeout, redirect=False)
        except (NewConnectionError, ProtocolError) as exc:  # NewConnectionError is also a TimeoutError
            raise ConnectionFailed(type(exc).__name__) from None
        except _Urllib3Timeout as exc:
            raise Timeout(type(exc).__name__) from None
        except HTTPError as exc:
            raise RequestFailed(type(exc).__name__) from None
        return Response(resp.status, resp.reason or "", resp.headers, resp.data)
