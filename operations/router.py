"""The subnet-router deploy: the seed's "Configure the subnet router" steps, in its order.

deploy.py calls configure_router(site, model) once per router host. Every
step decides from facts, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import deploy

from operations import checks, forwarding, gro, mss, tailscale
from operations.secret import AuthKey


@dataclass(frozen=True)
class AptSource:
    """Where tailscale comes from (Tailscale's repository or a mirror of it, e.g. the lab's)."""

    repo_url: str = tailscale.DEFAULT_REPO
    key_url: str | None = None
    key_content: bytes | None = None
    version: str | None = None
    suite: str | None = None
    component: str = "main"

    @classmethod
    def from_model(cls, model) -> "AptSource":
        """The site file's [tailscale] table; a local key file is read here and uploaded."""
        ts = getattr(model, "tailscale", None)
        if ts is None:
            return cls()
        key_content = Path(ts.apt_key_file).read_bytes() if ts.apt_key_file else None
        return cls(repo_url=ts.apt_repo, key_url=None if key_content else ts.apt_key_url,
                   key_content=key_content, version=ts.version, suite=ts.apt_suite, component=ts.apt_component)


def other_routes(site, model) -> list[str]:
    """Every prefix the other sites' routers advertise."""
    return [str(p) for name, s in model.sites.items() if name != site.name for p in s.advertised]


def auth_key_for(model) -> AuthKey | None:
    """The join key from the site file's tailnet settings (env or file), if any."""
    tailnet = getattr(model, "tailnet", None)
    value = tailnet.auth_key() if tailnet is not None else None
    return AuthKey(value, source="tailnet auth key") if value else None


def login_server_for(tailnet) -> str | None:
    """The control URL routers log in to: Headscale's URL, or an explicit login_server; None = Tailscale's."""
    if tailnet is None:
        return None
    if tailnet.backend == "headscale":
        return tailnet.control_url
    return tailnet.login_server


def advertised_tags(tailnet) -> list[str]:  # noqa: ANN001 - sites.Tailnet | None
    """Tags the router asks for with --advertise-tags.

    Headscale (>= 0.27) gives a node joined with a pre-auth key exactly the key's tags
    and refuses any requested tag, so there the tag must ride on the auth key (the lab's
    and controlplane's router keys carry it); Tailscale accepts the request from a key
    allowed to use the tag.
    """
    if tailnet is None or tailnet.backend == "headscale":
        return []
    return [tailnet.tag]


@deploy("Configure Tailscale subnet router")
def configure_router(
    site,
    model,
    *,
    auth_key: AuthKey | None = None,
    apt_source: AptSource | None = None,
    accept_routes: bool = True,
    wan_interface: str | None = None,
    no_logs_no_support: bool = False,
):
    """
    Configure one subnet router for `site` of the validated site model `model`.

    + auth_key: AuthKey for the first join (default: the site file's tailnet auth key)
    + apt_source: tailscale apt repository, key and pinned version (default: the site file's [tailscale])
    + accept_routes: --accept-routes (the recipe's default)
    + wan_interface: interface for UDP GRO forwarding (default: the default route's)
    + no_logs_no_support: tailscaled without Tailscale's log servers (lab, tests)
    """
    tailnet = getattr(model, "tailnet", None)
    own = [str(p) for p in site.advertised]
    if apt_source is None:
        apt_source = AptSource.from_model(model)

    checks.preflight(
        name="Check for firewalls, blocked forwarding and LAN overlaps",
        own_routes=own, other_routes=other_routes(site, model), accept_routes=accept_routes,
    )
    tailscale.install(
        name="Install Tailscale (and the iptables and ethtool the later steps use)",
        packages=("iptables", "ethtool"),
        repo_url=apt_source.repo_url, key_url=apt_source.key_url, key_content=apt_source.key_content,
        version=apt_source.version, suite=apt_source.suite, component=apt_source.component,
        no_logs_no_support=no_logs_no_support,
    )
    forwarding.enable(name="Enable IPv4 and IPv6 forwarding")
    tailscale.configure(
        name="Join the tailnet and advertise the site's routes",
        routes=own,
        accept_routes=accept_routes,
        snat=False,
        login_server=login_server_for(tailnet),
        tags=advertised_tags(tailnet),
        auth_key=auth_key if auth_key is not None else auth_key_for(model),
    )
    mss.clamp(name="Clamp TCP MSS to path MTU on tailscale0")
    gro.enable(name="Enable UDP GRO forwarding on the WAN interface", interface=wan_interface)
