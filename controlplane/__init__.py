"""Control plane: approve the sites' routes and merge the tailnet policy (Headscale or Tailscale API).

    from controlplane import connect
    cp = connect(model)            # backend chosen by [tailnet] backend
    changes = cp.plan(model)       # reads only; changes.render() is the dry-run
    cp.apply(changes)              # policy first, then routes (see controlplane.base)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

    from sites.model import SiteModel

from collections.abc import Iterator
from contextlib import contextmanager

from controlplane.base import ControlPlane
from controlplane.model import ChangeSet, ControlPlaneError, Node, UnknownRouterError
from controlplane.policy import PolicyError, PolicySpec

__all__ = [
    "ChangeSet", "ControlPlane", "ControlPlaneError", "Node", "PolicyError", "PolicySpec",
    "UnknownRouterError", "connect", "reach",
]


def connect(model: SiteModel, *, timeout: float = 15.0, url: str | None = None) -> ControlPlane:
    """The backend the site file's [tailnet] table names (the API key is read here, from env/file).

    `url` stands in for tailnet.url when a tunnel reaches it (see `reach`).
    """
    tailnet = model.tailnet
    if tailnet is None:
        raise ControlPlaneError(f"{model.path}: tailnet: missing [tailnet] table (control server and API key)")
    key = tailnet.api_key()
    cp = _backend(model, key, url or tailnet.url, timeout)
    # messages name the server as the site file does, never a tunnel's local port
    cp.api.shown = tailnet.url.rstrip("/")
    cp.api.via = f" (through SSH host {tailnet.ssh})" if url and tailnet.ssh else ""
    return cp


def _backend(model: SiteModel, key: str, url: str, timeout: float) -> ControlPlane:
    tailnet = model.tailnet
    if tailnet.backend == "headscale":
        from controlplane.headscale import HeadscaleControlPlane

        return HeadscaleControlPlane(url, key, policy_mode=tailnet.policy_mode, timeout=timeout)
    if tailnet.backend == "tailscale":
        from controlplane.tailscale import TailscaleControlPlane

        return TailscaleControlPlane(url, key, tailnet.tailnet, timeout=timeout)
    raise ControlPlaneError(f"{model.path}: tailnet.backend: unknown backend ({tailnet.backend})")


@contextmanager
def reach(model: SiteModel, *, timeout: float = 15.0,
          transport: paramiko.Transport | None = None) -> Iterator[ControlPlane]:
    """connect(), through an SSH port forward when [tailnet] ssh names the host the API listens on
    (over `transport`, an open paramiko transport to that host, when the caller has one)."""
    from tunnel import TunnelError, forwarded_url

    tailnet = model.tailnet
    if tailnet is None or not tailnet.ssh:
        yield connect(model, timeout=timeout)
        return
    try:
        with forwarded_url(tailnet.url, tailnet.ssh, model.ssh.config_file, model.ssh.key_file,
                           transport=transport, user=model.ssh.user) as url:
            yield connect(model, timeout=timeout, url=url)
    except TunnelError as exc:
        raise ControlPlaneError(f"tailnet: {exc}; nothing was changed") from None
