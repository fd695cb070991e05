"""A static host on an HA site routes via the VRRP addresses, so it keeps reaching the other site
when the primary router loses power (Tailscale's site-to-site guide, step 6, with HA routers).

Dual stack (tests/e2e/static_ha_topology.toml): IPv4 via the vip, IPv6 via the link-local vip6
that keepalived's IPv6 instance keeps on the same router (docs/static-hosts.md). Tests run in
order on one lab and build on each other: the plan shows the IPv6 instance, the deploy routes
both families via the VRRP addresses, a power cut of the primary, zero changes and the check
after it, then site a back to one router takes the IPv6 VRRP address away.
"""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lab import drive
from lab.failover import primary_for, single_holder, vrrp_holder
from tests.e2e.labs import booted_site_file
from tests.e2e.test_ha import check_rows
from tests.e2e.test_ipv6 import link_local
from tests.e2e.test_removal_ha import without_second_router
from tests.e2e.test_static_hosts_ipv6 import kernel_routes6

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("static_ha_topology.toml")
ROUTERS = ["a-router", "a-router2"]
VIP, SUBNET = "192.0.2.3", "192.0.2.0/24"
VIP6 = "fe80::200:5eff:fe00:233"  # the default for the lab's vrid 51 (sites.model.default_vip6)
B_STATIC, B_STATIC6 = "172.16.100.50", "fdb5:b::32"
B6, ULA, A6 = "fdb5:b::/64", "fd7a:115c:a1e0::/48", "2001:db8:a::/64"
HOST = "a-static-networkd"
REBOOTED: list[str] = []  # the router the failover test cut the power of (and booted again)




