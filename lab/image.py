"""The lab's Debian bookworm image: built once with debootstrap, cached, shared read-only.

Every package is baked in because lab hosts have no route out; hosts get an
overlayfs layer on top, so the image itself never changes once built. The
cache key is a hash of the package list and the tweaks below, so editing
either builds a new image beside the old one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from lab.paths import lab_cache
from lab.progress import step
from lab.sh import run

SUITE = "bookworm"
MIRROR = os.environ.get("S2S_DEBIAN_MIRROR", "http://deb.debian.org/debian")

PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iptables", "iproute2",
    "kea-dhcp4-server", "kea-ctrl-agent", "ca-certificates", "gnupg", "curl", "ethtool",
    "isc-dhcp-client", "iperf3", "procps", "iputils-ping", "netbase", "less", "kmod",
    "tcpdump", "sqlite3", "sudo",
)

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
# Units the image ships enabled that only some hosts want (the gateway re-enables Kea).
DISABLE = ("kea-dhcp4-server.service", "kea-ctrl-agent.service", "iperf3.service",
           "ssh.socket", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service")
MASK = ("systemd-networkd-wait-online.service", "getty@tty1.service")

_VERSION = "3"  # bump when the build steps change in a way the hash does not see


def image_key() -> str:
    """Content hash naming the cached image."""
    h = hashlib.sha256()
    h.update("\n".join((_VERSION, SUITE, *PACKAGES, *DISABLE, *MASK)).encode())
    for path, text in sorted(TWEAKS.items()):
        h.update(f"{path}\0{text}\0".encode())
    return h.hexdigest()[:12]


def image_root() -> Path:
    """Where the image for the current package list lives (may not exist yet)."""
    return lab_cache() / f"image-{SUITE}-{image_key()}"


def ensure_image() -> Path:
    """Return the cached image, building it with debootstrap first if needed (~1-3 min)."""
    root = image_root()
    if (root / "etc" / "os-release").exists():
        return root
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with step(f"building Debian {SUITE} image with debootstrap (first run only)"):
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             SUITE, str(tmp), MIRROR], capture=True)
        _customise(tmp)
    tmp.rename(root)
    return root


def _customise(root: Path) -> None:
    """Apply TWEAKS, drop shared host keys, set unit states, clean apt caches."""
    for rel, text in TWEAKS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # every host gets its own at creation
    run(["systemctl", f"--root={root}", "disable", *DISABLE], check=False)
    run(["systemctl", f"--root={root}", "mask", *MASK], check=False)
    run(["systemctl", f"--root={root}", "enable", "ssh.service"], check=False)
    run(["systemctl", f"--root={root}", "set-default", "multi-user.target"])
    (root / "etc" / "machine-id").write_text("")  # systemd generates one per boot
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (root / d).glob("*"):
            if f.is_file():
                f.unlink()


if __name__ == "__main__":
    print(ensure_image())
