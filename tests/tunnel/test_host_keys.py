"""The tunnel's SSH connections check host keys like pyinfra's deploy does (a real sshd).

The Debian sshd of the lab image runs chrooted in an overlay of that image, in a
network namespace of ours (tests.support), listening on the namespace's
loopback only; the client reaches it through a ProxyCommand (`ip netns exec ...
socat`), so no packet leaves the namespace's loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Namespaces, need, netns_prerequisites, sh, wait_for
from tunnel import TunnelError, forwarded_url, open_transport

pytestmark = pytest.mark.integration
ALIAS = "tun-target"


@dataclass
class Sshd:
    ns: str
    tmp: Path
    host_pub: str  # "ssh-ed25519 AAAA..." of the running sshd
    key: Path  # the client's identity

    def config(self, name: str, *, known_hosts: str, strict: str | None = None, identity: bool = True) -> Path:
        """An ssh_config for the alias, with `known_hosts` as its UserKnownHostsFile text."""
        known = self.tmp / f"{name}.known_hosts"
        known.write_text(known_hosts)
        lines = [f"Host {ALIAS}", f"  HostName {ALIAS}", "  User root",
                 *([f"  IdentityFile {self.key}", "  IdentitiesOnly yes"] if identity else []),
                 f"  UserKnownHostsFile {known}",
                 f"  ProxyCommand ip netns exec {self.ns} socat STDIO TCP:127.0.0.1:22"]
        if strict:
            lines.append(f"  StrictHostKeyChecking {strict}")
        path = self.tmp / f"{name}.ssh_config"
        path.write_text("\n".join(lines) + "\n")
        return path


def _image() -> Path | None:
    from lab.image import ensure_image, image_root

    root = image_root()
    if not (root / "usr/sbin/sshd").exists() and shutil.which("debootstrap"):
        root = ensure_image()
    return root if (root / "usr/sbin/sshd").exists() else None


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[Sshd]:
    need(netns_prerequisites("socat", "ssh-keygen"))
    image = _image()
    need(None if image else "no lab image with sshd (python -m lab up builds it)")
    tmp = tmp_path_factory.mktemp("sshd")
    upper, work, root = tmp / "upper", tmp / "work", tmp / "root"
    for d in (upper, work, root):
        d.mkdir()
    sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={image},upperdir={upper},workdir={work}", str(root))
    spaces = Namespaces("tun")
    proc = None
    try:
        host_key = root / "etc/ssh/s2s_test_host_ed25519_key"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        key = tmp / "id_ed25519"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        dot_ssh = root / "root/.ssh"
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        (dot_ssh / "authorized_keys").write_text((tmp / "id_ed25519.pub").read_text())
        (dot_ssh / "authorized_keys").chmod(0o600)
        (root / "run/sshd").mkdir(parents=True, exist_ok=True)
        ns = spaces.add("sshd")
        log = open(tmp / "sshd.log", "w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "chroot", str(root), "/usr/sbin/sshd", "-D", "-e",
             "-o", "ListenAddress=127.0.0.1", "-o", "HostKey=/etc/ssh/s2s_test_host_ed25519_key",
             "-o", "PermitRootLogin=prohibit-password", "-o", "UsePAM=no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("sshd banner", lambda: "SSH-2.0" in sh(
            "socat", "-T2", "STDIO", "TCP:127.0.0.1:22", ns=ns, check=False, timeout=5).stdout, timeout=20)
        pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
        yield Sshd(ns, tmp, pub, key)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        spaces.delete()
        subprocess.run(["umount", str(root)], capture_output=True)


def test_known_host_key_connects_and_forwards(sshd):
    config = sshd.config("known", known_hosts=f"{ALIAS} {sshd.host_pub}\n")
    client = open_transport(ALIAS, config)
    try:
        with forwarded_url("http://127.0.0.1:22/", ALIAS, transport=client.get_transport()) as url:
            port = int(url.rsplit(":", 1)[1].strip("/"))
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                assert s.recv(64).startswith(b"SSH-2.0-")  # the sshd's own banner, through the forward
    finally:
        client.close()


def test_key_file_of_the_site_file_is_used(sshd, tmp_path):
    """[ssh] key_file, as pyinfra's ssh_key: that key only (no agent, no default keys)."""
    config = sshd.config("key-file", known_hosts=f"{ALIAS} {sshd.host_pub}\n", identity=False)
    with pytest.raises(TunnelError):
        open_transport(ALIAS, config, tmp_path / "missing-key")
    open_transport(ALIAS, config, sshd.key).close()


def test_unknown_host_key_is_refused_in_one_line(sshd):
    config = sshd.config("unknown", known_hosts="")
    with pytest.raises(TunnelError) as info:
        open_transport(ALIAS, config)
    message = str(info.value)
    assert "\n" not in message and "no host key for tun-target in known_hosts" in message
    assert (sshd.tmp / "unknown.known_hosts").read_text() == ""  # nothing learnt


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    other = tmp_path / "other"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other))
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    config = sshd.config("changed", known_hosts=f"{ALIAS} {wrong}\n", strict="accept-new")
    with pytest.raises(TunnelError) as info:
        open_transport(ALIAS, config)
    message = str(info.value)
    assert "\n" not in message and "does not match known_hosts" in message and "ssh-keygen -R" in message


def test_accept_new_from_the_ssh_config_is_honoured(sshd):
    """The config's StrictHostKeyChecking wins (as in the deploy): accept-new records the key."""
    config = sshd.config("accept-new", known_hosts="", strict="accept-new")
    open_transport(ALIAS, config).close()
    assert sshd.host_pub in (sshd.tmp / "accept-new.known_hosts").read_text()


def test_controlplane_cli_refuses_an_unknown_host_in_one_line(sshd, tmp_path):
    """`python -m controlplane plan` through [tailnet] ssh: exit 1, one line, nothing else printed."""
    config = sshd.config("cli", known_hosts="")
    key = tmp_path / "api.key"
    key.write_text("hskey-api-never-used\n")
    sites = tmp_path / "sites.toml"
    sites.write_text(
        '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n'
        '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n'
        f'[tailnet]\nurl = "http://127.0.0.1:8080"\napi_key_file = "{key}"\nssh = "{ALIAS}"\n'
        f'[ssh]\nconfig_file = "{config}"\n')
    res = subprocess.run([sys.executable, "-m", "controlplane", "plan", "--sites", str(sites)],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "no host key for tun-target" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
