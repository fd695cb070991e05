"""A Vagrant libvirt box built here from Debian packages (Vagrant Cloud is out of reach).

    python -m lab.box            # build (cached) and `vagrant box add` it as s2s/bookworm

Start from the namespace lab's debootstrap image (lab/image.py: systemd, sshd,
Kea, dhclient, iptables ... all baked in, so VMs need nothing from outside),
add Debian's kernel (linux-image-amd64) and sudo with apt in a chroot, follow
Vagrant's conventions (user `vagrant` with Vagrant's insecure public key,
passwordless sudo, sshd), then make an ext4 filesystem image straight from the
tree (mkfs.ext4 -d: no loop device, no partition table). The VM boots the
box's own vmlinuz/initrd directly (libvirt <kernel>/<initrd>; the box's
Vagrantfile sets them), so no bootloader is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab.cachelock import held
from lab.image import SUITE, ensure_image, host_mirror, image_key
from lab.paths import lab_cache
from lab.progress import say, step
from lab.sh import run

BOX_NAME = os.environ.get("S2S_VAGRANT_BOX", "s2s/bookworm")
DISK_GIB = 3
BOX_FILE = "s2s-bookworm.box"  # the packed box inside its cache directory
INSECURE_KEY = Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub")
EXTRA_PACKAGES = ("linux-image-amd64", "sudo")
# The initrd only needs to find an ext4 root on virtio: a short module list keeps it small,
# which matters under TCG (the decompressor and unpacking run emulated).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
# no_timer_check: a starved qemu/TCG VM fails the kernel's IO-APIC timer check and panics
# ("IO-APIC + timer doesn't work!"), seen here with 9 TCG VMs on 2 shared cores.
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet no_timer_check"

# Files written into the box after the packages are in (path -> content).
FILES: dict[str, str] = {
    "etc/fstab": "/dev/vda / ext4 defaults,noatime 0 1\n",
    "etc/hostname": "s2s-box\n",
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD:ALL\nDefaults:vagrant !requiretty\n",
    # The first NIC is Vagrant's management network (DHCP from libvirt); Vagrant writes the
    # others itself (it detects systemd-networkd and drops 50-vagrant-*.network files).
    # ClientIdentifier=mac: VMs cloned from one disk must not share a DUID-based client id
    # (libvirt's dnsmasq would hand them one lease between them).
    "etc/systemd/network/10-mgmt.network": (
        "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nClientIdentifier=mac\n"
    ),
    # The host key is made on first boot (every VM gets its own), before Debian's `sshd -t` check:
    # only the ed25519 key sshd uses (the lab image's sshd_config.d/lab.conf), since `ssh-keygen -A`'s
    # RSA key takes minutes on a starved TCG VM and systemd killed it at 90 s, again and again.
    "etc/systemd/system/ssh.service.d/s2s-hostkeys.conf": (
        "[Service]\nExecStartPre=\n"
        "ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || "
        "ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'\n"
        "ExecStartPre=/usr/sbin/sshd -t\n"
    ),
    # qemu/TCG VMs on a shared 2-core machine get a few % of a core while they boot: units that
    # take 90 s there are slow, not broken (systemd-networkd and ssh timed out at the default).
    "etc/systemd/system.conf.d/s2s-slow-boot.conf": "[Manager]\nDefaultTimeoutStartSec=15min\n",
    "etc/ssh/sshd_config.d/vagrant.conf": "PubkeyAuthentication yes\nUseDNS no\n",
    "etc/initramfs-tools/conf.d/s2s": "MODULES=list\nCOMPRESS=gzip\n",
    "etc/initramfs-tools/modules": "".join(f"{m}\n" for m in INITRAMFS_MODULES),
}
_VERSION = "2"  # bump when the steps change in a way the hash does not see


def box_key() -> str:
    """Content hash of everything that goes into the box."""
    h = hashlib.sha256()
    h.update("\n".join((_VERSION, image_key(), *EXTRA_PACKAGES, CMDLINE, str(DISK_GIB))).encode())
    for path, text in sorted(FILES.items()):
        h.update(f"{path}\0{text}\0".encode())
    return h.hexdigest()[:12]


def box_dir() -> Path:
    return lab_cache() / f"vagrant-box-{SUITE}-{box_key()}"


def box_vagrantfile() -> str:
    """The box's own Vagrantfile: direct kernel boot from files shipped inside the box."""
    return (
        'Vagrant.configure("2") do |config|\n'
        '  config.vm.provider :libvirt do |lv|\n'
        '    lv.kernel = File.join(__dir__, "vmlinuz")\n'
        '    lv.initrd = File.join(__dir__, "initrd.img")\n'
        f'    lv.cmd_line = "{CMDLINE}"\n'
        '    lv.disk_bus = "virtio"\n'
        '  end\n'
        'end\n'
    )


def is_built() -> bool:
    """Whether the .box file for the current image and recipe is in the cache."""
    return (box_dir() / BOX_FILE).exists()


