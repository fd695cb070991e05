"""The cloud step of the deploy: each AWS site's VPC route tables and the router's
source/destination check (cloud.aws), step 6 of Tailscale's site-to-site guide on a cloud subnet.

Planned and applied on the coordinating host, like the control-plane steps: it talks to the
provider's API, not to the host pyinfra runs it on. The plan/apply wrapping is steps.planned's.
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


@operation()
def vpc_routes(model: SiteModel, coordinating: bool = True) -> Generator[Any, None, None]:
    """Each AWS site's route tables send the other sites' prefixes and 100.64.0.0/10 to its router,
    whose source/destination check is off (others' routes and tags left as they are).

    + model: the validated site model
    + coordinating: False on every host but the coordinating one
    """
    sites = aws_sites(model)
    if not coordinating or not sites:
        host.noop(f"{LABEL}: {'planned on another host' if sites else 'no AWS site'}")
        return

    def plan() -> CloudPlan:
        return CloudPlan(tuple(_vpc(s).plan(wanted_routes(model, s)) for s in sites))

    def apply(on_host: Host) -> list[str]:
        done: list[str] = []
        for s in sites:
            vpc = _vpc(s)
            fresh = vpc.plan(wanted_routes(model, s))
            done += [f"{s.name}: {line}" for line in vpc.apply(fresh)] if not fresh.empty else []
        return done

    yield from plan_then_apply(LABEL, plan, apply, failures=(CloudError,), done="VPC route tables already in line")
