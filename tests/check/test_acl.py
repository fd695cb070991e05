"""The policy evaluator: the project's own merged policy, hand-written variants, aliases, ports."""

from __future__ import annotations

import pytest

from check.acl import TAILNET, PolicyNode, check_pairs, compile_policy, ip_all, server_tests
from controlplane import hujson
from controlplane.policy import PolicySpec, merge, remove

SITES = [("a", ["192.0.2.0/24"]), ("b", ["172.16.100.0/24", "198.18.0.0/24"])]
SPEC = PolicySpec(sites=tuple((n, tuple(p)) for n, p in SITES))
ROUTERS = [PolicyNode(("100.64.0.2", "fd7a:115c:a1e0::2"), ("tag:subnet-router",), ("192.0.2.0/24",)),
           PolicyNode(("100.64.0.1", "fd7a:115c:a1e0::1"), ("tag:subnet-router",),
                      ("172.16.100.0/24", "198.18.0.0/24", "0.0.0.0/0"))]
UNAPPROVED = [PolicyNode(n.addresses, n.tags) for n in ROUTERS]  # the same routers, no route approved
ALLOW_ALL = '{"action": "accept", "src": ["*"], "dst": ["*:*"]},'


def failing(doc, nodes=ROUTERS) -> set[tuple[str, str]]:
    return {(p.src, p.dst) for p in check_pairs(compile_policy(doc, nodes), SITES) if not p.ok}


def ours_only() -> dict:
    """The deploy's merge with the no-policy allow-all rule taken out: only the project's block."""
    text = merge("", SPEC)
    assert ALLOW_ALL in text
    return hujson.loads(text.replace(ALLOW_ALL, ""))


EVERY_PAIR = {("a", "b"), ("b", "a"), ("a", TAILNET), ("b", TAILNET), (TAILNET, "a"), (TAILNET, "b")}


def test_the_projects_block_allows_every_pair_both_ways():
    assert failing(ours_only()) == set()
    pairs = check_pairs(compile_policy(ours_only(), ROUTERS), SITES)
    assert {(p.src, p.dst) for p in pairs} == EVERY_PAIR


def test_without_the_block_nothing_is_allowed():
    doc = hujson.loads(remove(merge("", SPEC)).replace(ALLOW_ALL, ""))
    assert doc["acls"] == []
    assert failing(doc) == EVERY_PAIR


def test_allow_all_and_no_policy_allow_everything():
    assert failing(hujson.loads(merge("", SPEC))) == set()
    assert failing(None) == set()
    assert compile_policy(None).allow_all
    assert failing({"tagOwners": {"tag:x": []}}) == set()  # no acls and no grants: allow-all


def test_one_direction_missing_is_that_pair_only():
    doc = ours_only()
    doc["acls"] = [r for r in doc["acls"] if r["src"] != ["172.16.100.0/24", "198.18.0.0/24"]]
    assert failing(doc) == {("b", "a"), ("b", TAILNET)}


def test_a_prefix_of_a_site_left_out_breaks_its_pairs():
    doc = {"acls": [
        {"action": "accept", "src": ["192.0.2.0/24", "100.64.0.0/10"], "dst": ["172.16.100.0/24:*", "100.64.0.0/10:*"]},
        {"action": "accept", "src": ["172.16.100.0/24", "198.18.0.0/24", "100.64.0.0/10"], "dst": ["192.0.2.0/24:*"]},
        {"action": "accept", "src": ["172.16.100.0/24", "198.18.0.0/24"], "dst": ["100.64.0.0/10:*"]},
    ]}
    assert failing(doc) == {("a", "b"), (TAILNET, "b")}
    reason = next(p.reason for p in check_pairs(compile_policy(doc, ROUTERS), SITES) if (p.src, p.dst) == ("a", "b"))
    assert "reach 198.18.0.0/24" in reason


def test_coverage_may_come_from_several_rules():
    doc = {"acls": [
        {"action": "accept", "src": ["192.0.2.0/25"], "dst": ["*:*"]},
        {"action": "accept", "src": ["192.0.2.128/25"], "dst": ["172.16.100.0/24:*", "198.18.0.0/23:*"]},
        {"action": "accept", "src": ["192.0.2.128/25"], "dst": ["100.64.0.0/10:*"]},
    ]}
    assert ("a", "b") not in failing(doc) and ("a", TAILNET) not in failing(doc)


