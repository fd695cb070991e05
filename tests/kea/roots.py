"""Debian roots holding one Kea release each, built once with debootstrap and cached.

Why: users run the Kea their distribution ships (2.2 in bookworm, 2.6 in trixie,
3.0 in sid), and each release has its own rules (socket-dir modes, control-socket
vs control-sockets, config-write paths). The integration suite runs the same
scenarios against each, chrooted into these roots inside the test's namespaces.

The mirror is the one this machine's apt already uses (read from its sources at
run time), so the roots come from the same registry as every other package. The
cache key hashes suite, packages and build steps, like lab/image.py's image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.cachelock import held

PACKAGES = ("kea-dhcp4-server", "kea-ctrl-agent")
_BUILD_VERSION = "1"  # bump when the build steps change in a way the hash does not see


@dataclass(frozen=True)
class Release:
    """One Kea release as Debian ships it."""

    name: str        # "2.2", "2.6", "3.0": the pytest id
    suite: str       # the Debian suite that ships it
    extra: tuple[str, ...] = ()  # more packages in this root

    @property
    def packages(self) -> tuple[str, ...]:
        return PACKAGES + self.extra


# The 2.2 and 3.0 roots also have sshd: the Kea host that `kea.ssh` reaches (its CA, or on 3.0
# kea-dhcp4's own HTTP socket, on its loopback).
RELEASES = (Release("2.2", "bookworm", ("openssh-server",)), Release("2.6", "trixie"),
            Release("3.0", "sid", ("openssh-server",)))
BY_NAME = {r.name: r for r in RELEASES}


def cache_root() -> Path:
    """~/.cache/s2s/kea (S2S_CACHE overrides the ~/.cache/s2s part, as for the lab)."""
    base = Path(os.environ.get("S2S_CACHE") or Path.home() / ".cache" / "s2s")
    return base / "kea"


def host_mirror(sources: tuple[Path, ...] = (Path("/etc/apt/sources.list"),
                                            *sorted(Path("/etc/apt/sources.list.d").glob("*")))) -> str:
    """The Debian archive URI this machine's apt uses (the one serving bookworm main, not security).

    S2S_DEBIAN_MIRROR overrides it. Both one-line (`deb URI SUITE ...`) and deb822
    (`URIs:` / `Suites:`) source files are read; disabled files are skipped.
    """
    if os.environ.get("S2S_DEBIAN_MIRROR"):
        return os.environ["S2S_DEBIAN_MIRROR"]
    for path in sources:
        if not path.is_file() or not (path.name.endswith(".list") or path.name.endswith(".sources")):
            continue
        text = path.read_text(errors="replace")
        for uri in _debian_uris(text):
            return uri
    raise RuntimeError("no Debian archive found in this machine's apt sources "
                       "(set S2S_DEBIAN_MIRROR to the archive URI)")


def _debian_uris(text: str) -> list[str]:
    """Archive URIs in one sources file whose suites include a plain Debian release."""
    found: list[str] = []
    for line in text.splitlines():  # one-line format
        m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m and _plain_suite(m.group(2)):
            found.append(m.group(1))
    for stanza in re.split(r"\n\s*\n", text):  # deb822 format
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if fields.get("Types", "deb").split()[0:1] == ["deb"] and "URIs" in fields:
            if any(_plain_suite(s) for s in fields.get("Suites", "").split()):
                found.append(fields["URIs"].split()[0])
    return found


def _plain_suite(suite: str) -> bool:
    return suite in ("bookworm", "trixie", "sid", "stable", "testing", "unstable")


def root_key(release: Release) -> str:
    h = hashlib.sha256("\n".join((_BUILD_VERSION, release.suite, *release.packages)).encode())
    return h.hexdigest()[:12]


def root_path(release: Release) -> Path:
    return cache_root() / f"{release.suite}-{root_key(release)}"


def is_built(release: Release) -> bool:
    return (root_path(release) / "usr" / "sbin" / "kea-dhcp4").exists()


def ensure_root(release: Release, log=sys.stderr) -> Path:
    """The cached root for `release`, built first if missing (about 1-3 minutes each). A lock
    file keeps two test runs from building (and deleting each other's) partial roots."""
    root = root_path(release)
    if is_built(release):
        return root
    with held(root):
        if is_built(release):  # built by the run we waited for
            return root
        return _build(release, root, log)


def _build(release: Release, root: Path, log) -> Path:
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    print(f"building Kea {release.name} root ({release.suite}) with debootstrap", file=log, flush=True)
    proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(release.packages)}",
                           release.suite, str(tmp), host_mirror()],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap {release.suite} failed ({proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-1500:]}")
    for key in (tmp / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # shared by every test: each sshd gets its own host key at start
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (tmp / d).glob("*"):
            if f.is_file():
                f.unlink()
    tmp.rename(root)
    return root


def kea_version(root: Path) -> str:
    """`kea-dhcp4 -v` inside the root, e.g. "2.6.3"."""
    out = subprocess.run(["chroot", str(root), "/usr/sbin/kea-dhcp4", "-v"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().split()[0]


if __name__ == "__main__":  # python -m tests.kea.roots [2.2 2.6 3.0]: build (or show) the roots
    for name in sys.argv[1:] or [r.name for r in RELEASES]:
        path = ensure_root(BY_NAME[name])
        print(name, path, kea_version(path))
