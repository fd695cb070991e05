"""What the lab CLI prints: each host's state (`status`) and where a running lab's outputs are."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab import container, net, probe
from lab.hosts import Host, lab_hosts
from lab.topology import Topology

if TYPE_CHECKING:
    from lab.api import LabInfo


@dataclass(frozen=True)
class HostStatus:
    name: str
    role: str
    netns: str
    addresses: list[str]
    up: bool
    detail: str


def status(topo: Topology) -> list[HostStatus]:
    """Each host: its namespace, configured addresses and whether it is up (SSH answers / has a lease)."""
    def one(h: Host) -> HostStatus:
        addrs = net.addresses(h.netns)
        if not net.exists(h.netns):
            return HostStatus(h.name, h.role, h.netns, [], False, "no namespace")
        if h.role == "client" and not h.container:
            return HostStatus(h.name, h.role, h.netns, addrs, bool(addrs), "dhcp lease" if addrs else "no lease")
        if container.nspawn_pid(h.name) is None:
            return HostStatus(h.name, h.role, h.netns, addrs, False, "container not running")
        ssh_ok = probe.wait_tcp(h.netns, "127.0.0.1", 22, timeout=2)
        return HostStatus(h.name, h.role, h.netns, addrs, ssh_ok, "ssh ok" if ssh_ok else "ssh not answering")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, lab_hosts(topo)))


def status_table(rows: list[HostStatus]) -> str:
    """One line a host: name, role, up/DOWN, addresses, why."""
    width = max(len(r.name) for r in rows) + 1
    return "".join(
        f"{r.name:<{width}} {r.role:<8} {'up' if r.up else 'DOWN':<5} {', '.join(r.addresses) or '-':<36} {r.detail}\n"
        for r in rows)


def deploy_hint(info: LabInfo) -> str:
    """Where the running lab's outputs are and how to deploy against it."""
    hosts = " ".join(info.ssh_hosts())
    first = next(iter(info.topology.sites.values()))
    return (
        f"\nThe lab is up ({len(info.topology.sites)} sites, from {info.topology.path}). Its outputs:\n"
        f"  site file:  {info.sites_file}\n"
        f"  ssh config: {info.ssh_config}   (hosts: {hosts})\n"
        f"  as {info.sudo_user} (sudo): {info.sudo_sites_file}  (ssh config {info.sudo_ssh_config})\n"
        f"  apt repo:   {info.apt_url}  (key {info.apt_key_file})\n"
        "Run the deploy against it from the repo root:\n"
        f"  SITES={info.sites_file} pyinfra -y inventory.py deploy.py\n"
        f"  SITES={info.sudo_sites_file} pyinfra -y --sudo inventory.py deploy.py   # as {info.sudo_user}\n"
        f"Reach a host:  python -m lab ssh {first.router_host}    |    "
        f"python -m lab exec {first.client_host} ip route\n"
        "Stop it:       python -m lab down\n"
    )
