"""The lab's apt repository: a signed Debian repo holding a tailscale .deb built from source,
and the few Debian packages the deploy installs that the lab image lacks (radvd).

Routers have no route out, so the router deploy installs Tailscale the way an
offline site would: from a local mirror signed with a key it was given. The
.deb wraps the go-built tailscale/tailscaled binaries with a systemd unit that
keeps tailscaled off Tailscale's log servers. Key and repo are cached (the key
once, the repo per Tailscale version), so a warm `up` only serves them.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from lab import gobuild
from lab.cachelock import held
from lab.paths import lab_cache
from lab.progress import step
from lab.sh import LabError, run
from lab.versions import TAILSCALE_VERSION

SUITE = "bookworm"
COMPONENT = "main"
KEY_UID = "s2s lab apt repository <lab@s2s.invalid>"
# Debian's own packages the router deploy installs from the mirror (routers have no route out):
# radvd for IPv6 route advertisements (operations/radvd.py), and its lsb-base dependency for
# suites whose image has none. Fetched once with this machine's apt (`apt-get download`).
DEBIAN_PACKAGES = ("radvd", "lsb-base")

UNIT = """\
[Unit]
Description=Tailscale node agent (s2s lab package)
Documentation=https://tailscale.com/kb/
Wants=network-pre.target
After=network-pre.target

[Service]
EnvironmentFile=-/etc/default/tailscaled
Environment=TS_NO_LOGS_NO_SUPPORT=true
ExecStart=/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state \\
  --socket=/run/tailscale/tailscaled.sock --port=${PORT} --no-logs-no-support $FLAGS
ExecStopPost=/usr/sbin/tailscaled --cleanup
Restart=on-failure
RuntimeDirectory=tailscale
RuntimeDirectoryMode=0755
StateDirectory=tailscale
StateDirectoryMode=0700
CacheDirectory=tailscale
CacheDirectoryMode=0750
Type=notify

[Install]
WantedBy=multi-user.target
"""

DEFAULTS = """\
# Set the port to listen on for incoming VPN packets (0 = automatic).
PORT="41641"
# Extra flags for tailscaled.
FLAGS=""
# Never send logs to Tailscale's log servers (lab hosts have no route out anyway).
TS_NO_LOGS_NO_SUPPORT=true
# The lab's Headscale serves its embedded DERP relay over plain HTTP (there is no TLS
# certificate in the lab): without this, relaying fails and the first packets between
# sites wait for the direct path (seconds).
TS_DEBUG_USE_DERP_HTTP=true
"""

POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = "configure" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable tailscaled.service >/dev/null
    systemctl restart tailscaled.service
fi
"""

PRERM = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
    systemctl disable --now tailscaled.service >/dev/null || true
fi
"""

POSTRM = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
"""


def gnupg_home() -> Path:
    """The lab signing key's GnuPG home (generated once, kept in the cache)."""
    return lab_cache() / "gnupg"


