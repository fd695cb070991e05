"""Build the suite's missing caches in the background while the first tests run.

On a fresh machine the caches cost about 25 minutes when each is built by the first fixture
that asks for it, one after another while every test waits: the Go builds of Tailscale and
Headscale (both cores busy), then debootstraps of the lab's Debian images, the Kea roots, the
stock-Debian tarballs and the Vagrant box (the network and the disk busy, the CPU mostly
idle). Here they overlap in two lanes, one for the Go builds and one for the rest, in the
order the suite reaches them, and only those the collected tests need.

No fixture waits for this process: each builder holds its cache entry's lock
(lab.cachelock), so a fixture asking for an entry being built here waits for that entry
alone, and one that reaches an entry first builds it itself while this lane waits.
Run by tests/conftest.py; by hand: `python -m tests.prebuild --list` or `python -m tests.prebuild NAME...`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lab import aptrepo, box, gobuild, image
from lab.versions import HEADSCALE_028_VERSION

Probe = tuple[Callable[[], bool], Callable[[], object]]  # (is it built?, build it)


def _kea(name: str) -> Probe:
    from tests.kea import roots

    release = roots.BY_NAME[name]
    return (lambda: roots.is_built(release)), (lambda: roots.ensure_root(release, log=sys.stdout))


def _tarball(suite: str) -> Probe:
    from tests.fresh import stock_debian

    return (lambda: stock_debian.is_built(suite)), (lambda: stock_debian.pristine_tarball(suite))


def _image(suite: str) -> Probe:
    return (lambda: image.is_built(suite)), (lambda: image.ensure_image(suite))


def _go(name: str, version: str | None = None) -> Probe:
    return (lambda: gobuild.is_built(name, version)), (lambda: gobuild.built(name, version))


@dataclass(frozen=True)
class Entry:
    """One cache entry: its lane, the test paths that need it, and how to check and build it."""

    name: str
    lane: str  # "go" (CPU-bound) or "disk" (network- and disk-bound)
    needed_by: tuple[str, ...]  # node-id prefixes of the integration tests that use it
    probe: Probe

    def is_built(self) -> bool:
        return self.probe[0]()

    def build(self) -> None:
        self.probe[1]()


_LAB = ("tests/check/", "tests/controlplane/", "tests/e2e/", "tests/lab/", "tests/operations/",
        "tests/removal/", "tests/tunnel/", "tests/vagrant/")

# in each lane, the order in which the suite (alphabetical by directory) first needs them
ENTRIES: tuple[Entry, ...] = (
    Entry("tailscale", "go", _LAB, _go("tailscale")),
    Entry("headscale", "go", _LAB, _go("headscale")),
    Entry(f"headscale-{HEADSCALE_028_VERSION}", "go", ("tests/controlplane/test_headscale_028.py",),
          _go("headscale", HEADSCALE_028_VERSION)),
    Entry("image-bookworm", "disk", _LAB, _image("bookworm")),
    Entry("image-trixie", "disk", ("tests/e2e/test_clients.py",), _image("trixie")),
    Entry("image-sid", "disk", ("tests/e2e/test_clients.py",), _image("sid")),
    Entry("stock-bookworm", "disk", ("tests/fresh/",), _tarball("bookworm")),
    Entry("stock-trixie", "disk", ("tests/fresh/",), _tarball("trixie")),
    Entry("kea-2.2", "disk", ("tests/kea/",), _kea("2.2")),
    Entry("kea-2.6", "disk", ("tests/kea/",), _kea("2.6")),
    Entry("kea-3.0", "disk", ("tests/kea/",), _kea("3.0")),
    # after the images: it waits for the Go build of tailscale, which the go lane is making
    Entry("apt-repository", "disk", _LAB, (aptrepo.is_built, aptrepo.ensure_repo)),
    Entry("vagrant-box", "disk", ("tests/vagrant/",), (box.is_built, box.ensure_box)),
)
BY_NAME = {e.name: e for e in ENTRIES}


def wanted(integration_nodeids: Iterable[str]) -> list[str]:
    """Names of the entries that the given integration tests need and the cache lacks."""
    ids = list(integration_nodeids)
    return [e.name for e in ENTRIES
            if any(i.startswith(p) for i in ids for p in e.needed_by) and not e.is_built()]


_stop = threading.Event()


def _run_lane(entries: list[Entry]) -> None:
    for e in entries:
        if _stop.is_set():
            print(f"prebuild: {e.name}: not started (the test session ended)", flush=True)
            continue
        t0 = time.monotonic()
        try:
            e.build()
        except Exception as exc:  # the fixture that needs it builds it again and fails there
            print(f"prebuild: {e.name}: FAILED after {time.monotonic() - t0:.0f} s: {exc}", flush=True)
        else:
            print(f"prebuild: {e.name}: ready in {time.monotonic() - t0:.0f} s", flush=True)


def run(names: list[str]) -> None:
    """Build `names` in their lanes, the lanes side by side, until `_stop` is set: then each
    lane finishes the entry it is building (a debootstrap killed half-way leaves mounts behind)."""
    lanes: dict[str, list[Entry]] = {}
    for name in names:
        lanes.setdefault(BY_NAME[name].lane, []).append(BY_NAME[name])
    threads = [threading.Thread(target=_run_lane, args=(entries,), name=lane) for lane, entries in lanes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: _stop.set())  # the test session ended: see run()
    if sys.argv[1:] == ["--list"]:
        for e in ENTRIES:
            print(f"{e.name:24} {e.lane:5} {'built' if e.is_built() else 'missing'}")
    else:
        run(sys.argv[1:] or [e.name for e in ENTRIES if not e.is_built()])
