"""One policy writer at a time per control server, among the deploys started on this machine.

Why: Headscale's policy API has no ETag, so its read-modify-write can only re-read and
compare (controlplane.headscale); two deploys started together on one machine (an
operator's, a CI runner's) would each compare in the other's window. An advisory lock
(flock) on a file named after the control server closes that: the second deploy waits
for the first one's write, then reads what it wrote, and refuses in one line after
LOCK_WAIT. The lock dies with its process (a SIGKILLed deploy leaves no stale lock).
Deploys from other machines and hand edits are covered by the compare alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.model import ControlPlaneError
from sites.model import SiteModel

LOCK_WAIT = 120.0  # seconds a second deploy waits: a policy write is a few calls of at most 15 s
LOCK_POLL = 0.2  # non-blocking tries, so pyinfra's other greenlets run meanwhile
LOCK_DIR_ENV = "S2S_LOCK_DIR"


class PolicyLockBusy(ControlPlaneError):
    """Another deploy of this machine held the policy lock for longer than the wait."""


def lock_key(model: SiteModel) -> str:
    """The control server as the site file reaches it: two site files naming the same server
    the same way share one lock (the SSH config tells apart labs that reuse a host name)."""
    tailnet = model.tailnet
    config = str(Path(model.ssh.config_file).resolve()) if model.ssh.config_file else ""
    return "\n".join((tailnet.backend, tailnet.url.rstrip("/"), tailnet.ssh or "", config))


def lock_dir() -> Path:
    """$S2S_LOCK_DIR, else the user's runtime directory, else a private one under /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    default = Path(runtime) / "s2s" if runtime else Path(f"/tmp/s2s-locks-{os.getuid()}")
    path = Path(os.environ.get(LOCK_DIR_ENV) or default)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def lock_path(key: str) -> Path:
    return lock_dir() / f"policy-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "another process"


@contextmanager
def policy_lock(key: str, shown: str, *, wait: float = LOCK_WAIT,
                on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the policy lock of the control server `key` (named `shown` in messages).

    + wait: seconds to wait for another holder before PolicyLockBusy (one line)
    + on_wait: told once, with the holder, when the lock is taken by someone else
    """
    path = lock_path(key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not told and on_wait is not None:
                    on_wait(f"waiting for another deploy's policy write on {shown} "
                            f"({holder}, lock {path})")
                    told = True
                if time.monotonic() >= deadline:
                    raise PolicyLockBusy(
                        f"policy of {shown}: another deploy ({holder}) held the policy lock "
                        f"{path} for over {wait:g}s; nothing was changed by this step, "
                        "re-run when it is done"
                    ) from None
                time.sleep(LOCK_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
