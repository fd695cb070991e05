"""Headscale backend: the REST API of Headscale >= 0.26 (checked against v0.29.0's source).

Facts it relies on (hscontrol/grpcv1.go, proto/headscale/v1/*.proto at v0.29.0):
- GET /api/v1/node -> {"nodes": [{id (string, uint64), name (hostname), givenName,
  ipAddresses, approvedRoutes, availableRoutes, subnetRoutes, tags, ...}]};
- POST /api/v1/node/{id}/approve_routes {"routes": [...]} REPLACES the approved list;
- GET /api/v1/policy -> {"policy": text, "updatedAt"} (the text as stored, comments
  kept; an error while none was ever set); PUT /api/v1/policy {"policy": text} only
  with `policy.mode: database`; POST /api/v1/policy/check {"policy"} validates;
- POST /api/v1/preauthkey {"aclTags", "reusable", "expiration"} (no user: a tagged key);
- GET /version (hscontrol/app.go, no API key needed, there since 0.26) -> {"version":
  "v0.29.0", "commit", ...}: the module version in the binary's build info, or "dev" for a
  build that has none (e.g. `go build` inside the module's directory). `headscale version
  -o json` prints the same for the CLI's binary.
Headscale has no ETag on the policy, so a write re-reads first and treats a
changed text as a concurrent edit (re-merge), and reads back after: a write that
landed just after ours (from an older read) is a concurrent edit too. Deploys of one
machine also take controlplane.lock; docs/faults.md says which window is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import failpoint
from controlplane import routes as rt
from controlplane import version as ver
from controlplane.base import ControlPlane
from controlplane.http import ApiSession
from controlplane.model import ControlPlaneError, Node, PolicyDoc

# What a server without POST /api/v1/policy/check (Headscale 0.26-0.28) answers to it
NO_POLICY_CHECK = (404, 405, 501)


class HeadscaleControlPlane(ControlPlane):
    name = "headscale"
    lock_policy_writes = True  # no ETag: this machine's deploys write in turn (controlplane.lock)

    def __init__(self, url: str, api_key: str, *, policy_mode: str = "database", timeout: float = 15.0) -> None:
        super().__init__(writes_policy=policy_mode == "database")
        self.policy_mode = policy_mode
        self.api = ApiSession(url, api_key, timeout)

    def __repr__(self) -> str:
        return f"HeadscaleControlPlane({self.api.base_url!r}, policy_mode={self.policy_mode!r})"

    def list_nodes(self) -> list[Node]:
        body = self.api.call("GET", "/api/v1/node").json()
        return [self._node(n) for n in body.get("nodes") or []]

    @staticmethod
    def _node(n: dict) -> Node:
        return Node(
            id=str(n["id"]),
            name=n.get("name") or "",
            hostname=n.get("name") or "",
            given_name=n.get("givenName") or "",
            addresses=tuple(n.get("ipAddresses") or ()),
            advertised=tuple(rt.canonical(p) for p in n.get("availableRoutes") or ()),
            approved=tuple(rt.canonical(p) for p in n.get("approvedRoutes") or ()),
            tags=tuple(n.get("tags") or ()),
            online=n.get("online"),
            primary_routes=tuple(rt.canonical(p) for p in n.get("subnetRoutes") or ()),
        )

    def set_routes(self, node: Node, routes: Sequence[str]) -> None:
        self.api.call("POST", f"/api/v1/node/{node.id}/approve_routes", json={"routes": list(routes)})

    def server_version(self) -> str:
        """The version the server reports at GET /version ("dev" when its build has none)."""
        resp = self.api.call("GET", "/version")
        try:
            body = resp.json()
        except ValueError:
            raise ControlPlaneError(f"GET {self.api.shown}/version: answer is not JSON") from None
        return str(body.get("version") or "") if isinstance(body, dict) else ""

    def _grants_supported(self) -> bool:
        """From the reported version; a build that names no release ("dev") is asked instead:
        POST /api/v1/policy/check with a grant is accepted from 0.29 on (before it, that call
        does not exist and the key `grants` is unknown). Writes nothing either way."""
        known = ver.headscale_has_grants(self.server_version())
        if known is not None:
            return known
        probe = '{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}'
        resp = self.api.call("POST", "/api/v1/policy/check", json={"policy": probe},
                             ok=(200, 400, *NO_POLICY_CHECK))
        return resp.status_code == 200

    def read_policy(self) -> PolicyDoc:
        resp = self.api.call("GET", "/api/v1/policy", ok=(200, 500, 404))
        if resp.status_code != 200:
            reason = self.api.reason(resp)
            if "not found" in reason.lower():  # never set: Headscale's allow-all default is in force
                return PolicyDoc("", None)
            raise ControlPlaneError(f"GET {self.api.shown}/api/v1/policy: HTTP {resp.status_code}: {reason}")
        body = resp.json()
        return PolicyDoc(body.get("policy") or "", body.get("updatedAt"))

    def check_policy(self, text: str) -> bool:
        resp = self.api.call("POST", "/api/v1/policy/check", json={"policy": text},
                             ok=(200, 400, 500, *NO_POLICY_CHECK))
        if resp.status_code in NO_POLICY_CHECK:  # before 0.29: the PUT validates on its own
            return False
        if resp.status_code != 200:
            raise ControlPlaneError(f"policy rejected by headscale: {self.api.reason(resp)}")
        return True

    def write_policy(self, text: str, base: PolicyDoc) -> bool:
        if not self.writes_policy:
            raise ControlPlaneError("policy_mode is 'file': the policy file is written by the deploy, not the API")
        if self.read_policy().text != base.text:
            return False
        failpoint.reached(failpoint.POLICY_BEFORE_PUT)
        self.api.call("PUT", "/api/v1/policy", json={"policy": text})
        # read back: someone's write from an older read may have landed just after ours and dropped
        # our blocks; False makes the caller re-read and re-merge (theirs is kept either way)
        return self.read_policy().text == text

    def create_auth_key(self, tags: Sequence[str], *, reusable: bool = False, expiry_seconds: int = 3600) -> str:
        expiration = datetime.now(UTC) + timedelta(seconds=expiry_seconds)
        body = self.api.call("POST", "/api/v1/preauthkey", json={
            "reusable": reusable,
            "ephemeral": False,
            "aclTags": list(tags),
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }).json()
        key = (body.get("preAuthKey") or {}).get("key")
        if not key:
            raise ControlPlaneError("headscale created no auth key (empty answer)")
        return key
