"""The lab's Debian images, one per suite: built once with debootstrap, cached, shared read-only.

Every package is baked in because lab hosts have no route out; hosts get an
overlayfs layer on top, so an image never changes once built. The cache key
is a hash of the suite, its package list and the tweaks below, so editing
either builds a new image beside the old one.

Suites: bookworm (Debian 12, Kea 2.2), trixie (Debian 13, Kea 2.6, nftables-era
iptables), sid (Kea 3.0, kea-ctrl-agent still shipped). The Debian archive is
the one this machine's apt already uses, read from its sources at run time
(S2S_DEBIAN_MIRROR overrides it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from lab.cachelock import held
from lab.paths import lab_cache
from lab.progress import step
from lab.sh import LabError, run

SUITE = "bookworm"  # the default suite of every host
SUITES = ("bookworm", "trixie", "sid")

PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iptables", "iproute2",
    "kea-dhcp4-server", "kea-ctrl-agent", "ca-certificates", "gnupg", "curl", "ethtool",
    "iperf3", "procps", "iputils-ping", "netbase", "less", "kmod",
    "tcpdump", "sqlite3", "sudo",
    # DHCP clients a lab client host may run (systemd-networkd ships in the systemd package)
    "dhcpcd-base",
    # VRRP for HA sites: routers have no route out, so the deploy's install finds it in place
    "keepalived",
    # Static-address LAN hosts' network managers (topology `static_hosts`; networkd is in systemd)
    "network-manager", "ifupdown", "netplan.io",
    "libpam-systemd",  # provides logind, which polkitd (a dependency of network-manager) needs
)
# Per suite: packages only some suites have (sid no longer ships ISC dhclient).
SUITE_PACKAGES: dict[str, tuple[str, ...]] = {
    "bookworm": ("isc-dhcp-client",),
    "trixie": ("isc-dhcp-client",),
    "sid": (),
}

# Files written into the image after debootstrap (path -> content).
TWEAKS: dict[str, str] = {
    # No network out of the lab: an apt source on the internet only makes `apt-get update` fail.
    "etc/apt/sources.list": "",
    # Per-host ed25519 host key is written at host creation; key-only root login.
    "etc/ssh/sshd_config.d/lab.conf": (
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "UseDNS no\n"
    ),
    # Keep the journal in memory and small: five hosts share 2 cores and one disk.
    "etc/systemd/journald.conf.d/lab.conf": "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n",
    "etc/hostname": "lab\n",
}
# Units the image ships enabled that only some hosts want (the gateway re-enables Kea,
# a networkd client re-enables systemd-networkd).
DISABLE = ("kea-dhcp4-server.service", "kea-ctrl-agent.service", "iperf3.service",
           "ssh.socket", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service",
           "systemd-networkd.service", "systemd-networkd.socket", "dhcpcd.service",
           "keepalived.service",
           "NetworkManager.service", "NetworkManager-wait-online.service",
           "NetworkManager-dispatcher.service", "networking.service")
MASK = ("systemd-networkd-wait-online.service", "getty@tty1.service")

_VERSION = "4"  # bump when the build steps change in a way the hash does not see


def packages(suite: str = SUITE) -> tuple[str, ...]:
    """Everything debootstrap installs into the image of `suite`."""
    return PACKAGES + SUITE_PACKAGES[suite]


def image_key(suite: str = SUITE) -> str:
    """Content hash naming the cached image of `suite`."""
    h = hashlib.sha256()
    h.update("\n".join((_VERSION, suite, *packages(suite), *DISABLE, *MASK)).encode())
    for path, text in sorted(TWEAKS.items()):
        h.update(f"{path}\0{text}\0".encode())
    return h.hexdigest()[:12]


def image_root(suite: str = SUITE) -> Path:
    """Where the image of `suite` for the current package list lives (may not exist yet)."""
    return lab_cache() / f"image-{suite}-{image_key(suite)}"


def host_mirror(sources: tuple[Path, ...] | None = None) -> str:
    """The Debian archive URI this machine's apt uses (S2S_DEBIAN_MIRROR overrides it).

    Read at run time so no registry host name is written into the project: one-line
    (`deb URI SUITE`) and deb822 (`URIs:`/`Suites:`) files, the first source serving a
    plain Debian release (not -security, -updates).
    """
    if os.environ.get("S2S_DEBIAN_MIRROR"):
        return os.environ["S2S_DEBIAN_MIRROR"]
    if sources is None:
        sources = (Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*")))
    plain = {"bookworm", "trixie", "sid", "stable", "testing", "unstable"}
    for path in sources:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        text = path.read_text(errors="replace")
        for m in re.finditer(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) in plain:
                return m.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "deb").split() and "URIs" in fields \
                    and plain & set(fields.get("Suites", "").split()):
                return fields["URIs"].split()[0]
    raise LabError("no Debian archive in this machine's apt sources (set S2S_DEBIAN_MIRROR)")


def is_built(suite: str = SUITE) -> bool:
    """Whether the image of `suite` for the current package list is in the cache (debootstrap done)."""
    return (image_root(suite) / "etc" / "os-release").exists()


def ensure_image(suite: str = SUITE) -> Path:
    """Return the cached image of `suite`, building it with debootstrap first if needed (~1-3 min).

    A lock file keeps two labs (other checkouts) from building the same image at once.
    """
    if suite not in SUITES:
        raise LabError(f"unknown Debian suite {suite!r} (choose from {', '.join(SUITES)})")
    root = image_root(suite)
    if is_built(suite):
        return root
    with held(root):
        if is_built(suite):
            return root
        tmp = root.with_name(root.name + ".partial")
        if tmp.exists():
            _unmount_below(tmp)  # a debootstrap killed mid-way leaves its chroot's /proc and /sys mounted
            shutil.rmtree(tmp)
        with step(f"building Debian {suite} image with debootstrap (first run only)"):
            run(["debootstrap", "--variant=minbase", f"--include={','.join(packages(suite))}",
                 suite, str(tmp), host_mirror()], capture=True)
            _customise(tmp)
        tmp.rename(root)
    return root


def _unmount_below(path: Path) -> None:
    """Lazily unmount every mount at or below `path`, deepest first."""
    prefix = str(path.resolve())
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        run(["umount", "-l", point], check=False)


def _customise(root: Path) -> None:
    """Apply TWEAKS, drop shared host keys, set unit states, clean apt caches."""
    for rel, text in TWEAKS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # every host gets its own at creation
    for unit in DISABLE:  # one by one: a unit one suite lacks must not keep the others enabled
        run(["systemctl", f"--root={root}", "disable", unit], check=False)
    run(["systemctl", f"--root={root}", "mask", *MASK], check=False)
    run(["systemctl", f"--root={root}", "enable", "ssh.service"], check=False)
    run(["systemctl", f"--root={root}", "set-default", "multi-user.target"])
    (root / "etc" / "machine-id").write_text("")  # systemd generates one per boot
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (root / d).glob("*"):
            if f.is_file():
                f.unlink()


if __name__ == "__main__":  # python -m lab.image [SUITE...]: build (or show) the images
    import sys
    for name in sys.argv[1:] or [SUITE]:
        print(ensure_image(name))
