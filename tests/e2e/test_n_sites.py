"""Four sites end to end, deployed as a non-root operator with sudo.

The topology comes from the generator (`python -m lab topology --sites 4 --layout
mixed --routes 1`): a /24 with the guide's .1/.2, a /16 with the router at
.200.254, a /29 and a /27 with the router mid-range, each site advertising one
more prefix. One deploy (`pyinfra --sudo` as the lab's `s2s` user), every client
re-binds, every client reaches every other with its own source address, and a
second deploy plans nothing. Tests run in order on one lab.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab import drive
from tests.e2e.labs import booted, generated_topology

pytestmark = pytest.mark.integration

SITES = 4


@pytest.fixture(scope="module")
def lab4(tmp_path_factory):
    """A fresh generated 4-site lab (nothing deployed yet); torn down after the module."""
    topo = generated_topology(tmp_path_factory.mktemp("topo") / "four.toml",
                              "--sites", str(SITES), "--layout", "mixed", "--routes", "1")
    with booted(topo, export=False) as info:  # the CLI must find the running lab without the variable
        yield info



def clients(info) -> list[str]:
    return [s.client_host for s in info.topology.sites.values()]


def test_the_cli_acts_on_the_running_four_site_lab(lab4):
    status = drive.lab("status").stdout  # no --topology: the running lab's is remembered
    assert len(re.findall(r" up ", status)) == 1 + 3 * SITES, status
    assert re.search(r"^b-router\s+router\s+up\s+10\.2\.200\.254/16", status, re.M), status
    assert re.search(r"^c-client\s+client\s+up\s+10\.3\.0\.[2-5]/29", status, re.M), status
    assert drive.lab("ssh", "d-router", "hostname").stdout.strip() == "d-router"
    assert "10.3.0.6/29" in drive.lab("graph").stdout  # c's gateway sits at the top of its /29
    whoami = subprocess.run(["ssh", "-F", str(lab4.sudo_ssh_config), "d-router", "id -un; sudo -n id -un"],
                            capture_output=True, text=True, timeout=60)
    assert whoami.stdout.split() == ["s2s", "root"], whoami.stdout + whoami.stderr


def test_first_deploy_as_a_sudo_user(lab4):
    result = drive.pyinfra(lab4.sudo_sites_file, "--sudo")
    assert result.returncode == 0, drive.why_failed(result)
    for site in lab4.topology.sites.values():
        out = drive.in_host(site.router_host, "tailscale", "status", "--json").stdout
        assert '"BackendState": "Running"' in out, (site.router_host, out[:500])


def test_every_client_gets_every_other_sites_prefixes_via_its_router(lab4):
    drive.lab("renew", *clients(lab4))
    sites = list(lab4.topology.sites.values())
    for site in sites:
        table = drive.in_host(site.client_host, "ip", "-4", "route").stdout
        assert re.search(rf"^default via {site.gateway} dev eth0", table, re.M), table
        for other in (o for o in sites if o is not site):
            for prefix in (other.subnet, *other.routes):
                assert re.search(rf"^{re.escape(str(prefix))} via {site.router} dev eth0", table, re.M), (
                    site.client_host, str(prefix), table)


def test_full_mesh_ping(lab4):
    names = clients(lab4)
    addr = {c: drive.client_address(c) for c in names}
    pairs = [(src, dst) for src in names for dst in names if src != dst]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = dict(zip(pairs, pool.map(lambda p: drive.ping(p[0], addr[p[1]], count=1), pairs), strict=True))
    failed = {f"{s}->{d}": r.stdout[-200:] for (s, d), r in results.items() if r.returncode != 0}
    assert not failed, failed
    assert all("ttl=62" in r.stdout for r in results.values())  # two routers on every path: the tunnel


def test_full_mesh_tcp_the_far_end_sees_the_real_source(lab4):
    names = clients(lab4)
    addr = {c: drive.client_address(c) for c in names}
    seen = drive.tcp_mesh(names, nbytes=4096)
    for dst in names:
        assert seen[dst] == {addr[src]: 4096 for src in names if src != dst}, (dst, seen[dst])


def test_second_deploy_plans_zero_changes(lab4):
    assert drive.planned_changes(lab4.sudo_sites_file, "--sudo") == {}
    assert drive.planned_changes(lab4.sites_file) == {}  # and as root: the same hosts, the same state


def test_no_unit_failed_on_any_router_and_each_host_has_its_own_cgroup(lab4):
    """The 219/CGROUP failure came from containers sharing one cgroup tree; each host now has its own."""
    from lab import container

    for site in lab4.topology.sites.values():
        failed = drive.in_host(site.router_host, "systemctl", "--failed", "--no-legend", "--plain").stdout
        assert failed.strip() == "", (site.router_host, failed)
        leader = container.leader_pid(site.router_host)
        cgroups = Path(f"/proc/{leader}/cgroup").read_text()
        host = next(h for h in lab4.hosts if h.name == site.router_host)
        assert f"/{container.CGROUP_PARENT}/{host.netns}/payload" in cgroups, cgroups


def test_a_router_of_the_slash_29_reboots_and_its_site_is_reached_again(lab4):
    drive.lab("restart", "c-router")  # a verb on a host only this topology has
    assert drive.in_host("c-router", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    there = drive.ping("a-client", drive.client_address("c-client"), count=1, deadline=60)
    assert there.returncode == 0, there.stdout
    assert drive.planned_changes(lab4.sudo_sites_file, "--sudo") == {}
