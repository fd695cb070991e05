"""Tailscale backend: the public API v2 (https://api.tailscale.com/api/v2).

Documented behaviour it relies on (tailscale.com/api, and the v1.100 Go client
in client/tailscale):
- GET /tailnet/{t}/devices?fields=all -> {"devices": [{id, nodeId, name (FQDN),
  hostname, addresses, tags, keyExpiryDisabled, advertisedRoutes, enabledRoutes}]};
- POST /device/{id}/routes {"routes": [...]} REPLACES the enabled list;
- POST /device/{id}/key {"keyExpiryDisabled": true};
- GET /tailnet/{t}/acl with Accept: application/hujson -> the HuJSON text, ETag header;
  POST it back with If-Match: <etag>; 412 Precondition Failed if it changed meanwhile;
- POST /tailnet/{t}/acl/validate with the policy: 200 even when invalid, the body
  then carries {"message": ..., "data": [...]};
- POST /tailnet/{t}/keys {"capabilities": {"devices": {"create": {reusable,
  ephemeral, preauthorized, tags}}}, "expirySeconds"} -> {"key": ...}.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from controlplane import routes as rt
from controlplane.base import ControlPlane
from controlplane.http import ApiSession
from controlplane.model import ControlPlaneError, Node, PolicyDoc

HUJSON = "application/hujson"


class TailscaleControlPlane(ControlPlane):
    name = "tailscale"
    manages_key_expiry = True

    def __init__(self, url: str, api_key: str, tailnet: str = "-", *, timeout: float = 15.0) -> None:
        super().__init__(writes_policy=True)
        self.api = ApiSession(url, api_key, timeout)
        self.tailnet = quote(tailnet, safe="")

    def __repr__(self) -> str:
        return f"TailscaleControlPlane({self.api.base_url!r}, tailnet={self.tailnet!r})"

    def list_nodes(self) -> list[Node]:
        body = self.api.call("GET", f"/tailnet/{self.tailnet}/devices", params={"fields": "all"}).json()
        return [self._node(d) for d in body.get("devices") or []]

    @staticmethod
    def _node(d: dict) -> Node:
        return Node(
            id=str(d.get("nodeId") or d["id"]),
            online=d.get("connectedToControl"),
            name=d.get("name") or "",
            hostname=d.get("hostname") or "",
            addresses=tuple(d.get("addresses") or ()),
            advertised=tuple(rt.canonical(p) for p in d.get("advertisedRoutes") or ()),
            approved=tuple(rt.canonical(p) for p in d.get("enabledRoutes") or ()),
            tags=tuple(d.get("tags") or ()),
            key_expiry_disabled=bool(d.get("keyExpiryDisabled")),
        )

    def _grants_supported(self) -> bool:
        return True  # Tailscale's policy reference: grants, preferred over ACLs

    def set_routes(self, node: Node, routes: Sequence[str]) -> None:
        self.api.call("POST", f"/device/{quote(node.id, safe='')}/routes", json={"routes": list(routes)})

    def disable_key_expiry(self, node: Node) -> None:
        self.api.call("POST", f"/device/{quote(node.id, safe='')}/key", json={"keyExpiryDisabled": True})

    def read_policy(self) -> PolicyDoc:
        resp = self.api.call("GET", f"/tailnet/{self.tailnet}/acl", headers={"Accept": HUJSON})
        etag = resp.headers.get("ETag")
        if not etag:
            raise ControlPlaneError("GET acl: the answer has no ETag; refusing to write without one")
        return PolicyDoc(resp.text, etag)

    def check_policy(self, text: str) -> bool:
        resp = self.api.call("POST", f"/tailnet/{self.tailnet}/acl/validate", data=text,
                             headers={"Content-Type": HUJSON})
        try:
            body = resp.json() if resp.content.strip() else {}
        except ValueError:
            raise ControlPlaneError("acl/validate: answer is not JSON") from None
        if isinstance(body, dict) and body.get("message"):  # 200 can still carry an error
            detail = " ".join(str(body["message"]).split())[:300]
            raise ControlPlaneError(f"policy rejected by tailscale (acl/validate): {detail}")
        return True

    def write_policy(self, text: str, base: PolicyDoc) -> bool:
        resp = self.api.call(
            "POST", f"/tailnet/{self.tailnet}/acl", data=text,
            headers={"Content-Type": HUJSON, "Accept": HUJSON, "If-Match": base.version or ""},
            ok=(200, 412),
        )
        return resp.status_code == 200

    def create_auth_key(self, tags: Sequence[str], *, reusable: bool = False, expiry_seconds: int = 3600) -> str:
        body = self.api.call("POST", f"/tailnet/{self.tailnet}/keys", json={
            "capabilities": {"devices": {"create": {
                "reusable": reusable, "ephemeral": False, "preauthorized": True, "tags": list(tags),
            }}},
            "expirySeconds": expiry_seconds,
            "description": "s2s subnet router",
        }).json()
        key = body.get("key")
        if not key:
            raise ControlPlaneError("tailscale created no auth key (empty answer)")
        return key
