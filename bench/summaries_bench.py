"""Figures for `[dhcp] summaries = "auto"` at 10,000 sites: how long choosing takes, and the plan.

Run: python bench/summaries_bench.py [SITES]   (prints figures; no thresholds)

Two timings: choosing the cut and every site's routes (dhcp.summaries alone), and the
whole route plan with the option bytes of every site (dhcp.plan.build_plan, which adds
RFC 3442 encoding). Sites are /24s, every other one of 10.0.0.0/8 and beyond, so nothing merges.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from netaddr import IPNetwork

from dhcp.plan import _fixed_bytes, _largest_fitting, build_plan, reply_size
from dhcp.summaries import AutoSummaries
from sites.model import DhcpSettings, Router, Site, SiteModel


def sites_of(count: int) -> list[Site]:
    start = IPNetwork("10.0.0.0/24").first
    out = []
    for i in range(count):
        net = IPNetwork((start + 512 * i, 24))
        out.append(Site(name=f"s{i}", subnet=net, routers=(Router(net[2], f"h{i}"),), next_hop=net[2], gateway=net[1]))
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    sites = sites_of(count)
    dhcp = DhcpSettings(auto_summaries=True)
    room = _largest_fitting(dhcp)
    t0 = time.perf_counter()
    auto = AutoSummaries(sites, {s.name: room - _fixed_bytes(s) for s in sites})
    t1 = time.perf_counter()
    routes = [auto.for_site(s) for s in sites]
    t2 = time.perf_counter()
    plans = build_plan(SiteModel(path=Path("bench.toml"), sites={s.name: s for s in sites}, dhcp=dhcp))
    t3 = time.perf_counter()
    largest = max(reply_size(len(p.option_data), dhcp) for p in plans.values())
    print(f"{count} sites, load average {os.getloadavg()[0]:.2f}")
    print(f"auto summaries: cut /{auto.cut}, {len(auto.summaries())} summaries in the file, "
          f"at most {max(map(len, routes))} remote routes per site")
    print(f"choose the cut {t1 - t0:.3f} s + every site's routes {t2 - t1:.3f} s = {t2 - t0:.3f} s")
    print(f"whole plan with option bytes {t3 - t2:.3f} s; largest reply part {largest} bytes "
          f"(budget {dhcp.max_message_size - 240 - dhcp.reserved_option_bytes})")


if __name__ == "__main__":
    main()
