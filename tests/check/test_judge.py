"""Verdicts from canned state: each fault is named once, what it causes downstream is unknown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from check.dhcp import parse_probe_output
from check.gather import ControlState, RouterState, parse_pings
from check.judge import IPV6_STEPS, STEP_IDS, Status, judge
from check.render import as_json, exit_code, table
from controlplane import Node, hujson
from controlplane.policy import PolicySpec, merge
from dhcp.plan import build_plan
from operations.facts import ForwardChain, LivePrefs, MssClamp, NodeStatus
from sites import parse_sites

DATA = Path(__file__).parent / "data"
PROBE_A = parse_probe_output((DATA / "probe-kea-2.2-site-a.json").read_text())


def model():
    return parse_sites(
        Path("/srv/sites.toml"),
        {
            "ssh": {"config_file": "/srv/ssh_config"},
            "tailnet": {"backend": "headscale", "url": "http://127.0.0.1:8080", "api_key_env": "X"},
            "sites": {
                "a": {"subnet": "192.0.2.0/24", "router": "192.0.2.2", "gateway": "192.0.2.1", "ssh": "a-router"},
                "b": {
                    "subnet": "172.16.100.0/24",
                    "router": "172.16.100.2",
                    "gateway": "172.16.100.1",
                    "ssh": "b-router",
                },
            },
        },
    )


def router(site: str, ip: str, prefix: str, lan: str, probe=None) -> RouterState:
    prefs = LivePrefs(
        control_url="http://198.51.100.10:8080",
        route_all=True,
        want_running=True,
        logged_out=False,
        advertise_routes=(prefix,),
        advertise_tags=(),
        no_snat=True,
        no_stateful_filtering=True,
        netfilter_mode="on",
    )
    status = NodeStatus("Running", True, (prefix,), (ip, "fd7a:115c:a1e0::9"), "1.100.0")
    peer = "b" if site == "a" else "a"
    return RouterState(
        site,
        f"{site}-router",
        prefs=prefs,
        status=status,
        no_stateful_filtering=True,
        tailscaled_unit="active",
        clamp=MssClamp("tailscale0", True, True),
        forwarding={"net.ipv4.ip_forward": "1"},
        forward_filter=ForwardChain("ACCEPT", True),
        addresses={"eth0": [lan]},
        lan_interface="eth0",
        probe=probe,
        pings=parse_pings(
            f"tsping {peer} 0 pong from {peer}-router (x) via 198.51.100.3:41641 in 1ms\n"
            f"mtu {peer} 0\nsmall {peer} 0\ndf1281 {peer} 1\ndf1200 {peer} 0\n"
        ),
    )


def healthy():
    m = model()
    plans = build_plan(m)
    b_probe = dataclasses.replace(
        PROBE_A,
        offer=dataclasses.replace(
            PROBE_A.offer, options={**PROBE_A.offer.options, 121: plans["b"].option_data, 249: plans["b"].option_data}
        ),
        ack=None,
    )
    routers = {
        "a": router("a", "100.64.0.2", "192.0.2.0/24", "192.0.2.2", PROBE_A),
        "b": router("b", "100.64.0.1", "172.16.100.0/24", "172.16.100.2", b_probe),
    }
    nodes = [
        Node(
            "2",
            "a-router",
            addresses=("100.64.0.2",),
            advertised=("192.0.2.0/24",),
            approved=("192.0.2.0/24",),
            tags=("tag:subnet-router",),
        ),
        Node(
            "1",
            "b-router",
            addresses=("100.64.0.1",),
            advertised=("172.16.100.0/24",),
            approved=("172.16.100.0/24",),
            tags=("tag:subnet-router",),
        ),
    ]
    policy = merge("", PolicySpec.from_model(m)).replace('{"action": "accept", "src": ["*"], "dst": ["*:*"]},', "")
    control = ControlState(
        nodes={"a": nodes[0], "b": nodes[1]},
        online={"1": True, "2": True},
        primary={"1": ("172.16.100.0/24",), "2": ("192.0.2.0/24",)},
        policy_text=policy,
        all_nodes=nodes,
        server_test_run=True,
    )
    return m, plans, routers, control


def verdicts(m, plans, routers, control):
    rows = judge(m, plans, routers, control)
    return {(r.site, r.step): r for r in rows}, rows


def not_ok(rows):
    return {(r.site, r.step): r.status for r in rows if r.status != Status.OK}


def test_healthy_is_all_ok_and_exit_0():
    by, rows = verdicts(*healthy())
    assert [r.step for r in rows] == [s for s in STEP_IDS if s not in IPV6_STEPS] * 2
    assert not_ok(rows) == {}
    assert exit_code(rows) == 0
    assert "all 18 checks ok" in table(rows)
    assert by[("a", "tunnel")].reason == (
        "1280-byte DF pings cross LAN to LAN; b: path MTU >= 1280, tailscale ping via 198.51.100.3:41641"
    )


def test_tailscaled_stopped_is_named_once():
    m, plans, routers, control = healthy()
    routers["a"] = dataclasses.replace(
        routers["a"],
        prefs=None,
        status=None,
        tailscaled_unit="inactive",
        pings=parse_pings("tsping b 1 failed to connect\nmtu b 1\nsmall b 1\n"),
    )
    routers["b"].pings = parse_pings("tsping a 1 timeout\nmtu a 1\nsmall a 1\n")
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {
        ("a", "tailscaled"): Status.BROKEN,
        ("a", "routes"): Status.UNKNOWN,
        ("a", "prefs"): Status.UNKNOWN,
        ("a", "tunnel"): Status.UNKNOWN,
        ("b", "tunnel"): Status.UNKNOWN,
    }
    assert by[("a", "tailscaled")].fix == "ssh -F /srv/ssh_config a-router 'systemctl start tailscaled'"
    assert by[("b", "tunnel")].reason.endswith("explained by a: tailscaled")
    assert exit_code(rows) == 1


def test_unapproved_route():
    m, plans, routers, control = healthy()
    control.nodes["a"] = dataclasses.replace(control.nodes["a"], approved=())
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "routes"): Status.BROKEN}
    assert by[("a", "routes")].reason == "advertised but not approved: 192.0.2.0/24"
    assert by[("a", "routes")].fix == "python -m controlplane apply --sites /srv/sites.toml"


def test_prefs_name_every_wrong_flag():
    m, plans, routers, control = healthy()
    routers["b"].prefs = dataclasses.replace(routers["b"].prefs, no_snat=False, route_all=False)
    routers["b"].no_stateful_filtering = False
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("b", "prefs"): Status.BROKEN}
    assert by[("b", "prefs")].fix == (
        "ssh -F /srv/ssh_config b-router 'tailscale set --snat-subnet-routes=false "
        "--accept-routes --stateful-filtering=false'"
    )


def test_forwarding_clamp_and_dhcp():
    m, plans, routers, control = healthy()
    routers["a"].forwarding = {"net.ipv4.ip_forward": "0"}
    routers["a"].clamp = MssClamp("tailscale0", True, False)
    routers["b"].probe = dataclasses.replace(routers["b"].probe, offer=None, ack=None)
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {
        ("a", "forwarding"): Status.BROKEN,
        ("a", "clamp"): Status.BROKEN,
        ("b", "dhcp"): Status.BROKEN,
    }
    assert by[("a", "forwarding")].fix == "SITES=/srv/sites.toml pyinfra -y inventory.py deploy.py --limit a-router"
    assert by[("a", "clamp")].reason == "no TCPMSS clamp for -o tailscale0 in mangle FORWARD"
    assert by[("b", "dhcp")].reason == "no DHCP answer on eth0 to a DISCOVER or an INFORM"


def test_unreachable_router_makes_its_steps_unknown():
    m, plans, routers, control = healthy()
    routers["b"] = RouterState("b", "b-router", error="ssh b-router: [Errno 111] Connection refused")
    routers["a"].pings = parse_pings("tsping b 1 timeout\nmtu b 1\nsmall b 1\n")
    by, rows = verdicts(m, plans, routers, control)
    assert by[("b", "ssh")].status == Status.BROKEN
    assert {s for (site, s), st in not_ok(rows).items() if st == Status.BROKEN} == {"ssh"}
    assert by[("b", "policy")].status == Status.OK  # read from the control plane, not the router
    assert by[("a", "tunnel")].status == Status.UNKNOWN


def test_small_packets_pass_big_ones_do_not_is_an_mtu_fault():
    m, plans, routers, control = healthy()
    routers["a"].pings = parse_pings(
        "tsping b 0 pong\nmtu b 1\nsmall b 0\ndf1281 b 1\ndf1200 b 0\ndf1000 b 0\ndf576 b 0\n"
    )
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "tunnel"): Status.BROKEN}
    assert by[("a", "tunnel")].reason == (
        "1280-byte DF packets do not reach b, small ones do: the largest that does is 1200 bytes (path MTU below 1280)"
    )


def test_control_plane_down_is_unknown_not_broken():
    m, plans, routers, _ = healthy()
    by, rows = verdicts(
        m, plans, routers, ControlState(error="GET http://127.0.0.1:8080/api/v1/node: connection failed")
    )
    assert {st for st in not_ok(rows).values()} == {Status.UNKNOWN}
    assert "approval unknown" in by[("a", "routes")].reason
    for step in ("tailscaled", "routes", "policy"):  # each needs the control plane's view
        assert by[("a", step)].status == Status.UNKNOWN, by[("a", step)]
    assert "the control plane's view is unknown" in by[("a", "tailscaled")].reason


def test_server_test_failure_breaks_the_policy_step():
    m, plans, routers, control = healthy()
    control.server_test = "policy rejected by headscale: test(s) failed: 192.0.2.2 -> 172.16.100.2:22: expected ALLOWED"
    by, rows = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.BROKEN
    assert "the server's ACL test fails" in by[("a", "policy")].reason


@pytest.mark.parametrize("text", ["", None])
def test_no_policy_is_allow_all(text):
    m, plans, routers, control = healthy()
    control.policy_text = text
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {}
    assert "allows everything" in by[("a", "policy")].reason


def test_json_lists_the_broken_steps():
    import json

    m, plans, routers, control = healthy()
    routers["a"].forwarding = {"net.ipv4.ip_forward": "0"}
    _, rows = verdicts(m, plans, routers, control)
    out = json.loads(as_json(rows, 1.234))
    assert out["ok"] is False and out["broken"] == ["a:forwarding"] and out["seconds"] == 1.23
    assert set(out["rows"][0]) == {"site", "step", "status", "reason", "fix"}


def test_server_test_failure_is_blamed_on_the_sites_it_names():
    m, plans, routers, control = healthy()
    control.server_test = (
        "policy rejected by headscale: test(s) failed: 100.64.0.2 -> 172.16.100.2:22: expected ALLOWED, got DENIED"
    )
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("b", "policy"): Status.BROKEN}


def test_another_router_primary_for_the_prefix_is_named():
    m, plans, routers, control = healthy()
    routers["a"].status = dataclasses.replace(routers["a"].status, primary_routes=())
    standby = Node(
        "7", "a-router-2", addresses=("100.64.0.7",), advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",)
    )
    control.all_nodes.append(standby)
    control.primary = {"7": ("192.0.2.0/24",), "2": (), "1": ("172.16.100.0/24",)}
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "routes"): Status.BROKEN}
    assert by[("a", "routes")].reason == (
        "approved but not primary on this router: 192.0.2.0/24 (node a-router-2 is primary for it)"
    )


def test_primary_is_the_control_planes_election_when_it_reports_one():
    m, plans, routers, control = healthy()
    routers["a"].status = dataclasses.replace(routers["a"].status, primary_routes=())  # netmap lag
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {}
    control.primary = {}  # a backend that does not report it (Tailscale): the router's own view counts
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "routes"): Status.BROKEN}


def _ha_site_a(m):
    """The same lab with site a on two routers (a-router, a-router-2) behind the VRRP address .3."""
    return parse_sites(
        m.path,
        {
            "ssh": {"config_file": "/srv/ssh_config"},
            "tailnet": {"backend": "headscale", "url": "http://127.0.0.1:8080", "api_key_env": "X"},
            "sites": {
                "a": {
                    "subnet": "192.0.2.0/24",
                    "gateway": "192.0.2.1",
                    "vip": "192.0.2.3",
                    "routers": [
                        {"address": "192.0.2.2", "ssh": "a-router"},
                        {"address": "192.0.2.4", "ssh": "a-router-2"},
                    ],
                },
                "b": {
                    "subnet": "172.16.100.0/24",
                    "router": "172.16.100.2",
                    "gateway": "172.16.100.1",
                    "ssh": "b-router",
                },
            },
        },
    )


def test_ha_site_served_by_another_router_after_a_failover_is_ok_and_names_the_primary():
    m, plans, routers, control = healthy()
    m = _ha_site_a(m)
    other_node = Node(
        "7", "a-router-2", addresses=("100.64.0.7",), advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",)
    )
    control.all_nodes.append(other_node)
    control.other_router_nodes = {"a": {"a-router-2": other_node}}
    by, rows = verdicts(m, plans, routers, control)
    assert by[("a", "routes")].reason == "192.0.2.0/24 advertised, approved; primary on a-router (HA, 2 routers)"

    routers["a"].status = dataclasses.replace(routers["a"].status, primary_routes=())
    control.primary = {"7": ("192.0.2.0/24",), "2": (), "1": ("172.16.100.0/24",)}  # the other router took over
    by, rows = verdicts(m, plans, routers, control)
    assert ("a", "routes") not in not_ok(rows)
    assert by[("a", "routes")].reason == (
        "192.0.2.0/24 advertised, approved; primary on a-router-2 (HA, 2 routers; a-router standing by)"
    )

    control.primary = {"7": (), "2": (), "1": ("172.16.100.0/24",)}  # no router of the site is primary
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows)[("a", "routes")] == Status.BROKEN
    assert by[("a", "routes")].reason.startswith("approved but not primary on this router: 192.0.2.0/24")


def test_ha_site_judges_every_router_and_names_the_one_that_is_broken():
    m, plans, routers, control = healthy()
    m = _ha_site_a(m)
    other_node = Node(
        "7", "a-router-2", addresses=("100.64.0.7",), advertised=("192.0.2.0/24",), approved=("192.0.2.0/24",)
    )
    control.all_nodes.append(other_node)
    control.other_router_nodes = {"a": {"a-router-2": other_node}}
    control.online["7"] = True
    other_router = dataclasses.replace(
        router("a", "100.64.0.7", "192.0.2.0/24", "192.0.2.4"), target="a-router-2", pings={}, probe=None
    )
    routers["a"].other_routers = [other_router]
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {}
    assert by[("a", "forwarding")].reason.endswith("; a-router-2: ok")
    other_router.forwarding = {"net.ipv4.ip_forward": "0"}  # only the standby router: the site breaks at failover
    other_router.prefs = dataclasses.replace(other_router.prefs, no_snat=False)
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "forwarding"): Status.BROKEN, ("a", "prefs"): Status.BROKEN}
    assert by[("a", "forwarding")].reason == "router a-router-2: net.ipv4.ip_forward = 0"
    assert "--limit a-router-2" in by[("a", "forwarding")].fix
    assert by[("a", "prefs")].fix == ("ssh -F /srv/ssh_config a-router-2 'tailscale set --snat-subnet-routes=false'")
    control.other_router_nodes = {"a": {}}  # the standby never joined
    other_router.forwarding = {"net.ipv4.ip_forward": "1"}
    other_router.prefs = dataclasses.replace(other_router.prefs, no_snat=True)
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "tailscaled"): Status.BROKEN, ("a", "routes"): Status.UNKNOWN}
    assert by[("a", "tailscaled")].reason == "router a-router-2: not a node of the control plane"


@pytest.mark.parametrize(
    "grants, ok",
    [
        ([{"src": ["*"], "dst": ["*"], "ip": ["*"]}], True),
        ([{"src": ["100.64.0.0/10"], "dst": ["100.64.0.0/10"], "ip": ["*"]}], False),
        ([{"src": ["*"], "dst": ["*"], "ip": ["tcp:22"]}], False),
    ],
)
def test_grants_policies_are_judged(grants, ok):
    import json

    m, plans, routers, control = healthy()
    control.policy_text = json.dumps({"grants": grants})
    by, rows = verdicts(m, plans, routers, control)
    assert (by[("a", "policy")].status == Status.OK) is ok, by[("a", "policy")].reason


def test_wildcard_covers_only_approved_routes_on_a_modern_server():
    import json

    m, plans, routers, control = healthy()
    control.policy_text = json.dumps({"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]})
    control.all_nodes = [dataclasses.replace(n, approved=()) for n in control.all_nodes]
    by, _ = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.BROKEN
    control.modern = False  # Headscale before 0.29: `*` is every address
    by, _ = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.OK


def test_aliases_only_the_server_resolves_defer_to_its_tests():
    import json

    m, plans, routers, control = healthy()
    control.policy_text = json.dumps(
        {"groups": {"group:sites": ["lab@"]}, "grants": [{"src": ["group:sites"], "dst": ["*"], "ip": ["*"]}]}
    )
    by, _ = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.OK and "the server's ACL tests pass" in by[("a", "policy")].reason
    assert "group:sites" in by[("a", "policy")].reason
    control.server_test = "policy rejected by headscale: test(s) failed: 192.0.2.2 -> 172.16.100.2:22: expected ALLOWED"
    by, _ = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.BROKEN
    control.server_test, control.server_test_run = None, False
    by, _ = verdicts(m, plans, routers, control)
    assert by[("a", "policy")].status == Status.UNKNOWN


def dual_stack_policy_rows(policy: str):
    from check.judge import Fixes, policy_rows

    raw = {"tailnet": {"backend": "headscale", "url": "http://127.0.0.1:8080", "api_key_env": "X"},
           "sites": {"a": {"subnet": "192.0.2.0/24", "subnet6": "2001:db8:a::/64", "router": "192.0.2.2"},
                     "b": {"subnet": "172.16.100.0/24", "subnet6": "fdb5:b::/64", "router": "172.16.100.2"}}}
    m = parse_sites(Path("/srv/sites.toml"), raw)
    control = ControlState(policy_text=policy, server_test_run=True)
    return {r.site: r for r in policy_rows(m, control, Fixes(m))}, m


@pytest.mark.parametrize("syntax", ["acls", "grants"])
def test_dual_stack_policy_is_judged_for_ipv6_too(syntax):
    import json

    _, m = dual_stack_policy_rows("")
    text = merge("", dataclasses.replace(PolicySpec.from_model(m), syntax=syntax), grants_supported=True)
    doc = hujson.loads(text)
    doc[syntax] = [r for r in doc[syntax] if r["src"] != ["autogroup:danger-all"]]
    rows, _ = dual_stack_policy_rows(json.dumps(doc))
    assert rows["a"].status == Status.OK and "IPv6 too (and fd7a:115c:a1e0::/48)" in rows["a"].reason
    # the same rules with every IPv6 prefix taken out: the IPv4 half still passes, the IPv6 half is broken
    for rule in doc[syntax]:
        for key in ("src", "dst"):
            rule[key] = [p for p in rule[key] if ":" not in p.removesuffix(":*")]
    rows, _ = dual_stack_policy_rows(json.dumps(doc))
    for site, own in (("a", "2001:db8:a::/64"), ("b", "fdb5:b::/64")):
        assert rows[site].status == Status.BROKEN, rows[site]
        assert own in rows[site].reason and "controlplane apply" in rows[site].fix


def test_a_failed_ipv6_server_test_is_blamed_on_the_site_whose_prefix_it_names(tmp_path):
    """The server's IPv6 tests name each dual-stack site by the first host of its IPv6 prefix,
    destinations written [addr]:port (Headscale prints them as given)."""
    import textwrap

    from check.judge import _server_blames
    from sites import load_sites

    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent("""
        [sites.a]
        subnet = "192.0.2.0/24"
        subnet6 = "2001:db8:a::/64"
        router = "192.0.2.2"
        [sites.b]
        subnet = "172.16.100.0/24"
        subnet6 = "fdb5:b::/64"
        router = "172.16.100.2"
        [sites.c]
        subnet = "198.51.100.0/24"
        router = "198.51.100.2"
    """))
    model = load_sites(path)
    line = "test(s) failed: fd7a:115c:a1e0::2 -> [fdb5:b::1]:22: expected ALLOWED, got DENIED"
    assert _server_blames(line, model) == {"b"}
    line = "test(s) failed: 2001:db8:a::1 -> [fd7a:115c:a1e0::2]:22: expected ALLOWED, got DENIED"
    assert _server_blames(line, model) == {"a"}


def test_a_1280_ping_lost_in_the_burst_but_crossing_alone_is_not_an_mtu_fault():
    """On a loaded 50-site lab some 1280-byte DF pings of a router's burst got no answer while the
    smaller ones passed; the check tries those once more, alone, before blaming the path MTU."""
    from check.gather import mtu_retry_peers

    m, plans, routers, control = healthy()
    first = "tsping b 0 pong\nmtu b 1 0 received \nsmall b 0\ndf1200 b 0\ndf1000 b 0\ndf576 b 0\n"
    assert mtu_retry_peers(parse_pings(first)) == ["b"]
    assert mtu_retry_peers(parse_pings("mtu b 1\nsmall b 1\ndf1200 b 1\n")) == []  # nothing passes: not MTU
    assert mtu_retry_peers(parse_pings("mtu b 0\nsmall b 0\n")) == []
    routers["a"].pings = parse_pings(first + "mtu2 b 0 2 received \n")
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {}
    assert "b: path MTU >= 1280 (a second 1280-byte ping, alone, crossed" in by[("a", "tunnel")].reason
    assert "the first, in the router's burst of pings, was lost: 0 received)" in by[("a", "tunnel")].reason


def test_a_1280_ping_failing_twice_is_an_mtu_fault_with_what_ping_said():
    m, plans, routers, control = healthy()
    routers["a"].pings = parse_pings(
        "tsping b 0 pong\nmtu b 1 mtu=1200 0 received \nsmall b 0\ndf1200 b 0\nmtu2 b 1 mtu=1200 0 received \n"
    )
    by, rows = verdicts(m, plans, routers, control)
    assert not_ok(rows) == {("a", "tunnel"): Status.BROKEN}
    assert by[("a", "tunnel")].reason.endswith("(path MTU below 1280; ping: mtu=1200 0 received)")