def test_ports_and_protocols_limit_a_rule():
    doc = ours_only()
    doc["acls"][0]["dst"] = ["172.16.100.0/24:22,443", "198.18.0.0/24:*", "100.64.0.0/10:*"]
    result = {(p.src, p.dst): p for p in check_pairs(compile_policy(doc, ROUTERS), SITES)}
    assert not result[("a", "b")].ok
    assert "only some ports/protocols via acls[0]" in result[("a", "b")].reason
    doc = ours_only()
    doc["acls"][0]["proto"] = "tcp"
    assert ("a", "b") in failing(doc)
    doc["acls"][0]["dst"] = ["172.16.100.0/24:0-65535", "198.18.0.0/24:*", "100.64.0.0/10:*"]
    del doc["acls"][0]["proto"]
    assert failing(doc) == set()


def test_tags_are_the_routers_tailnet_addresses_not_their_routes():
    doc = {"acls": [{"action": "accept", "src": ["tag:subnet-router"], "dst": ["tag:subnet-router:*"]}]}
    assert failing(doc) == EVERY_PAIR  # as Headscale compiles it: a tag covers node IPs only
    doc = {"acls": [{"action": "accept", "src": ["autogroup:tagged"], "dst": ["192.0.2.0/24:*"]}]}
    compiled = compile_policy(doc, ROUTERS)
    assert any(r.src and "100.64.0.2" in r.src for r in compiled.rules)


def test_hosts_names_resolve():
    doc = ours_only()
    doc["hosts"] = {"site-b": "172.16.100.0/24", "bench": "198.18.0.0/24"}
    doc["acls"][0]["dst"] = ["site-b:*", "bench:*", "100.64.0.0/10:*"]
    assert failing(doc) == set()


def test_groups_and_users_are_not_guessed():
    doc = {"acls": [{"action": "accept", "src": ["group:admins", "alice@"], "dst": ["*:*"]}]}
    compiled = compile_policy(doc, ROUTERS)
    assert failing(doc) == EVERY_PAIR
    assert any("group:admins" in n for n in compiled.notes)


def test_grants_with_every_ip_protocol():
    doc = {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}
    assert failing(doc) == set()
    doc = {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["tcp:443"]}]}
    assert failing(doc) == EVERY_PAIR


def test_server_tests_name_one_address_per_site_and_the_tailnet():
    tests = server_tests([("a", "192.0.2.2"), ("b", "172.16.100.2")], "100.64.0.2")
    assert tests == [
        {"src": "192.0.2.2", "accept": ["172.16.100.2:22", "100.64.0.2:22"]},
        {"src": "172.16.100.2", "accept": ["192.0.2.2:22", "100.64.0.2:22"]},
        {"src": "100.64.0.2", "accept": ["192.0.2.2:22", "172.16.100.2:22"]},
    ]


def test_server_tests_for_dual_stack_sites_add_the_ipv6_pairs_family_by_family():
    tests = server_tests([("a", "192.0.2.2"), ("b", "172.16.100.2")], "100.64.0.2",
                         sites6=[("a", "2001:db8:a::1"), ("b", "fdb5:b::1")], tailnet_ip6="fd7a:115c:a1e0::2")
    assert tests[3:] == [
        {"src": "2001:db8:a::1", "accept": ["[fdb5:b::1]:22", "[fd7a:115c:a1e0::2]:22"]},
        {"src": "fdb5:b::1", "accept": ["[2001:db8:a::1]:22", "[fd7a:115c:a1e0::2]:22"]},
        {"src": "fd7a:115c:a1e0::2", "accept": ["[2001:db8:a::1]:22", "[fdb5:b::1]:22"]},
    ]
    assert len(server_tests([("a", "192.0.2.2")], sites6=[("a", "2001:db8:a::1")])) == 2  # no IPv6 node address


@pytest.mark.parametrize("entry", ["[fd7a:115c:a1e0::1]:*", "fd7a:115c:a1e0::1:*"])
def test_ipv6_destinations(entry):
    compiled = compile_policy({"acls": [{"action": "accept", "src": ["*"], "dst": [entry]}]})
    assert compiled.rules[0].all_ports and "fd7a:115c:a1e0::1" in compiled.rules[0].dst


def grants_only() -> dict:
    """The deploy's merge in grants syntax, with the first policy's allow-everything grant taken out."""
    text = merge("", PolicySpec(sites=SPEC.sites, syntax="grants"), grants_supported=True)
    first = '{"src": ["autogroup:danger-all"], "dst": ["*"], "ip": ["*"]},'
    assert first in text
    doc = hujson.loads(text.replace(first, ""))
    assert "acls" not in doc
    return doc


def test_the_projects_grants_allow_every_pair_both_ways():
    assert failing(grants_only()) == set()
    doc = hujson.loads(remove(merge("", PolicySpec(sites=SPEC.sites, syntax="grants"), grants_supported=True)))
    doc["grants"] = [g for g in doc["grants"] if "autogroup:danger-all" not in g["src"]]
    assert failing(doc) == EVERY_PAIR


