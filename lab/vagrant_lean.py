"""The closed Vagrant lab: VMs under a private libvirtd in a namespace with no route out.

Two layouts share it: lean (`python -m lab.vagrant up --lean`, 2 VMs) and full
(`python -m lab.vagrant up --full`, the Vagrantfile's 7 VMs on the locally built
box). What `up --lean` does, in order (`prepare` is steps 1-4, so a plain
`vagrant up` can follow it):

1. the box (lab/box.py: built from Debian packages, `vagrant box add`-ed);
2. libvirtd + virtlogd in the namespace <PREFIX>-vm (lab/vagrant_libvirt.py);
3. KVM or qemu/TCG, by really trying KVM (vagrant_libvirt.detect_accel);
4. the control host in that same namespace: Headscale (the pinned build from
   lab/gobuild.py) and the signed apt repository holding the Tailscale .deb
   (lab/aptrepo.py), both on the WAN bridge's address (topology control address);
5. `vagrant up` (the Vagrantfile's ssh proxy_command reaches the VMs' management
   addresses inside the namespace, where they exist only), provisioners included;
6. the site file and ssh_config: the deploy runs inside the namespace too:
   `ip netns exec <PREFIX>-vm pyinfra inventory.py deploy.py`.

One VM per site holds the subnet router, the gateway (Kea on a LAN bridge that
also holds the router's address) and the DHCP client (a netns on that bridge):
see the Vagrantfile's lean layout. `down` removes VMs, networks, the processes
and the namespace.

The full layout differs in step 4: its control host is a VM (Headscale uploaded
from lab/gobuild.py's build), so the namespace serves only the apt repository,
on the management network's host address (the WAN's control address is the VM's).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path

from lab import aptrepo, gobuild, headscale, vagrant_libvirt
from lab.box import BOX_NAME, ensure_added
from lab.progress import say, step
from lab.sh import run
from lab.sitefile import render_site_file, render_ssh_config
from lab.topology import Topology
from lab.vagrant import MANAGEMENT_NETWORK

NETNS = vagrant_libvirt.NETNS
TAG = "tag:subnet-router"
LAYOUTS = ("lean", "full")
# Vagrant's management network on the private libvirtd (isolated: mode none; lab.vagrant.render
# gives it to the Vagrantfile): libvirt puts its first address on the bridge, in the namespace.
MANAGEMENT_HOST = str(next(ipaddress.ip_network(MANAGEMENT_NETWORK).hosts()))


# Debian packages the lean lab needs on the host. Not libvirt-daemon-system: it would start a
# system libvirtd (and its NAT network) outside any namespace.
HOST_PACKAGES = (
    "vagrant",
    "vagrant-libvirt",
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-system-x86",
    "qemu-utils",
    "dnsmasq-base",
    "e2fsprogs",
)
HOST_PROGRAMS = ("vagrant", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img", "dnsmasq", "mkfs.ext4")


def ensure_host_packages() -> None:
    """apt-get install what is missing (--no-install-recommends), once."""
    import shutil

    plugin = Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-libvirt-*")
    if all(shutil.which(p) for p in HOST_PROGRAMS) and any(plugin):
        return
    with step(f"apt-get install {' '.join(HOST_PACKAGES)}"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *HOST_PACKAGES],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def closed_env(state: Path, layout: str | None = None) -> dict[str, str]:
    """Environment for the Vagrantfile's closed layouts on the private libvirtd.

    The Vagrantfile derives the libvirt URI, the domain prefix and the accelerator
    from S2S_VAGRANT_STATE and S2S_LAB_PREFIX itself (so a plain `vagrant up` needs
    only what docs/vagrant.md lists); they are set here too, explicitly. Vagrant's
    machine state stays where a plain `vagrant` keeps it (./.vagrant, or the caller's
    VAGRANT_DOTFILE_PATH), so the wrapper and a user's `vagrant` see the same machines.
    """
    layout = layout or saved_layout(state)
    env = dict(os.environ)
    env.update(
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
        S2S_VAGRANT_STATE=str(state),
        VAGRANT_DEFAULT_PROVIDER="libvirt",
        S2S_VAGRANT_BOX=BOX_NAME,
        S2S_LAB_PREFIX=vagrant_libvirt.LAB_PREFIX,
        S2S_LIBVIRT_URI=vagrant_libvirt.uri(),
        S2S_VAGRANT_DOMAIN_PREFIX=f"{vagrant_libvirt.LAB_PREFIX}-",
    )
    if layout == "lean":
        env["S2S_VAGRANT_LAYOUT"] = "lean"
    else:
        env.pop("S2S_VAGRANT_LAYOUT", None)
        env["S2S_HEADSCALE_BINARY"] = str(gobuild.binary("headscale"))
    accel = _saved_accel(state)
    if accel:
        env["S2S_LIBVIRT_DRIVER"] = accel
    return env


def saved_layout(state: Path) -> str:
    """The closed layout `prepare` was run for (lean when none was saved)."""
    path = state / "layout"
    layout = path.read_text().strip() if path.exists() else "lean"
    return layout if layout in LAYOUTS else "lean"


def _saved_accel(state: Path) -> str | None:
    path = state / "accel"
    return path.read_text().strip() if path.exists() else None


def vagrant(state: Path, *args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`vagrant ARGS` as a user types it (the Vagrantfile's ssh proxy reaches into the lab's namespace)."""
    from lab.vagrant import REPO_ROOT

    return subprocess.run(
        ["vagrant", *args],
        cwd=REPO_ROOT,
        env=closed_env(state),
        text=True,
        capture_output=capture,
        check=check,
    )


