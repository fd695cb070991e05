"""A private libvirtd for the Vagrant lab: in its own network namespace, with its own dirs.

    python -m lab.vagrant_libvirt start|stop|status|accel

libvirtd and virtlogd run under `ip netns exec <PREFIX>-vm` in a private mount
namespace where /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt
and /var/log/libvirt are bind mounts of directories under the lab's state dir.
So they share nothing with a system libvirtd, and every bridge, dnsmasq and VM
packet lives in a namespace that has only `lo` plus what libvirt creates: no
route out. Vagrant reaches this libvirtd through its socket path
(qemu:///system?socket=...), which the bind mount makes visible on the host too.

The system D-Bus is hidden from libvirtd (tmpfs over /run/dbus), so it does not
register VMs with the host's systemd-machined; cgroup controllers are off, as
`ip netns exec` remounts /sys without the cgroup tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.progress import say, step
from lab.sh import run

# Not "s2s-lab-*" by default: the namespace lab's `down` removes those.
LAB_PREFIX = os.environ.get("S2S_LAB_PREFIX") or "s2s-vagrant"
NETNS = f"{LAB_PREFIX}-vm"
BIND_DIRS = {  # path inside libvirtd's mount namespace -> subdir of the state dir
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
}
LIBVIRTD_CONF = 'unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
QEMU_CONF = (
    'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n'
    "cgroup_controllers = [ ]\nremember_owner = 0\n"
)
KVM_PROBE_SECONDS = 20
# QEMU's TCG translation cache is 1 GiB per VM by default, most of a TCG VM's memory; 256 MiB is
# plenty for these guests. libvirt 9 has no vagrant-libvirt option for it, so the Vagrantfile
# points vagrant-libvirt's emulator_path at this wrapper, which adds tb-size to `-accel tcg`.
TCG_TB_MIB = 256
TCG_WRAPPER = f"""#!/bin/sh
# written by lab/vagrant_libvirt.py: qemu with a {TCG_TB_MIB} MiB TCG translation cache (default 1 GiB)
prev=
for arg in "$@"; do
  shift
  if [ "$prev" = -accel ] && [ "$arg" = tcg ]; then arg=tcg,tb-size={TCG_TB_MIB}; fi
  set -- "$@" "$arg"
  prev=$arg
done
exec /usr/bin/qemu-system-x86_64 "$@"
"""


def state_root() -> Path:
    from lab.vagrant import state_dir  # the Vagrant lab's state dir, one place for both

    return state_dir() / "libvirt"


def socket_path() -> Path:
    return state_root() / "run" / "libvirt-sock"


def uri() -> str:
    """The libvirt URI Vagrant (vagrant-libvirt's `uri`) and virsh use for this libvirtd."""
    return f"qemu:///system?socket={socket_path()}"


def netns_exists() -> bool:
    return Path(f"/run/netns/{NETNS}").exists()


def in_netns(*cmd: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *cmd]


def _pid(name: str) -> int | None:
    path = state_root() / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def running() -> bool:
    return _pid("libvirtd") is not None and socket_path().exists()


def start() -> str:
    """Create the namespace and start virtlogd + libvirtd in it (idempotent); return the URI."""
    if running():
        return uri()
    root = state_root()
    for sub in BIND_DIRS.values():
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/libvirtd.conf").write_text(LIBVIRTD_CONF)
    (root / "etc/qemu.conf").write_text(QEMU_CONF)
    (root / "etc/virtlogd.conf").write_text("")
    (root / "lib/images").mkdir(exist_ok=True)
    wrapper = root / "qemu-tcg"
    if not wrapper.exists() or wrapper.read_text() != TCG_WRAPPER:
        wrapper.write_text(TCG_WRAPPER)
        wrapper.chmod(0o755)
    if not netns_exists():
        run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    routes = run(["ip", "-n", NETNS, "route", "show", "default"]).stdout.strip()
    if routes:
        raise RuntimeError(f"namespace {NETNS} has a default route ({routes}); refusing to start libvirtd in it")
    # Empty mount points (what libvirt-daemon-system would create); the mounts exist only in libvirtd's namespace.
    _account_files(root)
    binds = " && ".join(f"mkdir -p {inside} && mount --bind {root / sub} {inside}" for inside, sub in BIND_DIRS.items())
    script = (
        f"{binds} && mount -t tmpfs tmpfs /run/dbus && "
        f"mount --bind {root / 'passwd'} /etc/passwd && mount --bind {root / 'group'} /etc/group && "
        f"virtlogd --daemon --pid-file {root / 'virtlogd.pid'} && "
        f"exec libvirtd --daemon --pid-file {root / 'libvirtd.pid'}"
    )
    with step(f"starting libvirtd + virtlogd in network namespace {NETNS}"):
        run(in_netns("unshare", "--mount", "--propagation", "private", "sh", "-c", script))
        for _ in range(100):
            if socket_path().exists():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"libvirtd did not create {socket_path()}; see {root / 'log'}")
        _ensure_pool()
    return uri()


