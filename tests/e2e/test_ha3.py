"""Three subnet routers at one site, end to end (tests/e2e/ha3_topology.toml): site a's a-router,
a-router2 and a-router3 share the VRRP address 192.0.2.3, site b has one router.

One deploy approves the site's prefix on all three nodes and puts the VRRP address on the
tailnet's primary, on exactly one of them. A hard power cut of the primary under a running
ping: traffic resumes within the target, the address moves to the router Headscale made
primary (one of the two left), and neither moves back when the old primary returns. A
second deploy then plans zero changes. Tests run in order on one lab.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lab import drive
from lab.failover import single_holder
from tests.e2e.labs import deployed

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("ha3_topology.toml")
ROUTERS = ["a-router", "a-router2", "a-router3"]
VIP, SUBNET = "192.0.2.3", "192.0.2.0/24"
FAILOVER_TARGET_S = 10.0


@pytest.fixture(scope="module")
def lab_sites():
    """The three-router lab, booted and deployed once; down after."""
    with deployed(TOPOLOGY) as info:
        drive.lab("renew", "a-client", "b-client")
        yield info.sites_file


def test_all_three_approved_and_the_vip_on_the_primary_only(lab_sites):
    from lab.failover import primary_for
    routes = re.sub(r"\x1b\[[0-9;]*m", "", drive.in_host("control", "headscale", "nodes", "list-routes").stdout)
    for router in ROUTERS:
        line = next(line for line in routes.splitlines() if f" {router} " in line)
        assert SUBNET in line.split("|")[2], line  # approved on every node
    primary = primary_for("b-router", SUBNET)
    assert primary in ROUTERS
    assert single_holder(ROUTERS, VIP) == [primary]
    for router in ROUTERS:  # priorities 100, 90, 80 in file order (a stable tie-break under the primary weight)
        conf = drive.in_host(router, "cat", "/etc/keepalived/keepalived.conf").stdout
        assert f"priority {100 - 10 * ROUTERS.index(router)}" in conf, conf
    assert drive.ping("a-client", drive.client_address("b-client")).returncode == 0


def test_power_cut_of_the_primary_fails_over_to_one_of_the_two_left(lab_sites):
    from lab import api
    from lab.failover import measure, primary_for
    result = measure("a-client", drive.client_address("b-client"), "b-router", ROUTERS, SUBNET)
    print(f"3 routers, failover: gap {result.gap_s}s, primary switch {result.primary_switch_s}s, "
          f"{result.old_primary} -> {result.new_primary}")
    try:
        assert result.new_primary in ROUTERS and result.new_primary != result.old_primary, result
        assert result.gap_s is not None and result.gap_s < FAILOVER_TARGET_S, result
        assert single_holder(ROUTERS, VIP) == [result.new_primary]
    finally:
        api.poweron([result.old_primary])
    time.sleep(6)  # the old primary is healthy again: neither the primary nor the address moves back
    assert primary_for("b-router", SUBNET) == result.new_primary
    assert single_holder(ROUTERS, VIP) == [result.new_primary]
    assert drive.ping("a-client", drive.client_address("b-client")).returncode == 0
    assert drive.planned_changes(lab_sites) == {}
