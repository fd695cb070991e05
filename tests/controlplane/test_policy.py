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
