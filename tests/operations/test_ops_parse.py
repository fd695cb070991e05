"""Parsers on output captured from the real programs on this machine (tests/operations/data)."""

from __future__ import annotations

import pytest
from ops_harness import data

from operations.facts import _parsing, ethtool, host, iptables, sysctl, tailscale


def test_prefs_fresh_daemon():
    p = tailscale.parse_prefs(data("ts-prefs-fresh.json"))
    assert p.control_url == "" and p.logged_out and not p.want_running
    assert p.advertise_routes == () and p.advertise_tags == ()
    assert p.netfilter_mode == "on" and not p.no_snat and not p.route_all


def test_prefs_after_set_and_up():
    p = tailscale.parse_prefs(data("ts-prefs-set.json"))
    assert p.advertise_routes == ("192.0.2.0/24", "198.51.100.0/24")
    assert p.route_all and p.no_snat and p.logged_out
    j = tailscale.parse_prefs(data("ts-prefs-joined.json"))
    assert j.control_url == "http://127.0.0.1:9" and j.advertise_tags == ("tag:subnet-router",)
    assert j.want_running and not j.logged_out and not j.corp_dns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{",
        '{"ControlURL": 1, "RouteAll": true}',
        '{"RouteAll": true}',
        '{"ControlURL": "", "RouteAll": true, "WantRunning": true, "NoSNAT": false,'
        ' "AdvertiseRoutes": ["not-a-prefix"]}',
    ],
)
def test_prefs_bad_output(text):
    with pytest.raises(_parsing.ParseError):
        tailscale.parse_prefs(text)


def test_status():
    s = tailscale.parse_status(data("ts-status-needslogin.json"))
    assert s.backend_state == "NeedsLogin" and not s.joined and not s.online
    r = tailscale.parse_status(data("ts-status-running.derived.json"))
    assert r.joined and r.online and r.primary_routes == ("192.0.2.0/24", "198.51.100.0/24")


def test_normalise_prefixes_sorts_and_canonicalises():
    assert tailscale.normalise_prefixes(["fd00::1/64", "198.51.100.7/24", "10.0.0.0/8"]) == (
        "10.0.0.0/8",
        "198.51.100.0/24",
        "fd00::/64",
    )
    assert tailscale.normalise_tags(["subnet-router", "tag:b"]) == ("tag:b", "tag:subnet-router")


def test_mss_both_directions_real_iptables_nft_output():
    tables = iptables.parse_iptables_save(data("iptables-save-mangle-clamp-both.txt"))
    assert iptables.mss_clamp_state(tables, "tailscale0") == iptables.MssClamp("tailscale0", True, True)
    # the --set-mss rule for eth9 is not a clamp-to-PMTU rule
    assert iptables.mss_clamp_state(tables, "eth9") == iptables.MssClamp("eth9", False, False)


def test_mss_empty_and_one_direction():
    assert not iptables.mss_clamp_state(
        iptables.parse_iptables_save(data("iptables-save-mangle-empty.txt")), "tailscale0"
    ).outbound
    six = iptables.mss_clamp_state(
        iptables.parse_iptables_save(data("ip6tables-save-mangle-out-only.txt")), "tailscale0"
    )
    assert six.outbound and not six.inbound and not six.complete


@pytest.mark.parametrize("name", ["iptables-save-mangle-near-misses.txt", "iptables-save-c-mangle-near-misses.txt"])
def test_mss_near_misses(name):
    """Narrower (-s), negated (! -i) and wrong-mask rules do not count; a commented exact rule does."""
    state = iptables.mss_clamp_state(iptables.parse_iptables_save(data(name)), "tailscale0")
    assert state.outbound and not state.inbound


def test_mss_flag_order_and_long_options():
    rule = iptables.parse_iptables_rule(
        "-A FORWARD --out-interface tailscale0 --protocol tcp --tcp-flags RST,SYN SYN --jump TCPMSS --clamp-mss-to-pmtu"
    )
    assert iptables.is_mss_clamp(rule, "tailscale0", "out")
    assert not iptables.is_mss_clamp(rule, "tailscale0", "in")


