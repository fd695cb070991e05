"""Grants against a real Headscale v0.29.0 with real tailscaled routers (its own lab).

Order matters inside this module (one lab for all): the empty server first (the first
policy), then the operator's grants-only policy, the switch to acls and back, the
server's own policy tests in both syntaxes, and the refusal of grants on an older server.
"""

from __future__ import annotations

import json

import pytest
import requests

from check.acl import PolicyNode, check_pairs, compile_policy, server_tests
from controlplane import connect, hujson, policy
from controlplane.cli import run
from controlplane.model import ControlPlaneError
from controlplane.policy import PolicyError

pytestmark = pytest.mark.integration

GRANTS_POLICY = """// The operator's policy, written in grants.
{
  "groups": {
    "group:ops": ["lab@"], // the ops team
  },
  "grants": [
    // ops reach every router's SSH
    {"src": ["group:ops"], "dst": ["autogroup:tagged"], "ip": ["tcp:22"]},
  ],
}
"""


def api(lab, key: str, method: str, path: str, **kw) -> requests.Response:
    resp = requests.request(method, lab.api_url + path, headers={"Authorization": f"Bearer {key}"},
                            timeout=10, **kw)
    resp.raise_for_status()
    return resp


def stored(lab, key: str) -> str:
    return api(lab, key, "GET", "/api/v1/policy").json()["policy"]


@pytest.fixture(scope="module")
def key(headscale_lab) -> str:
    from tests.controlplane.test_headscale_real import wait_advertised

    k = headscale_lab.api_key()
    wait_advertised(headscale_lab, k)
    return k


def test_the_server_reports_grants_support(headscale_lab, key, make_model):
    cp = connect(make_model("headscale", headscale_lab.api_url, key))
    version = cp.server_version()
    # a release build says v0.29.0; the lab's build from the module source has no module version
    assert version in ("v0.29.0", "dev"), version
    assert cp.grants_supported() is True


def test_first_policy_on_an_empty_server_is_grants_keeping_allow_all(headscale_lab, key, make_model):
    model = make_model("headscale", headscale_lab.api_url, key)
    cp = connect(model)
    assert cp.read_policy().text == ""  # never set: Headscale's allow-all default
    assert run(model, "apply") == 0  # checked by the server first, then written
    text = stored(headscale_lab, key)
    assert text.startswith("// Tailnet policy. s2s-controlplane created it")
    assert "The first grant keeps the no-policy default (autogroup:danger-all" in text
    doc = hujson.loads(text)
    assert "acls" not in doc
    assert doc["grants"][0] == {"src": ["autogroup:danger-all"], "dst": ["*"], "ip": ["*"]}
    assert set(policy.managed(text)) == {"tagOwners", "autoApprovers", "grants"}
    assert connect(model).plan(model).empty
    # the acls counterpart of a first policy is one the server takes too
    acls = policy.PolicySpec(sites=(("a", ("192.0.2.0/24",)),), syntax="acls")
    cp.check_policy(policy.merge("", acls, True))


def test_operator_grants_only_policy_gets_grants_and_no_acls(headscale_lab, key, make_model):
    api(headscale_lab, key, "PUT", "/api/v1/policy", json={"policy": GRANTS_POLICY})
    model = make_model("headscale", headscale_lab.api_url, key)
    assert run(model, "apply") == 0
    text = stored(headscale_lab, key)
    assert "acls" not in hujson.loads(text)
    for line in GRANTS_POLICY.splitlines():
        assert line in text.splitlines(), line
    grants = hujson.loads(text)["grants"]
    assert grants[0] == {"src": ["group:ops"], "dst": ["autogroup:tagged"], "ip": ["tcp:22"]}
    assert {"src": ["192.0.2.0/24"], "dst": ["172.16.100.0/24", "10.99.0.0/16", "100.64.0.0/10"],
            "ip": ["*"]} in grants
    assert connect(model).plan(model).empty


def test_switch_to_acls_and_back_moves_the_block(headscale_lab, key, make_model):
    first = stored(headscale_lab, key)
    for syntax, other in (("acls", "grants"), ("grants", "acls")):
        model = make_model("headscale", headscale_lab.api_url, key,
                           extra_tailnet=f'policy_syntax = "{syntax}"')
        assert run(model, "apply") == 0
        text = stored(headscale_lab, key)
        blocks = policy.managed(text)
        assert syntax in blocks and other not in blocks
        assert '{"src": ["group:ops"], "dst": ["autogroup:tagged"], "ip": ["tcp:22"]},' in text
        assert connect(model).plan(model).empty
    assert stored(headscale_lab, key) == first
    default = make_model("headscale", headscale_lab.api_url, key)
    assert connect(default).plan(default).empty


def _with_tests(text: str, accept: bool) -> str:
    doc = hujson.loads(text)
    tests = server_tests([("a", "192.0.2.2"), ("b", "172.16.100.2")], "100.64.0.1")
    if not accept:
        tests = [{"src": t["src"], "deny": t["accept"]} for t in tests]
    doc["tests"] = tests
    return json.dumps(doc)


