"""A stock Debian 12 or 13 machine for the fresh-set-up test and bench: a debootstrap root in a chroot.

The pristine root (minbase + git, ca-certificates, python3: what the README assumes a
new user has) is built once and cached as a tarball under ~/.cache/s2s, like the lab's
image; every run unpacks a fresh copy, so nothing one run installed leaks into the next.
The chroot shares this machine's network namespace: it only talks to the package
registries (Debian's archive on the mirror the host's apt uses, PyPI, the Go module proxy).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.cachelock import held

REPO = Path(__file__).resolve().parents[2]
# The Debian releases the README's commands are tested on: code name -> (version, Python)
RELEASES: dict[str, tuple[str, str]] = {"bookworm": ("12", "3.11"), "trixie": ("13", "3.13")}
SUITE = "bookworm"  # the default release
INCLUDE = ("git", "ca-certificates", "python3")
_VERSION = "1"  # bump when the build below changes in a way the key does not see

# Inside the chroot: a login-like clean environment, nothing from this machine's (pip
# config, pyenv, Go) so the run sees only what a stock Debian has.
CLEAN_ENV = {
    "HOME": "/root",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}


def cache_dir() -> Path:
    """Same cache root as the lab and the Go builds (S2S_CACHE, else ~/.cache/s2s)."""
    base = os.environ.get("S2S_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "s2s")
    return Path(base) / "fresh"


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (scripts/debian_mirror.py, shared with setup)."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "debian_mirror.py")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def tarball_path(suite: str = SUITE) -> Path:
    key = hashlib.sha256("\n".join((_VERSION, suite, *INCLUDE)).encode()).hexdigest()[:12]
    return cache_dir() / f"{suite}-minbase-{key}.tar"


def is_built(suite: str = SUITE) -> bool:
    """Whether the pristine tarball of `suite` is in the cache."""
    return tarball_path(suite).exists()


def debootstrap(root: Path, mirror: str | None = None, suite: str = SUITE) -> float:
    """Build a pristine root of `suite` at `root` (must not exist); returns the seconds it took."""
    start = time.monotonic()
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                    suite, str(root), mirror or host_mirror()],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):  # as a new machine: no lists yet
        for f in (root / d).glob("*"):
            if f.is_file():
                f.unlink()
    return time.monotonic() - start


def pristine_tarball(suite: str = SUITE) -> Path:
    """The cached pristine root of `suite` as a tarball, built with debootstrap on first use."""
    tar = tarball_path(suite)
    if is_built(suite):
        return tar
    with held(tar), tempfile.TemporaryDirectory(dir=tar.parent) as tmp:
        if is_built(suite):  # built by the run we waited for
            return tar
        root = Path(tmp) / "root"
        debootstrap(root, suite=suite)
        partial = tar.with_name(tar.name + ".partial")
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tar)
    return tar


def unpack(tar: Path, root: Path) -> None:
    """A fresh copy of the pristine root at `root`."""
    root.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-xf", str(tar)], check=True)


def _pem_blocks(bundle: Path) -> set[str]:
    text = bundle.read_text() if bundle.exists() else ""
    return set(re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S))


def trust_host_cas(root: Path) -> int:
    """Trust the CAs this machine trusts beyond Debian's own (a network may inspect TLS with
    its own CA): each becomes a local CA in the root, which update-ca-certificates keeps.
    Returns how many were added."""
    bundle = "etc/ssl/certs/ca-certificates.crt"
    extra = sorted(_pem_blocks(Path("/") / bundle) - _pem_blocks(root / bundle))
    local = root / "usr" / "local" / "share" / "ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for i, pem in enumerate(extra):
        (local / f"host-{i}.crt").write_text(pem + "\n")
    if extra:
        subprocess.run(["chroot", str(root), "update-ca-certificates"], env=CLEAN_ENV, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return len(extra)


def prepare(root: Path) -> None:
    """What this machine has that a bare root lacks: name resolution (the host's resolv.conf),
    the CAs it trusts, and a policy-rc.d that keeps maintainer scripts from starting services."""
    trust_host_cas(root)
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    shutil.copyfile("/etc/resolv.conf", resolv)
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def clone(root: Path, dest: str = "/root/s2s") -> str:
    """Clone this repository (its committed HEAD, as a user would get it) into the root."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(root / dest.lstrip("/"))],
                   check=True)
    return dest


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


# Mounted inside a private mount namespace (unshare), so they are never visible on this
# machine and vanish with the last process in the chroot, even if the test is killed.
_MOUNTS = """set -e
mount -t proc proc "$1/proc"
mount -t sysfs -o ro sysfs "$1/sys"
mount --rbind /dev "$1/dev"
mount -t tmpfs -o mode=755 tmpfs "$1/run"
root=$1; shift
exec chroot "$root" /bin/bash -c "$@"
"""


def unmount_all(root: Path) -> None:
    """Unmount everything below `root`; raises if anything is left mounted."""
    for point in mounts_under(root):
        if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", point], check=False)
    left = mounts_under(root)
    if left:
        raise RuntimeError(f"still mounted under {root}: {left}")


def remove(root: Path) -> None:
    """Delete a root, never through a mount (a bind-mounted /dev must not be emptied)."""
    unmount_all(root)
    shutil.rmtree(root, ignore_errors=True)


def run_in(root: Path, script: str, timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a bash script as root inside the chroot (proc, sys, dev with dev/pts, a tmpfs /run)
    with a clean environment; returns (exit code, stdout+stderr). On timeout every process
    of the run is killed and the exit code is -9."""
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNTS, "mounts",
                             str(root), script], env={**CLEAN_ENV, **(env or {})}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        return -9, out + f"\n(killed after {timeout:.0f} s)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)  # the run's process group: anything it left behind
        proc.wait()
