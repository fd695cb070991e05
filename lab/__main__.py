"""`python -m lab up | down | status | ssh HOST [CMD...] | exec HOST CMD... | renew CLIENT... | restart HOST...`

The built-in two-site lab: Debian hosts booted with systemd-nspawn in network
namespaces, Kea on each site's gateway, Headscale + a signed apt repo on the
control host. Needs root (namespaces, mounts).
"""

from __future__ import annotations

import argparse
import os
import sys

from lab import api, container
from lab.hosts import lab_hosts
from lab.sh import LabError
from lab.topology import TopologyError, load_topology


def _deploy_hint(info: api.LabInfo) -> str:
    hosts = " ".join(info.ssh_hosts())
    return (
        "\nThe lab is up. Its outputs:\n"
        f"  site file:  {info.sites_file}\n"
        f"  ssh config: {info.ssh_config}   (hosts: {hosts})\n"
        f"  apt repo:   {info.apt_url}  (key {info.apt_key_file})\n"
        "Run the deploy against it from the repo root:\n"
        f"  SITES={info.sites_file} pyinfra -y inventory.py deploy.py\n"
        "Reach a host:  python -m lab ssh a-router    |    python -m lab exec a-client ip route\n"
        "Stop it:       python -m lab down\n"
    )


def _ssh(name: str, cmd: list[str]) -> int:
    info = api._info(load_topology())
    if name not in info.ssh_hosts():
        raise LabError(f"{name}: no such SSH host (choose from {', '.join(info.ssh_hosts())})")
    argv = ["ssh", "-F", str(info.ssh_config), *([] if cmd else ["-t"]), name, *cmd]
    os.execvp("ssh", argv)
    return 1  # not reached


def _exec(name: str, cmd: list[str]) -> int:
    topo = load_topology()
    host = next((h for h in lab_hosts(topo) if h.name == name), None)
    if host is None:
        raise LabError(f"{name}: no such lab host (choose from {', '.join(topo.host_names())})")
    argv = container.exec_argv(name, cmd) if host.container else ["ip", "netns", "exec", host.netns, *cmd]
    os.execvp(argv[0], argv)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[2].strip())
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="build (first run) and start the lab; safe to repeat")
    sub.add_parser("down", help="stop the lab and remove every namespace, mount and process")
    sub.add_parser("status", help="each host, its addresses and whether it is up")
    s = sub.add_parser("ssh", help="SSH to a lab host through its namespace")
    s.add_argument("host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    e = sub.add_parser("exec", help="run a command inside a lab host (no SSH needed)")
    e.add_argument("host")
    e.add_argument("command", nargs=argparse.REMAINDER)
    r = sub.add_parser("renew", help="release and re-bind DHCP clients (they pick up new routes)")
    r.add_argument("clients", nargs="+")
    rb = sub.add_parser("restart", help="reboot container hosts (kernel state of their namespace reset too)")
    rb.add_argument("hosts", nargs="+")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("python -m lab: needs root (network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 2
    try:
        if args.cmd == "up":
            print(_deploy_hint(api.ensure_up()))
        elif args.cmd == "down":
            api.down()
            print("lab is down")
        elif args.cmd == "status":
            rows = api.status()
            for r in rows:
                state = "up" if r.up else "DOWN"
                print(f"{r.name:<10} {r.role:<8} {state:<5} {', '.join(r.addresses) or '-':<36} {r.detail}")
            return 0 if all(r.up for r in rows) else 1
        elif args.cmd == "restart":
            api.restart(args.hosts)
        elif args.cmd == "renew":
            api.renew(args.clients)
        elif args.cmd == "ssh":
            return _ssh(args.host, args.command)
        elif args.cmd == "exec":
            if not args.command:
                p.error("exec needs a command")
            return _exec(args.host, args.command)
    except TopologyError as exc:
        print(f"python -m lab: {exc}", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"python -m lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
