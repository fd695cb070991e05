"""A static host on an HA site routes via the VRRP address, so it keeps reaching the other site
when the primary router loses power (Tailscale's site-to-site guide, step 6, with HA routers)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab import drive
from lab.failover import primary_for, single_holder
from tests.e2e.labs import deployed

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("static_ha_topology.toml")
ROUTERS = ["a-router", "a-router2"]
VIP, SUBNET = "192.0.2.3", "192.0.2.0/24"
B_STATIC = "172.16.100.50"


@pytest.fixture(scope="module")
def lab_sites():
    with deployed(TOPOLOGY) as info:
        yield info.sites_file


def gateways(host: str) -> dict[str, str | None]:
    out = drive.in_host(host, "ip", "-j", "-4", "route", "show", "table", "main").stdout
    return {r["dst"]: r.get("gateway") for r in json.loads(out)}


def test_the_static_host_routes_via_the_vip(lab_sites):
    table = gateways("a-static-networkd")
    assert (table.get("172.16.100.0/24"), table.get("100.64.0.0/10")) == (VIP, VIP), table
    assert drive.ping("a-static-networkd", B_STATIC).returncode == 0


def test_it_keeps_reaching_the_other_site_when_the_primary_loses_power(lab_sites):
    from lab import api

    old = primary_for("b-router", SUBNET)
    assert old in ROUTERS
    api.poweroff([old], hard=True)
    try:
        deadline = time.monotonic() + 40
        while primary_for("b-router", SUBNET) in (old, None) and time.monotonic() < deadline:
            time.sleep(0.5)
        new = primary_for("b-router", SUBNET)
        assert new in ROUTERS and new != old
        assert single_holder(ROUTERS, VIP) == [new]
        ping = drive.ping("a-static-networkd", B_STATIC, count=3, deadline=30)
        assert ping.returncode == 0, ping.stdout
        assert gateways("a-static-networkd").get("172.16.100.0/24") == VIP  # nothing changed on it
    finally:
        api.poweron([old])
    time.sleep(6)
    assert drive.planned_changes(lab_sites) == {}
