"""The subnet-router deploy: Tailscale's site-to-site guide's "Configure the subnet router" steps, in its order.

deploy.py calls configure_router(site, model, router=...) once per router host (every
router of an HA site alike, plus the VRRP address and its LAN protection: operations.ha). Every
step decides from facts, so a second run changes nothing; all the facts the
steps decide from are read up front in one command (operations.batch.prefetch),
so a no-op run costs one command per router.
"""

from __future__ import annotations

from pyinfra.api import deploy

from operations import batch, checks, forwarding, gro, ha, mss, radvd, tailscale
from operations.secret import AuthKey
from operations.tailscale import InstallSource
from sites.model import Router, Site, SiteModel, Tailnet

GRO_STEP = "Enable UDP GRO forwarding on the WAN interface"


def auth_key_for(model: SiteModel) -> AuthKey | None:
    """The join key from the site file's tailnet settings (env or file), if any."""
    value = model.tailnet.auth_key() if model.tailnet is not None else None
    return AuthKey(value, source="tailnet auth key") if value else None


def login_server_for(tailnet: Tailnet | None) -> str | None:
    """The control URL routers log in to: Headscale's URL, or an explicit login_server; None = Tailscale's."""
    if tailnet is None:
        return None
    if tailnet.backend == "headscale":
        return tailnet.control_url
    return tailnet.login_server


def advertised_tags(tailnet: Tailnet | None) -> list[str]:
    """Tags the router asks for with --advertise-tags.

    Headscale (>= 0.27) gives a node joined with a pre-auth key exactly the key's tags
    and refuses any requested tag, so there the tag must ride on the auth key (the lab's
    and controlplane's router keys carry it); Tailscale accepts the request from a key
    allowed to use the tag.
    """
    if tailnet is None or tailnet.backend == "headscale":
        return []
    return [tailnet.tag]


def read_facts(source: InstallSource, wan_interface: str | None = None, site: Site | None = None,
               router: Router | None = None) -> None:
    """Every fact the router steps decide from, in one command (operations.batch.prefetch);
    on an HA site's router also the VRRP and LAN-protection steps' facts."""
    batch.prefetch(
        checks.preflight_facts(),
        tailscale.install_facts(source, *tailscale.install_repo(source)),
        forwarding.enable_facts(lan_address=_slaac_lan(site, router)),
        tailscale.configure_facts(),
        mss.clamp_facts(),
        gro.enable_facts(wan_interface),
        *((radvd.advertise_facts(site, router or site.routers[0]),) if site is not None else ()),
        *((ha.protect_facts(), ha.vrrp_facts(router or site.routers[0])) if site is not None and site.ha
          else (ha.leftover_facts(),)),
    )


def _slaac_lan(site: Site | None, router: Router | None) -> str | None:
    """The router's LAN address on a dual-stack site (forwarding.enable keeps that LAN's SLAAC)."""
    if site is None or site.subnet6 is None:
        return None
    return str((router or site.routers[0]).address)


def read_ahead(model: SiteModel, site: Site | None = None, router: Router | None = None) -> None:
    """configure_router's one batched read with its defaults, sent early: deploy.py calls this
    before it imports the HTTP stack, so the router works while this machine imports."""
    read_facts(InstallSource.from_model(model.tailscale), site=site, router=router)


@deploy("Configure Tailscale subnet router")
def configure_router(
    site: Site,
    model: SiteModel,
    *,
    auth_key: AuthKey | None = None,
    source: InstallSource | None = None,
    accept_routes: bool = True,
    wan_interface: str | None = None,
    router: Router | None = None,
    prune: bool = False,
    other_router_removed_now: bool = False,
    prune_command: str = "--data prune=true",
) -> None:
    """
    Configure one subnet router for `site` of the validated site model `model`.

    + auth_key: AuthKey for the first join (default: the site file's tailnet auth key)
    + source: where tailscale comes from and whether tailscaled logs to Tailscale
      (default: the site file's [tailscale] table, no_logs_no_support included)
    + accept_routes: --accept-routes (the recipe's default)
    + wan_interface: interface for UDP GRO forwarding (default: the default route's)
    + router: which of site.routers this host is (default: the first)
    + prune: the removal run (`--data prune=true`): also take down an HA setup the site no longer has
    + other_router_removed_now: another router of this site is removed in this run (its HA setup then stays)
    + prune_command: how to start the removal run, for the warning when it is not one

    UDP GRO is an optimisation: when it cannot be applied the deploy warns and goes on.
    """
    tailnet = model.tailnet
    own = [str(p) for p in site.advertised]
    if source is None:
        source = InstallSource.from_model(model.tailscale)
    extra_packages = ("iptables", "ethtool")

    read_facts(source, wan_interface, site, router)
    checks.preflight(name="Check for firewalls and blocked forwarding")
    tailscale.install(
        name="Install Tailscale (and the iptables and ethtool the later steps use)",
        source=source, packages=extra_packages,
    )
    forwarding.enable(name="Enable IPv4 and IPv6 forwarding", lan_address=_slaac_lan(site, router))
    if site.ha:  # before joining with --accept-routes: the site's other routers advertise this LAN too
        ha.own_lan_first(name="Keep the site's own LAN out of Tailscale's table 52 (HA)",
                         prefixes=own)
        ha.loose_rp_filter(name="Loose reverse-path filtering (HA)")
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
    this = router or site.routers[0]
    if not site.ha:  # before radvd: stopping keepalived stops radvd too (its notify_stop)
        ha.no_longer_ha(name="No HA setup left from when the site had several routers",
                        prune=prune, other_router_removed_now=other_router_removed_now, prune_command=prune_command)
    radvd.advertise(name="Router advertisements: IPv6 routes to the other sites (radvd, "
                         "lifetime 0)",
                    site=site, model=model, router=this)
    if site.ha:
        ha.vrrp(name=f"VRRP address {site.vip} follows the tailnet's primary (keepalived)",
                site=site, router=this)
        radvd.follow_vrrp(name="Router advertisements from the VRRP master only", site=site,
                          model=model, router=this)
    gro.enable(name=GRO_STEP, interface=wan_interface, _ignore_errors=True)