def test_wildcard_source_is_the_tailnet_and_approved_routes():
    doc = {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}
    assert failing(doc) == set()
    assert failing(doc, UNAPPROVED) == {("a", "b"), ("b", "a"), ("a", TAILNET), ("b", TAILNET)}
    assert failing(doc, UNAPPROVED) == failing({"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]},
                                               UNAPPROVED)
    legacy = check_pairs(compile_policy(doc, UNAPPROVED, modern=False), SITES)  # Headscale < 0.29
    assert all(p.ok for p in legacy)
    exit_only = [PolicyNode(("100.64.0.3",), (), ("0.0.0.0/0",))]
    assert ("a", "b") in failing(doc, exit_only)  # an approved exit route is not a subnet the `*` covers


def test_the_tailnet_range_alone_blocks_the_sites():
    doc = {"grants": [{"src": ["100.64.0.0/10"], "dst": ["100.64.0.0/10"], "ip": ["*"]}]}
    assert failing(doc) == EVERY_PAIR


def test_danger_all_is_every_source_and_no_destination():
    doc = {"grants": [{"src": ["autogroup:danger-all"], "dst": ["*"], "ip": ["*"]}]}
    assert failing(doc, UNAPPROVED) == set()
    doc = {"grants": [{"src": ["*"], "dst": ["autogroup:danger-all"], "ip": ["*"]}]}
    compiled = compile_policy(doc, ROUTERS)
    assert failing(doc) == EVERY_PAIR and any("source only" in n for n in compiled.notes)


@pytest.mark.parametrize("ip, every", [
    (["*"], True), (["0-65535"], True), (["tcp:443"], False), (["tcp:*"], False), (["icmp:*"], False),
    (["22", "443"], False), (["tcp:*", "*"], True),
])
def test_grant_ip_ports_and_protocols(ip, every):
    doc = grants_only()
    doc["grants"][0]["ip"] = ip
    result = {(p.src, p.dst): p for p in check_pairs(compile_policy(doc, ROUTERS), SITES)}
    assert result[("a", "b")].ok is every
    if not every:
        assert "only some ports/protocols via grants[0]" in result[("a", "b")].reason
    assert ip_all(ip[-1]) is every or len(ip) > 1


def test_grants_with_cidrs_tags_and_autogroups():
    cidrs = {"grants": [
        {"src": ["192.0.2.0/24", "100.64.0.0/10"], "dst": ["172.16.100.0/23", "198.18.0.0/24"], "ip": ["*"]},
        {"src": ["172.16.100.0/24", "198.18.0.0/24", "100.64.0.0/10"], "dst": ["192.0.2.0/24"], "ip": ["*"]},
        {"src": ["192.0.2.0/24", "172.16.100.0/24", "198.18.0.0/24"], "dst": ["100.64.0.0/10"], "ip": ["*"]},
    ]}
    assert failing(cidrs) == set()
    tagged = {"grants": [{"src": ["autogroup:tagged"], "dst": ["tag:subnet-router"], "ip": ["*"]}]}
    assert failing(tagged) == EVERY_PAIR  # node addresses only, never the routes behind them
    internet = {"grants": [{"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"]}]}
    assert failing(internet) == EVERY_PAIR


def test_groups_users_and_via_are_deferred_to_the_server():
    for doc in ({"grants": [{"src": ["group:sites"], "dst": ["*"], "ip": ["*"]}]},
                {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "via": ["tag:other"]}]}):
        pairs = check_pairs(compile_policy(doc, ROUTERS), SITES)
        assert all(not p.ok and p.deferred for p in pairs)
    plain = check_pairs(compile_policy({"grants": [{"src": ["10.0.0.0/8"], "dst": ["*"], "ip": ["*"]}]},
                                       ROUTERS), SITES)
    assert not any(p.deferred for p in plain)


def test_an_app_grant_opens_no_ip_traffic():
    doc = {"grants": [{"src": ["*"], "dst": ["*"], "app": {"example.com/cap/x": [{}]}}]}
    assert failing(doc) == EVERY_PAIR


# Dual-stack sites: the IPv6 half is judged as IPv4 is, family by family.
SITES6 = [("a", ["192.0.2.0/24", "2001:db8:a::/64"]), ("b", ["172.16.100.0/24", "fdb5:b::/64"]),
          ("c", ["198.51.100.0/24"])]  # c: IPv4 only
SPEC6 = PolicySpec(sites=tuple((n, tuple(p)) for n, p in SITES6))
ROUTERS6 = [PolicyNode((f"100.64.0.{i}", f"fd7a:115c:a1e0::{i}"), ("tag:subnet-router",), tuple(p))
            for i, (_, p) in enumerate(SITES6, 1)]
