"""The applied record: which routers the deploy configured, kept next to the site file.

`<sitefile>.applied.json` is written by the deploy at the end of every real
(non-dry) run; it holds each router's site, SSH target, tailnet node name and
advertised prefixes, nothing secret. A router that is in the record but no
longer in the site file is "removed": the removal run (`--data prune=true`)
undoes what the project did on it and in the control plane, then drops it from
the record. Until then a removed router stays recorded, so nothing is forgotten
by a run that did not prune, or whose pruning failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeVar

from netaddr import IPNetwork

from sites.model import AwsSubnet, SiteModel, SshTarget

SUFFIX = ".applied.json"
VERSION = 1
PRUNE_KEY = "prune"


T = TypeVar("T")


class RecordError(Exception):
    """The record file exists but cannot be read (one line, names the file)."""


@dataclass(frozen=True)
class AppliedRouter:
    """One router as the deploy last configured it."""

    site: str
    ssh: str
    tailnet_node: str | None
    prefixes: tuple[str, ...]

    @property
    def host(self) -> str:
        """pyinfra's inventory name (the same one inventory.py gives a declared router)."""
        return SshTarget.parse(self.ssh).name

    @property
    def idents(self) -> list[str]:
        """Names the node may have in the tailnet: tailnet_node, else the SSH host (as for declared routers)."""
        return [i for i in (self.tailnet_node, SshTarget.parse(self.ssh).host) if i]


@dataclass(frozen=True)
class AppliedStaticHost:
    """One static-address host as the deploy last gave it routes (its site's next hop)."""

    site: str
    ssh: str
    next_hop: str
    manager: str | None = None

    @property
    def host(self) -> str:
        return SshTarget.parse(self.ssh).name


@dataclass(frozen=True)
class AppliedAwsSite:
    """One AWS site's VPC as the deploy last brought it into line: enough to reach it again and to
    find the routes this project added (marked on each listed table) once the site file drops it."""

    site: str
    region: str
    route_tables: tuple[str, ...]
    network_interface: str | None = None
    instance: str | None = None
    endpoint_url: str | None = None

    @property
    def subnet(self) -> AwsSubnet:
        """The [sites.X.aws] table it was, for cloud.aws to reach the VPC with."""
        return AwsSubnet(self.region, self.route_tables, self.network_interface, self.instance, self.endpoint_url)


def record_path(model: SiteModel) -> Path:
    return model.path.with_name(model.path.name + SUFFIX)


def declared(model: SiteModel) -> list[AppliedRouter]:
    """Every router the site file declares, as the record would hold it."""
    return [AppliedRouter(site.name, router.ssh, router.tailnet_node, tuple(str(p) for p in site.advertised))
            for site in model.sites.values() for router in site.routers]


def _entries(path: Path, section: str, build: Callable[[dict], T], required: bool = False) -> list[T]:
    """One section of the record, each entry built by `build`; none when there is no record yet
    (a first deploy), or when an optional section is missing (written before it existed)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: cannot read the applied record: {exc}") from None
    try:
        return [build(entry) for entry in (data[section] if required else data.get(section, []))]
    except (KeyError, TypeError, AttributeError) as exc:
        raise RecordError(f"{path}: {section}: unexpected record layout ({exc})") from None


def read(path: Path) -> list[AppliedRouter]:
    """The recorded routers."""
    return _entries(path, "routers", lambda r: AppliedRouter(
        str(r["site"]), str(r["ssh"]), r.get("tailnet_node"), tuple(str(p) for p in r["prefixes"])),
        required=True)


def declared_static(model: SiteModel) -> list[AppliedStaticHost]:
    """Every static host the site file declares, as the record holds it."""
    return [AppliedStaticHost(site.name, h.ssh, str(site.next_hop), h.manager)
            for site in model.sites.values() for h in site.hosts]


def read_static(path: Path) -> list[AppliedStaticHost]:
    """The recorded static hosts."""
    return _entries(path, "static_hosts", lambda h: AppliedStaticHost(
        str(h["site"]), str(h["ssh"]), str(h["next_hop"]), h.get("manager")))


def removed_static(model: SiteModel,
                   recorded: Iterable[AppliedStaticHost]) -> list[AppliedStaticHost]:
    """Recorded static hosts the site file no longer declares (matched by their SSH target)."""
    now = {h.host for h in declared_static(model)}
    return [h for h in recorded if h.host not in now]


def declared_aws(model: SiteModel) -> list[AppliedAwsSite]:
    """Every AWS site the site file declares, as the record holds it."""
    return [AppliedAwsSite(s.name, s.aws.region, s.aws.route_tables, s.aws.network_interface, s.aws.instance,
                           s.aws.endpoint_url)
            for s in model.sites.values() if s.aws is not None]


def read_aws(path: Path) -> list[AppliedAwsSite]:
    """The recorded AWS sites."""
    return _entries(path, "aws_sites", lambda a: AppliedAwsSite(
        str(a["site"]), str(a["region"]), tuple(str(t) for t in a["route_tables"]), a.get("network_interface"),
        a.get("instance"), a.get("endpoint_url")))


def removed_aws(model: SiteModel, recorded: Iterable[AppliedAwsSite]) -> list[AppliedAwsSite]:
    """What the site file no longer declares of the recorded AWS sites: a site gone (or its aws
    table gone) whole, or a declared site's tables it no longer lists (only those tables)."""
    now = {a.site: a for a in declared_aws(model)}
    out = []
    for a in recorded:
        kept = now.get(a.site)
        if kept is None:
            out.append(a)
        elif dropped := tuple(t for t in a.route_tables if t not in kept.route_tables):
            out.append(replace(a, route_tables=dropped))
    return out


