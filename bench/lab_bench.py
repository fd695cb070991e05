"""Figures for the built-in lab: build times, warm `up` time, memory in use, disk in the cache.

    sudo python bench/lab_bench.py            # warm figures (lab down -> up -> measure -> down)
    sudo python bench/lab_bench.py --cold     # also rebuild image + apt repo in a scratch cache
    sudo python bench/lab_bench.py --cold --go   # ... and the Go builds too (several minutes each)

The --cold run builds into a temporary S2S_CACHE, so the real cache is untouched;
without --go it links the already-built Go binaries in. Nothing is sent anywhere
but the Debian mirror (debootstrap) and the Go module proxy (with --go).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import api, container, net, progress
from lab.gobuild import cache_dir
from lab.paths import hosts_dir


def du(path: Path) -> int:
    """Bytes on disk under path (hard links counted once), as du reports."""
    if not path.exists():
        return 0
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_pids(info: api.LabInfo) -> list[int]:
    pids = {p for h in info.hosts for p in net.pids(h.netns)}
    pids |= {p for p in (container.nspawn_pid(h) for h in info.ssh_hosts()) if p}
    return sorted(pids)


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def cold(go: bool) -> None:
    """Time a from-scratch image + apt repo (and optionally Go) build in a scratch cache."""
    real_bin = cache_dir() / "bin"
    with tempfile.TemporaryDirectory(prefix="s2s-cold-") as tmp:
        os.environ["S2S_CACHE"] = tmp
        if not go:
            os.symlink(real_bin, Path(tmp) / "bin")
        from lab import aptrepo, gobuild, image
        t = {}
        if go:
            t0 = time.monotonic()
            for cmd in ("tailscaled", "headscale"):
                gobuild.binary(cmd)
            t["Go builds (tailscale, tailscaled, headscale)"] = time.monotonic() - t0
        t0 = time.monotonic()
        image.ensure_image()
        t["image (debootstrap bookworm minbase + packages)"] = time.monotonic() - t0
        t0 = time.monotonic()
        aptrepo.ensure_repo()
        t["apt repo (.deb + signed index, incl. key)"] = time.monotonic() - t0
        for what, secs in t.items():
            print(f"cold build: {what}: {secs:.1f} s")
        del os.environ["S2S_CACHE"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="also time image + apt repo builds from scratch")
    ap.add_argument("--go", action="store_true", help="with --cold: rebuild the Go binaries too")
    args = ap.parse_args()
    if args.cold:
        cold(args.go)
    progress.QUIET = True
    api.down()
    avail_before = mem_available_kib()
    t0 = time.monotonic()
    info = api.ensure_up()
    warm = time.monotonic() - t0
    time.sleep(5)  # let boot-time work settle before measuring
    pids = lab_pids(info)
    pss = sum(pss_kib(p) for p in pids) * 1024
    avail_drop = (avail_before - mem_available_kib()) * 1024
    t0 = time.monotonic()
    api.ensure_up()
    again = time.monotonic() - t0
    layers = sum(du(u) for u in hosts_dir().glob("*/upper"))  # not the merged mounts
    t0 = time.monotonic()
    api.down()
    down_s = time.monotonic() - t0
    print(f"warm `lab up` (from cache, lab down): {warm:.1f} s")
    print(f"`lab up` on a running lab: {again:.1f} s")
    print(f"`lab down`: {down_s:.1f} s")
    print(f"memory of the running lab: {mib(pss)} PSS over {len(pids)} processes "
          f"(MemAvailable dropped by {mib(avail_drop)})")
    print(f"disk: hosts' copy-on-write layers (upper dirs): {mib(layers)} while up")
    c = cache_dir()
    for p in sorted(c.glob("lab/*")) + sorted(c.glob("bin/*")):
        print(f"disk: cache {p.relative_to(c)}: {mib(du(p))}")
    print(f"disk: cache total {c}: {mib(du(c))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
