"""Benchmark: push wall time and HTTP round trips per Kea release and transport, change and no-op.

Starts real kea-dhcp4 servers from the cached Debian roots (tests/kea/roots.py;
built with debootstrap on first use) with the test harness (network namespaces,
the CA or kea-dhcp4's own HTTP socket on the namespace's loopback, reached
through a loopback forward; needs root), gives each N subnets and a site file of
N sites that all name this one server, then times a first push (changes
everything) and a second push (no change), each the median of --runs fresh
servers. The point: round trips stay constant as N grows, on every release.

    python bench/kea_push_bench.py [--releases 2.2 2.6 3.0] [--sites 1 10 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dhcp.kea.connect import transport_for
from dhcp.kea.transport import KeaTransport
from dhcp.plan import SitePlan, build_plan
from dhcp.push import run as push_run
from sites import load_sites
from sites.model import KeaEndpoint
from tests.kea.harness import SITE_A, KeaInstance, missing_prerequisites, version_tuple
from tests.kea.roots import BY_NAME, ensure_root


def subnet_of(i: int) -> str:
    """Site 0 is the harness LAN; the others are 10.x.y.0/24 (not on any wire)."""
    return "192.0.2.0/24" if i == 0 else f"10.{i // 256}.{i % 256}.0/24"


def make_config(n: int) -> Callable[[KeaInstance], dict[str, Any]]:
    def build(instance: KeaInstance) -> dict[str, Any]:
        config = instance.default_config()
        for i in range(1, n):
            config["Dhcp4"]["subnet4"].append({"id": 1000 + i, "subnet": subnet_of(i)})
        return config
    return build


def site_file(path: Path, kea: KeaInstance, n: int) -> Path:
    lines = []
    for i in range(n):
        net = subnet_of(i).rsplit(".", 1)[0]
        lines.append(f'[sites.s{i}]\nsubnet = "{subnet_of(i)}"\nrouter = "{net}.2"\n'
                     f'gateway = "{net}.1"\n[sites.s{i}.kea]\nurl = "{kea.url}"\n'
                     f'user = "{kea.user}"\npassword_file = "{kea.password_path}"\napi = "{kea.api}"\n')
    if n == 1:  # the site model wants two sites: the second has no Kea
        lines.append('[sites.remote]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n')
    path.write_text("\n".join(lines))
    return path


def one_push(plans: dict[str, SitePlan]) -> tuple[int, float, list[str], str]:
    made = []

    def factory(endpoint: KeaEndpoint) -> KeaTransport:
        made.append(transport_for(endpoint))
        return made[-1]

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code = push_run(plans, factory=factory, out=out, err=err)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"push failed: {err.getvalue()}")
    assert len(made) == 1, "all sites name one server"
    return made[0].round_trips, elapsed, made[0].commands, out.getvalue()


def variants(releases: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(release, api, hooks): the CA everywhere; 3.0 also direct, and with subnet_cmds."""
    out = []
    for name in releases:
        out.append((name, "control-agent", ()))
        if version_tuple(BY_NAME[name]) >= (3, 0):
            out.append((name, "direct", ()))
            out.append((name, "direct", ("libdhcp_subnet_cmds.so",)))
    return out


def measure(name: str, api: str, hooks: tuple[str, ...], n: int) -> dict[str, tuple[int, float, str]]:
    with tempfile.TemporaryDirectory(prefix="s2s-kea-bench-") as tmp:
        with KeaInstance(workdir=Path(tmp) / "kea", make_config=make_config(n), release=BY_NAME[name],
                         api=api, hooks=hooks, **SITE_A) as kea:
            plans = build_plan(load_sites(site_file(Path(tmp) / "sites.toml", kea, n)))
            found = {}
            for label in ("change", "no-op"):
                trips, elapsed, commands, out = one_push(plans)
                if label == "no-op":
                    assert out.count("no change") == n, out
                found[label] = (trips, elapsed, " ".join(commands))
            return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", nargs="+", default=["2.2", "2.6", "3.0"])
    parser.add_argument("--sites", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per figure (median)")
    args = parser.parse_args()
    missing = missing_prerequisites()
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    for name in args.releases:
        ensure_root(BY_NAME[name])
    print(f"{'kea':>4} {'transport':<22} {'sites':>5} {'push':>7} {'trips':>5} {'wall ms':>8}  commands")
    for name, api, hooks in variants(args.releases):
        transport = ("CA" if api == "control-agent" else "direct") + (" + subnet_cmds" if hooks else "")
        for n in args.sites:
            runs = [measure(name, api, hooks, n) for _ in range(args.runs)]
            for label in ("change", "no-op"):
                trips = runs[0][label][0]
                wall = statistics.median(r[label][1] for r in runs) * 1000
                print(f"{name:>4} {transport:<22} {n:>5} {label:>7} {trips:>5} {wall:>8.1f}  "
                      f"{runs[0][label][2]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
