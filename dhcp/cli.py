"""Command-line plumbing for the route plan: every entry point loads and plans the same way."""

from __future__ import annotations

import sys

from dhcp.plan import PlanError, SitePlan, build_plan
from sites.cli import load_or_exit
from sites.model import SiteModel


def load_plans_or_exit(option: str | None = None) -> tuple[SiteModel, dict[str, SitePlan]]:
    """The validated site model and its route plan, or the one-line error and exit 2
    (bad input: nothing has been contacted yet)."""
    model = load_or_exit(option)
    try:
        return model, build_plan(model)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
