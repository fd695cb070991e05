"""Figures for step 6's LAN devices: the deploy time each static host adds ([[sites.X.hosts]]),
and with --aws, each AWS route table ([sites.X.aws] route_tables).

Run as root: python bench/static_hosts_bench.py [--runs N] [--reuse-lab]
             python bench/static_hosts_bench.py --aws [--runs N]   (no lab, no root)
Boots a fresh lab of tests/e2e/static_topology.toml (two sites, a static host per network manager
on each: networkd, NetworkManager, ifupdown, netplan) unless --reuse-lab, deploys the routers
once, then on copies of its site file: the median no-op deploy without static hosts (the
baseline), the first deploy that gives every static host its routes, and the median no-op
deploy with them. Prints each one's wall time and the time added per static host beyond the
baseline. The lab is left running (with --reuse-lab the first-deploy figure only means
something on a lab whose static hosts never had the routes). No thresholds are asserted: these
are figures.

--aws: moto's server (the stand-in for AWS, on 127.0.0.1 only) holds a VPC with 1, 2, 4 and 8
route tables listed for site a of a three-site model; the deploy's cloud step (steps.vpc: its
plan, then its apply, which plans again against the live VPC and writes) is timed first on fresh
tables and then as a no-op (median of --runs). Prints each and the time added per route table
(least-squares slope over the table counts), with the EC2 calls counted at moto's server and
the CPU time of this process (boto3 and moto's server thread), which a loaded machine inflates
less than wall time. On AWS each call is a round trip of tens of milliseconds instead.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOPOLOGY = REPO / "tests/e2e/static_topology.toml"


def timed(sites: Path, *args: str) -> float:
    from lab import drive

    started = time.monotonic()
    result = drive.pyinfra(sites, *args)
    if result.returncode != 0:
        raise SystemExit(f"deploy failed:\n{drive.why_failed(result)}")
    return time.monotonic() - started


def without_static_hosts(text: str) -> str:
    entry = r"\[\[sites\.[a-z0-9_-]+\.hosts\]\]\nssh = \"[^\"]+\"\n(manager = \"[a-z]+\"\n)?"
    return re.sub(entry, "", text)


TABLE_COUNTS = (1, 2, 4, 8)


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _aws_model(ec2: Any, vpc_id: str, count: int, *types: Any) -> Any:
    """Three sites, a's LAN an AWS subnet listing `count` fresh route tables."""
    from netaddr import IPAddress, IPNetwork

    aws_subnet, router, site, site_model, region, eni, url = types
    tables = tuple(ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"] for _ in range(count))
    sites = {}
    for i, name in enumerate(("a", "b", "c")):
        net = IPNetwork(f"10.{30 + i}.0.0/24")
        hop = IPAddress(net.first + 2)
        aws = aws_subnet(region, tables, eni, endpoint_url=url) if name == "a" else None
        sites[name] = site(name, net, (router(hop, f"root@r-{name}"),), hop, IPAddress(net.first + 1), aws=aws)
    return site_model(REPO / "bench.toml", sites)


def aws_figures(runs: int) -> None:
    """The cloud step's time per route table, against moto's server on loopback."""
    import logging
    import os
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    from sites.model import AwsSubnet, Router, Site, SiteModel
    from steps.vpc import apply_clouds, plan_clouds

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")  # moto's, nothing real
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    class Requests(logging.Handler):  # moto's server logs every request it answers: count, don't print
        count = 0

        def emit(self, record: logging.LogRecord) -> None:
            Requests.count += 1

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.handlers[:] = [Requests()]
    werkzeug.propagate = False
    werkzeug.setLevel(logging.INFO)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url, region = f"http://127.0.0.1:{port}", "eu-central-1"
    try:
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=url)
        vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
        eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        firsts, noops, calls, cpus = [], [], [], []
        for count in TABLE_COUNTS:
            first_runs, noop_runs, first_calls, noop_calls, first_cpu = [], [], [], [], []
            for _ in range(runs):  # fresh tables each time: a first deploy creates every route
                model = _aws_model(ec2, vpc_id, count, AwsSubnet, Router, Site, SiteModel, region, eni, url)
                ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": True})
                Requests.count, started, cpu = 0, time.monotonic(), time.process_time()
                plan_clouds(model, [])  # the step plans while pyinfra decides ...
                apply_clouds(model, [])  # ... and plans again against the live VPC as it writes
                first_runs.append(time.monotonic() - started)
                first_cpu.append(time.process_time() - cpu)  # boto3's and moto's (a thread here) CPU
                first_calls.append(Requests.count)
                Requests.count, started = 0, time.monotonic()
                if not plan_clouds(model, []).empty:
                    raise SystemExit("the second run planned changes")
                noop_runs.append(time.monotonic() - started)
                noop_calls.append(Requests.count)
            firsts.append(statistics.median(first_runs))
            noops.append(statistics.median(noop_runs))
            calls.append((statistics.median(first_calls), statistics.median(noop_calls)))
            cpus.append(statistics.median(first_cpu))
            print(f"{count} route table(s): first deploy {firsts[-1] * 1000:.0f} ms wall, {cpus[-1] * 1000:.0f} ms "
                  f"CPU ({calls[-1][0]:.0f} EC2 calls), no-op {noops[-1] * 1000:.0f} ms ({calls[-1][1]:.0f} calls) "
                  f"(medians of {runs})")
    finally:
        server.stop()
    xs = [float(c) for c in TABLE_COUNTS]
    print(f"per route table (moto's server on loopback, 3 routes each): first deploy "
          f"+{_slope(xs, firsts) * 1000:.1f} ms wall, +{_slope(xs, cpus) * 1000:.1f} ms CPU "
          f"(+{_slope(xs, [c[0] for c in calls]):.1f} EC2 calls), "
          f"no-op +{_slope(xs, noops) * 1000:.1f} ms (+{_slope(xs, [c[1] for c in calls]):.1f} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="no-op runs per median (default 3)")
    parser.add_argument("--reuse-lab", action="store_true", help="use the running lab as it is")
    parser.add_argument("--aws", action="store_true", help="the AWS route tables' figure (moto's server)")
    args = parser.parse_args()
    if args.aws:
        aws_figures(args.runs)
        return
    from lab import api  # after sys.path has the repository

    if not args.reuse_lab:
        api.down()  # the first deploy's figure needs static hosts that never had the routes
    info = api.ensure_up(TOPOLOGY if not args.reuse_lab else None)
    text = info.sites_file.read_text()
    count = len(re.findall(r"\[\[sites\.[^]]+\.hosts\]\]", text))
    if not count:
        raise SystemExit("the lab's site file lists no static hosts (not the static topology?)")
    with tempfile.TemporaryDirectory() as tmp:
        bare, full = Path(tmp) / "bare.toml", Path(tmp) / "full.toml"
        bare.write_text(without_static_hosts(text))
        full.write_text(text)
        timed(bare)  # the routers and Kea brought into line first
        baseline = statistics.median(timed(bare) for _ in range(args.runs))
        record = (Path(tmp) / "bare.toml.applied.json").read_text()
        (Path(tmp) / "full.toml.applied.json").write_text(record)
        first = timed(full)
        noop = statistics.median(timed(full) for _ in range(args.runs))
    print(f"static hosts: {count} (lab {TOPOLOGY.name})")
    print(f"no-op deploy without them (median of {args.runs}): {baseline:.2f} s")
    print(f"first deploy giving them routes: {first:.2f} s  "
          f"(+{(first - baseline) / count:.3f} s per host)")
    print(f"no-op deploy with them (median of {args.runs}):    {noop:.2f} s  "
          f"(+{(noop - baseline) / count:.3f} s per host)")


if __name__ == "__main__":
    main()
