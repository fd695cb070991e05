"""The cloud step of the deploy: each AWS site's VPC route tables and the router's
source/destination check (cloud.aws), step 6 of Tailscale's site-to-site guide on a cloud subnet.

Planned and applied on the coordinating host, like the control-plane steps: it talks to the
provider's API, not to the host pyinfra runs it on. The plan/apply wrapping is steps.planned's.

An AWS site the applied record names but the site file no longer declares (or a route table a
declared site no longer lists) is "removed": the removal run (`--data prune=true`) takes out the
routes this project marked in those tables (and, for a whole site, turns the router's check on
again); without it the step warns. The record keeps a removed entry until its removal succeeded.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.host import Host

from cloud import CloudError
from cloud.aws import AwsVpc, VpcPlan
from operations.util import warn
from pyinfra_internals import run_id
from removal.record import AppliedAwsSite, whole_site
from sites.model import TAILSCALE_CGNAT, Site, SiteModel
from steps.planned import plan_then_apply

LABEL = "aws"


def wanted_routes(model: SiteModel, site: Site) -> list:
    """What the VPC's tables send to the site's router: the tailnet's range and every other site's prefixes."""
    return [TAILSCALE_CGNAT, *(p for other in model.sites.values() if other is not site for p in other.advertised4)]


def aws_sites(model: SiteModel) -> list[Site]:
    return [s for s in model.sites.values() if s.aws is not None]


@dataclass(frozen=True)
class CloudPlan:
    """Every AWS site's plan, as one change set for the step."""

    plans: tuple[VpcPlan, ...]

    @property
    def empty(self) -> bool:
        return all(p.empty for p in self.plans)

    def render(self) -> str:
        return "\n".join(p.render() for p in self.plans if not p.empty)


def _vpc(site: Site) -> AwsVpc:
    assert site.aws is not None
    return AwsVpc(site.name, site.aws)


_cleaned: dict[int, set[tuple[str, str]]] = {}


def cleaned_tables() -> set[tuple[str, str]]:
    """(site, route table) pairs whose removal succeeded in this run (the record drops them)."""
    return _cleaned.setdefault(run_id(), set())


def _removal(model: SiteModel, gone: AppliedAwsSite) -> tuple[AwsVpc, bool]:
    return AwsVpc(gone.site, gone.subnet), whole_site(model, gone)


def plan_clouds(model: SiteModel, gone: list[AppliedAwsSite]) -> CloudPlan:
    """Reads only: every AWS site's plan, and the removal of each removed one in `gone`."""
    wanted = [_vpc(s).plan(wanted_routes(model, s)) for s in aws_sites(model)]
    return CloudPlan(tuple(wanted + [vpc.plan_removal(check=whole) for vpc, whole in
                                     (_removal(model, g) for g in gone)]))


def apply_clouds(model: SiteModel, gone: list[AppliedAwsSite]) -> list[str]:
    """Each AWS site re-planned against the live VPC and written; each removed one undone."""
    done: list[str] = []
    for s in aws_sites(model):
        vpc = _vpc(s)
        fresh = vpc.plan(wanted_routes(model, s))
        done += [f"{s.name}: {line}" for line in vpc.apply(fresh)] if not fresh.empty else []
    for g in gone:
        vpc, whole = _removal(model, g)
        done += [f"{g.site} (removed): {line}" for line in vpc.remove(check=whole)]
        cleaned_tables().update((g.site, t) for t in g.route_tables)
    return done


@operation()
def vpc_routes(model: SiteModel, coordinating: bool = True, removed: list[AppliedAwsSite] | None = None,
               prune: bool = False, prune_command: str = "--data prune=true") -> Generator[Any, None, None]:
    """Each AWS site's route tables send the other sites' prefixes and 100.64.0.0/10 to its router,
    whose source/destination check is off (others' routes and tags left as they are).

    + model: the validated site model
    + coordinating: False on every host but the coordinating one
    + removed: recorded AWS sites (or tables) the site file no longer declares
    + prune: `--data prune=true`: the removed ones lose what this project added
    + prune_command: how to start the removal run, for the warning when this is not one
    """
    sites = aws_sites(model)
    removed = removed or []
    if coordinating and removed and not prune:
        names = ", ".join(f"{g.site} ({', '.join(g.route_tables)})" for g in removed)
        warn(f"the site file no longer declares AWS route tables {names} that an earlier deploy gave routes; "
             f"remove them with `{prune_command}`")
    gone = removed if prune else []
    if not coordinating or not (sites or gone):
        host.noop(f"{LABEL}: {'planned on another host' if sites or removed else 'no AWS site'}")
        return

    def plan() -> CloudPlan:
        return plan_clouds(model, gone)

    def apply(on_host: Host) -> list[str]:
        return apply_clouds(model, gone)

    yield from plan_then_apply(LABEL, plan, apply, failures=(CloudError,), done="VPC route tables already in line")
