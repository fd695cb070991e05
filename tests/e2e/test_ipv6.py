"""Dual-stack sites end to end: IPv6 routes by router advertisement (RFC 4191), ping6 across.

The lab of tests/e2e/ipv6_topology.toml: each gateway advertises its LAN's /64 and the
default route; after one deploy each subnet router advertises, with router lifetime 0,
route information for the other site's /64 and fd7a:115c:a1e0::/48. Assertions are on the
kernel routes the clients' systemd-networkd and NetworkManager installed (and the bare kernel's,
once accept_ra_rt_info_max_plen is raised), and on packets crossing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import drive
from lab.hosts import lab_hosts
from lab.topology import load_topology
from operations.facts.statichost import parse_ip_json_routes
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("ipv6_topology.toml")
NET6 = {"a": "2001:db8:a::/64", "b": "fdb5:b::/64"}
TAILNET6 = "fd7a:115c:a1e0::/48"


@pytest.fixture(scope="module")
def lab_sites():
    with booted(TOPOLOGY) as info:
        yield info.sites_file


def global6(host: str, prefix: str) -> str:
    """The host's SLAAC address inside `prefix` (from the gateway's advertisement)."""
    out = drive.in_host(host, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global").stdout
    stem = prefix.split("::")[0] + ":"
    found = [f.split()[3].split("/")[0] for f in out.splitlines() if f.split()[3].startswith(stem)]
    assert found, (host, out)
    return found[0]


def link_local(host: str) -> str:
    """The host's own link-local address on eth0: not an HA router's VRRP address (keepalived adds
    its vip6 there with nodad, listed first on the master)."""
    out = drive.in_host(host, "ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
    return next(a["local"] for link in json.loads(out) for a in link.get("addr_info", [])
                if "local" in a and not a.get("nodad"))


def routes6(host: str) -> str:
    return drive.in_host(host, "ip", "-6", "route", "show").stdout


def next_hops6(host: str) -> dict[str, str | None]:
    """The host's kernel IPv6 routes on eth0 (`ip -j -6 route`): prefix -> next hop."""
    text = drive.in_host(host, "ip", "-j", "-6", "route", "show", "dev", "eth0").stdout
    return {r.dst: r.gateway for r in parse_ip_json_routes(text)}


def routed_via(host: str, hop: str, prefixes: tuple[str, ...] = (NET6["a"], NET6["b"], TAILNET6)):
    """The subset of `prefixes` the host's kernel routes via `hop` (a router's link-local address)."""
    routes = next_hops6(host)
    return {p for p in prefixes if routes.get(p) == hop}


def wait_for(check, timeout: float = 60.0, step: float = 1.0):
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_the_lab_site_file_carries_subnet6_and_the_gateway_gives_slaac(lab_sites):
    text = lab_sites.read_text()
    assert 'subnet6 = "2001:db8:a::/64"' in text and 'subnet6 = "fdb5:b::/64"' in text
    for client, site in (("a-client", "a"), ("b-client", "b")):
        assert wait_for(lambda c=client: "default via fe80" in routes6(c)), routes6(client)
        global6(client, NET6[site])


