"""Benchmark: HTTP round trips per Kea server per push, and the push's wall time.

Starts one real kea-dhcp4 + kea-ctrl-agent with the test harness (network
namespaces, CA on 127.0.0.1; needs root and Debian's kea-dhcp4-server,
kea-ctrl-agent), gives it N subnets and a site file of N sites that all name this
one server, then times a first push (changes everything) and a second push (no
change). The point: round trips stay constant as N grows.

    python bench/kea_push_bench.py [--sites 1 10 50 200]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dhcp.kea.connect import transport_for  # noqa: E402
from dhcp.plan import build_plan  # noqa: E402
from dhcp.push import run as push_run  # noqa: E402
from sites import load_sites  # noqa: E402
from tests.kea.harness import SITE_A, KeaInstance, missing_prerequisites  # noqa: E402


def subnet_of(i: int) -> str:
    """Site 0 is the harness LAN; the others are 10.x.y.0/24 (not on any wire)."""
    return "192.0.2.0/24" if i == 0 else f"10.{i // 256}.{i % 256}.0/24"


def make_config(n: int):
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
                     f'gateway = "{net}.1"\n[sites.s{i}.kea]\nurl = "{kea.ca_url}"\n'
                     f'user = "{kea.user}"\npassword_file = "{kea.password_path}"\n')
    if n == 1:  # the site model wants two sites: the second has no Kea
        lines.append('[sites.remote]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n')
    path.write_text("\n".join(lines))
    return path


def one_push(plans) -> tuple[int, float, list[str], str]:
    made = []

    def factory(endpoint):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1, 10, 50, 200])
    args = parser.parse_args()
    missing = missing_prerequisites()
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    print(f"{'sites':>6} {'push':>8} {'round trips':>12} {'wall ms':>9}  commands")
    for n in args.sites:
        with tempfile.TemporaryDirectory(prefix="s2s-kea-bench-") as tmp:
            with KeaInstance(workdir=Path(tmp) / "kea", make_config=make_config(n), **SITE_A) as kea:
                plans = build_plan(load_sites(site_file(Path(tmp) / "sites.toml", kea, n)))
                for label in ("first", "second"):
                    trips, elapsed, commands, out = one_push(plans)
                    if label == "second":
                        assert out.count("no change") == n, out
                    print(f"{n:>6} {label:>8} {trips:>12} {elapsed * 1000:>9.1f}  {' '.join(commands)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
