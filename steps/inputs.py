"""What deploy.py needs from the validated site model, per pyinfra host.

pyinfra runs deploy.py once per host; these helpers read the current host's
roles from the data inventory.py attached to it (`site`, `kea_sites`,
`policy_file`, `control_host`), so no step re-derives a role from host names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory

from dhcp.cli import load_plans_or_exit
from dhcp.plan import SitePlan
from removal import record
from sites.model import KeaEndpoint, Site, SiteModel, StaticHost


@lru_cache(maxsize=1)
def _load() -> tuple[SiteModel, dict[str, SitePlan]]:
    return load_plans_or_exit(None)


T = TypeVar("T")


def load_model() -> SiteModel:
    """The site model ($SITES or ./sites.toml), validated and planned before any host is touched
    (inventory.py loads it first; deploy.py gets the same object)."""
    return _load()[0]


def router_site(model: SiteModel, host: Host) -> Site | None:
    """The site whose subnet router is this host, if any (inventory data `site`)."""
    name = host.data.get("site")
    return model.sites[name] if name else None


def kea_plans(host: Host, coordinator: bool = False) -> list[SitePlan]:
    """Plans that need a push from this host: sites whose Kea is reached through it (inventory
    data `kea_ssh`), and, on the coordinating host, sites whose Kea is reached directly by URL."""
    return [p for p in _load()[1].values()
            if p.push_needed and any(kea_here(k, host, coordinator) for k in p.site.kea)]


def kea_here(kea: KeaEndpoint, host: Host, coordinator: bool = False) -> bool:
    """This host pushes that Kea server: the inventory gave it that server's SSH target, or the
    server is reached directly by URL and this is the coordinating host (HA partners alike)."""
    return kea.ssh in (host.data.get("kea_ssh") or ()) if kea.ssh else coordinator


def kea_hosts_plans(host: Host) -> list[SitePlan]:
    """Plans of the sites whose Kea runs on this very host (reached through its SSH)."""
    return [p for p in kea_plans(host) if any(k.ssh and kea_here(k, host) for k in p.site.kea)]


def policy_file(host: Host) -> str | None:
    """The Headscale policy file this host holds ([tailnet] policy_mode = "file"), if any."""
    return host.data.get("policy_file")


def is_control_host(host: Host) -> bool:
    """True on the host the control server's API is reached through ([tailnet] ssh)."""
    return bool(host.data.get("control_host"))


def is_coordinator(inventory: Inventory, host: Host) -> bool:
    """The one host that carries the run-once control-plane steps: the host the control
    server's API is reached through, else the first router, else the first host. They talk to
    the control server, so planning them on every host would only repeat the same API reads."""
    for group in ("control_hosts", "routers"):
        members = inventory.get_group(group, default=[])
        if members:
            return host.name == members[0].name
    return host.name == next(iter(inventory)).name


@lru_cache(maxsize=1)
def _recorded() -> tuple[record.AppliedRouter, ...]:
    return _from_record(record.read)


def recorded_routers() -> list[record.AppliedRouter]:
    """The routers the last real deploy recorded (removal.record), read once; exit 2 on a broken record."""
    return list(_recorded())


def removed_routers(model: SiteModel) -> list[record.AppliedRouter]:
    """Recorded routers the site file no longer declares."""
    return record.removed(model, recorded_routers())


def retired_prefixes(model: SiteModel) -> dict[str, tuple[str, ...]]:
    """Declared routers -> prefixes the deploy approved on them that their site no longer declares."""
    return record.retired(model, recorded_routers())


def prune(host: Host) -> bool:
    """`--data prune=true`: this run removes what removed routers and sites left behind."""
    return record.is_true(host.data.get(record.PRUNE_KEY, False))


def removed_router(host: Host) -> dict | None:
    """The record entry of the removed router this host is (inventory data `removed_router`), if any."""
    return host.data.get("removed_router")


@lru_cache(maxsize=1)
def _recorded_static() -> tuple[record.AppliedStaticHost, ...]:
    return _from_record(record.read_static)


def _from_record(reader: Callable[[Path], list[T]]) -> tuple[T, ...]:
    """One section of the applied record of this site file; exit 2 on a broken record."""
    try:
        return tuple(reader(record.record_path(load_model())))
    except record.RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def recorded_static_hosts() -> list[record.AppliedStaticHost]:
    """The static hosts the last real deploy recorded, read once; exit 2 on a broken record."""
    return list(_recorded_static())


def removed_static_hosts(model: SiteModel) -> list[record.AppliedStaticHost]:
    """Recorded static hosts the site file no longer declares."""
    return record.removed_static(model, recorded_static_hosts())


@lru_cache(maxsize=1)
def _recorded_aws() -> tuple[record.AppliedAwsSite, ...]:
    return _from_record(record.read_aws)


def recorded_aws_sites() -> list[record.AppliedAwsSite]:
    """The AWS sites the last real deploy recorded, read once; exit 2 on a broken record."""
    return list(_recorded_aws())


def removed_aws_sites(model: SiteModel) -> list[record.AppliedAwsSite]:
    """Recorded AWS sites, or their tables, the site file no longer declares."""
    return record.removed_aws(model, recorded_aws_sites())


def static_host(model: SiteModel, host: Host) -> tuple[Site, StaticHost] | None:
    """The site and entry of the static host this host is (data `static_site`, `static_ssh`)."""
    name = host.data.get("static_site")
    if not name:
        return None
    site = model.sites[name]
    return site, site.host_at(host.data.get("static_ssh"))


def removed_static_host(host: Host) -> dict | None:
    """The record entry of the removed static host this host is (inventory `removed_static`)."""
    return host.data.get("removed_static")
