"""Failpoints: named points of a deploy where the fault suite holds it to inject a fault for real.

Why: some faults only matter at one instant (kea-dhcp4 restarted between config-set and
config-write, a deploy SIGKILLed just before the policy PUT); a timer cannot hit that
instant. With S2S_FAILPOINT=NAME[,NAME...] and S2S_FAILPOINT_DIR=DIR set, a process reaching
NAME writes DIR/NAME.reached (its pid) and waits for DIR/NAME.go (at most HOLD seconds): the
suite restarts Kea, kills the deploy, ... and then lets it go on. Unset (every run outside
the suite) a failpoint costs one environment lookup and does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV, DIR_ENV = "S2S_FAILPOINT", "S2S_FAILPOINT_DIR"
HOLD = 300.0  # never hang a run for good, even if the suite went away
POLL = 0.1

KEA_AFTER_SET = "kea-after-config-set"  # dhcp.push: the new config runs, config-write not sent yet
POLICY_BEFORE_PUT = "policy-before-put"  # controlplane.headscale: re-read done, the PUT next
TAILSCALE_CLI = "tailscale-before-up-or-set"  # operations.tailscale: `tailscale up`/`set` is next


def armed(name: str) -> bool:
    """Whether the suite asked for `name` (a step then adds the failpoint's hold; else nothing)."""
    wanted = os.environ.get(ENV)
    return bool(wanted) and name in wanted.split(",")


def file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def reached(name: str) -> None:
    """Hold here if the suite asked for `name`; return at once otherwise."""
    if not armed(name):
        return
    where = Path(os.environ.get(DIR_ENV) or ".")
    (where / f"{file_name(name)}.reached").write_text(f"{os.getpid()}\n")
    go = where / f"{file_name(name)}.go"
    deadline = time.monotonic() + HOLD
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(POLL)  # gevent's under pyinfra: the other hosts go on meanwhile
