"""HA subnet routers end to end (tests/e2e/ha_topology.toml): site a has two routers sharing
the VRRP address 192.0.2.3, site b one router.

One deploy; then the VRRP address sits on the router the tailnet made primary, each router
keeps its own LAN out of table 52, and a LAN client reaches site b through the VRRP address.
The primary router is powered off (a power cut) under a continuous ping: traffic resumes
within the target (10 s) and the tailnet's primary moves; the router comes back without
reclaiming either role, and a second deploy plans zero changes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lab import drive
from lab.failover import single_holder
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("ha_topology.toml")
ROUTERS = ["a-router", "a-router2"]
VIP, SUBNET = "192.0.2.3", "192.0.2.0/24"
FAILOVER_TARGET_S = 10.0


@pytest.fixture(scope="module")
def lab_sites():
    """The HA lab, booted and deployed once; down after."""
    with booted(TOPOLOGY) as info:
        preview = drive.pyinfra(info.sites_file, "--dry", "--diff")  # previews the HA steps, changes nothing
        assert preview.returncode == 0, preview.stderr[-3000:]
        assert "Will create /etc/keepalived/keepalived.conf" in preview.stderr
        assert f"+         {VIP}/24 dev eth0" in preview.stderr
        assert "Will create /usr/local/sbin/s2s-own-lan-rules" in preview.stderr
        for router in ROUTERS:
            assert drive.in_host(router, "test", "-e", "/etc/keepalived/keepalived.conf", check=False).returncode
            assert "5260:" not in drive.in_host(router, "ip", "-4", "rule").stdout
        result = drive.pyinfra(info.sites_file)
        assert result.returncode == 0, drive.why_failed(result)
        drive.lab("renew", "a-client", "b-client")
        yield info.sites_file


def test_both_routers_approved_and_the_vip_follows_the_primary(lab_sites):
    from lab.failover import primary_for
    routes = drive.in_host("control", "headscale", "nodes", "list-routes").stdout
    for router in ROUTERS:
        line = next(line for line in re.sub(r"\x1b\[[0-9;]*m", "", routes).splitlines() if f" {router} " in line)
        assert SUBNET in line.split("|")[2], line  # approved on both nodes
    primary = primary_for("b-router", SUBNET)
    assert primary in ROUTERS
    assert single_holder(ROUTERS, VIP) == [primary]
    conf = drive.in_host(primary, "cat", "/etc/keepalived/keepalived.conf").stdout
    assert conf.startswith("# Managed by s2s") and f"{VIP}/24 dev eth0" in conf


def test_client_routes_via_the_vip_and_reaches_site_b(lab_sites):
    routes = drive.in_host("a-client", "ip", "-4", "route").stdout
    assert re.search(rf"^172\.16\.100\.0/24 via {VIP} dev eth0", routes, re.M), routes
    assert re.search(rf"^100\.64\.0\.0/10 via {VIP} dev eth0", routes, re.M), routes
    ping = drive.ping("a-client", drive.client_address("b-client"))
    assert ping.returncode == 0, ping.stdout


def test_the_other_router_advertising_our_lan_does_not_pull_it_into_table_52(lab_sites):
    """The non-primary router has the site's LAN in table 52 (the other router advertises it, --accept-routes);
    the owned rule keeps its LAN in table main. Without the rule the LAN goes into the tunnel."""
    from lab.failover import primary_for
    other = next(r for r in ROUTERS if r != primary_for("b-router", SUBNET))
    assert SUBNET in drive.in_host(other, "ip", "route", "show", "table", "52").stdout
    client = drive.client_address("a-client")
    assert " dev eth0 " in drive.in_host(other, "ip", "route", "get", client).stdout
    assert drive.in_host(other, "ping", "-c", "1", "-W", "2", client, check=False).returncode == 0
    drive.in_host(other, "ip", "-4", "rule", "del", "priority", "5260", "to", SUBNET)
    try:
        assert " dev tailscale0 " in drive.in_host(other, "ip", "route", "get", client).stdout
    finally:
        drive.in_host(other, "systemctl", "restart", "s2s-own-lan-rules.service")
    assert " dev eth0 " in drive.in_host(other, "ip", "route", "get", client).stdout


def test_tailscaled_down_on_the_primary_moves_the_vip_while_the_box_stays_up(lab_sites):
    """The VRRP address tracks tailscaled's health, not only the box's."""
    from lab.failover import primary_for
    primary = primary_for("b-router", SUBNET)
    other = next(r for r in ROUTERS if r != primary)
    stopped = time.time()
    drive.in_host(primary, "systemctl", "stop", "tailscaled")
    try:
        deadline = time.time() + 30
        while vrrp_holders() != [other] and time.time() < deadline:
            time.sleep(0.5)
        assert vrrp_holders() == [other]
        vip_moved = time.time() - stopped
        while primary_for("b-router", SUBNET) != other and time.time() < deadline:
            time.sleep(0.5)
        print(f"tailscaled stopped on {primary}: VRRP address moved after {vip_moved:.1f}s, "
              f"tailnet primary after {time.time() - stopped:.1f}s")
        assert primary_for("b-router", SUBNET) == other
        assert drive.ping("a-client", drive.client_address("b-client"), count=3, deadline=30).returncode == 0
    finally:
        drive.in_host(primary, "systemctl", "start", "tailscaled")
    time.sleep(6)  # back and healthy: it reclaims neither the primary nor the address
    assert primary_for("b-router", SUBNET) == other
    assert single_holder(ROUTERS, VIP) == [other]
    # the diagnosis reads site a's first router; whichever of the two is primary now, the site is served
    routes = check_rows(lab_sites)[("a", "routes")]
    assert routes["status"] == "ok", routes
    assert f"primary on {other}" in routes["reason"] and "(HA, 2 routers" in routes["reason"], routes


def check_rows(sites: Path) -> dict[tuple[str, str], dict]:
    """`python -m check --json`'s rows by (site, step)."""
    import json
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "check", "--sites", str(sites), "--json"], cwd=drive.REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return {(r["site"], r["step"]): r for r in json.loads(result.stdout)["rows"]}