LAB_SITES = (("a", ("192.0.2.0/24", "203.0.113.0/24")), ("b", ("172.16.100.0/24", "10.99.0.0/16")))
OURS_ONLY = {"grants": policy.PolicySpec(sites=LAB_SITES).grants()}  # the project's grants alone
ALLOWING = [
    {"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]},
    {"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]},
    OURS_ONLY,
    {"acls": policy.PolicySpec(sites=LAB_SITES).acls()},
]
BLOCKING = [
    {"grants": [{"src": ["100.64.0.0/10"], "dst": ["100.64.0.0/10"], "ip": ["*"]}]},
    {"acls": [{"action": "accept", "src": ["100.64.0.0/10"], "dst": ["100.64.0.0/10:*"]}]},
    {"grants": [{"src": ["*"], "dst": ["autogroup:tagged"], "ip": ["*"]}]},
]


@pytest.mark.parametrize("doc", ALLOWING + BLOCKING)
def test_the_servers_policy_tests_agree_with_the_evaluator(headscale_lab, key, make_model, doc):
    """The site-pair tests the check runs on the server, on policies in grants and in acls: the
    server's verdict and the evaluator's are the same (routes approved by the tests above)."""
    cp = connect(make_model("headscale", headscale_lab.api_url, key))
    nodes = [PolicyNode(n.addresses, n.tags, tuple(r for r in n.approved if r in n.advertised))
             for n in cp.list_nodes()]
    sites = [("a", ["192.0.2.0/24"]), ("b", ["172.16.100.0/24"])]
    allowed = all(p.ok for p in check_pairs(compile_policy(doc, nodes), sites))
    assert allowed is (doc in ALLOWING)
    text = json.dumps(doc)
    cp.check_policy(_with_tests(text, accept=allowed))  # the server agrees
    with pytest.raises(ControlPlaneError, match="test"):
        cp.check_policy(_with_tests(text, accept=not allowed))


DUAL_SITES = (("a", (*LAB_SITES[0][1], "2001:db8:a::/64")), ("b", (*LAB_SITES[1][1], "fdb5:b::/64")))
SITES6 = [("a", "2001:db8:a::1"), ("b", "fdb5:b::1")]  # check.acl.test_address6 of each IPv6 prefix


def _ipv6_tests(accept: bool) -> list[dict]:
    """The server's tests for the IPv6 half alone: each site's IPv6 prefix to the other's and to
    fd7a:115c:a1e0::/48, and back (check.acl.server_tests, as the check asks them)."""
    tests = server_tests([("a", "192.0.2.2"), ("b", "172.16.100.2")], "100.64.0.1",
                         sites6=SITES6, tailnet_ip6="fd7a:115c:a1e0::1")[3:]
    assert [t["src"] for t in tests] == ["2001:db8:a::1", "fdb5:b::1", "fd7a:115c:a1e0::1"]
    return tests if accept else [{"src": t["src"], "deny": t["accept"]} for t in tests]


@pytest.mark.parametrize("syntax", ["acls", "grants"])
@pytest.mark.parametrize("ipv6_rule", [True, False], ids=["dual-stack-policy", "ipv4-only-policy"])
def test_the_servers_ipv6_policy_tests_need_the_ipv6_rule(headscale_lab, key, make_model, syntax, ipv6_rule):
    """The project's own rules in either syntax, for dual-stack sites or (the IPv6 rule missing)
    for their IPv4 prefixes only: the server accepts the IPv6 pairs exactly when the IPv6 rule is
    there, and the evaluator agrees; the IPv4 half passes either way."""
    spec = policy.PolicySpec(sites=DUAL_SITES if ipv6_rule else LAB_SITES, syntax=syntax)
    doc = {syntax: getattr(spec, syntax)()}
    assert ("fd7a:115c:a1e0::/48" in json.dumps(doc)) is ipv6_rule
    cp = connect(make_model("headscale", headscale_lab.api_url, key))
    nodes = [PolicyNode(n.addresses, n.tags, tuple(r for r in n.approved if r in n.advertised))
             for n in cp.list_nodes()]
    sites = [("a", ["192.0.2.0/24", "2001:db8:a::/64"]), ("b", ["172.16.100.0/24", "fdb5:b::/64"])]
    pairs = check_pairs(compile_policy(doc, nodes), sites)
    assert all(p.ok for p in pairs) is ipv6_rule
    v4 = server_tests([("a", "192.0.2.2"), ("b", "172.16.100.2")], "100.64.0.1")
    cp.check_policy(json.dumps({**doc, "tests": v4}))  # the IPv4 half: allowed either way
    cp.check_policy(json.dumps({**doc, "tests": _ipv6_tests(accept=ipv6_rule)}))  # the server agrees
    with pytest.raises(ControlPlaneError, match=r"\[fdb5:b::1\]:22: expected (ALLOWED|DENIED)"):
        cp.check_policy(json.dumps({**doc, "tests": _ipv6_tests(accept=not ipv6_rule)}))


def test_grants_asked_of_a_server_before_0_29_is_one_line(headscale_lab, key, make_model,
                                                          monkeypatch, capsys):
    """The real server, made to report 0.28.0 at /version (the one thing that differs before 0.29
    for this decision): the plan stops before any write, in one line."""
    from controlplane.headscale import HeadscaleControlPlane

    monkeypatch.setattr(HeadscaleControlPlane, "server_version", lambda self: "v0.28.0")
    before = api(headscale_lab, key, "GET", "/api/v1/policy").json()
    model = make_model("headscale", headscale_lab.api_url, key,
                       extra_tailnet='policy_syntax = "grants"')
    with pytest.raises(PolicyError, match="does not support grants"):
        connect(model).plan(model)
    assert run(model, "apply") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "policy_syntax" in err
    assert api(headscale_lab, key, "GET", "/api/v1/policy").json() == before
    auto = make_model("headscale", headscale_lab.api_url, key)
    assert connect(auto).plan(auto).empty  # auto keeps the operator's grants (the policy has them)