def _box_files() -> tuple[Path, Path]:
    home = Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")
    base = home / "boxes" / BOX_NAME.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt"
    return base / "vmlinuz", base / "initrd.img"


# ------------------------------------------------------------ control host (in the namespace)


def _pidfile(state: Path, name: str) -> Path:
    return state / "control" / f"{name}.pid"


def _alive(state: Path, name: str) -> bool:
    try:
        os.kill(int(_pidfile(state, name).read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def _spawn(state: Path, name: str, argv: list[str], cwd: Path | None = None) -> None:
    if _alive(state, name):
        return
    log = open(state / "control" / f"{name}.log", "ab")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", NETNS, *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        start_new_session=True,
    )
    _pidfile(state, name).write_text(f"{proc.pid}\n")


def headscale_config_path(state: Path) -> Path:
    return state / "control" / "headscale.yaml"


def start_apt(topo: Topology, state: Path) -> None:
    """The signed apt repository with the Tailscale .deb, on every address of the namespace."""
    repo = aptrepo.ensure_repo()
    with step(f"apt repository in {NETNS} :{topo.apt_port}"):
        _spawn(
            state,
            "apt",
            ["python3", "-m", "http.server", str(topo.apt_port), "--bind", "0.0.0.0", "--directory", str(repo)],
        )


def start_control(topo: Topology, state: Path) -> None:
    """Headscale and the apt repository, served from the namespace on the control address."""
    control = state / "control"
    (control / "headscale").mkdir(parents=True, exist_ok=True)
    start_apt(topo, state)
    binary = gobuild.binary("headscale")
    config = headscale_config_path(state)
    config.write_text(
        headscale.render_config(
            server_url=topo.headscale_url,
            listen_port=topo.headscale_port,
            address=str(topo.control_address),
            state_dir=str(control / "headscale"),
            unix_socket=str(control / "headscale.sock"),
        )
    )
    with step(f"control host in {NETNS}: Headscale :{topo.headscale_port}"):
        _spawn(state, "headscale", [str(binary), "serve", "--config", str(config)])
        for _ in range(150):
            if (control / "headscale.sock").exists():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"headscale did not start; see {control / 'headscale.log'}")


def headscale_cli(state: Path, *args: str) -> str:
    binary = gobuild.binary("headscale")
    out = run(["ip", "netns", "exec", NETNS, str(binary), "--config", str(headscale_config_path(state)), *args]).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def stop_control(state: Path) -> None:
    for name in ("apt", "headscale"):
        if _alive(state, name):
            pid = int(_pidfile(state, name).read_text())
            os.killpg(pid, signal.SIGTERM)
        _pidfile(state, name).unlink(missing_ok=True)


# ------------------------------------------------------------ verbs


