"""`python -m check [--sites PATH] [--json] [--svg FILE]`: diagnose every site, change nothing.

Reads each router over SSH (the site file's [ssh] settings, as the deploy), each static host's
kernel routes (step `static`, one row per host),
the control plane over its API, and each LAN's DHCP server by a real exchange
that takes no lease; prints site x step as ok / broken / unknown with a reason
and the command that fixes it. Exit codes: 0 every step ok at every site,
1 something broken (or not verifiable), 2 bad input (site file, plan, --svg path).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dhcp.cli import load_plans_or_exit
from sites.cli import add_sites_argument


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m check", description=__doc__.splitlines()[0])
    add_sites_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--svg", metavar="FILE", help="also draw the topology, coloured by health (Graphviz)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model, plans = load_plans_or_exit(args.sites)
    svg = Path(args.svg) if args.svg else None
    if svg is not None and not svg.parent.is_dir():
        print(f"error: --svg: {svg.parent} is not a directory (got {args.svg!r})", file=sys.stderr)
        return 2

    from check import graph, render
    from check.gather import gather
    from check.judge import judge
    from check.static_routes import read_static_hosts, static_rows

    started = time.monotonic()
    routers, control = gather(model)
    rows = judge(model, plans, routers, control) + static_rows(model, read_static_hosts(model))
    elapsed = time.monotonic() - started
    print(render.as_json(rows, elapsed) if args.json else render.table(rows, elapsed))
    if svg is not None:
        try:
            graph.render_svg(graph.dot_source(model, rows, routers, control), svg)
        except graph.GraphError as exc:
            print(f"error: --svg: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(f"topology picture: {svg}")
    return render.exit_code(rows)


if __name__ == "__main__":
    raise SystemExit(main())
