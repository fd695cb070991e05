"""An HA dual-stack site through a failover: only the VRRP master advertises the IPv6 routes.

The lab of tests/e2e/ha_ipv6_topology.toml: site a has two routers sharing a VRRP address
and an IPv6 /64. After one deploy radvd runs only on the router the tailnet made primary (which
holds the vip); a-client's IPv6 routes go via that router's link-local address. A power cut of
that router moves the vip, keepalived starts radvd on the survivor, and ping6 crosses again via
the survivor; the deploy after changes nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lab import api, drive
from lab.failover import primary_for, single_holder
from tests.e2e.labs import deployed
from tests.e2e.test_ipv6 import global6, link_local, routes6, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("ha_ipv6_topology.toml")
ROUTERS = ["a-router", "a-router2"]
VIP, SUBNET = "192.0.2.3", "192.0.2.0/24"
B6 = "fdb5:b::/64"


@pytest.fixture(scope="module")
def lab_sites():
    with deployed(TOPOLOGY) as info:
        yield info.sites_file


def radvd_active(router: str) -> bool:
    return drive.in_host(router, "systemctl", "is-active", "radvd", check=False).stdout.strip() == "active"


def via(router: str) -> str:
    return rf"^{re.escape(B6)} via {re.escape(link_local(router))} dev eth0"


def ping6(src: str, dst: str) -> bool:
    out = drive.in_host(src, "ping", "-6", "-n", "-c", "2", "-w", "20", dst, check=False, timeout=30)
    return out.returncode == 0


def test_only_the_primary_advertises(lab_sites):
    primary = primary_for("b-router", SUBNET)
    assert primary in ROUTERS and single_holder(ROUTERS, VIP) == [primary]
    other = next(r for r in ROUTERS if r != primary)
    assert wait_for(lambda: radvd_active(primary), timeout=20)
    assert not radvd_active(other)
    assert wait_for(lambda: re.search(via(primary), routes6("a-client"), re.M), timeout=30), routes6("a-client")
    assert not re.search(via(other), routes6("a-client"), re.M)
    assert ping6("a-client", global6("b-client", B6))
    for router in ROUTERS:  # the other router's advertisement of the LAN's /64 stays out of table 52's way
        assert "5260:\tfrom all to 2001:db8:a::/64 lookup main suppress_prefixlength 0" in \
            drive.in_host(router, "ip", "-6", "rule").stdout
    assert drive.planned_changes(lab_sites) == {}


def on_link6(router: str, prefix: str) -> bool:
    """The router has a SLAAC address inside its LAN's `prefix` and the on-link route to it (what
    delivers the other sites' IPv6 traffic to the LAN), as the kernel lists them."""
    import json

    from netaddr import IPAddress, IPNetwork

    addrs = json.loads(drive.in_host(router, "ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global").stdout)
    has_addr = any(IPAddress(a["local"]) in IPNetwork(prefix) for link in addrs for a in link.get("addr_info", []))
    routes = json.loads(drive.in_host(router, "ip", "-j", "-6", "route", "show", prefix).stdout)
    return has_addr and any(r.get("dev") == "eth0" and "gateway" not in r for r in routes)


def test_power_cut_moves_the_advertisements_to_the_survivor(lab_sites):
    primary = primary_for("b-router", SUBNET)
    survivor = next(r for r in ROUTERS if r != primary)
    b6 = global6("b-client", B6)
    cut = time.monotonic()
    api.poweroff([primary], hard=True)
    try:
        assert wait_for(lambda: single_holder([survivor], VIP, timeout=1) == [survivor], timeout=40)
        assert wait_for(lambda: radvd_active(survivor), timeout=20), "keepalived did not start radvd"
        assert wait_for(lambda: re.search(via(survivor), routes6("a-client"), re.M), timeout=30), \
            routes6("a-client")
        assert wait_for(lambda: ping6("a-client", b6), timeout=60), routes6("a-client")
        print(f"IPv6 failover: ping6 crosses via {survivor} {time.monotonic() - cut:.1f}s after the cut")
    finally:
        api.poweron([primary])
    time.sleep(8)  # back: it reclaims neither the vip nor the advertisements
    # ... and has its LAN's IPv6 again: forwarding is on from early boot, so only accept_ra 2 (the
    # deploy's sysctl file) lets the kernel take the gateway's advertisement (SLAAC) after a boot
    assert wait_for(lambda: on_link6(primary, "2001:db8:a::/64"), timeout=40), \
        drive.in_host(primary, "ip", "-6", "addr").stdout
    assert single_holder(ROUTERS, VIP) == [survivor]
    assert radvd_active(survivor) and not radvd_active(primary)
    assert drive.planned_changes(lab_sites) == {}
