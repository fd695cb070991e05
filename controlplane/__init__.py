"""Control plane: approve the sites' routes and merge the tailnet policy (Headscale or Tailscale API).

    from controlplane import connect
    cp = connect(model)            # backend chosen by [tailnet] backend
    changes = cp.plan(model)       # reads only; changes.render() is the dry-run
    cp.apply(changes)              # routes first, policy last (see controlplane.base)
"""

from __future__ import annotations

from controlplane.base import ControlPlane
from controlplane.model import ChangeSet, ControlPlaneError, Node, UnknownRouterError
from controlplane.policy import PolicyError, PolicySpec

__all__ = [
    "ChangeSet", "ControlPlane", "ControlPlaneError", "Node", "PolicyError", "PolicySpec",
    "UnknownRouterError", "connect",
]


def connect(model, *, timeout: float = 15.0) -> ControlPlane:  # noqa: ANN001 - sites.SiteModel
    """The backend the site file's [tailnet] table names (the API key is read here, from env/file)."""
    tailnet = model.tailnet
    if tailnet is None:
        raise ControlPlaneError(f"{model.path}: tailnet: missing [tailnet] table (control server and API key)")
    key = tailnet.api_key()
    if tailnet.backend == "headscale":
        from controlplane.headscale import HeadscaleControlPlane

        return HeadscaleControlPlane(tailnet.url, key, policy_mode=tailnet.policy_mode, timeout=timeout)
    if tailnet.backend == "tailscale":
        from controlplane.tailscale import TailscaleControlPlane

        return TailscaleControlPlane(tailnet.url, key, tailnet.tailnet, timeout=timeout)
    raise ControlPlaneError(f"{model.path}: tailnet.backend: unknown backend ({tailnet.backend})")
