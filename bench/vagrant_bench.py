"""Figures for the lean Vagrant lab: box build, `up` cold and warm, deploy, first ping across, peak memory.

    sudo S2S_LAB_PREFIX=s2s-bench python bench/vagrant_bench.py          # everything (tens of minutes under TCG)
    sudo python bench/vagrant_bench.py --skip-box                        # keep the cached box

Sequence: [box rebuild from the cached lab image] -> down -> up (cold: the
libvirt pool has no copy of the box yet) -> deploy -> renew both clients ->
time until site A's client gets a reply from site B's -> down -> up again
(warm: the box volume is already in the pool) -> down. Memory is sampled
every second: the PSS of the processes in the lab's namespace (the lab's own
cost), and host-wide MemTotal - MemAvailable minus its value before the first
`up` (includes whatever else the machine does meanwhile). All traffic stays in the lab's namespace.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from lab import box, vagrant_lean, vagrant_libvirt
from lab.vagrant import REPO_ROOT, state_dir


def used_kib() -> int:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])


def lab_pss_kib() -> int:
    """PSS of every process in the lab's namespace (qemu, libvirtd, virtlogd, dnsmasq, Headscale, apt server)."""
    pids = subprocess.run(["ip", "netns", "pids", vagrant_libvirt.NETNS], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakMemory(threading.Thread):
    """Samples, once a second: the lab's own PSS, and host-wide MemTotal - MemAvailable (shared machine: noisy)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.base = used_kib()
        self.peak = self.base
        self.lab_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.peak = max(self.peak, used_kib())
            self.lab_peak = max(self.lab_peak, lab_pss_kib())


def lab(*args: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "lab.vagrant", *args], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-box", action="store_true", help="do not rebuild the box")
    args = parser.parse_args()
    state = state_dir()
    figures: list[tuple[str, str]] = []
    if not args.skip_box:
        shutil.rmtree(box.box_dir(), ignore_errors=True)
        t0 = time.monotonic()
        box.ensure_added()
        figures.append(("box build + vagrant box add (from the cached lab image)", f"{time.monotonic() - t0:.0f} s"))
    vagrant_lean.down(state)
    shutil.rmtree(vagrant_libvirt.state_root() / "lib" / "images", ignore_errors=True)
    mem = PeakMemory()
    mem.start()
    figures.append(("vagrant up, cold (box uploaded into the pool)", f"{lab('up', '--lean'):.0f} s"))
    figures.append(("accelerator", (state / "accel").read_text().strip()))
    t0 = time.monotonic()
    deploy = vagrant_lean.pyinfra(state)
    figures.append(("first deploy", f"{time.monotonic() - t0:.0f} s (exit {deploy.returncode})"))
    t0 = time.monotonic()
    vagrant_lean.renew_client(state, "site-a")
    vagrant_lean.renew_client(state, "site-b")
    target = vagrant_lean.client_address(state, "site-b")
    while vagrant_lean.ping(state, "site-a", target, count=1, deadline=5).returncode != 0:
        if time.monotonic() - t0 > 600:
            break
    figures.append(("deploy done -> first ping reply a-client -> b-client (incl. DHCP renew)",
                    f"{time.monotonic() - t0:.0f} s"))
    t0 = time.monotonic()
    dry = vagrant_lean.pyinfra(state, "--dry")
    figures.append(("second deploy (--dry)", f"{time.monotonic() - t0:.0f} s (exit {dry.returncode})"))
    mem.stop.set()
    figures.append(("lab processes' memory at peak (PSS: qemu x2, libvirtd, dnsmasq, Headscale ...)",
                    f"{mem.lab_peak / 1024:,.0f} MiB"))
    figures.append(("host memory in use at peak, above the start (whole machine, shared: noisy)",
                    f"{(mem.peak - mem.base) / 1024:,.0f} MiB"))
    figures.append(("down (no VM, network, namespace or process left)", f"{lab('down'):.0f} s"))
    figures.append(("vagrant up, warm (box already in the pool)", f"{lab('up', '--lean'):.0f} s"))
    lab("down")
    for name, value in figures:
        print(f"{name:<72} {value}")
    print(f"(2 VMs, {os.environ.get('S2S_VAGRANT_MEMORY', '384')} MiB / 1 vCPU each; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
