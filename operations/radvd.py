"""Router advertisements on the router's LAN: the IPv6 half of Tailscale's site-to-site guide.

DHCPv4 option 121 has no IPv6 counterpart. LAN hosts learn a more specific IPv6 route from a router
advertisement carrying a Route Information Option (RFC 4191). The subnet router sends them
with router lifetime 0, so it never becomes the LAN's default router: the LAN's own addressing
and default route stay with whatever serves them (docs/ipv6.md).

radvd (Debian's package) rather than systemd-networkd's IPv6SendRA: networkd sends RAs only on
links it manages, so it would have to take over the LAN interface from whatever configures it
(ifupdown, NetworkManager, netplan). radvd only sends, and its config is one file.

The file is /etc/radvd.conf, which Debian's radvd.service starts from (its unit has
ConditionPathExists on it): the project owns it only when it carries the project's marker; a
hand-written one is refused. On an HA site only the VRRP master (the tailnet's primary) sends:
keepalived starts and stops radvd (operations.ha), radvd.service is kept from starting at boot,
and the deploy itself starts radvd only on the router holding the VRRP address.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from netaddr import IPAddress
from pyinfra import host
from pyinfra.api import OperationError, operation

from operations import batch, owned, packages
from operations.facts.addresses import InterfaceOfAddress
from operations.facts.dpkg import DpkgInterrupted
from operations.facts.ha import DebPackageVersion, ManagedByUs
from operations.facts.statichost import LanLinkLocal
from sites.model import TAILSCALE_ULA, Router, Site, SiteModel

PACKAGE = "radvd"
UNIT = "radvd.service"
CONF = "/etc/radvd.conf"
# Unsolicited RAs at most this far apart (python -m check waits for one); a route is announced
# for three times as long (radvd's default AdvRouteLifetime): a dead router's routes go soon.
MIN_INTERVAL, MAX_INTERVAL = 3, 10


def ra_routes(model: SiteModel, site: Site) -> list[str]:
    """What the RA carries as route information: every other site's IPv6 prefixes, then the
    tailnet's fd7a:115c:a1e0::/48 (the 100.64.0.0/10 of IPv6). None without a subnet6."""
    if site.subnet6 is None:
        return []
    others = [str(p) for other in model.sites.values() if other is not site
              for p in other.advertised6]
    return [*others, str(TAILSCALE_ULA)]


def radvd_conf(site: Site, interface: str, routes: list[str], source: IPAddress | None = None) -> str:
    """radvd's config: no prefix (addressing stays with the LAN), lifetime 0, one route each.

    `source`: the router's own link-local address, pinned as the advertisements' source on an HA
    dual-stack router: radvd takes the interface's first link-local otherwise, and while
    keepalived's IPv6 instance holds the site's vip6 there that can be the vip6 (docs/ipv6.md)."""
    lines = [
        f"# Managed by s2s (operations/radvd.py): route information for site {site.name}'s LAN "
        f"{site.subnet6}.",
        "# Router lifetime 0: this router is never the LAN's default.",
        "# Edit the site file, not this file: the deploy rewrites it.",
        f"interface {interface}",
        "{",
        "    AdvSendAdvert on;",
        "    AdvDefaultLifetime 0;",
        f"    MinRtrAdvInterval {MIN_INTERVAL};",
        f"    MaxRtrAdvInterval {MAX_INTERVAL};",
    ]
    if source is not None:
        lines += [f"    AdvRASrcAddress {{ {source}; }};"]
    for prefix in routes:
        lines += [f"    route {prefix}", "    {", "        RemoveRoute on;", "    };"]
    lines.append("};")
    return "\n".join(lines) + "\n"