@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab booted, a copy of its site file (the removal edits it), the first deploy's
    `--dry --diff` output, then the deploy itself."""
    with booted_site_file(TOPOLOGY, tmp_path_factory.mktemp("static_ha")) as sites:
        dry = drive.pyinfra(sites, "--dry", "--diff")
        assert dry.returncode == 0, drive.why_failed(dry)
        result = drive.pyinfra(sites)
        assert result.returncode == 0, drive.why_failed(result)
        yield sites, dry.stdout + dry.stderr


def gateways(host: str) -> dict[str, str | None]:
    out = drive.in_host(host, "ip", "-j", "-4", "route", "show", "table", "main").stdout
    return {r["dst"]: r.get("gateway") for r in json.loads(out)}


def ping6(src: str, dst: str, deadline: int = 30) -> subprocess.CompletedProcess:
    count = "3" if deadline > 1 else "1"
    return drive.in_host(src, "ping", "-6", "-n", "-c", count, "-w", str(deadline), dst, check=False,
                         timeout=deadline + 10)


def via6(host: str = HOST) -> dict[str, str | None]:
    table = kernel_routes6(host)
    return {dst: table.get(dst) for dst in (B6, ULA)}


def test_the_plan_shows_the_ipv6_vrrp_address(lab):
    from sites import load_sites

    sites, dry = lab
    assert str(load_sites(sites).sites["a"].vip6) == VIP6
    assert f"{VIP6}/64 dev eth0 noprefixroute" in dry  # keepalived's IPv6 instance, in the config's diff
    assert f"Gateway={VIP6}" in dry  # the static host's networkd drop-in


def test_the_static_host_routes_via_the_vip(lab):
    table = gateways(HOST)
    assert (table.get("172.16.100.0/24"), table.get("100.64.0.0/10")) == (VIP, VIP), table
    assert drive.ping(HOST, B_STATIC).returncode == 0


def test_the_static_host_routes_ipv6_via_the_vip6_on_the_primary(lab):
    primary = primary_for("b-router", SUBNET)
    assert primary in ROUTERS
    assert single_holder(ROUTERS, VIP6) == [primary] == single_holder(ROUTERS, VIP)
    assert via6() == {B6: VIP6, ULA: VIP6}  # the kernel's routes (`ip -j -6 route`)
    ping = ping6(HOST, B_STATIC6)
    assert ping.returncode == 0, ping.stdout


def test_it_keeps_reaching_the_other_site_when_the_primary_loses_power(lab):
    from lab import api

    sites, _ = lab
    old = primary_for("b-router", SUBNET)
    assert old in ROUTERS
    cut = time.monotonic()
    api.poweroff([old], hard=True)
    try:
        while time.monotonic() - cut < 40 and ping6(HOST, B_STATIC6, deadline=1).returncode != 0:
            pass  # each try waits up to 1 s for a reply
        print(f"static host over IPv6: ping6 crossed again {time.monotonic() - cut:.1f}s after the power cut")
        deadline = time.monotonic() + 40
        while primary_for("b-router", SUBNET) in (old, None) and time.monotonic() < deadline:
            time.sleep(0.5)
        new = primary_for("b-router", SUBNET)
        assert new in ROUTERS and new != old
        assert single_holder(ROUTERS, VIP) == [new]
        assert single_holder([new], VIP6) == [new]
        ping = drive.ping(HOST, B_STATIC, count=3, deadline=30)
        assert ping.returncode == 0, ping.stdout
        ping = ping6(HOST, B_STATIC6)
        assert ping.returncode == 0, ping.stdout
        assert gateways(HOST).get("172.16.100.0/24") == VIP  # nothing changed on it
        assert via6() == {B6: VIP6, ULA: VIP6}
    finally:
        api.poweron([old])
    REBOOTED.append(old)
    time.sleep(6)
    assert single_holder(ROUTERS, VIP6) == [new]  # the returning router reclaims neither address
    assert drive.planned_changes(sites) == {}


def test_the_check_is_ok_after_the_failover(lab):
    sites, _ = lab
    rows = check_rows(sites)
    assert {k: r["reason"] for k, r in rows.items() if r["status"] != "ok"} == {}
    assert f"(IPv6 via the VRRP address {VIP6})" in rows[("a", "static")]["reason"]


def keeping(text: str, router: str) -> str:
    """The site file with site a back to one router, `router` (its entry moved first for
    without_second_router, which keeps the first)."""
    doc = tomllib.loads(text)
    entries = doc["sites"]["a"]["routers"]
    doc["sites"]["a"]["routers"] = sorted(entries, key=lambda e: e["tailnet_node"] != router)
    return without_second_router(tomli_w.dumps(doc))


def test_site_a_back_to_one_router_takes_the_ipv6_vrrp_address_away(lab):
    """The removal as docs/removal.md runs it: the run that removes one router leaves the other's
    HA setup for clients on old leases (the static host moves to the kept router's own addresses
    at once), a later removal run stops keepalived there: no router holds either VRRP address.

    The router kept is the failover's survivor: the one powered off came back with forwarding on,
    so Linux ignored the LAN's advertisements and it has no route to its LAN's IPv6 prefix (seen on
    the lab; docs/ipv6.md "Not done")."""
    sites, _ = lab
    kept = REBOOTED[-1] if REBOOTED else "a-router"
    sites.write_text(keeping(sites.read_text(), kept))
    for _ in range(2):
        result = drive.pyinfra(sites, "--data", "prune=true")
        assert result.returncode == 0, drive.why_failed(result)
    assert vrrp_holder(ROUTERS, VIP6) == [] and vrrp_holder(ROUTERS, VIP) == []
    hop = link_local(kept)
    assert hop != VIP6 and via6() == {B6: hop, ULA: hop}
    deadline = time.monotonic() + 40  # the other logged out: the tailnet's primary is the kept one, both families
    while {primary_for("b-router", p) for p in (SUBNET, A6)} != {kept} and time.monotonic() < deadline:
        time.sleep(0.5)
    ping = ping6(HOST, B_STATIC6)
    assert ping.returncode == 0, ping.stdout + diagnosis()
    assert drive.ping(HOST, B_STATIC).returncode == 0
    assert drive.planned_changes(sites) == {}


def diagnosis() -> str:
    """What a failed ping6 after the removal needs looked at: both ends' routes and the primaries."""
    reads = [(r, c) for r in ROUTERS for c in ("ip -6 route show table all", "ip -6 addr show dev eth0")]
    reads += [("b-router", "ip -6 route show table 52"), (HOST, "ip -6 neigh"), ("b-router", "tailscale status")]
    return "".join(f"\n== {h}: {c}\n" + drive.in_host(h, *c.split(), check=False).stdout for h, c in reads)