def _gpg(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(["gpg", "--batch", "--quiet", "--homedir", str(gnupg_home()), *args], input=input)


def ensure_key() -> str:
    """Create the lab signing key once; return its armored public key."""
    home = gnupg_home()
    if not (home / "public.asc").exists():
        with step("generating the lab apt signing key (first run only)"):
            if home.exists():
                shutil.rmtree(home)
            home.mkdir(parents=True, mode=0o700)
            _gpg(
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                KEY_UID,
                "ed25519",
                "sign",
                "never",
            )
            pub = _gpg("--armor", "--export", KEY_UID).stdout
            (home / "public.asc").write_text(pub)
            _stop_agent()
    return (home / "public.asc").read_text()


def _stop_agent() -> None:
    """gpg starts an agent per home; stop ours so the lab leaves no process behind."""
    run(["gpgconf", "--homedir", str(gnupg_home()), "--kill", "all"], check=False)


def deb_version() -> str:
    """Debian version of the packaged Tailscale (v1.100.0 -> 1.100.0)."""
    return TAILSCALE_VERSION.lstrip("v")


def _arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def repo_dir() -> Path:
    """Cached repository for the pinned Tailscale version and this packaging."""
    h = hashlib.sha256(
        "\0".join(
            (UNIT, DEFAULTS, POSTINST, PRERM, POSTRM, "2", gobuild.build_id("tailscale"), *DEBIAN_PACKAGES)
        ).encode()
    )
    return lab_cache() / f"apt-tailscale-{deb_version()}-{h.hexdigest()[:10]}"


def is_built() -> bool:
    """Whether the signed repository for this tailscale build is in the cache."""
    return (repo_dir() / "dists" / SUITE / "InRelease").exists()


def ensure_repo() -> Path:
    """Build the .deb and the signed repo unless cached; return the repo root to serve."""
    repo = repo_dir()
    with held(lab_cache() / "gnupg"):
        ensure_key()
    if is_built():
        return repo
    tailscale = gobuild.binary("tailscale")
    tailscaled = gobuild.binary("tailscaled")
    with held(repo):
        if not is_built():
            _build_repo(repo, tailscale, tailscaled)
    return repo


def _build_repo(repo: Path, tailscale: Path, tailscaled: Path) -> None:
    """Build the repository beside `repo` and rename it into place whole (a killed build
    leaves only the .partial, which the next build removes)."""
    tmp = repo.with_name(repo.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    with step(f"building tailscale {deb_version()} .deb and signed apt repository"):
        arch = _arch()
        pool = tmp / "pool" / COMPONENT / "t" / "tailscale"
        pool.mkdir(parents=True)
        _build_deb(tmp / "build", tailscale, tailscaled, arch, pool / f"tailscale_{deb_version()}_{arch}.deb")
        shutil.rmtree(tmp / "build")
        for package in DEBIAN_PACKAGES:
            deb = debian_deb(package)
            dest = tmp / "pool" / COMPONENT / package[0] / package
            dest.mkdir(parents=True, exist_ok=True)
            # no epoch in the pool's file name: apt would ask for it URL-quoted (%3a)
            shutil.copy2(deb, dest / re.sub(r"_\d+%3[aA]", "_", deb.name))
        _index(tmp, arch)
        _stop_agent()
    tmp.rename(repo)


def debian_deb(package: str) -> Path:
    """Debian's .deb of `package` for this machine's release, downloaded once into the cache."""
    d = lab_cache() / "debian-debs"
    d.mkdir(parents=True, exist_ok=True)
    with held(d / package):
        found = sorted(d.glob(f"{package}_*.deb")) or _download_deb(package, d)
    if not found:
        raise LabError(f"apt-get download {package} left no .deb")
    return found[-1]


def _download_deb(package: str, d: Path) -> list[Path]:
    """apt-get download into a scratch directory, then move the .deb into the cache."""
    with step(f"fetching Debian's {package} package for the lab mirror (first run only)"):
        tmp = d / f".{package}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        run(["apt-get", "download", package], cwd=tmp)
        for deb in tmp.glob(f"{package}_*.deb"):
            deb.rename(d / deb.name)
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(d.glob(f"{package}_*.deb"))


def _build_deb(root: Path, tailscale: Path, tailscaled: Path, arch: str, out: Path) -> None:
    """Lay out the package tree and run dpkg-deb (root-owned files)."""
    files = {
        "usr/bin/tailscale": (tailscale.read_bytes(), 0o755),
        "usr/sbin/tailscaled": (tailscaled.read_bytes(), 0o755),
        "lib/systemd/system/tailscaled.service": (UNIT.encode(), 0o644),
        "etc/default/tailscaled": (DEFAULTS.encode(), 0o644),
        "DEBIAN/postinst": (POSTINST.encode(), 0o755),
        "DEBIAN/prerm": (PRERM.encode(), 0o755),
        "DEBIAN/postrm": (POSTRM.encode(), 0o755),
        "DEBIAN/conffiles": (b"/etc/default/tailscaled\n", 0o644),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    size_kb = (len(files["usr/bin/tailscale"][0]) + len(files["usr/sbin/tailscaled"][0])) // 1024
    control = (
        f"Package: tailscale\nVersion: {deb_version()}\nArchitecture: {arch}\n"
        "Maintainer: s2s lab <lab@s2s.invalid>\nSection: net\nPriority: optional\n"
        f"Installed-Size: {size_kb}\nDepends: iptables, iproute2\n"
        "Description: Tailscale client and daemon (built from source for the s2s lab)\n"
        " tailscale and tailscaled built with go install at the pinned release,\n"
        " packaged for the lab's offline apt mirror.\n"
    )
    (root / "DEBIAN" / "control").write_text(control)
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)])


def _index(repo: Path, arch: str) -> None:
    """Packages, Release, InRelease and Release.gpg, laid out like a normal Debian mirror."""
    bindir = repo / "dists" / SUITE / COMPONENT / f"binary-{arch}"
    bindir.mkdir(parents=True)
    packages = run(
        ["apt-ftparchive", "packages", f"pool/{COMPONENT}"], input=None, capture=True, check=True, cwd=repo
    ).stdout
    (bindir / "Packages").write_text(packages)
    with gzip.open(bindir / "Packages.gz", "wt") as f:
        f.write(packages)
    dist = repo / "dists" / SUITE
    release = run(
        [
            "apt-ftparchive",
            "-o",
            "APT::FTPArchive::Release::Origin=s2s-lab",
            "-o",
            "APT::FTPArchive::Release::Label=s2s-lab",
            "-o",
            f"APT::FTPArchive::Release::Suite={SUITE}",
            "-o",
            f"APT::FTPArchive::Release::Codename={SUITE}",
            "-o",
            f"APT::FTPArchive::Release::Architectures={arch}",
            "-o",
            f"APT::FTPArchive::Release::Components={COMPONENT}",
            "release",
            str(dist),
        ]
    ).stdout
    (dist / "Release").write_text(release)
    _gpg("--yes", "--local-user", KEY_UID, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release"))
    _gpg(
        "--yes",
        "--local-user",
        KEY_UID,
        "--armor",
        "--detach-sign",
        "--output",
        str(dist / "Release.gpg"),
        str(dist / "Release"),
    )


if __name__ == "__main__":
    print(ensure_repo())
