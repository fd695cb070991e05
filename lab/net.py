"""Namespaces, bridges and veth pairs: the lab's wiring, created and removed with iproute2.

Veth pairs are created inside the switch namespace with their peer moved
straight into the host's namespace, so no lab interface ever exists in the
host's own network namespace. Teardown deletes namespaces (which deletes
their interfaces) after every process in them has been stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from lab.hosts import SWITCH_NS, Host, bridge
from lab.paths import PREFIX
from lab.sh import run

NETNS_DIR = Path("/run/netns")


def lab_namespaces() -> list[str]:
    """Every namespace with the lab prefix (also leftovers of a crashed run)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir()
                  if p.name == SWITCH_NS or p.name.startswith(f"{PREFIX}-"))


def exists(netns: str) -> bool:
    return (NETNS_DIR / netns).exists()


def add_namespace(netns: str) -> None:
    """A new network namespace with loopback up and nothing else: no route anywhere (the lab's and
    the tests' namespaces all start so)."""
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])


def create(hosts: list[Host], segments: list[str]) -> None:
    """Build the switch, every host namespace and their links with static addresses."""
    add_namespace(SWITCH_NS)
    # The switch only bridges; it must never route between segments.
    run(["ip", "netns", "exec", SWITCH_NS, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
    # ... and has no IPv6 at all: a bridge would otherwise take an address from a gateway's
    # router advertisements (SLAAC) and be reachable from the LAN.
    run(["ip", "netns", "exec", SWITCH_NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
         "net.ipv6.conf.default.disable_ipv6=1"])
    for seg in segments:
        run(["ip", "-n", SWITCH_NS, "link", "add", bridge(seg), "type", "bridge"])
        run(["ip", "-n", SWITCH_NS, "link", "set", bridge(seg), "up"])
    for host in hosts:
        add_namespace(host.netns)
        if host.self_configured:
            # a static host takes no address or route from the gateway's advertisements before its
            # manager starts (NetworkManager would otherwise assume that state and not apply its own
            # profile); its links, created next, inherit these
            run(["ip", "netns", "exec", host.netns, "sysctl", "-qw", "net.ipv6.conf.default.accept_ra=0",
                 "net.ipv6.conf.default.autoconf=0"])
        for link in host.links:
            run(["ip", "-n", SWITCH_NS, "link", "add", link.switch_port, "type", "veth",
                 "peer", "name", link.ifname, "netns", host.netns])
            run(["ip", "-n", SWITCH_NS, "link", "set", link.switch_port, "master", bridge(link.segment), "up"])
            if link.cidr and not host.self_configured:
                run(["ip", "-n", host.netns, "addr", "add", link.cidr, "dev", link.ifname])
            run(["ip", "-n", host.netns, "link", "set", link.ifname, "up"])
        if host.default_via:
            run(["ip", "-n", host.netns, "route", "add", "default", "via", host.default_via])
        if host.role == "client":
            # `ip netns exec` bind-mounts /etc/netns/NS/* over /etc: keeps dhclient off the host's resolv.conf.
            d = Path("/etc/netns") / host.netns
            d.mkdir(parents=True, exist_ok=True)
            (d / "resolv.conf").write_text("# lab client: no DNS\n")


def pids(netns: str) -> list[int]:
    """Processes living in a namespace (stragglers to stop before deleting it)."""
    if not exists(netns):
        return []
    out = run(["ip", "netns", "pids", netns], check=False).stdout or ""
    return [int(p) for p in out.split() if p.isdigit()]


def kill_all(netns: str, grace: float = 3.0) -> None:
    """TERM then KILL every process left in one of OUR namespaces."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = pids(netns)
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = pids(netns)
        if not left:
            return


def destroy() -> None:
    """Delete every lab namespace (their veths and bridges go with them) and /etc/netns entries."""
    for netns in lab_namespaces():
        kill_all(netns)
        run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)
    etc = Path("/etc/netns")
    if etc.is_dir():
        for d in etc.iterdir():
            if d.name.startswith(f"{PREFIX}-"):
                shutil.rmtree(d, ignore_errors=True)


def addresses(netns: str) -> list[str]:
    """IPv4 addresses (CIDR) configured in a namespace, loopback excluded."""
    if not exists(netns):
        return []
    out = run(["ip", "-n", netns, "-4", "-o", "addr", "show"], check=False).stdout or ""
    return [f.split()[3] for f in out.splitlines() if " lo " not in f and len(f.split()) > 3]
