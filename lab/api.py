"""Bring the lab up, tear it down, restart hosts: the functions the CLI and the tests call.

`ensure_up()` is idempotent: on a healthy running lab it only re-writes the
outputs (seconds); on a half-built one it tears down first, so every `up`
ends in the same known state. Other test areas call `ensure_up()` and read
the returned LabInfo (site file, ssh config) instead of knowing the layout.
The files `up` writes are lab/outputs.py's job, DHCP clients lab/dhcpclients.py's,
what the CLI prints lab/report.py's.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab import aptrepo, container, dhcpclients, gobuild, image, keys, net, outputs, probe, roles
from lab.hosts import Host, lab_hosts, segments
from lab.paths import PREFIX, hosts_dir, lab_dir
from lab.progress import say, step
from lab.sh import LabError, ns, run
from lab.topology import DEFAULT_PATH, TOPOLOGY_ENV, Topology, TopologyError, load_topology
from removal import record


@dataclass(frozen=True)
class LabInfo:
    """Where a running lab's outputs are; everything a deploy or a test needs to reach it."""

    topology: Topology
    hosts: tuple[Host, ...]
    sites_file: Path
    ssh_config: Path
    ssh_key: Path
    apt_url: str
    apt_key_file: Path
    # the same lab reached as the non-root operator (pyinfra --sudo)
    sudo_user: str = roles.SUDO_USER
    sudo_sites_file: Path = Path()
    sudo_ssh_config: Path = Path()

    def ssh_hosts(self) -> list[str]:
        """SSH aliases (container hosts) in the lab's ssh_config."""
        return [h.name for h in self.hosts if h.container]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


LOCK_FILE = Path(f"/run/lock/{PREFIX}.lock")


@contextmanager
def _locked() -> Iterator[None]:
    """One up/down at a time machine-wide (namespace names are global, checkouts are not)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _state_path() -> Path:
    return lab_dir() / "state.json"


def _read_state() -> dict:
    try:
        return json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return {}


def _saved_topology() -> Path:
    """The running lab's own copy of its topology: later verbs act on it even if the file moves."""
    return lab_dir() / "topology.toml"


def topology_digest(topo: Topology) -> str:
    """What the lab was built from, independent of where the file lives."""
    return hashlib.sha256(repr(dataclasses.replace(topo, path=Path())).encode()).hexdigest()[:16]


def running_topology() -> Topology | None:
    """The topology the running (or half-built) lab was brought up with, if any."""
    state = _read_state()
    if not state or not _saved_topology().exists():
        return None
    topo = load_topology(_saved_topology())
    return dataclasses.replace(topo, path=Path(state.get("topology", topo.path)))


def resolve_topology(path: str | Path | Topology | None = None, *, follow_running: bool = True) -> Topology:
    """Which topology a verb acts on: the one given, else $S2S_LAB_TOPOLOGY, else the
    running lab's (unless follow_running is off), else the built-in two-site lab."""
    if isinstance(path, Topology):
        return path
    if path is None:
        path = os.environ.get(TOPOLOGY_ENV) or None
    if path is not None:
        return load_topology(Path(path).resolve())
    return (running_topology() if follow_running else None) or load_topology(DEFAULT_PATH)


def _topology_text(topo: Topology) -> str:
    """The file text `topo` was read from: its own file, or the running lab's copy (the CLI
    passes the running lab's topology, whose original file may since be edited or gone)."""
    for candidate in (topo.path, _saved_topology()):
        try:
            if topology_digest(load_topology(candidate)) == topology_digest(topo):
                return candidate.read_text()
        except TopologyError:
            continue
    raise LabError(f"{topo.path}: changed or gone since the lab read it; run up with --topology")


def _info(topo: Topology) -> LabInfo:
    d = lab_dir()
    return LabInfo(topo, tuple(lab_hosts(topo)), d / "sites.toml", d / "ssh_config", d / "id_ed25519",
                   topo.apt_url, d / "apt-key.asc", roles.SUDO_USER, d / "sites-sudo.toml", d / "ssh_config-sudo")


# ---------------------------------------------------------------- health

