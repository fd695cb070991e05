"""`python -m lab [-t FILE] up | down | status | graph | ssh HOST [CMD...] | exec HOST CMD... |
   renew CLIENT... | restart HOST... | topology --sites N`

A lab built from a topology file: Debian hosts booted with systemd-nspawn in network
namespaces, Kea on each site's gateway, Headscale + a signed apt repo on the
control host. Needs root (namespaces, mounts), except `topology` and `graph`.

Which topology: --topology FILE, else $S2S_LAB_TOPOLOGY, else the running lab's
(remembered in .lab/), else the built-in two-site lab/topology.toml.
"""

from __future__ import annotations

import argparse
import os
import sys

from lab import api, container, graph, report
from lab.generate import LAYOUTS, generate
from lab.hosts import lab_hosts
from lab.sh import LabError
from lab.topology import Topology, TopologyError


def _ssh(name: str, cmd: list[str]) -> int:
    info = api._info(api.resolve_topology())
    if name not in info.ssh_hosts():
        raise LabError(f"{name}: no such SSH host (choose from {', '.join(info.ssh_hosts())})")
    argv = ["ssh", "-F", str(info.ssh_config), *([] if cmd else ["-t"]), name, *cmd]
    os.execvp("ssh", argv)
    return 1  # not reached


def _exec(name: str, cmd: list[str]) -> int:
    topo = api.resolve_topology()
    host = next((h for h in lab_hosts(topo) if h.name == name), None)
    if host is None:
        raise LabError(f"{name}: no such lab host (choose from {', '.join(topo.host_names())})")
    argv = container.exec_argv(name, cmd) if host.container else ["ip", "netns", "exec", host.netns, *cmd]
    os.execvp(argv[0], argv)
    return 1


def _status(topo: Topology) -> int:
    rows = report.status(topo)
    print(report.status_table(rows), end="")
    return 0 if all(r.up for r in rows) else 1


def _parser() -> argparse.ArgumentParser:
    """The verbs and their arguments."""
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[2].strip())
    # accepted before or after the verb: `python -m lab -t t.toml up` == `python -m lab up -t t.toml`
    p.add_argument("-t", "--topology", metavar="FILE", help=f"topology file (or ${api.TOPOLOGY_ENV})")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-t",
        "--topology",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"topology file (or ${api.TOPOLOGY_ENV}; default: the running lab's)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        """A sub-command that also takes --topology."""
        return sub.add_parser(name, help=help, parents=[common])

    verb("up", help="build (first run) and start the lab; safe to repeat")
    verb("down", help="stop the lab and remove every namespace, mount and process")
    verb("status", help="each host, its addresses and whether it is up")
    g = verb("graph", help="the topology's segments and hosts (text, or --dot for Graphviz)")
    g.add_argument("--dot", action="store_true", help="Graphviz dot instead of text")
    t = verb("topology", help="write an N-site topology file to stdout")
    t.add_argument("--sites", type=int, required=True, help="number of sites")
    t.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="uniform",
        help="uniform: every LAN a /24 at .1/.2 (default); mixed: /24, /16, /29, /27 in turn",
    )
    t.add_argument("--routes", type=int, default=0, help="extra advertised prefixes per site (default 0)")
    t.add_argument("--ipv6", action="store_true", help="dual-stack LANs (a ULA /64 each, networkd clients)")
    s = verb("ssh", help="SSH to a lab host through its namespace")
    s.add_argument("host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    e = verb("exec", help="run a command inside a lab host (no SSH needed)")
    e.add_argument("host")
    e.add_argument("command", nargs=argparse.REMAINDER)
    r = verb("renew", help="release and re-bind DHCP clients (they pick up new routes)")
    r.add_argument("clients", nargs="+")
    rb = verb("restart", help="reboot container hosts (kernel state of their namespace reset too)")
    rb.add_argument("hosts", nargs="+")
    po = verb("poweroff", help="power container hosts off and leave them off (--hard: a power cut)")
    po.add_argument("hosts", nargs="+")
    po.add_argument("--hard", action="store_true", help="kill at once: no clean shutdown")
    pn = verb("poweron", help="boot hosts that poweroff left off")
    pn.add_argument("hosts", nargs="+")
    return p


def _write_topology(args: argparse.Namespace) -> int:
    """`topology`: an N-site topology file on stdout (no lab, no root)."""
    try:
        sys.stdout.write(generate(args.sites, args.layout, args.routes, args.ipv6))
    except ValueError as exc:
        print(f"python -m lab topology: {exc}", file=sys.stderr)
        return 2
    return 0


def _graph(dot: bool) -> int:
    """`graph`: the topology's segments and hosts (no lab, no root)."""
    try:
        topo = api.resolve_topology()
    except TopologyError as exc:
        print(f"python -m lab: {exc}", file=sys.stderr)
        return 2
    print(graph.dot(topo) if dot else graph.text(topo), end="")
    return 0


def _on_the_lab(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """The verbs that start, stop or reach into the lab's hosts (as root)."""
    if args.cmd == "up":
        # the CLI's `up` keeps (and refreshes) a running lab's topology unless told otherwise
        print(report.deploy_hint(api.ensure_up(api.resolve_topology())))
    elif args.cmd == "down":
        api.down()
        print("lab is down")
    elif args.cmd == "status":
        return _status(api.resolve_topology())
    elif args.cmd == "restart":
        api.restart(args.hosts)
    elif args.cmd == "poweroff":
        api.poweroff(args.hosts, hard=args.hard)
    elif args.cmd == "poweron":
        api.poweron(args.hosts)
    elif args.cmd == "renew":
        api.renew(args.clients)
    elif args.cmd == "ssh":
        return _ssh(args.host, args.command)
    elif args.cmd == "exec":
        if not args.command:
            p.error("exec needs a command")
        return _exec(args.host, args.command)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.cmd == "topology":
        return _write_topology(args)
    if args.topology is not None:
        os.environ[api.TOPOLOGY_ENV] = args.topology  # every verb (and `lab exec` children) act on it
    if args.cmd == "graph":
        return _graph(args.dot)
    if os.geteuid() != 0:
        print("python -m lab: needs root (network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 2
    try:
        return _on_the_lab(args, p)
    except TopologyError as exc:
        print(f"python -m lab: {exc}", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"python -m lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