def test_no_lab_namespace_has_an_ipv6_route_out(lab_sites):
    """A LAN host's IPv6 default (clients; a router before the deploy turns its forwarding on)
    goes only to its own gateway, whose forwarding is off and which has no default itself; the
    control host has none and the switch namespace has no IPv6 at all."""
    topo = load_topology(TOPOLOGY)
    for h in lab_hosts(topo):
        out = drive.in_host(h.name, "ip", "-6", "route", "show", "table", "all").stdout
        defaults = [line for line in out.splitlines() if line.startswith("default")]
        if h.role in ("client", "router"):
            gw_ll = link_local(f"{h.site}-gw")
            assert all(f"via {gw_ll} " in d for d in defaults), (h.name, defaults)
        else:
            assert defaults == [], (h.name, defaults)
        if h.role == "gw":
            fwd = drive.in_host(h.name, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip()
            assert fwd == "0", h.name
    from lab.hosts import SWITCH_NS
    from lab.sh import run
    sw = run(["ip", "-n", SWITCH_NS, "-6", "addr", "show"], check=False).stdout
    assert "inet6" not in sw, sw


def test_dry_run_changes_nothing_and_shows_the_advertisements(lab_sites):
    result = drive.pyinfra(lab_sites, "--dry", "--diff")
    assert result.returncode == 0, drive.why_failed(result)
    assert "/etc/radvd.conf" in result.stdout + result.stderr
    assert "route fdb5:b::/64" in result.stdout + result.stderr
    assert drive.in_host("a-router", "test", "-e", "/etc/radvd.conf", check=False).returncode == 1


def test_deploy_advertises_and_approves_ipv6(lab_sites):
    result = drive.pyinfra(lab_sites)
    assert result.returncode == 0, drive.why_failed(result)
    prefs = json.loads(drive.in_host("a-router", "tailscale", "debug", "prefs").stdout)
    assert NET6["a"] in prefs["AdvertiseRoutes"] and "192.0.2.0/24" in prefs["AdvertiseRoutes"]
    peers = json.loads(drive.in_host("b-router", "tailscale", "status", "--json").stdout)["Peer"].values()
    primaries = [r for p in peers for r in (p.get("PrimaryRoutes") or [])]
    assert NET6["a"] in primaries, primaries  # approved: the control plane made a-router its primary
    for router in ("a-router", "b-router"):
        rules = drive.in_host(router, "ip6tables", "-t", "mangle", "-S", "FORWARD").stdout
        assert "-o tailscale0" in rules and "-i tailscale0" in rules and "TCPMSS" in rules, rules
        assert drive.in_host(router, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"


@pytest.mark.parametrize("client,site,other", [("a-client", "a", "b"), ("b-client", "b", "a"),
                                               ("b-client2", "b", "a")], ids=["networkd-a", "networkd-b",
                                                                              "networkmanager-b"])
def test_clients_route_the_other_site_and_the_tailnet_via_the_router(lab_sites, client, site, other):
    """systemd-networkd and NetworkManager install the route information as kernel routes via the
    router's link-local address; the LAN's default stays with the gateway (router lifetime 0)."""
    router_ll = link_local(f"{site}-router")
    want = {NET6[other], TAILNET6}
    assert wait_for(lambda: routed_via(client, router_ll) == want, timeout=60), (client, router_ll, routes6(client))
    assert next_hops6(client).get("default") == link_local(f"{site}-gw"), routes6(client)


def test_bare_kernel_takes_route_information_only_with_rt_info_max_plen_raised(lab_sites):
    """The bare kernel (accept_ra_rt_info_max_plen 0, its default) takes SLAAC and the default,
    never the route information; raised to 64 it installs the routes at the next advertisement:
    what docs/ipv6.md says about such clients."""
    host, sysctl = "a-client2", "net.ipv6.conf.eth0.accept_ra_rt_info_max_plen"
    router_ll = link_local("a-router")
    assert drive.in_host(host, "sysctl", "-n", sysctl).stdout.strip() == "0"
    # the advertisements reach the LAN (networkd beside it took them), the bare kernel leaves them out
    assert wait_for(lambda: routed_via("a-client", router_ll) == {NET6["b"], TAILNET6}, timeout=60)
    assert routed_via(host, router_ll) == set(), routes6(host)
    assert next_hops6(host).get("default") == link_local("a-gw"), routes6(host)
    drive.in_host(host, "sysctl", "-qw", f"{sysctl}=64")
    try:
        # radvd sends every 3-10 s: the next advertisement carries the routes
        got = wait_for(lambda: routed_via(host, router_ll) == {NET6["b"], TAILNET6}, timeout=30)
        assert got, routes6(host)
    finally:
        drive.in_host(host, "sysctl", "-qw", f"{sysctl}=0")


def test_ping6_crosses_client_to_client_and_ipv4_still_does(lab_sites):
    """networkd to networkd both ways, NetworkManager to networkd; IPv4 as before."""
    a6, b6 = global6("a-client", NET6["a"]), global6("b-client", NET6["b"])
    there = drive.in_host("a-client", "ping", "-6", "-n", "-c", "3", "-w", "30", b6, check=False, timeout=40)
    assert there.returncode == 0, there.stdout
    assert "ttl=62" in there.stdout  # hop limit 64 less two routers: it crossed the tunnel
    for client in ("b-client", "b-client2"):  # networkd, NetworkManager
        back = drive.in_host(client, "ping", "-6", "-n", "-c", "3", "-w", "30", a6, check=False, timeout=40)
        assert back.returncode == 0 and "ttl=62" in back.stdout, (client, back.stdout)
    v4 = drive.ping("a-client", drive.client_address("b-client"))
    assert v4.returncode == 0 and "ttl=62" in v4.stdout, v4.stdout


def test_check_sees_the_advertisements_and_ping6_and_is_all_ok(lab_sites):
    from tests.check.test_check_lab import run_check
    code, doc = run_check(lab_sites)
    rows = {(r["site"], r["step"]): r for r in doc["rows"]}
    assert code == 0, [r for r in doc["rows"] if r["status"] != "ok"]
    assert NET6["a"] in rows[("a", "routes")]["reason"] and NET6["b"] in rows[("b", "routes")]["reason"]
    assert "lifetime 0" in rows[("a", "ra")]["reason"] and "fd7a:115c:a1e0::/48" in rows[("a", "ra")]["reason"]
    assert rows[("b", "ping6")]["status"] == "ok"
    assert "IPv6 too (and fd7a:115c:a1e0::/48)" in rows[("a", "policy")]["reason"]  # the IPv6 pairs judged


def test_check_finds_a_router_that_stopped_advertising(lab_sites):
    from tests.check.test_check_lab import run_check
    drive.in_host("b-router", "systemctl", "stop", "radvd")
    try:
        code, doc = run_check(lab_sites)
        rows = {(r["site"], r["step"]): r for r in doc["rows"]}
        assert code == 1 and rows[("b", "ra")]["status"] == "broken", rows[("b", "ra")]
        assert "pyinfra" in rows[("b", "ra")]["fix"]
        # radvd's final advertisement withdrew the routes from b's client (RemoveRoute)
        assert wait_for(lambda: NET6["a"] not in routes6("b-client"), timeout=15), routes6("b-client")
    finally:
        result = drive.pyinfra(lab_sites)  # the printed fix: the deploy starts it again
        assert result.returncode == 0, drive.why_failed(result)
    assert wait_for(lambda: NET6["a"] in routes6("b-client"), timeout=30), routes6("b-client")


def test_second_deploy_reports_zero_changes(lab_sites):
    assert drive.planned_changes(lab_sites) == {}


def test_drift_is_repaired(lab_sites):
    drive.in_host("a-router", "sh", "-c", "echo '# hand edit' >> /etc/radvd.conf && systemctl stop radvd")
    changes = drive.planned_changes(lab_sites)
    assert ["a-router"] in changes.values() and any("Router advertisements" in op for op in changes), changes
    result = drive.pyinfra(lab_sites)
    assert result.returncode == 0, drive.why_failed(result)
    assert drive.in_host("a-router", "systemctl", "is-active", "radvd").stdout.strip() == "active"
    assert "# hand edit" not in drive.in_host("a-router", "cat", "/etc/radvd.conf").stdout
    assert drive.planned_changes(lab_sites) == {}


def test_removing_subnet6_takes_the_advertisements_away(lab_sites, tmp_path):
    """Site b without subnet6: its router stops advertising and removes its radvd.conf, a's
    advertisement no longer carries b's prefix, b's clients lose a's routes, and the run after
    changes nothing."""
    text = lab_sites.read_text().replace('subnet6 = "fdb5:b::/64"\n', "")
    assert "fdb5:b::/64" not in text
    lab_sites.write_text(text)
    result = drive.pyinfra(lab_sites)
    assert result.returncode == 0, drive.why_failed(result)
    assert drive.in_host("b-router", "test", "-e", "/etc/radvd.conf", check=False).returncode == 1
    assert "fdb5:b::/64" not in drive.in_host("a-router", "cat", "/etc/radvd.conf").stdout
    assert wait_for(lambda: "fdb5:b::/64" not in routes6("a-client"), timeout=40), routes6("a-client")
    # b's router withdrew its routes (radvd's last advertisement): NetworkManager drops them too
    b_ll = link_local("b-router")
    assert wait_for(lambda: routed_via("b-client2", b_ll) == set(), timeout=40), routes6("b-client2")
    assert drive.planned_changes(lab_sites) == {}
