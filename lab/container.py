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
NSPAWN_TMPFS_SOURCE = "s2s-lab-nspawn"  # how down() tells the tmpfs a lab mounted from the host's own
CGROUP_PARENT = "s2s-lab"  # every lab host's cgroup is <our cgroup>/s2s-lab/<netns> in each hierarchy
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
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", NSPAWN_TMPFS_SOURCE, str(NSPAWN_RUN)])
    return True


def nspawn_tmpfs_is_ours() -> bool:
    """True if /run/systemd/nspawn is the tmpfs a lab of this project mounted (its source names it)."""
    with open("/proc/self/mounts") as f:
        return any(line.split()[:2] == [NSPAWN_TMPFS_SOURCE, str(NSPAWN_RUN)] for line in f)


INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_CONTAINER = 8  # systemd, journald, logind ... (about 5 measured on a booted lab host)


def _inotify_in_use() -> int:
    """inotify instances open machine-wide (the limit is per user, and every container runs as root)."""
    count = 0
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            count += sum(1 for fd in fd_dir.iterdir() if os.readlink(fd) == "anon_inode:inotify")
        except OSError:
            continue
    return count


def ensure_inotify_instances(containers: int) -> str | None:
    """Raise fs.inotify.max_user_instances when booting `containers` more hosts would run out.

    Why: a container's systemd that cannot create an inotify object ("Failed to create
    inotify object: Too many open files") never finishes booting. The kernel default,
    128 for all of root's processes, runs out at about 20 booted hosts machine-wide
    (an 8-site lab is 17). The limit is only ever raised, never lowered (other labs on
    the machine may count on it); returns what was done, for the log.
    """
    try:
        limit = int(INOTIFY_LIMIT.read_text())
    except (OSError, ValueError):
        return None
    need = _inotify_in_use() + INOTIFY_PER_CONTAINER * containers + 32
    if need <= limit:
        return None
    new = max(need, 1024)
    INOTIFY_LIMIT.write_text(f"{new}\n")
    return f"raised fs.inotify.max_user_instances {limit} -> {new} (the containers' systemds need inotify)"


def _systemd_hierarchies() -> list[Path]:
    """Our own cgroup directory in the hierarchies systemd tracks units in.

    name=systemd (cgroup v1/hybrid) and the unified v2 tree ("0::"): nspawn puts the
    container's systemd under its own cgroup there (`<cg>/payload`). Where the
    v2 tree is mounted is read from /proc/self/mountinfo.
    """
    mounts: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            mountpoint = Path(left.split()[4])
            if fstype == "cgroup2":
                mounts.setdefault("", mountpoint)
            elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                mounts.setdefault("name=systemd", mountpoint)
    out: list[Path] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in mounts:
            out.append(mounts[controllers] / path.lstrip("/"))
    return out


def host_cgroups(name: str) -> list[Path]:
    """The host's own cgroup directories (one per systemd hierarchy)."""
    return [base / CGROUP_PARENT / f"{PREFIX}-{name}" for base in _systemd_hierarchies()]


def _own_cgroup(dirs: list[Path]):
    """preexec_fn moving nspawn into the host's own cgroups before it starts.

    Why: with `--keep-unit --register=no` nspawn makes `<its cgroup>/payload` the
    container's cgroup root. Started from one shared cgroup, every container (of
    every lab on the machine) got the same root, so their systemds shared unit
    cgroups: a oneshot unit of the same name finishing in one container removed the
    cgroup another container was just moving its process into, which fails that
    unit with status=219/CGROUP (seen on `s2s-udp-gro@eth1.service`), and stopping
    a unit in one container could act on another's processes.
    """
    def move() -> None:
        for d in dirs:
            try:
                (d / "cgroup.procs").write_text("0\n")
            except OSError:
                pass  # not movable here (e.g. an undelegated v2 subtree): boot as before, shared
    return move


def _make_cgroups(dirs: list[Path]) -> list[Path]:
    made: list[Path] = []
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            made.append(d)
        except OSError:
            pass  # a read-only or undelegated tree: nspawn then shares its parent's, as before
    return made


def remove_cgroups(name: str) -> None:
    """Delete the host's cgroup subtree (leaves first); only empty cgroups can go."""
    for d in host_cgroups(name):
        if not d.is_dir():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass


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
    remove_cgroups(host.name)  # what a previous boot left (a restart)
    cgroups = _make_cgroups(host_cgroups(host.name))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, preexec_fn=_own_cgroup(cgroups), env=env)
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


def stop(name: str, timeout: float = 15.0, hard: bool = False) -> None:
    """Power the container off (SIGTERM makes nspawn halt its systemd), KILL on timeout;
    `hard`: KILL at once (a power cut: no service gets to say goodbye)."""
    pid = nspawn_pid(name)
    if hard:
        pid, timeout = None, 0.0
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
    """Unmount the host's overlay and delete its layer, logs and cgroups."""
    remove_cgroups(name)
    lay = layout(name)
    if is_mounted(lay.root):
        if run(["umount", str(lay.root)], check=False).returncode != 0:
            run(["umount", "-l", str(lay.root)], check=False)
    shutil.rmtree(lay.base, ignore_errors=True)