def advertise_facts(site: Site, router: Router) -> dict[str, batch.Fact]:
    """What `advertise` and `follow_vrrp` decide from (read in one batch)."""
    facts: dict[str, batch.Fact] = {
        "version": (DebPackageVersion, {"package": PACKAGE}),
        "interface": (InterfaceOfAddress, {"address": str(router.address)}),
        "ours": (ManagedByUs, {"path": CONF}), "conf": (owned.OwnedFile, {"path": CONF}),
        "unit": (owned.UnitState, {"unit": UNIT}), "dpkg": (DpkgInterrupted, {})}
    if site.vip is not None:
        facts["holds_vip"] = (InterfaceOfAddress, {"address": str(site.vip)})
    if site.vip6 is not None:
        facts["own_link_local"] = (LanLinkLocal, {"address": str(router.address)})
    return facts


@operation()
def advertise(site: Site, model: SiteModel, router: Router) -> Generator[Any, None, None]:
    """
    radvd sending route information for the other sites' IPv6 prefixes and fd7a:115c:a1e0::/48 on
    the LAN (router lifetime 0); taken away again when the site has no subnet6 (any more).

    + site: this router's site (site.subnet6: the LAN has IPv6)
    + model: the site model (the other sites' IPv6 prefixes)
    + router: this host's entry of site.routers (its LAN address names the interface)
    """
    facts = batch.read(**advertise_facts(site, router))
    version, interface, ours = facts["version"], facts["interface"], facts["ours"]
    conf_now, unit_now = facts["conf"], facts["unit"]
    routes = ra_routes(model, site)
    if not routes:
        if ours:  # removal: the final RA radvd sends on stop withdraws the routes (RemoveRoute on)
            if unit_now.active:
                yield f"systemctl stop {UNIT}"
            yield f"rm -f {CONF}"
        else:
            host.noop("no IPv6 on this site's LAN: no router advertisements")
        return
    if conf_now is not None and not ours:
        raise OperationError(f"{CONF} on {host.name} is not the project's (no '# Managed by s2s' "
                             "first line): route advertisements need it; move it away or merge by "
                             "hand; nothing changed")
    if interface is None:
        raise OperationError(f"no interface on {host.name} holds the router address "
                             f"{router.address} "
                             "(check the site file); nothing changed")
    source = facts.get("own_link_local")
    if site.vip6 is not None and source is None:
        raise OperationError(f"{host.name} has no link-local IPv6 address of its own on {interface}, "
                             "which its router advertisements are sent from; nothing changed")
    text = radvd_conf(site, interface, routes, source)
    conf_cmds = list(owned.put(CONF, text, mode="644", current=conf_now))
    # the config first (pyinfra's --dry shows it); the package's postinst starts radvd.service only
    # when a config is there, and on an HA router keepalived decides, so install it before the file
    if version is None:
        yield from packages.apt_install_recovering([PACKAGE], facts["dpkg"], host.name)
    yield from conf_cmds
    if site.ha:
        if unit_now.enabled or version is None:  # the VRRP master alone sends: keepalived starts it
            yield f"systemctl disable {UNIT}"
        if conf_cmds and unit_now.active:
            yield f"systemctl reload-or-restart {UNIT}"
        return
    if conf_cmds and unit_now.active:
        yield f"systemctl reload-or-restart {UNIT}"
    yield from owned.unit_running(UNIT, status=unit_now)


@operation()
def follow_vrrp(site: Site, model: SiteModel, router: Router) -> Generator[Any, None, None]:
    """
    On an HA router: radvd running exactly while this router holds the VRRP address (as read
    before the run). keepalived's notify scripts keep it so on every transition after.

    + site: an HA site
    + model: the site model
    + router: this host's entry of site.routers
    """
    facts = batch.read(**advertise_facts(site, router))
    unit_now, holds_vip = facts["unit"], facts.get("holds_vip")
    if not ra_routes(model, site):
        host.noop("no IPv6 on this site's LAN")
        return
    if holds_vip is not None and not unit_now.active:
        yield f"systemctl start {UNIT}"
    elif holds_vip is None and unit_now.active:
        yield f"systemctl stop {UNIT}"
    else:
        host.noop("radvd follows the VRRP address")
