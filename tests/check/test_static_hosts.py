"""The check's static-host rows, judged from canned `ip -j -4 route` output."""

from __future__ import annotations

import textwrap

from check.judge import Status
from check.static_routes import StaticState, static_row
from operations.facts.statichost import parse_ip_json_routes
from sites import load_sites


def model(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent("""
        [sites.a]
        subnet = "192.0.2.0/24"
        router = "192.0.2.2"
        ssh = "a-router"
        [[sites.a.hosts]]
        ssh = "a-nas"
        [sites.b]
        subnet = "172.16.100.0/24"
        router = "172.16.100.2"
        ssh = "b-router"
    """))
    return load_sites(path)


def state(routes: str, error: str | None = None) -> StaticState:
    return StaticState("a", "a-nas", parse_ip_json_routes(routes) if routes else (), error)


DEFAULT = '{"dst":"default","gateway":"192.0.2.1","dev":"eth0"}'
CGNAT = '{"dst":"100.64.0.0/10","gateway":"192.0.2.2","dev":"eth0","protocol":"static"}'
SITE_B = '{"dst":"172.16.100.0/24","gateway":"192.0.2.2","dev":"eth0","protocol":"static"}'


def test_every_route_present_is_ok(tmp_path):
    row = static_row(model(tmp_path), state(f"[{DEFAULT},{CGNAT},{SITE_B}]"))
    assert (row.status, row.step) == (Status.OK, "static")
    assert row.reason == "a-nas: routes to every other site via 192.0.2.2"


def test_a_missing_route_is_broken_and_named(tmp_path):
    row = static_row(model(tmp_path), state(f"[{DEFAULT},{CGNAT}]"))
    assert row.status == Status.BROKEN
    assert row.reason == "a-nas: missing 172.16.100.0/24 via 192.0.2.2"
    assert "--limit a-nas" in row.fix
    wrong = SITE_B.replace("192.0.2.2", "192.0.2.9")
    row = static_row(model(tmp_path), state(f"[{DEFAULT},{CGNAT},{wrong}]"))
    assert row.status == Status.BROKEN


def test_router_as_default_gateway_is_ok_and_unreadable_is_unknown(tmp_path):
    gw = '[{"dst":"default","gateway":"192.0.2.2","dev":"eth0"}]'
    assert static_row(model(tmp_path), state(gw)).status == Status.OK
    row = static_row(model(tmp_path), state("", error="a-nas: connection refused"))
    assert row.status == Status.UNKNOWN and "not readable" in row.reason


def dual_model(tmp_path):
    """model() with an IPv6 /64 on each LAN."""
    path = tmp_path / "sites.toml"
    assert model(tmp_path).sites["a"].subnet6 is None  # writes the IPv4 file
    text = path.read_text()
    for subnet, subnet6 in (("192.0.2.0/24", "2001:db8:a::/64"), ("172.16.100.0/24", "fdb5:b::/64")):
        text = text.replace(f'subnet = "{subnet}"\n', f'subnet = "{subnet}"\nsubnet6 = "{subnet6}"\n')
    path.write_text(text)
    return load_sites(path)


B6 = '{"dst":"fdb5:b::/64","gateway":"fe80::dc:38ff:fedf:50ca","dev":"eth0","protocol":"static"}'
ULA = '{"dst":"fd7a:115c:a1e0::/48","gateway":"fe80::dc:38ff:fedf:50ca","dev":"eth0","protocol":"static"}'


def test_dual_stack_host_needs_the_ipv6_routes_via_a_link_local_next_hop(tmp_path):
    v4 = parse_ip_json_routes(f"[{DEFAULT},{CGNAT},{SITE_B}]")
    ok = StaticState("a", "a-nas", v4, routes6=parse_ip_json_routes(f"[{B6},{ULA}]"), has_ipv6=True)
    row = static_row(dual_model(tmp_path), ok)
    assert row.status == Status.OK and "IPv6 via the router's link-local address" in row.reason
    missing = StaticState("a", "a-nas", v4, routes6=parse_ip_json_routes(f"[{B6}]"), has_ipv6=True)
    row = static_row(dual_model(tmp_path), missing)
    assert (row.status, row.reason) == (Status.BROKEN,
                                        "a-nas: missing fd7a:115c:a1e0::/48 via the router's link-local address")
    global_hop = B6.replace("fe80::dc:38ff:fedf:50ca", "fdb5:b::9")
    wrong = StaticState("a", "a-nas", v4, routes6=parse_ip_json_routes(f"[{global_hop},{ULA}]"), has_ipv6=True)
    assert static_row(dual_model(tmp_path), wrong).status == Status.BROKEN
    no_v6 = StaticState("a", "a-nas", v4)  # no IPv6 address: IPv4 routes are all it needs
    assert static_row(dual_model(tmp_path), no_v6).status == Status.OK