def whole_site(model: SiteModel, gone: AppliedAwsSite) -> bool:
    """A removed AWS entry is a whole site (its router's check goes on again), not tables only."""
    return not any(a.site == gone.site for a in declared_aws(model))


def removed(model: SiteModel, recorded: Iterable[AppliedRouter]) -> list[AppliedRouter]:
    """Recorded routers the site file no longer declares (matched by their SSH target)."""
    now = {r.host for r in declared(model)}
    return [r for r in recorded if r.host not in now]


def retired(model: SiteModel, recorded: Iterable[AppliedRouter]) -> dict[str, tuple[str, ...]]:
    """Declared routers (by inventory name) -> recorded prefixes their site no longer declares.

    The deploy approved those on the router's node; the routes step takes them back once the
    router stops advertising them (a prefix dropped from a site that stays: no removal run needed).
    """
    now = {r.host: set(_canonical(r.prefixes)) for r in declared(model)}
    out: dict[str, tuple[str, ...]] = {}
    for r in recorded:
        if r.host in now:
            gone = tuple(p for p in _canonical(r.prefixes) if p not in now[r.host])
            if gone:
                out[r.host] = tuple(dict.fromkeys(out.get(r.host, ()) + gone))
    return out


def keeping_retired(routers: Sequence[AppliedRouter], recorded: Iterable[AppliedRouter]) -> list[AppliedRouter]:
    """`routers` with each one's recorded prefixes kept too (a run that failed somewhere may not
    have taken them back yet: the next run still knows they were ours)."""
    before: dict[str, tuple[str, ...]] = {}
    for r in recorded:
        before[r.host] = before.get(r.host, ()) + r.prefixes
    return [replace(r, prefixes=tuple(dict.fromkeys(r.prefixes + before.get(r.host, ())))) for r in routers]


def _canonical(prefixes: Iterable[str]) -> list[str]:
    return [str(IPNetwork(p).cidr) for p in prefixes]


def write(path: Path, routers: Sequence[AppliedRouter],
          static_hosts: Sequence[AppliedStaticHost] = (), aws_sites: Sequence[AppliedAwsSite] = ()) -> bool:
    """Write the record atomically; False when it already holds exactly this."""
    body: dict = {"version": VERSION, "routers": [asdict(r) for r in routers]}
    if static_hosts:
        body["static_hosts"] = [asdict(h) for h in static_hosts]
    if aws_sites:
        body["aws_sites"] = [asdict(a) for a in aws_sites]
    text = json.dumps(body, indent=2) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def prune_requested(argv: Sequence[str] | None = None) -> bool:
    """True when pyinfra was started with `--data prune=true`.

    inventory.py needs it before pyinfra hands `--data` to the hosts (pyinfra loads an
    inventory file without it), so it reads pyinfra's own command line, with pyinfra's
    value parsing; deploy.py reads the same value from host.data.
    """
    args = list(sys.argv if argv is None else argv)
    values = []
    for i, arg in enumerate(args):
        if arg == "--data" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--data="):
            values.append(arg[len("--data="):])
    for value in values:
        key, _, text = value.partition("=")
        if key == PRUNE_KEY:
            return is_true(text)
    return False


def is_true(value: object) -> bool:
    """pyinfra's --data value as a flag (it parses "true"/"false"; a string or number otherwise)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or value == 1
