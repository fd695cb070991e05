"""Boot and stop one lab host: an overlayfs layer over the cached image, run by systemd-nspawn.

nspawn joins the host's prepared network namespace (--network-namespace-path)
and boots systemd, so services (sshd, Kea, Headscale, tailscaled later) run
under a real init. The process is detached (own session, output to a log) so
the lab outlives the `lab up` command; `stop` powers the container off,
unmounts its layer and deletes it, leaving nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.hosts import Host
from lab.paths import PREFIX, hosts_dir
from lab.sh import LabError, run

NSPAWN_RUN = Path("/run/systemd/nspawn")
UNIFIED_CGROUP_SUITES = ("sid",)  # Debian suites whose systemd needs cgroup v2


@dataclass(frozen=True)
class Layout:
    """Per-host directories under .lab/hosts/NAME."""

    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def pidfile(self) -> Path:
        return self.base / "nspawn.pid"

    @property
    def log(self) -> Path:
        return self.base / "console.log"


def layout(name: str) -> Layout:
    return Layout(hosts_dir() / name)


def is_mounted(path: Path) -> bool:
    target = str(path.resolve()) if path.exists() else str(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def mount_layer(host: Host, image: Path) -> Path:
    """Fresh copy-on-write root for a host: the image stays read-only, writes go to upper/."""
    lay = layout(host.name)
    if is_mounted(lay.root):
        run(["umount", str(lay.root)])
    shutil.rmtree(lay.base, ignore_errors=True)
    for d in (lay.upper, lay.work, lay.root):
        d.mkdir(parents=True)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={image},upperdir={lay.upper},workdir={lay.work}", str(lay.root)])
    return lay.root


def ensure_nspawn_runtime_dir() -> bool:
    """nspawn keeps per-machine state in /run/systemd/nspawn and wants a tmpfs there; True if we mounted it."""
    with open("/proc/self/mounts") as f:
        mounts = {line.split()[1]: line.split()[2] for line in f}
    if mounts.get("/run") == "tmpfs" or str(NSPAWN_RUN) in mounts:
        return False
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "s2s-lab-nspawn", str(NSPAWN_RUN)])
    return True


def start(host: Host, binds_ro: dict[str, str] | None = None) -> int:
    """Boot the container detached; return nspawn's pid."""
    lay = layout(host.name)
    cmd = [
        "systemd-nspawn", "--quiet", "-D", str(lay.root), "--boot",
        "--register=no", "--keep-unit", f"--machine={PREFIX}-{host.name}", f"--hostname={host.name}",
        # --private-network on top of the path: the same namespace, but nspawn then leaves
        # /proc/sys/net writable and keeps CAP_NET_ADMIN (the deploy sets ip_forward).
        f"--network-namespace-path=/run/netns/{host.netns}", "--private-network",
        "--console=pipe", "--resolv-conf=off", "--link-journal=no", "--timezone=off",
    ]
    if host.role == "router":
        # tailscaled needs a TUN device and to manage routes/netfilter in its namespace.
        cmd += ["--capability=CAP_NET_ADMIN", "--bind=/dev/net/tun"]
    for src, dst in (binds_ro or {}).items():
        cmd.append(f"--bind-ro={src}:{dst}")
    env = None
    if host.release in UNIFIED_CGROUP_SUITES:
        # sid's systemd (>= 258) no longer boots on cgroup v1 and exits 255 without a word;
        # on a hybrid-cgroup machine nspawn then gives it the unified hierarchy.
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
    log = open(lay.log, "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, env=env)
    log.close()
    lay.pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def nspawn_pid(name: str) -> int | None:
    """nspawn's pid if it is still running, else None."""
    try:
        pid = int(layout(name).pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"systemd-nspawn" in cmdline else None


def leader_pid(name: str) -> int | None:
    """The container's PID 1 (systemd), as the host sees it: nspawn's child."""
    pid = nspawn_pid(name)
    if pid is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """Command line that runs argv inside a running container (all its namespaces)."""
    leader = leader_pid(name)
    if leader is None:
        raise LabError(f"{name}: container is not running")
    return ["nsenter", f"--target={leader}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
            "--", "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root", "LANG=C.UTF-8", *argv]


def wait_booted(name: str, timeout: float = 60.0) -> str:
    """Wait until systemd in the container finished booting; return its state (running/degraded)."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    gone = 0
    while time.monotonic() < deadline:
        # nspawn must be seen gone twice in a row: one failed read of /proc is not an exit
        gone = gone + 1 if nspawn_pid(name) is None else 0
        if gone >= 2:
            try:
                tail = " | ".join(layout(name).log.read_text(errors="replace").splitlines()[-3:])
            except OSError:
                tail = "no console log"
            raise LabError(f"{name}: container exited during boot: {tail} (see {layout(name).log})")
        if gone:
            time.sleep(0.3)
            continue
        if leader_pid(name) is not None:
            proc = subprocess.run(exec_argv(name, ["systemctl", "is-system-running"]),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return state
        time.sleep(0.3)
    raise LabError(f"{name}: systemd not up after {timeout:.0f}s (state {state}; see {layout(name).log})")


def stop(name: str, timeout: float = 15.0) -> None:
    """Power the container off (SIGTERM makes nspawn halt its systemd), KILL on timeout."""
    pid = nspawn_pid(name)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
    deadline = time.monotonic() + timeout
    while pid is not None and nspawn_pid(name) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if nspawn_pid(name) is not None:
        leader = leader_pid(name)
        for victim in (leader, nspawn_pid(name)):
            if victim:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)


def remove_layer(name: str) -> None:
    """Unmount the host's overlay and delete its layer and logs."""
    lay = layout(name)
    if is_mounted(lay.root):
        if run(["umount", str(lay.root)], check=False).returncode != 0:
            run(["umount", "-l", str(lay.root)], check=False)
    shutil.rmtree(lay.base, ignore_errors=True)
