"""The lab's SSH client key, per-host SSH host keys, known_hosts and secret files.

Keys are made once per .lab/ directory and reused across down/up, so the
pre-written known_hosts stays valid and SSH can check host keys for real.
Secrets are files with mode 0600 in a 0700 directory; nothing here prints them.
"""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from lab.paths import lab_dir, secrets_dir
from lab.sh import run

# The lab's secret files (names under secrets_dir()): Headscale's API key, the routers'
# pre-auth key and one Kea Control Agent password per site.
API_KEY_SECRET = "headscale-api-key"
AUTH_KEY_SECRET = "tailnet-auth-key"


def kea_secret(site: str) -> str:
    return f"kea-{site}-password"


def client_key() -> Path:
    """The lab's private key (ed25519, no passphrase); its .pub goes into every host."""
    key = lab_dir() / "id_ed25519"
    if not key.exists():
        lab_dir().mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "s2s-lab", "-f", str(key)])
    return key


def host_key(name: str) -> tuple[str, str]:
    """(private, public) ed25519 host key of one lab host, stable across rebuilds."""
    d = lab_dir() / "hostkeys"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = d / f"{name}_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])
    return key.read_text(), Path(f"{key}.pub").read_text()


def write_known_hosts(names: list[str]) -> Path:
    """known_hosts naming each host by its SSH alias (the HostName in the lab's ssh_config)."""
    path = lab_dir() / "known_hosts"
    lines = []
    for name in names:
        kind, blob = host_key(name)[1].split()[:2]
        lines.append(f"{name} {kind} {blob}")
    path.write_text("\n".join(lines) + "\n")
    return path


def secret_path(name: str) -> Path:
    d = secrets_dir()
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    return d / name


def write_secret(name: str, value: str) -> Path:
    """Write a secret with mode 0600 from the start (never world-readable, not even briefly)."""
    path = secret_path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value.strip() + "\n")
    path.chmod(0o600)
    return path


def read_secret(name: str) -> str | None:
    path = secret_path(name)
    return path.read_text().strip() if path.exists() else None


def new_password() -> str:
    return _secrets.token_urlsafe(24)
