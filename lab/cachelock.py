"""One builder per cache entry: two labs or test runs (other checkouts, a CI run beside a
developer's lab) may need the same image, Go build or apt repository at once; the first
builds it, the others wait on its lock file and then find it built."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def held(entry: Path) -> Iterator[None]:
    """Hold `entry`'s lock file (<entry>.lock beside it) for the block; the caller checks
    again inside the block whether another holder built the entry meanwhile."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
