"""What the lab needs from the machine, checked up front so a missing piece is named, not a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab import gobuild, image

# Debian packages providing the commands below (the lead adds these to .ci/run).
DEBIAN_PACKAGES = ("systemd-container", "debootstrap", "socat", "isc-dhcp-client", "util-linux",
                   "iproute2", "dpkg-dev", "apt-utils", "gnupg", "openssh-client")

_COMMANDS = ("systemd-nspawn", "socat", "dhclient", "nsenter", "ip", "dpkg-deb",
             "apt-ftparchive", "gpg", "gpgconf", "ssh", "ssh-keygen", "systemctl", "mount")


def missing_prerequisites() -> list[str]:
    """Names of what is missing (empty when the lab can be built and started here)."""
    missing = [] if os.geteuid() == 0 else ["root"]
    missing += [c for c in _COMMANDS if shutil.which(c) is None]
    if not image.is_built() and shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    bins = gobuild.cache_dir() / "bin"
    if not any(bins.glob("headscale-*")) and gobuild.go_command() is None:
        missing.append("go (to build tailscale/headscale)")
    if not Path("/dev/net/tun").exists():
        missing.append("/dev/net/tun")
    return missing
