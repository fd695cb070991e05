"""How long set-up from a stock Debian 12 or 13 takes: prints the figures for the benchmarks doc.

Builds a stock Debian root of the release asked for (bookworm, the default, or trixie) from scratch
(debootstrap minbase + git, ca-certificates,
python3: timed, never the cached tarball), clones this repository (its committed HEAD)
into it and runs ./scripts/setup there as root in a chroot, reading the set-up's own
timing lines: Debian packages, venv + pip (hash-checked lock), and the Go toolchain
(the release's golang-go, or bookworm-backports' on Debian 12, then the pinned toolchain
through the module proxy).
A second ./scripts/setup shows the warm cost. With --build, the root's .venv/bin/go then
builds the pinned Headscale, Tailscale and tailscaled there (lab/gobuild.py: minutes), which
shows that toolchain is new enough. Needs root, debootstrap and the registries.

    python bench/setup_bench.py [--suite trixie] [--build]   (or .venv/bin/python ...)
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from tests.fresh import stock_debian


def setup_figures(output: str) -> list[tuple[str, int]]:
    """(label, seconds) for each timing line ./scripts/setup printed."""
    figures = []
    source = "?"
    for line in output.splitlines():
        m = re.match(r"^== (apt|venv|go)(?:: (golang-go))?.* (\d+) s$", line)
        if m:
            label = {"apt": "apt packages", "venv": "venv + pip (hash-checked)", "go": "Go toolchain via GOTOOLCHAIN"}[
                m[1]
            ]
            figures.append((f"apt golang-go ({source})" if m[2] else label, int(m[3])))
        src = re.match(r"^== apt: installing golang-go \S+ from (\S+)$", line)
        if src:
            source = src[1]
    return figures


def main() -> int:
    argv = sys.argv[1:]
    suite = argv[argv.index("--suite") + 1] if "--suite" in argv else stock_debian.SUITE
    if suite not in stock_debian.RELEASES:
        print(f"error: --suite {suite}: not one of {', '.join(stock_debian.RELEASES)}", file=sys.stderr)
        return 2
    cache = stock_debian.cache_dir() / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=cache))
    root = base / "fs"
    try:
        debootstrap = stock_debian.debootstrap(root, suite=suite)
        stock_debian.prepare(root)
        checkout = stock_debian.clone(root)
        t0 = time.monotonic()
        rc, out = stock_debian.run_in(root, f"cd {checkout} && ./scripts/setup", timeout=1800)
        cold = time.monotonic() - t0
        if rc != 0:
            print(out[-4000:], file=sys.stderr)
            print(f"error: ./scripts/setup exited {rc}", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        rc, warm_out = stock_debian.run_in(root, f"cd {checkout} && ./scripts/setup", timeout=300)
        warm = time.monotonic() - t0
        build = None
        if "--build" in argv:
            t0 = time.monotonic()
            brc, bout = stock_debian.run_in(
                root, f"cd {checkout} && .venv/bin/python -m lab.gobuild headscale tailscale tailscaled", timeout=3600
            )
            build = time.monotonic() - t0
            if brc != 0:
                print(bout[-4000:], file=sys.stderr)
                print(f"error: building with the root's .venv/bin/go exited {brc}", file=sys.stderr)
                return 1
    finally:
        stock_debian.remove(base)
    version = stock_debian.RELEASES[suite][0]
    print(f"Debian {version} ({suite})")
    print(f"debootstrap (minbase + git, ca-certificates, python3)  {debootstrap:6.0f} s")
    for label, seconds in setup_figures(out):
        print(f"{label:<54} {seconds:6d} s")
    print(f"{'./scripts/setup from stock, total':<54} {cold:6.0f} s")
    print(f"{'./scripts/setup again (warm)':<54} {warm:6.1f} s" + ("" if rc == 0 else f" (exit {rc})"))
    if build is not None:
        print(f"{'Go builds in the root (headscale, tailscale, tailscaled)':<54} {build:6.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
