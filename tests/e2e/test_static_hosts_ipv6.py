"""Static-address LAN hosts on dual-stack sites end to end (issue 19's LAN-devices part): every
manager kind on both sites, each host with a static IPv6 address that ignores router
advertisements, so its IPv6 routes are the deploy's. Also the host whose default gateway
already is the site's router (issue 18: it needs nothing, and the plan says so).

Tests run in order on one lab and build on each other: deploy (kernel IPv6 routes via the
router's link-local address), ping6 host to host across the tailnet, zero changes, the check,
a host whose IPv4 default route goes via the router, removal of site b's hosts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lab import drive
from tests.e2e.labs import booted_site_file
from tests.e2e.test_static_hosts import OWNED, STEP, kernel_routes, static_checks, wanted

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("static_ipv6_topology.toml")
KINDS = ("networkd", "networkmanager", "ifupdown", "netplan")
SUBNET6 = {"a": "2001:db8:a::", "b": "fdb5:b::"}
OTHER = {"a": "b", "b": "a"}
ADDRESS6 = {"networkd": "32", "networkmanager": "33", "ifupdown": "34", "netplan": "35"}  # .50-.53 in hex
ULA = "fd7a:115c:a1e0::/48"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with booted_site_file(TOPOLOGY, tmp_path_factory.mktemp("static6")) as sites:
        yield sites


def hosts(sites=("a", "b")) -> list[tuple[str, str, str]]:
    return [(f"{site}-static-{kind}", site, kind) for site in sites for kind in KINDS]


def kernel_routes6(host: str) -> dict[str, str | None]:
    """Destination -> gateway of the host's IPv6 main table, read from the kernel (`ip -j -6 route`)."""
    out = drive.in_host(host, "ip", "-j", "-6", "route", "show", "table", "main").stdout
    return {r["dst"]: r.get("gateway") for r in json.loads(out)}


def router_link_local(site: str) -> str:
    """The router's link-local address on its LAN, as the router itself shows it."""
    out = drive.in_host(f"{site}-router", "ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
    return next(a["local"] for link in json.loads(out) for a in link.get("addr_info", []) if "local" in a)


def wanted6(site: str) -> dict[str, str]:
    hop = router_link_local(site)
    return {f"{SUBNET6[OTHER[site]]}/64": hop, ULA: hop}


def assert_routed6(host: str, site: str) -> None:
    table = kernel_routes6(host)
    want = wanted6(site)
    assert {dst: table.get(dst) for dst in want} == want, (host, table)
    assert "default" not in table  # no IPv6 default route added


def test_deploy_gives_every_static_host_the_ipv6_routes(lab):
    result = drive.pyinfra(lab)
    assert result.returncode == 0, drive.why_failed(result)
    for host, site, kind in hosts():
        assert_routed6(host, site)
        routes = kernel_routes(host)
        assert {dst: routes.get(dst) for dst in wanted(site)} == wanted(site)
        assert "fe80::" in drive.in_host(host, "cat", OWNED[kind]).stdout  # in the manager's own config
    nm = drive.in_host("a-static-networkmanager", "nmcli", "-g", "ipv6.routes", "connection", "show", "lan")
    assert "fdb5\\:b\\:\\:/64" in nm.stdout


def test_each_static_host_pings6_the_other_sites_host_of_its_kind(lab):
    for host, site, kind in hosts():
        target = f"{SUBNET6[OTHER[site]]}{ADDRESS6[kind]}"
        result = drive.ping(host, target)
        assert result.returncode == 0, (host, target, result.stdout[-1000:])


def test_second_run_plans_nothing_and_the_check_is_ok(lab):
    assert drive.planned_changes(lab) == {}
    rows = static_checks(lab)
    assert {status for status, _ in rows.values()} == {"ok"}, rows
    assert all("IPv6 via the router's link-local address" in reason for _, reason in rows.values())


def test_a_host_whose_default_gateway_is_the_router_needs_no_ipv4_routes(lab):
    host = "a-static-ifupdown"
    drive.in_host(host, "ip", "route", "replace", "default", "via", "192.0.2.2", "dev", "eth0")
    result = drive.pyinfra(lab)
    assert result.returncode == 0, drive.why_failed(result)
    text = result.stdout + result.stderr
    assert f"[{host}]" in text and "default gateway already is the site's router 192.0.2.2: no routes needed" in text
    routes = kernel_routes(host)
    assert "100.64.0.0/10" not in routes and "172.16.100.0/24" not in routes, routes  # ours taken out
    assert routes["default"] == "192.0.2.2"
    hook = drive.in_host(host, "cat", OWNED["ifupdown"]).stdout
    assert "172.16.100.0/24" not in hook and "fdb5:b::/64" in hook  # IPv6 still needs its routes
    assert_routed6(host, "a")
    assert drive.ping(host, "172.16.100.52").returncode == 0  # the router carries it all the same
    assert drive.planned_changes(lab) == {}
    assert static_checks(lab)[host] == ("ok", f"{host}: default gateway is the site's router 192.0.2.2")


def test_hosts_dropped_from_the_site_file_lose_their_ipv6_routes_in_the_removal_run(lab):
    doc = tomllib.loads(lab.read_text())
    del doc["sites"]["b"]["hosts"]
    lab.write_text(tomli_w.dumps(doc))
    assert drive.planned_changes(lab, "--data", "prune=true") == {STEP: sorted(h for h, _, _ in hosts(("b",)))}
    result = drive.pyinfra(lab, "--data", "prune=true")
    assert result.returncode == 0, drive.why_failed(result)
    for host, _site, kind in hosts(("b",)):
        table = kernel_routes6(host)
        assert ULA not in table and "2001:db8:a::/64" not in table, (host, table)
        assert drive.in_host(host, "test", "-e", OWNED[kind], check=False).returncode != 0
    nm = drive.in_host("b-static-networkmanager", "nmcli", "-g", "ipv6.routes", "connection", "show", "lan")
    assert nm.stdout.strip() == ""
    for host, site, _ in hosts(("a",)):
        assert_routed6(host, site)
    assert drive.planned_changes(lab, "--data", "prune=true") == {}