def test_static_prefixes_per_family(tmp_path):
    from netaddr import IPNetwork

    from steps.statichosts import router_link_local, static_prefixes

    dual = dual_model(tmp_path)
    assert [str(p) for p in static_prefixes(dual, dual.sites["a"])] == [
        "100.64.0.0/10", "172.16.100.0/24", "fdb5:b::/64", "fd7a:115c:a1e0::/48"]
    v4 = model(tmp_path)
    assert all(p.version == 4 for p in static_prefixes(v4, v4.sites["a"]))
    assert IPNetwork("fd7a:115c:a1e0::/48") not in static_prefixes(v4, v4.sites["a"])
    assert router_link_local(v4.sites["a"]) is None  # an IPv4-only site reads nothing from its router


def test_an_unreachable_router_fails_its_dual_stack_static_hosts_with_one_line(tmp_path, monkeypatch):
    import pytest
    from netaddr import IPAddress
    from pyinfra.api.exceptions import ConnectError, OperationError

    from steps import statichosts

    class Router:
        data = {"router_ssh": "a-router"}

        def __init__(self, answer):
            self.answer = answer

        def get_fact(self, fact, **kwargs):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    class Inventory:
        def __init__(self, router):
            self.router = router

        def get_group(self, name, default=None):
            return [self.router] if name == "routers" else default

    site = dual_model(tmp_path).sites["a"]
    monkeypatch.setattr(statichosts, "inventory", Inventory(Router(ConnectError("Could not connect\n(timed out)"))))
    with pytest.raises(OperationError) as err:
        statichosts.router_link_local(site)
    assert str(err.value) == ("site a's router a-router: cannot read its link-local IPv6 address "
                              "(Could not connect (timed out)); nothing changed here")
    monkeypatch.setattr(statichosts, "inventory", Inventory(Router(IPAddress("fe80::1"))))
    assert statichosts.router_link_local(site) == IPAddress("fe80::1")
    monkeypatch.setattr(statichosts, "inventory", Inventory(Router(None)))
    with pytest.raises(OperationError, match="has no link-local IPv6 address on the interface holding 192.0.2.2"):
        statichosts.router_link_local(site)


def test_an_ha_dual_stack_host_needs_the_ipv6_routes_via_the_vip6(tmp_path):
    """On an HA site any link-local is not enough: one router's own would not follow a failover."""
    path = tmp_path / "sites.toml"
    dual_model(tmp_path)
    text = path.read_text().replace('router = "192.0.2.2"\nssh = "a-router"\n', textwrap.dedent("""\
        vip = "192.0.2.3"
        gateway = "192.0.2.1"
        [[sites.a.routers]]
        address = "192.0.2.2"
        ssh = "a-router"
        [[sites.a.routers]]
        address = "192.0.2.4"
        ssh = "a-router2"
        """))
    path.write_text(text)  # the [[sites.a.hosts]] entry stays after the routers
    ha = load_sites(path)
    assert ha.sites["a"].vip6 is not None and ha.sites["a"].hosts
    vip6 = str(ha.sites["a"].vip6)
    v4 = parse_ip_json_routes(f"[{DEFAULT},{CGNAT},{SITE_B}]".replace("192.0.2.2", "192.0.2.3"))
    via_vip6 = parse_ip_json_routes(f"[{B6},{ULA}]".replace("fe80::dc:38ff:fedf:50ca", vip6))
    row = static_row(ha, StaticState("a", "a-nas", v4, routes6=via_vip6, has_ipv6=True))
    assert row.status == Status.OK and f"IPv6 via the VRRP address {vip6}" in row.reason
    own = StaticState("a", "a-nas", v4, routes6=parse_ip_json_routes(f"[{B6},{ULA}]"), has_ipv6=True)
    row = static_row(ha, own)
    assert (row.status, row.reason) == (
        Status.BROKEN, f"a-nas: missing fdb5:b::/64 via {vip6}, fd7a:115c:a1e0::/48 via {vip6}")
