"""A generated N-site dual-stack lab (`python -m lab topology --sites 3 --layout mixed --ipv6`).

Every site's LAN has a ULA /64 beside its IPv4 LAN of the mixed sizes; after one deploy each
networkd client has kernel routes to every other site's /64 and fd7a:115c:a1e0::/48 via its own
router's link-local address, ping6 crosses between every pair, and the next deploy changes nothing.
"""

from __future__ import annotations

import itertools
import re

import pytest

from lab import drive
from tests.e2e.labs import deployed, generated_topology
from tests.e2e.test_ipv6 import global6, link_local, routes6, wait_for

pytestmark = pytest.mark.integration

SITES = 3


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    topo = generated_topology(tmp_path_factory.mktemp("topo") / "three6.toml",
                              "--sites", str(SITES), "--layout", "mixed", "--ipv6")
    with deployed(topo) as info:
        yield info


def test_every_client_routes_every_other_sites_prefix_via_its_router(lab3):
    sites = lab3.topology.sites
    for site in sites.values():
        ll = re.escape(link_local(site.router_host))
        want = [str(o.subnet6) for o in sites.values() if o is not site] + ["fd7a:115c:a1e0::/48"]
        ok = wait_for(lambda ll=ll, site=site, want=want: all(
            re.search(rf"^{re.escape(p)} via {ll} dev eth0", routes6(site.client_host), re.M) for p in want),
            timeout=60)
        assert ok, (site.client_host, routes6(site.client_host))


def test_full_mesh_ping6(lab3):
    sites = list(lab3.topology.sites.values())
    addr = {s.client_host: global6(s.client_host, str(s.subnet6)) for s in sites}
    for a, b in itertools.permutations(addr, 2):
        out = drive.in_host(a, "ping", "-6", "-n", "-c", "2", "-w", "20", addr[b], check=False, timeout=30)
        assert out.returncode == 0 and "ttl=62" in out.stdout, (a, b, out.stdout)


def test_second_deploy_plans_zero_changes(lab3):
    assert drive.planned_changes(lab3.sites_file) == {}
