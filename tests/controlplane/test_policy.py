"""The policy merge: what the sites need is added in marked blocks, everything else kept."""

from __future__ import annotations

import itertools

import pytest
from netaddr import IPNetwork

from controlplane import hujson, policy
from controlplane.policy import PolicyError, PolicySpec

SPEC = PolicySpec(sites=(("a", ("192.0.2.0/24",)), ("b", ("172.16.100.0/24", "10.99.0.0/16"))))

HAND = """// the admin's file
{
  "groups": {"group:ops": ["alice@"]}, // ops
  "tagOwners": {"tag:web": ["group:ops"]},
  "autoApprovers": {"routes": {"10.99.0.0/16": ["group:ops"]}}, // hand-approved
  "acls": [
    /* ops anywhere */ {"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}
  ],
}
"""


def allowed(doc: dict, src: str, dst: str) -> bool:
    """Does some accept rule cover src -> dst:* (prefix containment, as the control plane evaluates)?"""
    for acl in doc.get("acls", []):
        srcs = [IPNetwork(s) for s in acl["src"] if s[0].isdigit()]
        dsts = [IPNetwork(d.rsplit(":", 1)[0]) for d in acl["dst"] if d[0].isdigit()]
        if any(IPNetwork(src) in s for s in srcs) and any(IPNetwork(dst) in d for d in dsts):
            return True
    return False


def test_every_pair_of_sites_and_the_tailnet_both_ways():
    doc = hujson.loads(policy.merge("{}", SPEC))
    prefixes = {"a": ["192.0.2.0/24"], "b": ["172.16.100.0/24", "10.99.0.0/16"], "ts": ["100.64.0.0/10"]}
    for x, y in itertools.permutations(prefixes, 2):
        for p, q in itertools.product(prefixes[x], prefixes[y]):
            assert allowed(doc, p, q), (p, q)
    assert not allowed(doc, "192.0.2.0/24", "198.51.100.0/24")


def test_keeps_hand_entries_and_comments_byte_for_byte():
    out = policy.merge(HAND, SPEC)
    for line in ('// the admin\'s file', '"groups": {"group:ops": ["alice@"]}, // ops',
                 '/* ops anywhere */ {"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}'):
        assert line in out
    doc = hujson.loads(out)
    assert doc["tagOwners"] == {"tag:web": ["group:ops"], "tag:subnet-router": []}
    # a prefix the admin auto-approves by hand is left to them
    assert doc["autoApprovers"]["routes"]["10.99.0.0/16"] == ["group:ops"]
    assert doc["autoApprovers"]["routes"]["192.0.2.0/24"] == ["tag:subnet-router"]
    assert doc["acls"][0]["src"] == ["group:ops"]


def test_idempotent_and_update():
    once = policy.merge(HAND, SPEC)
    assert policy.merge(once, SPEC) == once
    smaller = PolicySpec(sites=(("a", ("192.0.2.0/24",)), ("c", ("198.18.0.0/24",))))
    updated = policy.merge(once, smaller)
    assert "172.16.100.0/24" not in updated and "198.18.0.0/24" in updated
    assert updated.count("BEGIN s2s-controlplane acls") == 1


def test_moved_block_stays_where_the_admin_put_it():
    once = policy.merge(HAND, SPEC)
    lines = once.splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if "BEGIN s2s-controlplane acls" in ln)
    end = next(i for i, ln in enumerate(lines) if "END s2s-controlplane acls" in ln)
    block = lines[start:end + 1]
    rest = lines[:start] + lines[end + 1:]
    at = next(i for i, ln in enumerate(rest) if '"acls": [' in ln) + 1
    moved = "".join(rest[:at] + block + rest[at:])
    merged = policy.merge(moved, SPEC)
    assert merged == moved  # nothing to change, and the block was not moved back
    assert hujson.loads(merged)["acls"][-1]["src"] == ["group:ops"]


def test_no_policy_starts_from_allow_all():
    doc = hujson.loads(policy.merge("", SPEC))
    assert doc["acls"][0] == {"action": "accept", "src": ["*"], "dst": ["*:*"]}


def test_hand_written_tag_owner_wins():
    src = '{"tagOwners": {"tag:subnet-router": ["alice@"]}}'
    out = policy.merge(src, SPEC)
    assert hujson.loads(out)["tagOwners"] == {"tag:subnet-router": ["alice@"]}
    assert "tagOwners" not in policy.managed(out)


@pytest.mark.parametrize("bad, msg", [
    ('{"acls": {}}', "acls is not an array"),
    ('[]', "top level is not an object"),
    ('{"acls": [ // BEGIN s2s-controlplane acls\n]}', "no END marker"),
    ('{"acls": [', "not valid HuJSON"),
])
def test_bad_policies_are_one_line_errors(bad, msg):
    with pytest.raises(PolicyError, match=msg) as exc:
        policy.merge(bad, SPEC)
    assert "\n" not in str(exc.value)


GRANTS_HAND = """// the admin's grants-only policy
{
  "grants": [
    // ops reach the web servers
    {"src": ["group:ops"], "dst": ["tag:web"], "ip": ["tcp:443"]},
  ],
}
"""


def spec(syntax: str) -> PolicySpec:
    return PolicySpec(sites=SPEC.sites, syntax=syntax)


def outside_blocks(text: str) -> str:
    """The text with our blocks (and the containers this project created) taken out."""
    return policy.remove(text)


