"""Progress lines on stderr for the long steps, so `up` never looks hung."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

QUIET = False


def say(msg: str) -> None:
    """One progress line (stderr keeps stdout for machine-readable output)."""
    if not QUIET:
        print(f"lab: {msg}", file=sys.stderr, flush=True)


@contextmanager
def step(msg: str) -> Iterator[None]:
    """Announce a step and report how long it took."""
    say(f"{msg} ...")
    t0 = time.monotonic()
    yield
    say(f"{msg}: done in {time.monotonic() - t0:.1f}s")