def _healthy(topo: Topology) -> bool:
    """Every namespace exists, every container runs and answers SSH, every secret is there."""
    hosts = lab_hosts(topo)
    if _read_state().get("topology_digest") != topology_digest(topo):
        return False
    for h in hosts:
        if not net.exists(h.netns):
            return False
        if h.container and container.nspawn_pid(h.name) is None:
            return False
    needed = [keys.API_KEY_SECRET, keys.AUTH_KEY_SECRET, *(keys.kea_secret(s) for s in topo.sites)]
    if any(keys.read_secret(n) is None for n in needed):
        return False
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda h: probe.wait_tcp(h.netns, "127.0.0.1", 22, timeout=3),
                           [h for h in hosts if h.container])
        return all(answers)


def is_running(topology_path: str | Path | Topology | None = None) -> bool:
    """Whether the lab `ensure_up(topology_path)` would return is up and healthy."""
    return _healthy(resolve_topology(topology_path, follow_running=False))


# ---------------------------------------------------------------- up

def ensure_up(topology_path: str | Path | Topology | None = None) -> LabInfo:
    """Start the lab unless it is already running and healthy; return where its outputs are.

    The topology: the one given, else $S2S_LAB_TOPOLOGY, else lab/topology.toml (callers
    get the lab they asked for, not whatever runs). A lab running from another
    topology is taken down first."""
    topo = resolve_topology(topology_path, follow_running=False)
    with _locked():
        return _ensure_up(topo)


def _ensure_up(topo: Topology) -> LabInfo:
    if _healthy(topo):
        say("lab already running; refreshing its outputs")
        outputs.write(topo)
        return _info(topo)
    source = _topology_text(topo)  # before a clean-up deletes the saved copy
    if net.lab_namespaces() or _read_state() or _mounted_layers():
        say("found a stopped or half-built lab; cleaning it up first")
        _down()
    t0 = time.monotonic()
    with step("checking cached image, apt repository and Go binaries"):
        # on a first run the debootstraps (network, disk) overlap the Go builds (both cores)
        suites = sorted({h.release for h in lab_hosts(topo)})
        with ThreadPoolExecutor(max_workers=1) as pool:
            images = pool.submit(lambda: {suite: image.ensure_image(suite) for suite in suites})
            repo = aptrepo.ensure_repo()
            headscale = gobuild.binary("headscale")
            imgs = images.result()
    hosts = lab_hosts(topo)
    lab_dir().mkdir(parents=True, exist_ok=True)
    (lab_dir() / ".gitignore").write_text("*\n")
    authorized = Path(f"{keys.client_key()}.pub").read_text()
    state = {"topology": str(topo.path), "topology_digest": topology_digest(topo), "started": time.time()}
    container.ensure_nspawn_runtime_dir()
    _saved_topology().write_text(source)
    _state_path().write_text(json.dumps(state))
    try:
        with step("creating namespaces, bridges and veths"):
            net.create(hosts, segments(topo))
        raised = container.ensure_inotify_instances(sum(1 for h in hosts if h.container))
        if raised:
            say(raised)
        with step("booting hosts (systemd-nspawn)"):
            # client containers (networkd, dhcpcd) boot once their gateway's Kea answers
            for phase in ([h for h in hosts if h.container and h.role != "client"],
                          [h for h in hosts if h.container and h.role == "client"]):
                for h in phase:
                    _boot(h, topo, imgs[h.release], repo, headscale, authorized)
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(_wait_ready, [(h, topo) for h in phase]))
        with step("creating Headscale API key and router pre-auth key"):
            _headscale_keys()
        with step("starting DHCP clients (dhclient, systemd-networkd, dhcpcd against each site's Kea)"):
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(dhcpclients.start, [h for h in hosts if h.role == "client"]))
    except BaseException:
        say("lab up failed; logs under " + str(hosts_dir()) + " (run `python -m lab down` to clean up)")
        raise
    outputs.write(topo)
    say(f"lab up in {time.monotonic() - t0:.1f}s")
    return _info(topo)


def _boot(h: Host, topo: Topology, img: Path, repo: Path, headscale: Path, authorized: str) -> None:
    root = container.mount_layer(h, img)
    roles.common(root, h, topo, authorized, keys.host_key(h.name))
    binds: dict[str, str] = {}
    if h.role == "gw":
        pw = keys.new_password()
        keys.write_secret(keys.kea_secret(h.site or ""), pw)
        roles.gateway(root, h, topo, pw)
    elif h.role == "client":
        roles.client(root, h, topo.sites.get(h.site or ""))
    elif h.role == "static":
        roles.static(root, h)
    elif h.role == "control":
        roles.control(root, topo)
        binds = {str(headscale): roles.HEADSCALE_BIN, str(repo): roles.APT_ROOT}
    container.start(h, binds)


