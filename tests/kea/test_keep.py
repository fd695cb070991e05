"""Kept routes, from canned option data (dhcp/kea/keep.py); real Kea: test_keep_routes.py."""

from __future__ import annotations

import pytest
from netaddr import IPAddress, IPNetwork

from dhcp.kea.keep import (
    KeptRoute,
    RouteConflict,
    dedupe,
    merge,
    option_routes,
    own_routes,
    parse_route_text,
    wider_routes,
)
from dhcp.kea.options import KEPT_KEY, MANAGED_BY, desired_options, options_match
from dhcp.rfc3442 import encode

PLAN = [(IPNetwork("100.64.0.0/10"), IPAddress("192.0.2.2")), (IPNetwork("0.0.0.0/0"), IPAddress("192.0.2.1"))]


def test_named_and_hex_forms_read_the_same_routes():
    routes = [("10.99.0.0/16", "192.0.2.9"), ("198.51.100.0/24", "192.0.2.10")]
    named = {
        "code": 121,
        "name": "classless-static-route",
        "csv-format": True,
        "data": "10.99.0.0/16 - 192.0.2.9, 198.51.100.0/24 - 192.0.2.10",
    }
    hexed = {"code": 121, "csv-format": False, "data": encode(routes).hex().upper()}
    expect = [(IPNetwork(n), IPAddress(h)) for n, h in routes]
    assert option_routes(named) == option_routes(hexed) == expect
    assert option_routes({"code": 249, "data": "0x" + encode(routes).hex()}) == expect


def test_unreadable_data_stops_rather_than_drops():
    with pytest.raises(RouteConflict, match="cannot be read"):
        own_routes([{"code": 121, "data": "10.99.0.0/16 via 192.0.2.9"}], "subnet4")
    with pytest.raises(RouteConflict, match="cannot be read"):
        own_routes([{"code": 121, "csv-format": False, "data": "21"}], "subnet4")  # width 33


def test_a_managed_entry_keeps_its_record_not_its_bytes():
    managed = desired_options(encode(PLAN), (121,), ["10.99.0.0/16 - 192.0.2.9"])[0]
    kept = own_routes([managed], "subnet4")
    assert [(str(k.prefix), str(k.via)) for k in kept] == [("10.99.0.0/16", "192.0.2.9")]
    assert "kept earlier" in kept[0].origin


def test_merge_plan_first_default_last_dedupe_and_conflict():
    kept = [
        KeptRoute(IPNetwork("10.99.0.0/16"), IPAddress("192.0.2.9"), "subnet4 option 121"),
        KeptRoute(IPNetwork("100.64.0.0/10"), IPAddress("192.0.2.2"), "global option 121"),
    ]
    routes, added = merge(PLAN, kept, "site a")
    assert [str(n) for n, _ in routes] == ["100.64.0.0/10", "10.99.0.0/16", "0.0.0.0/0"]
    assert [k.origin for k in added] == ["subnet4 option 121"]
    other = [KeptRoute(IPNetwork("100.64.0.0/10"), IPAddress("192.0.2.77"), "pool x option 121")]
    with pytest.raises(RouteConflict) as conflict:
        merge(PLAN, other, "site a")
    assert str(conflict.value) == (
        "site a: 100.64.0.0/10 via 192.0.2.2 (the plan) conflicts with "
        "100.64.0.0/10 via 192.0.2.77 (pool x option 121); nothing was changed"
    )
    with pytest.raises(RouteConflict, match="conflicts"):
        dedupe([*other, KeptRoute(IPNetwork("100.64.0.0/10"), IPAddress("192.0.2.78"), "b")], "site a")


def test_wider_scopes_that_reach_the_subnet():
    subnet = {"id": 1, "subnet": "192.0.2.0/24"}
    network = {
        "name": "lan",
        "subnet4": [subnet],
        "option-data": [{"code": 121, "csv-format": False, "data": encode([("10.1.0.0/16", "192.0.2.5")]).hex()}],
    }
    config = {
        "Dhcp4": {
            "shared-networks": [network],
            "client-classes": [
                {"name": "voip", "option-data": [{"name": "classless-static-route", "data": "10.2.0.0/16 - 192.0.2.6"}]}
            ],
            "option-data": [{"code": 249, "csv-format": False, "data": encode([("10.3.0.0/16", "192.0.2.7")]).hex()}],
        }
    }
    found = {(str(k.prefix), k.origin) for k in wider_routes(config, subnet, network)}
    assert found == {
        ("10.1.0.0/16", "shared network lan option 121"),
        ("10.2.0.0/16", "client class voip option 121"),
        ("10.3.0.0/16", "global option 249"),
    }


def test_the_kept_record_is_part_of_the_comparison():
    data = encode(PLAN)
    with_record = desired_options(data, (121, 249), ["10.99.0.0/16 - 192.0.2.9"])
    without = desired_options(data, (121, 249))
    assert options_match(with_record, with_record)
    assert not options_match(without, with_record) and not options_match(with_record, without)
    assert with_record[0]["user-context"] == {"managed-by": MANAGED_BY, KEPT_KEY: ["10.99.0.0/16 - 192.0.2.9"]}


def test_parse_route_text_rejects_host_bits():
    with pytest.raises(ValueError, match="host bits"):
        parse_route_text("10.99.0.1/16 - 192.0.2.9")
