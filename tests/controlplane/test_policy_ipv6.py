"""The policy for dual-stack sites: IPv6 prefixes between sites and the tailnet's fd7a:115c:a1e0::/48."""

from __future__ import annotations

import itertools

from netaddr import IPNetwork

from controlplane import hujson, policy
from controlplane.policy import PolicySpec
from tests.controlplane.test_policy import SPEC


def allowed(doc: dict, src: str, dst: str) -> bool:
    """Does some accept rule cover src -> dst:* (containment within one family)?"""
    for acl in doc.get("acls", []):
        srcs = [IPNetwork(s) for s in acl["src"] if "/" in s]
        dsts = [IPNetwork(d.rsplit(":", 1)[0]) for d in acl["dst"] if "/" in d]
        if any(IPNetwork(src) in s for s in srcs) and any(IPNetwork(dst) in d for d in dsts):
            return True
    return False


SPEC6 = PolicySpec(sites=(("a", ("192.0.2.0/24", "2001:db8:a::/64")),
                          ("b", ("172.16.100.0/24", "fd12:3456:789a::/48"))))


def test_ipv6_prefixes_and_the_tailnet_ipv6_range_both_ways():
    doc = hujson.loads(policy.merge("{}", SPEC6))
    prefixes = {"a": ["192.0.2.0/24", "2001:db8:a::/64"], "b": ["172.16.100.0/24", "fd12:3456:789a::/48"],
                "ts": ["100.64.0.0/10", "fd7a:115c:a1e0::/48"]}
    for x, y in itertools.permutations(prefixes, 2):
        for p, q in itertools.product(prefixes[x], prefixes[y]):
            if IPNetwork(p).version == IPNetwork(q).version:
                assert allowed(doc, p, q), (p, q)
    assert not allowed(doc, "2001:db8:a::/64", "2001:db8:ffff::/64")
    approvers = doc["autoApprovers"]["routes"]
    assert {"2001:db8:a::/64", "fd12:3456:789a::/48"} <= set(approvers)


def test_ipv4_only_sites_get_no_ipv6_range():
    text = policy.merge("{}", SPEC)
    assert "fd7a:115c:a1e0::/48" not in text
    assert SPEC6.tailnet_ranges == ["100.64.0.0/10", "fd7a:115c:a1e0::/48"]
