"""Figures for the route plan at 1,000 sites: time, option size, and how oversize is handled.

Run: python bench/plan_bench.py [SITES]   (prints figures; no assertions, no timing thresholds)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from netaddr import IPNetwork

from dhcp.plan import PlanError, build_plan
from dhcp.rfc3442 import route_size
from sites import load_sites


def site_file(count: int, *, adjacent: bool, extra: str = "") -> str:
    """`count` sites, each a /24 under 10.0.0.0/8; every other /24 when not adjacent (merging can't help)."""
    parts = []
    for i in range(count):
        net = IPNetwork("10.0.0.0/24").next(i if adjacent else 2 * i)
        parts.append(f'[sites.s{i}]\nsubnet = "{net}"\nrouter = "{net[2]}"\ngateway = "{net[1]}"\n')
    return "".join(parts) + extra


def measure(label: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sites.toml"
        path.write_text(text)
        t0 = time.perf_counter()
        model = load_sites(path)
        t1 = time.perf_counter()
        try:
            plans = build_plan(model)
            outcome = "planned"
            sizes = [len(p.option_data) for p in plans.values()]
            routes = [len(p.routes) for p in plans.values()]
            detail = f"routes/site max {max(routes)}, option 121 max {max(sizes)} bytes"
        except PlanError as exc:
            outcome = "refused"
            detail = str(exc).split(": ", 2)[2][:150]
        t2 = time.perf_counter()
    print(f"{label:<44} load+validate {t1 - t0:6.3f}s  plan {t2 - t1:6.3f}s  {outcome}: {detail}")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    unmerged_option = (count - 1) * route_size(24) + route_size(10) + route_size(0)
    print(f"{count} sites; without summaries each site's option 121 would hold {count + 1} routes = "
          f"{unmerged_option} bytes (x2 with option 249), far over one 576..1500-byte DHCP reply")
    measure(f"{count} non-adjacent /24s, no summaries", site_file(count, adjacent=False))
    measure(f"{count} non-adjacent /24s, summary 10.0.0.0/8",
            site_file(count, adjacent=False, extra='[dhcp]\nsummaries = ["10.0.0.0/8"]\n'))
    measure(f"{count} adjacent /24s (merged), no summaries", site_file(count, adjacent=True))


if __name__ == "__main__":
    main()
