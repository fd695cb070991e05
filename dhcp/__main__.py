"""`python -m dhcp plan|push`: show every LAN's routes, or push them into each site's Kea."""

from __future__ import annotations

import argparse
import json

from dhcp.cli import load_plans_or_exit
from dhcp.plan import as_json, describe
from sites.cli import add_sites_argument


def _plan(args: argparse.Namespace) -> int:
    model, plans = load_plans_or_exit(args.sites)
    if args.json:
        print(json.dumps([as_json(p) for p in plans.values()], indent=2))
    else:
        if model.dhcp.auto_summaries:
            chosen = sum(1 for p in plans.values() if p.summaries)
            print(f'[dhcp] summaries = "auto": {chosen} of {len(plans)} sites push summaries '
                  "(marked below)\n")
        print("\n\n".join(describe(p) for p in plans.values()))
    return 0


def _push(args: argparse.Namespace) -> int:
    from dhcp.push import main as push_main  # imported lazily: `plan` needs no HTTP stack

    return push_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhcp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="print every site's routes and option bytes")
    add_sites_argument(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(run=_plan)
    push = commands.add_parser("push", help="push option 121/249 into each site's Kea")
    add_sites_argument(push)
    push.add_argument("--dry-run", action="store_true", help="print the option-data diff; read-only")
    push.set_defaults(run=_push)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