def ensure_box() -> Path:
    """Return the cached .box file, building it first if needed (a few minutes)."""
    out = box_dir()
    box = out / BOX_FILE
    if is_built():
        return box
    image = ensure_image()
    with held(out):
        if not is_built():
            _build_box(image, out)
    return box


def _build_box(image: Path, out: Path) -> None:
    """Build the box beside `out` and rename it into place whole."""
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    root = tmp / "root"
    with step("copying the lab's Debian image"):
        run(["cp", "-a", "--reflink=auto", str(image), str(root)])
    with step(f"installing {' '.join(EXTRA_PACKAGES)} from {host_mirror()} in a chroot"):
        _install_packages(root)
    with step("adding user vagrant (insecure key, passwordless sudo) and boot settings"):
        _vagrant_conventions(root)
    pack = tmp / "pack"
    pack.mkdir()
    shutil.copy(_newest(root / "boot", "vmlinuz-*"), pack / "vmlinuz")
    shutil.copy(_newest(root / "boot", "initrd.img-*"), pack / "initrd.img")
    with step(f"making the {DISK_GIB} GiB ext4 disk and converting it to qcow2"):
        raw = tmp / "disk.raw"
        run(["mkfs.ext4", "-q", "-L", "s2s-root", "-d", str(root), str(raw), f"{DISK_GIB}G"])
        run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(pack / "box.img")])
        raw.unlink()
    (pack / "metadata.json").write_text(
        json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GIB})
    )
    (pack / "Vagrantfile").write_text(box_vagrantfile())
    with step("packing the box"):
        run(
            [
                "tar",
                "-cf",
                str(tmp / BOX_FILE),
                "-C",
                str(pack),
                "metadata.json",
                "Vagrantfile",
                "box.img",
                "vmlinuz",
                "initrd.img",
            ]
        )
    shutil.rmtree(root)
    shutil.rmtree(pack)
    tmp.rename(out)
    for old in out.parent.glob(f"vagrant-box-{SUITE}-*"):
        if old != out and old.is_dir() and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)  # 700+ MiB each; only the current build is used


def _newest(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if not found:
        raise RuntimeError(f"no {pattern} in {directory}")
    return found[-1]


def _chroot(root: Path, *cmd: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    proc = subprocess.run(["chroot", str(root), *cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"chroot {' '.join(cmd[:4])}: exit {proc.returncode}: {' | '.join(tail)}")


def _install_packages(root: Path) -> None:
    """apt-get in the chroot with a temporary sources.list; the box ends with none (no route out)."""
    for rel, text in FILES.items():
        if rel.startswith("etc/initramfs-tools/"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    (root / "etc/apt/sources.list").write_text(f"deb {host_mirror()} {SUITE} main\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    shutil.copy("/etc/resolv.conf", resolv)
    mounts = []
    try:
        for fs in ("proc", "sys", "dev"):
            target = root / fs
            run(["mount", "--rbind" if fs == "dev" else "--bind", f"/{fs}", str(target)])
            run(["mount", "--make-rslave", str(target)])
            mounts.append(target)
        _chroot(root, "apt-get", "update", "-q")
        _chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *EXTRA_PACKAGES)
        _chroot(root, "apt-get", "clean")
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", "-R", "-l", str(target)], check=False)
        (root / "etc/apt/sources.list").write_text("")
        resolv.write_text("")
        for f in (root / "var/lib/apt/lists").glob("*"):
            if f.is_file():
                f.unlink()


def _vagrant_conventions(root: Path) -> None:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", "vagrant")
    ssh = root / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(INSECURE_KEY.read_text())
    (ssh / "authorized_keys").chmod(0o600)
    _chroot(root, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")
    run(
        [
            "systemctl",
            f"--root={root}",
            "enable",
            "systemd-networkd.service",
            "ssh.service",
            "serial-getty@ttyS0.service",
        ],
        check=False,
    )
    (root / "etc/machine-id").write_text("")


def installed(env: dict[str, str] | None = None) -> bool:
    """Is this build of the box in Vagrant's box list (libvirt provider)?"""
    marker = _added_marker(env)
    if not marker.exists() or marker.read_text().strip() != box_key():
        return False
    proc = subprocess.run(["vagrant", "box", "list", "--machine-readable"], capture_output=True, text=True, env=env)
    return any(line.split(",")[2:4] == ["box-name", BOX_NAME] for line in proc.stdout.splitlines())


def _added_marker(env: dict[str, str] | None) -> Path:
    home = Path((env or os.environ).get("VAGRANT_HOME") or Path.home() / ".vagrant.d")
    return home / "s2s-box-key"


def ensure_added(env: dict[str, str] | None = None) -> str:
    """Build the box if needed and `vagrant box add --force` it when this build is not the one added."""
    box = ensure_box()
    if installed(env):
        return BOX_NAME
    with step(f"vagrant box add {BOX_NAME} ({box.stat().st_size // 2**20} MiB)"):
        run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, "--provider", "libvirt", str(box)], capture=True)
        marker = _added_marker(env)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(box_key() + "\n")
    return BOX_NAME


if __name__ == "__main__":
    try:
        say(f"box: {ensure_box()}")
        print(ensure_added())
    except Exception as exc:  # one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
