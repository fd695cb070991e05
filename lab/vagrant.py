"""The Vagrant lab: drive the repo's Vagrantfile and turn `vagrant ssh-config` into the lab's site file.

    python -m lab.vagrant box                                  # build + `vagrant box add` s2s/bookworm (lab/box.py)
    python -m lab.vagrant up --lean          # 2 VMs on a private libvirtd in a netns (lab/vagrant_lean.py)
    python -m lab.vagrant up --full          # the 7-VM layout, the same way (the local box, no route out)
    python -m lab.vagrant prepare --lean     # what a plain `vagrant up` of the lean layout needs; prints its env
    python -m lab.vagrant up [--provider libvirt|virtualbox]   # the full 7-VM layout (debian/bookworm64), then sitefile
    python -m lab.vagrant sitefile                             # (re)write sites.toml + ssh_config
    python -m lab.vagrant status | validate | down
    python -m lab.vagrant render                               # what the Vagrantfile provisions, as JSON

The outputs have the same shape as the namespace lab's (both come from
lab/sitefile.py), so `SITES=.lab/vagrant/sites.toml pyinfra inventory.py deploy.py`
works unchanged. Vagrant's own ssh-config is read with paramiko.SSHConfig, the
parser pyinfra itself uses, so what we extract is what pyinfra would see.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import vagrant

from lab import roles
from lab.sitefile import SshEndpoint, render_site_file, render_ssh_config
from lab.topology import GW_RELEASES, Topology, TopologyError, load_topology
from lab.versions import HEADSCALE_VERSION

REPO_ROOT = Path(__file__).resolve().parent.parent
API_KEY_FILE = "headscale-api.key"
TOPOLOGY_ENV = "S2S_VAGRANT_TOPOLOGY"  # the topology `--topology` chose, for the Vagrantfile's render call
MANAGEMENT_NETWORK = "192.168.121.0/24"  # Vagrant's management network on the closed lab's libvirtd (isolated)
VM_RELEASE = "bookworm"  # every box (debian/bookworm64, lab/box.py's s2s/bookworm): Kea 2.2
IFACE = "@IFACE@"  # the provisioner puts the name of the NIC holding the gateway address here


class VagrantLabError(Exception):
    """A failure of the Vagrant lab, shown as one line (exit 1)."""


def state_dir() -> Path:
    """Outputs and secrets of the Vagrant lab (the Vagrantfile reads the same variable)."""
    explicit = os.environ.get("S2S_VAGRANT_STATE")
    if explicit:
        return Path(explicit).resolve()
    return Path(os.environ.get("S2S_LAB_DIR") or REPO_ROOT / ".lab").resolve() / "vagrant"


def render(topo: Topology) -> dict:
    """Everything the Vagrantfile provisions, from the validated topology and the lab's own
    renderers (the namespace lab's gateways and control host use the same): the Vagrantfile
    reads this (`python -m lab.vagrant render`) and restates no address and no config."""
    kea_version = GW_RELEASES[VM_RELEASE]
    return {
        "topology": {
            "wan": {"subnet": str(topo.wan_subnet)},
            "control": {
                "address": str(topo.control_address),
                "headscale_port": topo.headscale_port,
                "apt_port": topo.apt_port,
            },
            "sites": {
                name: {
                    "subnet": str(s.subnet),
                    "gateway": str(s.gateway),
                    "router": str(s.router),
                    "router_wan": str(s.router_wan),
                    "dhcp_pool": s.dhcp_pool,
                }
                for name, s in topo.sites.items()
            },
        },
        "kea_dhcp4": {name: roles.dhcp4_config(s, kea_version, interface=IFACE) for name, s in topo.sites.items()},
        "kea_ctrl_agent": roles.ctrl_agent_config(),
        "headscale_config": roles.headscale_config(topo),
        "headscale_version": HEADSCALE_VERSION.removeprefix("v"),
        "management_network": MANAGEMENT_NETWORK,
    }


def vagrant_env(state: Path) -> dict[str, str]:
    """Vagrant's environment: no phoning home, machine state kept under the lab's state dir."""
    env = dict(os.environ)
    env.update(
        VAGRANT_CHECKPOINT_DISABLE="1",  # no version check against HashiCorp's servers
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
        S2S_VAGRANT_STATE=str(state),
    )
    env.setdefault("VAGRANT_DOTFILE_PATH", str(state / "dotvagrant"))
    return env


def client(state: Path, *, quiet: bool = False) -> vagrant.Vagrant:
    """A python-vagrant client on the repo's Vagrantfile; vagrant's stderr always reaches the user."""
    return vagrant.Vagrant(root=str(REPO_ROOT), env=vagrant_env(state), quiet_stdout=quiet, quiet_stderr=False)


def endpoints_from_ssh_config(
    text: str, topo: Topology, *, known_hosts_file: str | None, user: str = "root"
) -> list[SshEndpoint]:
    """One SshEndpoint per lab host from `vagrant ssh-config` output.

    The user is replaced by root: the Vagrantfile authorises the machine's key
    for root, as the namespace lab logs in as root. Vagrant's own
    `UserKnownHostsFile /dev/null` is replaced by a lab-private known_hosts.
    """
    config = paramiko.SSHConfig()
    config.parse(io.StringIO(text))
    present = config.get_hostnames()
    endpoints = []
    for name in topo.host_names():
        if name not in present:
            raise VagrantLabError(f"vagrant ssh-config has no entry for {name} (is the VM up? `vagrant status`)")
        entry = config.lookup(name)
        identity = entry.get("identityfile") or [None]
        endpoints.append(
            SshEndpoint(
                alias=name,
                hostname=entry["hostname"],
                port=int(entry.get("port", 22)),
                user=user,
                identity_file=identity[0],
                proxy_command=entry.get("proxycommand"),
                known_hosts_file=known_hosts_file,
            )
        )
    return endpoints


def endpoints_from_ssh_config_lean(text: str, topo: Topology, *, known_hosts_file: str) -> list[SshEndpoint]:
    """The lean layout: one VM per site, named after the site, reached as root from inside the lab's netns."""
    config = paramiko.SSHConfig()
    config.parse(io.StringIO(text))
    present = config.get_hostnames()
    endpoints = []
    for site in topo.sites:
        name = f"site-{site}"
        if name not in present:
            raise VagrantLabError(
                f"vagrant ssh-config has no entry for {name} (is the VM up? `python -m lab.vagrant status`)"
            )
        entry = config.lookup(name)
        identity = entry.get("identityfile") or [None]
        endpoints.append(
            SshEndpoint(
                alias=name,
                hostname=entry["hostname"],
                port=int(entry.get("port", 22)),
                user="root",
                identity_file=identity[0],
                known_hosts_file=known_hosts_file,
            )
        )
    return endpoints


def closed_active(state: Path) -> bool:
    """Was the lab prepared with --lean or --full (so down/status talk to the private libvirtd)?"""
    return (state / "layout").exists() and (state / "layout").read_text().strip() in ("lean", "full")


def write_lab_files(topo: Topology, ssh_config_text: str, state: Path, **site_options: object) -> tuple[Path, Path]:
    """Write ssh_config and sites.toml under `state`; returns their paths.

    `site_options` go to render_site_file (the closed full layout: auth key, the lab's apt repository)."""
    state.mkdir(parents=True, exist_ok=True)
    secrets = state / "secrets"
    ssh_config = state / "ssh_config"
    sites = state / "sites.toml"
    endpoints = endpoints_from_ssh_config(ssh_config_text, topo, known_hosts_file=str(state / "known_hosts"))
    ssh_config.write_text(render_ssh_config(endpoints))
    api_key = secrets / API_KEY_FILE
    sites.write_text(
        render_site_file(
            topo,
            kea_user="kea-api",
            kea_password_files={name: str(secrets / f"kea-{name}.password") for name in topo.sites},
            headscale_api_key_file=str(api_key) if api_key.exists() else None,
            headscale_local_url=f"http://127.0.0.1:{topo.headscale_port}",
            login_server=topo.headscale_url,
            ssh_config_file=str(ssh_config),
            **{"generated_by": "python -m lab.vagrant", **site_options},
        )
    )
    return sites, ssh_config


def fetch_api_key(v: vagrant.Vagrant, state: Path) -> Path:
    """Create a Headscale API key on the control VM once; stored 0600, never printed."""
    path = state / "secrets" / API_KEY_FILE
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = v.ssh(vm_name="control", command="sudo headscale apikeys create --expiration 90d")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        raise VagrantLabError("headscale apikeys create on control printed no key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(lines[-1] + "\n")
    return path


def cmd_sitefile(topo: Topology, state: Path) -> None:
    v = client(state, quiet=True)
    ssh_config_text = v.ssh_config()  # fails first, with vagrant's own message, if a VM is not up
    fetch_api_key(v, state)
    sites, ssh_config = write_lab_files(topo, ssh_config_text, state)
    print(f"wrote {sites} and {ssh_config}")
    print(f"run the deploy against the Vagrant lab:  SITES={os.path.relpath(sites)} pyinfra inventory.py deploy.py")


def cmd_status(topo: Topology, state: Path) -> None:
    states = {s.name: (s.state, s.provider) for s in client(state, quiet=True).status()}
    rows = [("control", str(topo.control_address), "")]
    for site in topo.sites.values():
        rows += [
            (site.gateway_host, str(site.gateway), "Kea + CA on 127.0.0.1:8000"),
            (site.router_host, f"{site.router}, {site.router_wan}", "subnet router"),
            (site.client_host, f"DHCP from {site.dhcp_pool}", "client"),
        ]
    for name, addresses, role in rows:
        state_name, provider = states.get(name, ("unknown", None))
        print(f"{name:<10} {state_name:<12} {provider or '-':<10} {addresses:<32} {role}")


def cmd_validate(state: Path) -> None:
    """`vagrant validate` offline (the machine cannot run VMs, but the file can be checked)."""
    subprocess.run(["vagrant", "validate"], cwd=REPO_ROOT, env=vagrant_env(state), check=True)


def _parser() -> argparse.ArgumentParser:
    """The verbs and their arguments."""
    parser = argparse.ArgumentParser(prog="python -m lab.vagrant", description=__doc__.splitlines()[0])
    parser.add_argument("--topology", help="topology file (default: lab/topology.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="vagrant up, then write the site file")
    up.add_argument("--provider", choices=("libvirt", "virtualbox"))
    closed = up.add_mutually_exclusive_group()
    closed.add_argument(
        "--lean",
        action="store_true",
        help="2 VMs (one per site) on a private libvirtd in a network namespace; KVM or qemu/TCG",
    )
    closed.add_argument(
        "--full",
        action="store_true",
        help="the 7 VMs, on the locally built box and the same private libvirtd (no route out)",
    )
    prepare = sub.add_parser("prepare", help="box, private libvirtd, control host: what a plain `vagrant up` needs")
    prepare_layout = prepare.add_mutually_exclusive_group(required=True)
    prepare_layout.add_argument("--lean", action="store_true")
    prepare_layout.add_argument("--full", action="store_true")
    sub.add_parser("box", help="build the Debian box locally and `vagrant box add` it (cached)")
    sub.add_parser("sitefile", help="write sites.toml + ssh_config from `vagrant ssh-config`")
    sub.add_parser("status", help="each VM, its state and addresses")
    sub.add_parser("validate", help="run `vagrant validate` (no VM, no download)")
    sub.add_parser("down", help="vagrant destroy -f (the site file and secrets stay)")
    sub.add_parser("render", help="print what the Vagrantfile provisions (JSON; the Vagrantfile runs this)")
    return parser


def vagrant_topology(path: str | None) -> Topology:
    """The topology, refused where it asks for what the VMs do not build (one router VM per
    site, an IPv4 LAN, a DHCP client): never half a lab that the site file would still claim."""
    topo = load_topology(path)
    for site in topo.sites.values():
        if site.ha:
            missing = "HA sites (router2, vip)"
        elif site.subnet6 is not None:
            missing = "IPv6 LANs (subnet6: no VM advertises the prefix)"
        elif site.static_hosts:
            missing = "static-address hosts (static_hosts)"
        else:
            continue
        raise TopologyError(f"{topo.path}: sites.{site.name}: {missing} run in the namespace lab only (s2s lab)")
    return topo


def _run(args: argparse.Namespace, topo: Topology, state: Path) -> None:
    """One verb on the VMs: the closed layouts' own (VMs on a private libvirtd) once one is up."""
    if args.command == "box":
        from lab.box import ensure_added

        print(ensure_added())
    elif args.command == "up" and (args.lean or args.full):
        from lab import vagrant_lean

        vagrant_lean.up(topo, state, "lean" if args.lean else "full")
    elif args.command == "prepare":
        from lab import vagrant_lean

        env = vagrant_lean.prepare(topo, state, "lean" if args.lean else "full")
        print("\n".join(f"export {name}={value}" for name, value in env.items()))
    elif args.command == "up":
        client(state).up(provider=args.provider)
        cmd_sitefile(topo, state)
    elif args.command == "validate":
        cmd_validate(state)
    elif closed_active(state):
        _run_closed(args.command, topo, state)
    elif args.command == "sitefile":
        cmd_sitefile(topo, state)
    elif args.command == "status":
        cmd_status(topo, state)
    elif args.command == "down":
        client(state).destroy()


def _run_closed(command: str, topo: Topology, state: Path) -> None:
    """sitefile, status and down on a closed layout (lean or full)."""
    from lab import vagrant_lean

    if command == "sitefile" and vagrant_lean.saved_layout(state) == "lean":
        vagrant_lean.write_outputs(topo, state)
    elif command == "sitefile":
        vagrant_lean.write_outputs_full(topo, state)
    elif command == "status":
        vagrant_lean.status(topo, state)
    elif command == "down":
        vagrant_lean.down(state)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        topo = vagrant_topology(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "render":
        json.dump(render(topo), sys.stdout, indent=1)
        return 0
    if args.topology:
        os.environ[TOPOLOGY_ENV] = str(Path(args.topology).resolve())  # vagrant's Vagrantfile renders the same
    try:
        _run(args, topo, state_dir())
    except VagrantLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        verb = " ".join(str(a) for a in exc.cmd[1:3]) if isinstance(exc.cmd, list) else str(exc.cmd)
        print(
            f"error: vagrant {verb.removeprefix('vagrant ')} failed (exit {exc.returncode}); "
            "see vagrant's output above",
            file=sys.stderr,
        )
        return 1
    except RuntimeError as exc:  # python-vagrant: no vagrant executable; lab steps (LabError)
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
