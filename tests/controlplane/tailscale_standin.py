"""A local stand-in for Tailscale's API v2 that enforces the documented behaviour.

Tailscale's SaaS API cannot be reached from here, so the Tailscale backend is
tested against this server on 127.0.0.1. What it enforces (tailscale.com/api
and the v1.100 Go client, client/tailscale):
- auth: API key as Bearer token or Basic user; anything else -> 401 {"message"};
- GET /tailnet/{t}/devices: routes only with ?fields=all (not included by default);
- POST /device/{id}/routes {"routes"}: REPLACES the enabled list; answers
  {"advertisedRoutes", "enabledRoutes"};
- POST /device/{id}/key {"keyExpiryDisabled": bool};
- GET /tailnet/{t}/acl: HuJSON text with Accept: application/hujson (plain JSON
  otherwise), ETag header; POST with If-Match: a stale ETag -> 412;
- POST /tailnet/{t}/acl/validate: always 200 for a readable request; an invalid
  policy answers {"message": ..., "data": [...]}, a valid one {};
- POST /tailnet/{t}/keys: capabilities.devices.create{...} -> {"id", "key", ...};
- grants as the policy reference documents them (tailscale.com/kb/1324/grants): `src` and
  `dst` lists, no `action`, `ip` (ports/protocols: "*", "443", "tcp:443", "icmp:*") or `app`
  required, 0.0.0.0/0 and ::/0 refused as a destination ("use * or autogroup:internet"),
  `autogroup:danger-all` a source only; `acls` and `grants` may stand in one policy.
It also records every request (method, path, headers minus auth) for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from netaddr import AddrFormatError, IPNetwork

from controlplane import hujson  # the stand-in only needs a HuJSON reader; the edits under test are elsewhere


@dataclass
class Device:
    id: str
    hostname: str
    addresses: list[str]
    advertised: list[str]
    enabled: list[str] = field(default_factory=list)
    key_expiry_disabled: bool = False
    tags: list[str] = field(default_factory=list)

    def as_json(self, all_fields: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "addresses": self.addresses, "id": self.id, "nodeId": f"n{self.id}CNTRL",
            "user": "admin@example.com", "name": f"{self.hostname}.tail0000.ts.net", "hostname": self.hostname,
            "clientVersion": "1.100.0", "updateAvailable": False, "os": "linux", "created": "2026-01-01T00:00:00Z",
            "lastSeen": "2026-01-01T00:00:00Z", "keyExpiryDisabled": self.key_expiry_disabled,
            "expires": "2026-07-01T00:00:00Z", "authorized": True, "isExternal": False,
            "machineKey": "mkey:0", "nodeKey": "nodekey:0", "blocksIncomingConnections": False,
            "tags": self.tags,
        }
        if all_fields:
            d["advertisedRoutes"] = self.advertised
            d["enabledRoutes"] = self.enabled
        return d


def validate_policy(text: str) -> str | None:
    """A subset of Tailscale's checks: the problem as one line, or None."""
    try:
        doc = hujson.loads(text)
    except hujson.HuJSONError as exc:
        return f"invalid HuJSON: {exc}"
    if not isinstance(doc, dict):
        return "policy must be an object"
    owners = doc.get("tagOwners") or {}
    for i, acl in enumerate(doc.get("acls") or []):
        if acl.get("action") != "accept":
            return f"acls[{i}]: action must be accept"
        if not isinstance(acl.get("src"), list) or not isinstance(acl.get("dst"), list):
            return f"acls[{i}]: src and dst must be lists"
        for dst in acl["dst"]:
            if ":" not in dst:
                return f"acls[{i}]: dst {dst!r} needs a port"
    for i, grant in enumerate(doc.get("grants") or []):
        problem = _grant_problem(grant)
        if problem:
            return f"grants[{i}]: {problem}"
    for prefix, approvers in ((doc.get("autoApprovers") or {}).get("routes") or {}).items():
        try:
            IPNetwork(prefix)
        except (AddrFormatError, ValueError):
            return f"autoApprovers: {prefix!r} is not a prefix"
        for who in approvers:
            if who.startswith("tag:") and who not in owners:
                return f"autoApprovers: tag {who!r} is not in tagOwners"
    return None


GRANT_KEYS = {"src", "dst", "ip", "app", "via", "srcPosture"}
IP_PROTOCOLS = {"tcp", "udp", "icmp", "ipv6-icmp", "sctp", "gre", "esp", "ah", "igmp"}


def _grant_problem(grant: Any) -> str | None:
    if not isinstance(grant, dict):
        return "a grant must be an object"
    unknown = sorted(set(grant) - GRANT_KEYS)
    if unknown:
        return f"unknown field {unknown[0]!r}"
    if not isinstance(grant.get("src"), list) or not isinstance(grant.get("dst"), list):
        return "src and dst must be lists"
    if not grant.get("ip") and not grant.get("app"):
        return "a grant needs ip or app"
    for entry in grant.get("ip") or []:
        if not _ip_entry_ok(str(entry)):
            return f"ip {entry!r} is not a protocol:ports or ports entry"
    for dst in grant["dst"]:
        if dst == "autogroup:danger-all":
            return "autogroup:danger-all is only allowed as a source"
        try:
            if IPNetwork(dst).prefixlen == 0:
                return (f"dst {dst!r}: to allow all IP addresses, "
                        "use \"*\" or \"autogroup:internet\"")
        except (AddrFormatError, ValueError, TypeError):
            pass
    return None