def prepare(topo: Topology, state: Path, layout: str = "lean") -> dict[str, str]:
    """Everything `vagrant up` needs for a closed layout (box, libvirtd, accelerator, what the
    namespace serves); idempotent. Returns the environment variables a plain `vagrant up` reads."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "control").mkdir(exist_ok=True)
    (state / "layout").write_text(layout + "\n")
    ensure_host_packages()
    env = closed_env(state, layout)
    ensure_added(env)
    vagrant_libvirt.start()
    if not _saved_accel(state):
        kernel, initrd = _box_files()
        (state / "accel").write_text(vagrant_libvirt.detect_accel(kernel, initrd) + "\n")
    if layout == "lean":
        start_control(topo, state)
    else:
        start_apt(topo, state)
    names = ["S2S_LAB_PREFIX", "S2S_VAGRANT_STATE", "VAGRANT_DEFAULT_PROVIDER", "S2S_VAGRANT_BOX"]
    names += ["S2S_VAGRANT_LAYOUT"] if layout == "lean" else ["S2S_HEADSCALE_BINARY"]
    return {name: closed_env(state, layout)[name] for name in names}


def up(topo: Topology, state: Path, layout: str = "lean") -> None:
    prepare(topo, state, layout)
    vms = len(topo.sites) if layout == "lean" else len(topo.host_names())
    with step(f"vagrant up ({layout} layout, libvirt, domain type {_saved_accel(state)!r}, {vms} VMs)"):
        if vagrant(state, "up", "--provider", "libvirt", check=False).returncode != 0:
            # Seen once under TCG: a VM reported 'inaccessible' while booting in parallel and
            # vagrant-libvirt destroyed it. `up` again creates what is missing, one VM at a time.
            say("vagrant up failed; once more, one VM at a time")
            vagrant(state, "up", "--provider", "libvirt", "--no-parallel")
    if layout == "lean":
        write_outputs(topo, state)
    else:
        write_outputs_full(topo, state)


def write_outputs(topo: Topology, state: Path) -> tuple[Path, Path]:
    """ssh_config (management addresses, reached from inside the namespace) and sites.toml."""
    secrets = state / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    api_key, auth_key = secrets / "headscale-api.key", secrets / "headscale-auth.key"
    if not api_key.exists():
        _write_secret(api_key, headscale_cli(state, "apikeys", "create", "--expiration", "8760h"))
    if not auth_key.exists():
        if (
            "lab"
            not in run(
                [
                    "ip",
                    "netns",
                    "exec",
                    NETNS,
                    str(gobuild.binary("headscale")),
                    "--config",
                    str(headscale_config_path(state)),
                    "users",
                    "list",
                ]
            ).stdout
        ):
            headscale_cli(state, "users", "create", "lab")
        _write_secret(
            auth_key,
            headscale_cli(state, "preauthkeys", "create", "--reusable", "--expiration", "8760h", "--tags", TAG),
        )
    ssh_text = vagrant(state, "ssh-config", capture=True).stdout
    from lab.vagrant import endpoints_from_ssh_config_lean

    endpoints = endpoints_from_ssh_config_lean(ssh_text, topo, known_hosts_file=str(state / "known_hosts"))
    ssh_config = state / "ssh_config"
    ssh_config.write_text(render_ssh_config(endpoints))
    key = state / "apt-key.asc"
    key.write_text(aptrepo.ensure_key())
    sites = state / "sites.toml"
    aliases = {}
    for site in topo.sites.values():
        aliases[site.gateway_host] = f"site-{site.name}"
        aliases[site.router_host] = f"site-{site.name}"
    text = render_site_file(
        topo,
        ssh_aliases=aliases,
        kea_password_files={name: str(secrets / f"kea-{name}.password") for name in topo.sites},
        headscale_api_key_file=str(api_key),
        auth_key_file=str(auth_key),
        login_server=topo.headscale_url,
        apt_repo_url=topo.apt_url,
        apt_key_file=str(key),
        apt_suite=aptrepo.SUITE,
        apt_component=aptrepo.COMPONENT,
        no_logs_no_support=True,
        ssh_config_file=str(ssh_config),
        generated_by="python -m lab.vagrant up --lean",
    )
    # The VM's name is site-X but the router's tailnet node is its hostname, X-router.
    for site in topo.sites.values():
        text = text.replace(
            f"[sites.{site.name}]\n", f"[sites.{site.name}]\ntailnet_node = \"{site.router_host}\"\n", 1
        )
    sites.write_text(text)
    from sites import load_sites

    load_sites(sites)
    print(f"wrote {sites} and {ssh_config}")
    print(
        f"deploy from inside the lab's namespace:  ip netns exec {NETNS} env SITES={sites} "
        "pyinfra inventory.py deploy.py"
    )
    return sites, ssh_config


def on_control_vm(state: Path, command: str) -> str:
    """The last line a root command printed on the full layout's control VM (`vagrant ssh`)."""
    out = vagrant(state, "ssh", "control", "-c", f"sudo {command}", capture=True).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def write_outputs_full(topo: Topology, state: Path) -> tuple[Path, Path]:
    """The full layout's sites.toml and ssh_config: Headscale's keys made on the control VM,
    Tailscale from the namespace's apt repository (on the management network's host address)."""
    from lab.vagrant import write_lab_files

    secrets = state / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    api_key, auth_key = secrets / "headscale-api.key", secrets / "headscale-auth.key"
    if not api_key.exists():
        _write_secret(api_key, on_control_vm(state, "headscale apikeys create --expiration 8760h"))
    if not auth_key.exists():
        _write_secret(
            auth_key,
            on_control_vm(state, f"headscale preauthkeys create --reusable --expiration 8760h --tags {TAG}"),
        )
    key = state / "apt-key.asc"
    key.write_text(aptrepo.ensure_key())
    sites, ssh_config = write_lab_files(
        topo,
        vagrant(state, "ssh-config", capture=True).stdout,
        state,
        auth_key_file=str(auth_key),
        apt_repo_url=f"http://{MANAGEMENT_HOST}:{topo.apt_port}",
        apt_key_file=str(key),
        apt_suite=aptrepo.SUITE,
        apt_component=aptrepo.COMPONENT,
        no_logs_no_support=True,
        generated_by="python -m lab.vagrant up --full",
    )
    from sites import load_sites

    load_sites(sites)
    print(f"wrote {sites} and {ssh_config}")
    return sites, ssh_config