def _wait_ready(arg: tuple[Host, Topology]) -> None:
    """Boot finished and the host's services answer (sshd; Kea's CA; Headscale and the apt repo)."""
    h, topo = arg
    container.wait_booted(h.name, timeout=90)
    checks: list[tuple[str, bool]] = [("sshd", probe.wait_tcp(h.netns, "127.0.0.1", 22, timeout=30))]
    if h.role == "gw":
        checks.append(("kea-ctrl-agent :8000", probe.wait_tcp(h.netns, "127.0.0.1", 8000, timeout=30)))
    if h.self_configured:
        checks.append((f"{h.manager} address {h.addresses[0]}", _wait_address(h, timeout=60)))
    if h.role == "control":
        addr = str(topo.control_address)
        checks.append(("headscale", probe.wait_http(h.netns, addr, topo.headscale_port, "/health", timeout=60)))
        checks.append(("apt repository", probe.wait_http(
            h.netns, addr, topo.apt_port, f"/dists/{aptrepo.SUITE}/InRelease", timeout=30)))
    failed = [name for name, ok in checks if not ok]
    if failed:
        raise LabError(f"{h.name}: not answering: {', '.join(failed)} (see {container.layout(h.name).log})")
    say(f"  {h.name} ready")


def _wait_address(h: Host, timeout: float) -> bool:
    """The host's own network manager has put its address on the LAN."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.addresses[0] in net.addresses(h.netns):
            return True
        time.sleep(0.3)
    return False


def _headscale_keys() -> None:
    """A long-lived API key for the control-plane code and a reusable tagged key for routers."""
    def hs(*args: str) -> str:
        out = run(container.exec_argv("control", ["headscale", *args])).stdout.strip()
        return out.splitlines()[-1].strip() if out else ""
    api_key = hs("apikeys", "create", "--expiration", "8760h")
    auth_key = hs("preauthkeys", "create", "--reusable", "--expiration", "8760h", "--tags", roles.TAG)
    if not api_key or not auth_key:
        raise LabError("headscale did not print the keys it was asked to create")
    keys.write_secret(keys.API_KEY_SECRET, api_key)
    keys.write_secret(keys.AUTH_KEY_SECRET, auth_key)


# What a reboot loses that a container restart alone would keep: the network namespace
# outlives the container, so its kernel state is reset by hand to a fresh boot's.
_FRESH_KERNEL_STATE = tuple(
    [tool, "-t", table, flag] for tool in ("iptables", "ip6tables")
    for table in ("filter", "nat", "mangle", "raw") for flag in ("-F", "-X")
) + (
    ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"],
    ["ip", "route", "flush", "table", "52"],
)


def restart(names: list[str]) -> None:
    """Reboot container hosts: power off, forget the namespace's kernel state (firewall rules,
    sysctls, policy routes), boot again from the same disk layer, wait for services."""
    topo = resolve_topology()
    with _locked():
        for name in names:
            h = next((x for x in lab_hosts(topo) if x.name == name), None)
            if h is None or not h.container or h.role == "control":
                choices = [x.name for x in lab_hosts(topo) if x.container and x.role != "control"]
                raise LabError(f"{name}: cannot restart (choose from {', '.join(choices)})")
            container.stop(h.name)
            for cmd in _FRESH_KERNEL_STATE:
                run(ns(h.netns, *cmd), check=False)
            if h.self_configured:  # its manager sets address and routes at boot: start it bare
                for link in h.links:
                    run(ns(h.netns, "ip", "addr", "flush", "dev", link.ifname), check=False)
                    run(ns(h.netns, "ip", "route", "flush", "dev", link.ifname), check=False)
            for prio in ("5210", "5230", "5250", "5260", "5270"):  # Tailscale's, and HA routers' own-LAN rules
                run(ns(h.netns, "ip", "rule", "del", "priority", prio), check=False)
            container.start(h)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(_wait_ready, [(h, topo) for h in lab_hosts(topo) if h.name in names]))


def _lab_container(topo: Topology, name: str, verb: str) -> Host:
    h = next((x for x in lab_hosts(topo) if x.name == name), None)
    if h is None or not h.container or h.role == "control":
        choices = [x.name for x in lab_hosts(topo) if x.container and x.role != "control"]
        raise LabError(f"{name}: cannot {verb} (choose from {', '.join(choices)})")
    return h


def poweroff(names: list[str], hard: bool = False) -> None:
    """Power hosts off and leave them off: their links go down first (the wire falls silent at
    once), then the container stops (`hard`: killed, nothing shuts down cleanly). Addresses a
    host added itself (a VRRP address) go with it, as they would with a real box."""
    topo = resolve_topology()
    with _locked():
        for name in names:
            h = _lab_container(topo, name, "power off")
            for link in h.links:
                run(ns(h.netns, "ip", "link", "set", link.ifname, "down"), check=False)
            container.stop(h.name, hard=hard)
            for link in h.links:
                run(ns(h.netns, "ip", "addr", "flush", "dev", link.ifname), check=False)
                if link.cidr and not h.self_configured:
                    run(ns(h.netns, "ip", "addr", "add", link.cidr, "dev", link.ifname), check=False)
            for cmd in _FRESH_KERNEL_STATE:
                run(ns(h.netns, *cmd), check=False)
            for prio in ("5210", "5230", "5250", "5260", "5270"):
                run(ns(h.netns, "ip", "rule", "del", "priority", prio), check=False)


def poweron(names: list[str]) -> None:
    """Boot hosts that `poweroff` left off (links up, container started, services waited for)."""
    topo = resolve_topology()
    with _locked():
        started = []
        for name in names:
            h = _lab_container(topo, name, "power on")
            if container.nspawn_pid(h.name) is not None:
                continue
            for link in h.links:
                run(ns(h.netns, "ip", "link", "set", link.ifname, "up"), check=False)
            if h.default_via:
                run(ns(h.netns, "ip", "route", "replace", "default", "via", h.default_via), check=False)
            container.start(h)
            started.append(h)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(_wait_ready, [(h, topo) for h in started]))


def renew(names: list[str]) -> None:
    """Release and re-bind each named DHCP client (any kind): dhclient installs option 121
    routes on a full bind (BOUND/REBOOT), not on RENEW, so this is how every kind of client
    picks up new routes (docs/lab.md: which kinds also do at renew)."""
    topo = resolve_topology()
    for name in names:
        h = next((x for x in lab_hosts(topo) if x.name == name), None)
        if h is None or h.role != "client":
            clients = [x.name for x in lab_hosts(topo) if x.role == "client"]
            raise LabError(f"{name}: not a lab DHCP client (choose from {', '.join(clients)})")
        dhcpclients.rebind(h)


# ---------------------------------------------------------------- down

def _mounted_layers() -> list[Path]:
    """Host layers of this checkout (another checkout's lab, under its own S2S_LAB_PREFIX, is left alone)."""
    base = str(hosts_dir().resolve()) + "/"
    with open("/proc/self/mounts") as f:
        return [Path(line.split()[1]) for line in f if line.split()[1].startswith(base)]


def down() -> None:
    """Stop every host, kill what is left in lab namespaces, unmount, delete: nothing remains."""
    with _locked():
        _down()


def _down() -> None:
    names = sorted({p.name for p in hosts_dir().iterdir()} if hosts_dir().is_dir() else set())
    with step("stopping hosts"):
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(container.stop, names))
        net.destroy()
        for name in names:
            container.remove_layer(name)
        if hosts_dir().is_dir() and not any(hosts_dir().iterdir()):
            hosts_dir().rmdir()
        for m in _mounted_layers():
            run(["umount", "-l", str(m)], check=False)
    if container.nspawn_tmpfs_is_ours() and not _nspawn_running():
        # Whichever lab mounted it: the last one down takes it away (labs of other
        # checkouts share it while any of their containers runs).
        run(["umount", str(container.NSPAWN_RUN)], check=False)
    for name in [keys.API_KEY_SECRET, keys.AUTH_KEY_SECRET]:
        keys.secret_path(name).unlink(missing_ok=True)
    for p in keys.secret_path("x").parent.glob("kea-*-password"):
        p.unlink()
    for f in ("sites.toml", "sites-sudo.toml", "state.json", "topology.toml"):
        (lab_dir() / f).unlink(missing_ok=True)
    for f in ("sites.toml", "sites-sudo.toml"):
        # the deploy's applied record of this lab's tailnet (gone with it): the next lab, maybe of
        # another topology, must not find "removed routers" that were another lab's
        (lab_dir() / (f + record.SUFFIX)).unlink(missing_ok=True)


def _nspawn_running() -> bool:
    """Any systemd-nspawn on the machine (ours or another user's) still needs the tmpfs."""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
                if comm == "systemd-nspawn" and state != "Z":  # zombies wait for init to reap them
                    return True
            except OSError:
                pass
    return False