def test_iptables_save_errors():
    with pytest.raises(_parsing.ParseError, match="incompatible"):
        iptables.parse_iptables_save(data("iptables-save-mangle-nft-incompatible.txt"))
    with pytest.raises(_parsing.ParseError, match="COMMIT"):
        iptables.parse_iptables_save("*mangle\n:FORWARD ACCEPT [0:0]\n")
    with pytest.raises(_parsing.ParseError):
        iptables.parse_iptables_save("-A FORWARD -j ACCEPT\n")
    assert iptables.parse_iptables_save(data("iptables-save-mangle-legacy-warning.txt"))["mangle"].rules


def test_forward_filter():
    accept = iptables.forward_chain(iptables.parse_iptables_save(data("iptables-save-filter.txt")))
    assert accept.policy == "ACCEPT" and not accept.blocks
    drop = iptables.forward_chain(iptables.parse_iptables_save(data("iptables-save-filter-drop-ts-forward.txt")))
    assert drop.blocks and drop.ts_forward


def test_ethtool_veth():
    off = ethtool.udp_gro_state("v0", ethtool.parse_ethtool_features(data("ethtool-k-veth.txt")))
    assert off.supported and not off.forwarding and not off.gro_list and not off.wanted
    on = ethtool.udp_gro_state("v0", ethtool.parse_ethtool_features(data("ethtool-k-veth-gro-on.txt")))
    assert on.wanted
    missing = ethtool.udp_gro_state("v0", ethtool.parse_ethtool_features(data("ethtool-k-no-udp-gro.derived.txt")))
    assert not missing.supported
    fixed = ethtool.udp_gro_state("x", {"rx-udp-gro-forwarding": ethtool.Feature(False, True)})
    assert not fixed.supported


def test_ethtool_bad():
    with pytest.raises(_parsing.ParseError):
        ethtool.parse_ethtool_features("netlink error: no device matches name (offset 24)\n")
    with pytest.raises(_parsing.ParseError):
        ethtool.parse_ethtool_features("Features for x:\nrx-checksumming maybe\n")


def test_sysctl_parsers():
    assert sysctl.parse_sysctl_values("net.ipv4.ip_forward = 0\nnet.ipv6.conf.all.forwarding = 1\n") == {
        "net.ipv4.ip_forward": "0",
        "net.ipv6.conf.all.forwarding": "1",
    }
    got = sysctl.parse_sysctl_grep(
        "/etc/sysctl.conf:net/ipv4/ip_forward=0\n/etc/sysctl.d/10-x.conf:  -net.ipv4.ip_forward = 1\n"
    )
    assert got == [
        sysctl.SysctlLine("/etc/sysctl.conf", "net.ipv4.ip_forward", "0"),
        sysctl.SysctlLine("/etc/sysctl.d/10-x.conf", "net.ipv4.ip_forward", "1"),
    ]
    with pytest.raises(_parsing.ParseError):
        sysctl.parse_sysctl_values("garbage\n")


def test_firewall_and_default_route():
    assert host.parse_firewall_frontends("ufw=yes\nfirewalld=inactive\n").active == ("ufw",)
    assert host.parse_firewall_frontends("ufw=\nfirewalld=active\n").active == ("firewalld",)
    with pytest.raises(_parsing.ParseError):
        host.parse_firewall_frontends("ufw=yes\n")
    assert host.parse_default_route_interface("default via 192.0.2.1 dev s2s-op-v0 linkdown \n") == "s2s-op-v0"
    assert host.parse_default_route_interface("") is None
    multipath = "default proto static metric 1024 \n\tnexthop via 192.0.2.1 dev eth0 weight 1 \n"
    assert host.parse_default_route_interface(multipath) == "eth0"
    with pytest.raises(_parsing.ParseError):
        host.parse_default_route_interface("Error: something\n")