def _account_files(root: Path) -> None:
    """passwd/group copies holding libvirt-qemu, seen only by libvirtd.

    libvirtd resolves its compiled-in default user (libvirt-qemu) before it reads
    qemu.conf; libvirt-daemon-system would add that account to the host, we add it
    only inside libvirtd's mount namespace (qemu.conf then runs QEMU as root).
    """
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    if "\nlibvirt-qemu:" not in "\n" + passwd:
        passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
    for name, gid in (("libvirt-qemu", 64055), ("kvm", 64056), ("libvirt", 64057)):
        if f"\n{name}:" not in "\n" + group:
            group += f"{name}:x:{gid}:\n"
    (root / "passwd").write_text(passwd)
    (root / "group").write_text(group)


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["virsh", "-c", uri(), *args], check=check)


def _ensure_pool() -> None:
    """The `default` storage pool vagrant-libvirt uploads boxes into."""
    if virsh("pool-info", "default", check=False).returncode != 0:
        virsh("pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images")
        virsh("pool-autostart", "default")
    if "running" not in virsh("pool-info", "default").stdout:
        virsh("pool-start", "default")


def stop() -> None:
    """Destroy what is left in this libvirtd, stop it and virtlogd, delete the namespace."""
    if running():
        for dom in virsh("list", "--all", "--name", check=False).stdout.split():
            virsh("destroy", dom, check=False)
            virsh("undefine", dom, "--remove-all-storage", "--nvram", check=False)
        for net in virsh("net-list", "--all", "--name", check=False).stdout.split():
            virsh("net-destroy", net, check=False)
            virsh("net-undefine", net, check=False)
    for name in ("libvirtd", "virtlogd"):
        pid = _pid(name)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    _kill_leftovers()
    if netns_exists():
        run(["ip", "netns", "delete", NETNS])
    for sub in ("run",):
        shutil.rmtree(state_root() / sub, ignore_errors=True)


def _kill_leftovers() -> None:
    """qemu or dnsmasq still in our namespace (a crashed libvirtd leaves them): only ours, by pid."""
    if not netns_exists():
        return
    pids = run(["ip", "netns", "pids", NETNS], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    time.sleep(0.5)
    for pid in run(["ip", "netns", "pids", NETNS], check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def status() -> str:
    if not netns_exists():
        return f"namespace {NETNS}: absent; libvirtd: stopped"
    pids = run(["ip", "netns", "pids", NETNS], check=False).stdout.split()
    libvirtd = "running, " + uri() if running() else "stopped"
    return f"namespace {NETNS}: present ({len(pids)} processes); libvirtd: {libvirtd}"


def detect_accel(kernel: Path, initrd: Path) -> str:
    """'kvm' if a KVM guest really gets past the kernel's decompressor, else 'qemu' (TCG).

    /dev/kvm existing is not enough here: on a host without usable nested
    virtualisation KVM guests hang right after "Probing EDD". So boot the box's
    kernel under KVM for up to KVM_PROBE_SECONDS and look for its "Linux version"
    banner on the serial console. S2S_VAGRANT_ACCEL=kvm|qemu skips the probe.
    """
    forced = os.environ.get("S2S_VAGRANT_ACCEL")
    if forced in ("kvm", "qemu"):
        say(f"accelerator: {forced} (S2S_VAGRANT_ACCEL)")
        return forced
    # Whether KVM guests run does not change while the machine is up: one probe per boot.
    from lab.paths import lab_cache

    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    cached = lab_cache() / f"vagrant-accel-{boot}"
    if cached.exists():
        accel = cached.read_text().strip()
        say(f"accelerator: {accel} (probed earlier since this machine booted: {cached})")
        return accel
    accel = _probe_kvm(kernel, initrd)
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob("vagrant-accel-*"):
        old.unlink(missing_ok=True)
    cached.write_text(accel + "\n")
    return accel


def _probe_kvm(kernel: Path, initrd: Path) -> str:
    """Boot the box's kernel under KVM and wait for its banner (see detect_accel)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        say("accelerator: qemu/TCG (no usable /dev/kvm)")
        return "qemu"
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "kvm",
        "-m",
        "256",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-net",
        "none",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 panic=-1 earlyprintk=serial",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    deadline = time.monotonic() + KVM_PROBE_SECONDS
    os.set_blocking(proc.stdout.fileno(), False)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            chunk = proc.stdout.read() or b""
            seen += chunk
            if b"Linux version" in seen:
                say("accelerator: KVM (a probe guest printed its kernel banner)")
                return "kvm"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    say(f"accelerator: qemu/TCG (a KVM probe guest printed no kernel banner in {KVM_PROBE_SECONDS}s)")
    return "qemu"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    verb = args[0] if args else "status"
    try:
        if verb == "start":
            print(start())
        elif verb == "stop":
            stop()
        elif verb == "status":
            print(status())
        else:
            print("usage: python -m lab.vagrant_libvirt start|stop|status", file=sys.stderr)
            return 2
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
