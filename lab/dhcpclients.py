"""The lab's DHCP clients: start one, wait for its lease, give the lease back, renew it.

Four kinds run on lab LANs (topology `dhcp_client`): ISC dhclient in a bare namespace,
systemd-networkd, dhcpcd and NetworkManager in their own booted containers. Each kind is started,
released and renewed its own way; this module is the one place that knows how.
"""

from __future__ import annotations

import time

from lab import container, net, roles
from lab.hosts import Host
from lab.progress import say
from lab.sh import LabError, ns, run


def start(h: Host) -> None:
    """Start the client's DHCP client (dhclient in the bare namespace, with its own pid/lease
    files; the other kinds already run in their booted container); wait for a lease."""
    if not h.container:
        d = container.layout(h.name).base
        d.mkdir(parents=True, exist_ok=True)
        run(ns(h.netns, "dhclient", "-4", "-nw", "-pf", str(d / "dhclient.pid"),
               "-lf", str(d / "dhclient.leases"), "eth0"))
    wait_lease(h)


def wait_lease(h: Host, timeout: float = 60) -> None:
    """An address on eth0 and a default route (option 3 or 121's 0.0.0.0/0): the lease is applied."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if net.addresses(h.netns) and run(ns(h.netns, "ip", "-4", "route", "show", "default"),
                                          check=False).stdout.strip():
            say(f"  {h.name} ({h.dhcp_client}) got {net.addresses(h.netns)[0]}")
            return
        time.sleep(0.3)
    raise LabError(f"{h.name}: no DHCP lease after {timeout:.0f}s ({h.dhcp_client})")


def release(h: Host) -> None:
    """Give the lease back and drop the address, the way each client kind does it."""
    if h.dhcp_client == "networkd":
        # reconfigure: networkd releases (SendRelease=yes), forgets the lease and starts over
        run(container.exec_argv(h.name, ["networkctl", "reconfigure", "eth0"]))
    elif h.dhcp_client == "dhcpcd":
        # stop with `release` in dhcpcd.conf: DHCPRELEASE, address and routes removed
        run(container.exec_argv(h.name, ["systemctl", "stop", "lab-dhcpcd.service"]))
    elif h.dhcp_client == "networkmanager":
        # the connection down: NetworkManager drops the lease, the addresses and the routes
        run(container.exec_argv(h.name, ["nmcli", "connection", "down", "lan"]))
    else:
        d = container.layout(h.name).base
        run(ns(h.netns, "dhclient", "-4", "-r", "-pf", str(d / "dhclient.pid"),
               "-lf", str(d / "dhclient.leases"), "eth0"))
    deadline = time.monotonic() + 10
    while net.addresses(h.netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    if h.dhcp_client == "dhcpcd":
        run(container.exec_argv(h.name, ["systemctl", "start", "lab-dhcpcd.service"]))
    elif h.dhcp_client == "networkmanager":
        run(container.exec_argv(h.name, ["nmcli", "--wait", "60", "connection", "up", "lan"]))


def rebind(h: Host) -> None:
    """Release and bind again: every client kind installs option 121 routes on a full bind."""
    release(h)
    start(h)


def renew_in_place(h: Host) -> None:
    """Ask the client for an RFC 2131 RENEW now, keeping its lease (no release, no new bind):
    networkd `networkctl renew`, dhcpcd `dhcpcd -N`. ISC dhclient and NetworkManager have no
    such command; their RENEW comes only at T1 (roles.RENEW_TIMER)."""
    if h.dhcp_client == "networkd":
        run(container.exec_argv(h.name, ["networkctl", "renew", "eth0"]))
    elif h.dhcp_client == "dhcpcd":
        run(container.exec_argv(h.name, ["dhcpcd", "--renew", "eth0"]))
    else:
        kind = "NetworkManager" if h.dhcp_client == "networkmanager" else "ISC dhclient"
        raise LabError(f"{h.name}: {kind} has no renew-now command (it renews at T1, "
                       f"{roles.RENEW_TIMER}s after its bind)")