def test_the_check_reads_every_router_of_the_ha_site(lab_sites):
    """Forwarding off on the second router only: the site would break at the next failover, and
    the check names that router (its first router is fine)."""
    rows = check_rows(lab_sites)
    assert {k for k, r in rows.items() if r["status"] != "ok"} == set(), "\n" + "\n".join(
        str(r) for r in rows.values() if r["status"] != "ok")
    assert rows[("a", "forwarding")]["reason"].endswith("; a-router2: ok")
    drive.in_host("a-router2", "sysctl", "-w", "net.ipv4.ip_forward=0")
    try:
        rows = check_rows(lab_sites)
        assert {k for k, r in rows.items() if r["status"] != "ok"} == {("a", "forwarding")}, rows
        assert rows[("a", "forwarding")]["reason"] == "router a-router2: net.ipv4.ip_forward = 0"
        assert "--limit a-router2" in rows[("a", "forwarding")]["fix"]
    finally:
        drive.in_host("a-router2", "sysctl", "-w", "net.ipv4.ip_forward=1")


def vrrp_holders() -> list[str]:
    from lab.failover import vrrp_holder
    return vrrp_holder(ROUTERS, VIP)


def test_power_cut_of_the_primary_fails_over_and_a_second_deploy_changes_nothing(lab_sites):
    from lab import api
    from lab.failover import measure, primary_for
    result = measure("a-client", drive.client_address("b-client"), "b-router", ROUTERS, SUBNET)
    print(f"failover: gap {result.gap_s}s, primary switch {result.primary_switch_s}s, "
          f"{result.old_primary} -> {result.new_primary}")
    survivor = next(r for r in ROUTERS if r != result.old_primary)
    why = (f"{result}; VRRP holders now {vrrp_holders()}; {survivor}'s keepalived: "
           + " | ".join(drive.in_host(survivor, "journalctl", "-u", "keepalived", "-o", "cat", "-n", "12",
                                      check=False).stdout.splitlines()))
    try:
        assert result.new_primary is not None and result.new_primary != result.old_primary, why
        assert result.gap_s is not None, "traffic never resumed: " + why
        assert result.gap_s < FAILOVER_TARGET_S, why
        assert single_holder(ROUTERS, VIP) == [result.new_primary]
    finally:
        api.poweron([result.old_primary])
    time.sleep(6)  # probes see it healthy again; neither role moves back (no reclaim, VRRP follows primary)
    assert primary_for("b-router", SUBNET) == result.new_primary
    assert single_holder(ROUTERS, VIP) == [result.new_primary]
    assert drive.ping("a-client", drive.client_address("b-client")).returncode == 0
    assert drive.planned_changes(lab_sites) == {}
