"""One HTTP session per control server, turning failures into one-line errors.

Why a wrapper: every failure must reach the user as one line that names the
server and the call, and never the API key (it lives only in the session's
Authorization header, which no message, repr or log line shows).
"""

from __future__ import annotations

import time
from typing import Any

import jsonhttp
from controlplane.model import ControlPlaneError

READ_ATTEMPTS = 2  # a GET: once more after a refused/dropped connection
RETRY_DELAY = 1.0  # seconds between the two


class AuthError(ControlPlaneError):
    """The control server refused the API key."""


class Unreachable(ControlPlaneError):
    """No answer from the control server."""


class ApiSession:
    """Bearer-authenticated JSON/text calls against one base URL."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 15.0, shown: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # how messages name the server: the site file's URL (and SSH host), never a tunnel's local port
        self.shown = (shown or base_url).rstrip("/")
        self.via = ""  # " (through SSH host X)" when a tunnel carries the calls
        self.timeout = timeout
        self._secret = api_key
        # no proxy from the environment between us and the server (jsonhttp reads none)
        self._client = jsonhttp.Client({"Authorization": f"Bearer {api_key}", "User-Agent": "s2s-controlplane"})

    def __repr__(self) -> str:
        return f"ApiSession({self.base_url!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> jsonhttp.Response:
        """Send one request; return the response if its status is in `ok`, else raise one line."""
        url = self.base_url + path
        where = f"{method} {self.shown}{path}{self.via}"
        # Reads are retried once on a refused or dropped connection (a server restarting); writes
        # never (a write may have landed), and a timeout never (the wait is already the timeout).
        attempts = READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self._client.request(
                    method, url, json=json, body=data.encode() if data is not None else None,
                    headers=headers, params=params, timeout=self.timeout,
                )
                break
            except jsonhttp.Timeout:
                raise Unreachable(f"{where}: control server did not answer within {self.timeout:g}s") from None
            except jsonhttp.ConnectionFailed:
                if attempt < attempts:
                    time.sleep(RETRY_DELAY)
                    continue
                tries = f", {attempts} attempts {RETRY_DELAY:g}s apart" if attempts > 1 else ""
                raise Unreachable(f"{where}: cannot reach the control server (connection failed{tries})") from None
            except jsonhttp.RequestFailed as exc:
                raise Unreachable(f"{where}: {exc}") from None
        if resp.status_code in ok:
            return resp
        if resp.status_code in (401, 403):
            raise AuthError(
                f"{where}: HTTP {resp.status_code}: the control server refused the API key "
                "(check [tailnet] api_key_env / api_key_file)"
            )
        raise ControlPlaneError(f"{where}: HTTP {resp.status_code}: {self.reason(resp)}")

    def reason(self, resp: jsonhttp.Response) -> str:
        """The server's error message, one line, short, scrubbed."""
        try:
            body = resp.json()
            text = body.get("message") or body.get("error") or str(body) if isinstance(body, dict) else str(body)
        except ValueError:
            text = resp.text
        text = " ".join(str(text).split())
        return self._scrub(text[:300]) or resp.reason or "no message"