def _write_secret(path: Path, value: str) -> None:
    if not value:
        raise RuntimeError(f"headscale printed nothing for {path.name}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")


def down(state: Path) -> None:
    """Destroy the VMs, stop the control host and libvirtd, delete the namespace."""
    if vagrant_libvirt.running():
        with step("vagrant destroy -f"):
            vagrant(state, "destroy", "-f", check=False)
    stop_control(state)
    with step(f"stopping libvirtd and removing namespace {NETNS}"):
        vagrant_libvirt.stop()
    for name in ("headscale", "headscale.sock"):
        p = state / "control" / name
        if p.is_dir():
            import shutil

            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for name in ("headscale-api.key", "headscale-auth.key"):
        (state / "secrets" / name).unlink(missing_ok=True)
    # New VMs get new host keys, maybe on the same management addresses.
    (state / "known_hosts").unlink(missing_ok=True)
    (state / "layout").unlink(missing_ok=True)


def status(topo: Topology, state: Path) -> None:
    print(vagrant_libvirt.status())
    print(
        f"accelerator: {_saved_accel(state) or 'unknown'}; control: headscale "
        f"{'running' if _alive(state, 'headscale') else 'stopped'}, "
        f"apt {'running' if _alive(state, 'apt') else 'stopped'}"
    )
    if vagrant_libvirt.running():
        vagrant(state, "status", check=False)


# ------------------------------------------------------------ driving the lab (tests, bench)


def pyinfra(state: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """`pyinfra [-y] inventory.py deploy.py ARGS` from inside the lab's namespace against its site file."""
    from lab.drive import PYINFRA, REPO

    yes = [] if "--dry" in args else ["-y"]
    return subprocess.run(
        ["ip", "netns", "exec", NETNS, PYINFRA, *yes, "inventory.py", "deploy.py", *args],
        cwd=REPO,
        env=dict(os.environ, SITES=str(state / "sites.toml")),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def on_vm(
    state: Path, vm: str, command: str, *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """A shell command as root on a VM, over the lab's ssh_config from inside the namespace."""
    proc = subprocess.run(
        ["ip", "netns", "exec", NETNS, "ssh", "-F", str(state / "ssh_config"), vm, command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{vm}: {command}: exit {proc.returncode}: {proc.stderr[-500:]}")
    return proc


def renew_client(state: Path, vm: str) -> None:
    """A full DHCP bind for the site's client (it asks for option 121 only then)."""
    on_vm(state, vm, "systemctl restart s2s-lan-client.service")


def client_address(state: Path, vm: str) -> str:
    out = on_vm(state, vm, "ip -n client -4 -o addr show dev eth0").stdout
    return out.split()[3].split("/")[0]


def client_routes(state: Path, vm: str) -> str:
    return on_vm(state, vm, "ip -n client -4 route").stdout


def ping(state: Path, src_vm: str, dst: str, count: int = 3, deadline: int = 60) -> subprocess.CompletedProcess[str]:
    return on_vm(
        state,
        src_vm,
        f"ip netns exec client ping -n -c {count} -w {deadline} {dst}",
        check=False,
        timeout=deadline + 60,
    )