def _ip_entry_ok(entry: str) -> bool:
    if entry == "*":
        return True
    proto, sep, ports = entry.rpartition(":")
    if sep and proto not in IP_PROTOCOLS and not proto.isdigit():
        return False
    return ports == "*" or all(p.replace("-", "", 1).isdigit() for p in ports.split(","))


class StandIn:
    """The server's state; start() serves it on 127.0.0.1 in a thread."""

    def __init__(self, api_key: str, policy: str, devices: list[Device]) -> None:
        self.api_key = api_key
        self.policy = policy
        self.devices = {d.id: d for d in devices}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.after_acl_get: list[Callable[[StandIn], None]] = []  # concurrent edits, one per ACL read
        self.keys_made: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.policy.encode()).hexdigest()[:16] + '"'

    @property
    def url(self) -> str:
        assert self.server
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v2"

    def start(self) -> StandIn:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                state.handle(self, "GET")

            def do_POST(self) -> None:
                state.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # --- request handling ---------------------------------------------------
    def authorized(self, h: BaseHTTPRequestHandler) -> bool:
        auth = h.headers.get("Authorization", "")
        if auth == f"Bearer {self.api_key}":
            return True
        if auth.startswith("Basic "):
            user = base64.b64decode(auth[6:]).decode(errors="replace").split(":", 1)[0]
            return user == self.api_key
        return False

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        query = parse_qs(url.query)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode()
        headers = {k: v for k, v in h.headers.items() if k.lower() != "authorization"}
        with self.lock:
            self.requests.append((method, url.path, headers))
            if not self.authorized(h):
                return self.reply(h, 401, {"message": "API token invalid"})
            parts = url.path.removeprefix("/api/v2/").strip("/").split("/")
            return self.route(h, method, parts, query, body)

    def reply(self, h: BaseHTTPRequestHandler, status: int, body: Any, ctype: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def route(self, h: BaseHTTPRequestHandler, method: str, parts: list[str], query: dict, body: str) -> None:
        if parts[:1] == ["tailnet"] and len(parts) >= 3:
            rest = parts[2:]
            if method == "GET" and rest == ["devices"]:
                all_fields = query.get("fields") == ["all"]
                return self.reply(h, 200, {"devices": [d.as_json(all_fields) for d in self.devices.values()]})
            if rest == ["acl"]:
                return self.acl(h, method, body)
            if method == "POST" and rest == ["acl", "validate"]:
                problem = validate_policy(body)
                if problem:
                    return self.reply(h, 200, {"message": problem, "data": [{"user": "", "errors": [problem]}]})
                return self.reply(h, 200, {})
            if method == "POST" and rest == ["keys"]:
                return self.keys(h, body)
        if parts[:1] == ["device"] and len(parts) == 3 and method == "POST":
            dev = self.devices.get(parts[1]) or next(
                (d for d in self.devices.values() if f"n{d.id}CNTRL" == parts[1]), None)
            if dev is None:
                return self.reply(h, 404, {"message": "device not found"})
            try:
                req = json.loads(body)
            except ValueError:
                return self.reply(h, 400, {"message": "invalid JSON"})
            if parts[2] == "routes":
                if not isinstance(req.get("routes"), list):
                    return self.reply(h, 400, {"message": "routes must be a list"})
                dev.enabled = list(req["routes"])  # replaces, as documented
                return self.reply(h, 200, {"advertisedRoutes": dev.advertised, "enabledRoutes": dev.enabled})
            if parts[2] == "key":
                if not isinstance(req.get("keyExpiryDisabled"), bool):
                    return self.reply(h, 400, {"message": "keyExpiryDisabled must be a boolean"})
                dev.key_expiry_disabled = req["keyExpiryDisabled"]
                return self.reply(h, 200, {})
        return self.reply(h, 404, {"message": "not found"})

    def acl(self, h: BaseHTTPRequestHandler, method: str, body: str) -> None:
        if method == "GET":
            etag = self.etag
            if h.headers.get("Accept") == "application/hujson":
                self.reply(h, 200, self.policy, "application/hujson", {"ETag": etag})
            else:
                self.reply(h, 200, json.dumps(hujson.loads(self.policy)), "application/json", {"ETag": etag})
            if self.after_acl_get:  # someone edits it right after this read (one edit per read)
                self.after_acl_get.pop(0)(self)
            return None
        match = h.headers.get("If-Match")
        if match is not None and match != self.etag:
            return self.reply(h, 412, {"message": "precondition failed, invalid old hash"})
        problem = validate_policy(body)
        if problem:
            return self.reply(h, 400, {"message": problem})
        self.policy = body
        return self.reply(h, 200, body, "application/hujson", {"ETag": self.etag})

    def keys(self, h: BaseHTTPRequestHandler, body: str) -> None:
        try:
            req = json.loads(body)
            create = req["capabilities"]["devices"]["create"]
        except (ValueError, KeyError, TypeError):
            return self.reply(h, 400, {"message": "capabilities.devices.create is required"})
        owners = (hujson.loads(self.policy) or {}).get("tagOwners") or {}
        for tag in create.get("tags") or []:
            if tag not in owners:
                return self.reply(h, 400, {"message": f"requested tags [{tag}] are invalid or not permitted"})
        key = {"id": f"k{len(self.keys_made) + 1}", "key": f"tskey-auth-k{len(self.keys_made) + 1}-SECRET",
               "created": "2026-01-01T00:00:00Z", "expires": "2026-01-02T00:00:00Z",
               "capabilities": req["capabilities"]}
        self.keys_made.append(key)
        return self.reply(h, 200, key)