EVERY_PAIR6 = {(a, b) for a in "abc" for b in [*"abc", TAILNET] if a != b} | {(TAILNET, a) for a in "abc"}


def failing6(doc) -> dict[tuple[str, str], str]:
    return {(p.src, p.dst): p.reason for p in check_pairs(compile_policy(doc, ROUTERS6), SITES6) if not p.ok}


def ours6(syntax: str) -> dict:
    """The deploy's merged dual-stack policy in `syntax`, with the no-policy allow-all rule out."""
    doc = hujson.loads(merge("", PolicySpec(sites=SPEC6.sites, syntax=syntax), grants_supported=True))
    allow_all = [r for r in doc[syntax] if r["src"] == ["autogroup:danger-all"]]
    assert len(allow_all) == 1 and "fd7a:115c:a1e0::/48" in str(doc[syntax])
    doc[syntax].remove(allow_all[0])
    return doc


@pytest.mark.parametrize("syntax", ["acls", "grants"])
def test_the_projects_dual_stack_block_allows_every_pair_both_families(syntax):
    assert failing6(ours6(syntax)) == {}
    doc = ours6(syntax)
    doc[syntax] = []
    assert set(failing6(doc)) == EVERY_PAIR6


def per_family(syntax: str, v6: bool = True) -> dict:
    """A hand-written policy that allows each family on its own (no rule mixes IPv4 and IPv6),
    the IPv6 rule left out unless `v6`."""
    v4 = ["192.0.2.0/24", "172.16.100.0/24", "198.51.100.0/24", "100.64.0.0/10"]
    six = ["2001:db8:a::/64", "fdb5:b::/64", "fd7a:115c:a1e0::/48"]
    fams = [v4, six] if v6 else [v4]
    if syntax == "acls":
        return {"acls": [{"action": "accept", "src": f, "dst": [f"{p}:*" for p in f]} for f in fams]}
    return {"grants": [{"src": f, "dst": f, "ip": ["*"]} for f in fams]}


@pytest.mark.parametrize("syntax", ["acls", "grants"])
def test_a_family_is_never_asked_to_reach_the_other(syntax):
    """IPv4 to IPv4 and IPv6 to IPv6 is all a site pair needs: a policy that never mixes the two
    families is complete."""
    assert failing6(per_family(syntax)) == {}


@pytest.mark.parametrize("syntax", ["acls", "grants"])
def test_a_policy_without_the_ipv6_rule_breaks_the_dual_stack_pairs_only(syntax):
    got = failing6(per_family(syntax, v6=False))
    assert set(got) == {("a", "b"), ("b", "a"), ("a", TAILNET), ("b", TAILNET), (TAILNET, "a"), (TAILNET, "b")}
    assert "reach fdb5:b::/64" in got[("a", "b")] and "2001:db8:a::/64" in got[("a", "b")]
    assert "reach fd7a:115c:a1e0::/48" in got[("a", TAILNET)]


def test_the_ipv6_tailnet_range_is_judged_both_ways():
    doc = per_family("acls")
    doc["acls"][1]["dst"] = ["2001:db8:a::/64:*", "fdb5:b::/64:*"]  # fd7a:115c:a1e0::/48 reaches, is not reached
    assert set(failing6(doc)) == {("a", TAILNET), ("b", TAILNET)}
    doc = per_family("grants")
    doc["grants"][1]["src"] = ["2001:db8:a::/64", "fdb5:b::/64"]
    assert set(failing6(doc)) == {(TAILNET, "a"), (TAILNET, "b")}


def test_one_ipv6_prefix_left_out_and_ipv6_ports_limited():
    doc = per_family("grants")
    doc["grants"][1]["dst"] = ["2001:db8:a::/64", "fd7a:115c:a1e0::/48"]  # fdb5:b::/64 unreachable
    assert set(failing6(doc)) == {("a", "b"), (TAILNET, "b")}
    doc = per_family("grants")
    doc["grants"][1]["ip"] = ["tcp:443"]
    got = failing6(doc)
    assert ("a", "b") in got and "only some ports/protocols via grants[1]" in got[("a", "b")]


def test_the_wildcard_covers_approved_ipv6_routes_on_a_modern_server():
    doc = {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}
    assert failing6(doc) == {}
    v4_only = [PolicyNode(n.addresses, n.tags, tuple(r for r in n.routes if ":" not in r)) for n in ROUTERS6]
    pairs = check_pairs(compile_policy(doc, v4_only), SITES6)
    assert {(p.src, p.dst) for p in pairs if not p.ok} == {("a", "b"), ("b", "a"), ("a", TAILNET), ("b", TAILNET)}