def test_auto_follows_a_grants_policy_and_adds_no_acls():
    out = policy.merge(GRANTS_HAND, spec("auto"), grants_supported=True)
    doc = hujson.loads(out)
    assert "acls" not in doc
    assert doc["grants"][0] == {"src": ["group:ops"], "dst": ["tag:web"], "ip": ["tcp:443"]}
    ours = doc["grants"][1:]
    assert all(g["ip"] == ["*"] and "action" not in g for g in ours)
    assert {"src": ["192.0.2.0/24"], "dst": ["172.16.100.0/24", "10.99.0.0/16", "100.64.0.0/10"],
            "ip": ["*"]} in ours
    assert {"src": ["100.64.0.0/10"], "dst": ["192.0.2.0/24", "172.16.100.0/24", "10.99.0.0/16"],
            "ip": ["*"]} in ours
    for line in GRANTS_HAND.splitlines():  # the operator's text, byte for byte
        assert line in out.splitlines()
    assert "BEGIN s2s-controlplane grants" in out and "acls" not in policy.managed(out)
    assert policy.merge(out, spec("auto"), grants_supported=True) == out


def test_auto_writes_acls_into_an_acls_policy_even_where_grants_exist():
    out = policy.merge(HAND, spec("auto"), grants_supported=True)
    assert "grants" not in hujson.loads(out) and "acls" in policy.managed(out)


@pytest.mark.parametrize("supported, syntax", [(True, "grants"), (False, "acls"), (None, "acls")])
def test_auto_on_no_policy_follows_the_server(supported, syntax):
    out = policy.merge("", spec("auto"), grants_supported=supported)
    assert set(policy.managed(out)) == {"tagOwners", "autoApprovers", syntax}
    other = "acls" if syntax == "grants" else "grants"
    assert other not in hujson.loads(out)


def test_first_policy_keeps_what_the_server_allowed():
    grants = hujson.loads(policy.merge("", spec("grants"), grants_supported=True))
    assert grants["grants"][0] == {"src": ["autogroup:danger-all"], "dst": ["*"], "ip": ["*"]}
    modern = policy.merge("", spec("acls"), grants_supported=True)
    assert hujson.loads(modern)["acls"][0] == {"action": "accept", "src": ["autogroup:danger-all"],
                                               "dst": ["*:*"]}
    assert "The first ACL keeps the no-policy default (autogroup:danger-all" in modern
    legacy = policy.merge("", spec("acls"), grants_supported=False)
    assert hujson.loads(legacy)["acls"][0] == {"action": "accept", "src": ["*"], "dst": ["*:*"]}
    assert "The first ACL keeps the no-policy default (every address" in legacy
    assert "The first grant keeps" in policy.merge("", spec("grants"), grants_supported=True)


def test_grants_on_a_server_without_them_is_a_one_line_error():
    with pytest.raises(PolicyError, match="policy_syntax: the control server does not support grants") as exc:
        policy.merge(HAND, spec("grants"), grants_supported=False)
    assert "\n" not in str(exc.value)
    assert policy.merge(HAND, spec("auto"), grants_supported=False) == policy.merge(HAND, SPEC)


@pytest.mark.parametrize("base", [GRANTS_HAND, HAND])
def test_switching_moves_the_block_and_leaves_nothing_behind(base):
    first = policy.merge(base, spec("auto"), grants_supported=True)
    for there, back in (("acls", "grants"), ("grants", "acls")):
        moved = policy.merge(first, spec(there), grants_supported=True)
        blocks = policy.managed(moved)
        assert there in blocks and back not in blocks
        assert moved.count(f"BEGIN {policy.MARK}") == 3  # tagOwners, autoApprovers, one rule block
        assert policy.merge(moved, spec(there), grants_supported=True) == moved
        again = policy.merge(moved, spec(back), grants_supported=True)
        # a list that held only our block goes with it; the operator's own stay as written (a
        # separator comma after their last item is the one byte the merge may add, once)
        assert (outside_blocks(again).replace("},\n", "}\n")
                == outside_blocks(policy.merge(base, spec(back), grants_supported=True)).replace("},\n", "}\n"))
        for line in base.splitlines():
            if "tagOwners" not in line and "autoApprovers" not in line:  # inline objects we append to
                assert line.rstrip(",") in [ln.rstrip(",") for ln in again.splitlines()]
    back_home = policy.merge(policy.merge(first, spec("acls" if base is GRANTS_HAND else "grants")),
                             spec("auto"), grants_supported=True)
    assert back_home == first  # auto returns to the operator's syntax, byte for byte


def test_an_operators_list_with_a_comment_stays():
    base = '{\n  "acls": [],\n  "grants": [\n    // grants go here\n  ],\n}\n'
    out = policy.merge(policy.merge(base, spec("grants")), spec("acls"))
    assert hujson.loads(out)["grants"] == [] and "grants" not in policy.managed(out)
    assert '  "grants": [\n    // grants go here\n  ],\n' in out


def test_ipv6_sites_get_the_tailnets_ipv6_range_too():
    v6 = PolicySpec(sites=(("a", ("192.0.2.0/24", "2001:db8:a::/64")), ("b", ("172.16.100.0/24",))))
    grants = v6.grants()
    assert grants[0]["dst"] == ["172.16.100.0/24", "100.64.0.0/10", "fd7a:115c:a1e0::/48"]
    assert grants[1]["dst"] == ["192.0.2.0/24", "2001:db8:a::/64", "100.64.0.0/10"]  # b has no IPv6
    assert grants[2]["src"] == ["100.64.0.0/10", "fd7a:115c:a1e0::/48"]
    assert "2001:db8:a::/64:*" in v6.acls()[2]["dst"]
