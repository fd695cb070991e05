"""The IPv6 check's parsing and verdicts (check/ra.py), from an advertisement captured on the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from check.ra import RaParseError, RouterAdvert, address_in, parse_probe, parse_ra, ra_verdict

DATA = Path(__file__).parent / "data"
WANT = ["fdb5:b::/64", "fd7a:115c:a1e0::/48"]


def captured() -> RouterAdvert | None:
    return parse_probe((DATA / "ra-probe-lab-a-router.json").read_text())


def test_the_lab_routers_advertisement_parses():
    ra = captured()
    assert ra is not None and ra.source == "fe80::8cf:96ff:fe81:eda1"
    assert ra.router_lifetime == 0
    assert ra.routes == {"fdb5:b::/64": 90, "fd7a:115c:a1e0::/48": 90}
    assert ra_verdict(WANT, ra)[0]


def test_verdicts_name_what_is_wrong():
    ra = captured()
    assert ra is not None
    assert ra_verdict(WANT + ["2001:db8:c::/64"], ra) == (False, "no route information for 2001:db8:c::/64")
    as_default = RouterAdvert(ra.source, 1800, ra.routes)
    assert "router lifetime 1800" in ra_verdict(WANT, as_default)[1]
    withdrawn = RouterAdvert(ra.source, 0, {**ra.routes, "fdb5:b::/64": 0})  # radvd stopping
    assert not ra_verdict(WANT, withdrawn)[0]
    assert "no router advertisement" in ra_verdict(WANT, None)[1]
    assert parse_probe('{"interface": "eth0", "advertisements": []}') is None


@pytest.mark.parametrize("text", ["not json", '{"interface": "eth0"}'])
def test_bad_probe_output_is_refused(text):
    with pytest.raises(RaParseError):
        parse_probe(text)


def test_a_truncated_option_is_refused():
    data = bytes.fromhex("8600d0de40000000000000000000000018030000")  # option says 24 bytes, has 4
    with pytest.raises(RaParseError):
        parse_ra("fe80::1", data)


def test_address_in_subnet6():
    assert address_in(["2001:db8:a::5", "fdb5:b::7"], "fdb5:b::/64") == "fdb5:b::7"
    assert address_in(["2001:db8:a::5"], "fdb5:b::/64") is None
    assert address_in(["2001:db8:a::5"], None) is None


def test_rows_for_a_dual_stack_site():
    from netaddr import IPAddress, IPNetwork

    from check.gather import RouterState
    from check.judge import Fixes, Status, ping6_row, ra_row
    from sites.model import Router, Site, SiteModel
    a = Site("a", IPNetwork("192.0.2.0/24"), (Router(IPAddress("192.0.2.2"), "a-router"),), IPAddress("192.0.2.2"),
             IPAddress("192.0.2.1"), subnet6=IPNetwork("2001:db8:a::/64"))
    b = Site("b", IPNetwork("172.16.100.0/24"), (Router(IPAddress("172.16.100.2"), "b-router"),),
             IPAddress("172.16.100.2"), IPAddress("172.16.100.1"), subnet6=IPNetwork("fdb5:b::/64"))
    model = SiteModel(path=Path("sites.toml"), sites={"a": a, "b": b})
    fx = Fixes(model)
    state = RouterState("a", "a-router", ra_probed=True, ra=captured(), ping6_source="2001:db8:a::2",
                        pings6={"b": True})
    assert ra_row(model, a, state, fx).status is Status.OK
    assert ping6_row(model, a, state, {}, fx).status is Status.OK
    stopped = RouterState("a", "a-router", ra_probed=True, ra=None, pings6={"b": False})
    row = ra_row(model, a, stopped, fx)
    assert row.status is Status.BROKEN and "pyinfra" in row.fix
    assert ping6_row(model, a, stopped, {}, fx).status is Status.BROKEN
    no_addr = RouterState("a", "a-router", ra_probed=True, ra=captured(), pings6={"b": None})
    assert ping6_row(model, a, no_addr, {}, fx).status is Status.UNKNOWN
