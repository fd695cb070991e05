"""Static-address hosts: the one-command fact parsed from canned output, and the operation's
decisions per network manager (persistent file + live `ip route replace`, removal, repair)."""

from __future__ import annotations

import json

import pytest
from netaddr import IPAddress, IPNetwork
from ops_harness import FakeHost, data, run_op, texts
from pyinfra.api.exceptions import FactProcessError, OperationError

from operations.facts.statichost import StaticHost, parse_state
from operations.statichost import owned_prefixes, site_routes

NH = IPAddress("192.0.2.2")
WANT = [IPNetwork("100.64.0.0/10"), IPNetwork("172.16.100.0/24")]
DROPIN = "/etc/systemd/network/20-lan.network.d/90-s2s-routes.conf"
HOOK = "/etc/network/if-up.d/s2s-routes"


def with_routes(text: str, extra: list[dict]) -> str:
    """The canned state with more kernel routes (what a deploy installed)."""
    head, _, rest = text.partition("@@routes\n")
    routes, _, tail = rest.partition("\n")
    return f"{head}@@routes\n{json.dumps(json.loads(routes) + extra)}\n{tail}"


def installed(*prefixes: str) -> list[dict]:
    return [{"dst": p, "gateway": "192.0.2.2", "dev": "eth0", "protocol": "static"}
            for p in prefixes]


def test_state_parses_routes_dev_manager():
    state = StaticHost().process(data("statichost-networkd.txt").splitlines())
    assert (state.dev, state.manager) == ("eth0", "networkd")
    assert state.networkd_file == "/etc/systemd/network/20-lan.network"
    assert state.default_gateway == IPAddress("192.0.2.1")
    assert state.route_for(IPNetwork("192.0.2.0/24")).protocol == "kernel"


def test_state_rejects_garbage():
    with pytest.raises(FactProcessError):
        StaticHost().process(["@@routes", "not json", "@@manager", "none"])
    with pytest.raises(FactProcessError):
        StaticHost().process(["@@routes", "[]", "@@manager", "wicked"])
    assert parse_state("@@routes\n[]\n@@dev\n\n@@manager\nnone\n").manager is None


def networkd_host(text: str | None = None, files: dict | None = None) -> FakeHost:
    return FakeHost(outputs={StaticHost: text or data("statichost-networkd.txt")}, files=files)


def test_networkd_dropin_and_live_routes_then_nothing():
    h = networkd_host()
    cmds = texts(run_op(site_routes, h, WANT, NH, manager="networkd"))
    assert f"upload {DROPIN}" in cmds
    assert cmds[-2:] == ["ip route replace 100.64.0.0/10 via 192.0.2.2 dev eth0 proto static",
                         "ip route replace 172.16.100.0/24 via 192.0.2.2 dev eth0 proto static"]
    h.apply(run_op(site_routes, h, WANT, NH, manager="networkd"))
    body = h.fs[DROPIN].decode()
    assert body.startswith("# Managed by s2s")
    assert "[Route]\nDestination=172.16.100.0/24\nGateway=192.0.2.2\n" in body
    h.outputs[StaticHost] = with_routes(data("statichost-networkd.txt"), installed(*map(str, WANT)))
    assert run_op(site_routes, h, WANT, NH, manager="networkd") == []


def test_detected_manager_is_named_in_the_plan():
    h = networkd_host()
    run_op(site_routes, h, WANT, NH)
    assert h.logs == ["network manager detected: networkd (on eth0)"]


def test_deleted_route_and_edited_file_are_repaired():
    h = networkd_host()
    h.apply(run_op(site_routes, h, WANT, NH, manager="networkd"))
    h.fs[DROPIN] = h.fs[DROPIN].replace(b"172.16.100.0/24", b"172.16.0.0/16")
    h.outputs[StaticHost] = with_routes(data("statichost-networkd.txt"), installed("100.64.0.0/10"))
    assert texts(run_op(site_routes, h, WANT, NH, manager="networkd")) == [
        f"upload {DROPIN}", f"chmod 644 {DROPIN}", f"chown root:root {DROPIN}",
        "ip route replace 172.16.100.0/24 via 192.0.2.2 dev eth0 proto static"]


def test_route_via_another_gateway_is_replaced():
    h = networkd_host(with_routes(data("statichost-networkd.txt"), [
        {"dst": "172.16.100.0/24", "gateway": "192.0.2.9", "dev": "eth0"},
        *installed("100.64.0.0/10")]))
    cmds = texts(run_op(site_routes, h, WANT, NH, manager="networkd"))
    assert cmds[-1] == "ip route replace 172.16.100.0/24 via 192.0.2.2 dev eth0 proto static"
    assert not any("100.64.0.0/10 via" in c for c in cmds)


def test_a_site_gone_from_the_file_loses_its_route():
    h = networkd_host()
    h.apply(run_op(site_routes, h, [*WANT, IPNetwork("10.8.0.0/16")], NH, manager="networkd"))
    h.outputs[StaticHost] = with_routes(data("statichost-networkd.txt"),
                                        installed(*map(str, WANT), "10.8.0.0/16"))
    cmds = texts(run_op(site_routes, h, WANT, NH, manager="networkd"))
    assert cmds.index(f"upload {DROPIN}") < cmds.index("ip route del 10.8.0.0/16 via 192.0.2.2")


def test_removal_takes_out_the_file_and_its_routes_only():
    h = networkd_host()
    h.apply(run_op(site_routes, h, WANT, NH, manager="networkd"))
    h.outputs[StaticHost] = with_routes(data("statichost-networkd.txt"), [
        *installed("100.64.0.0/10", "172.16.100.0/24", "10.99.0.0/16")])  # 10.99/16: the user's own
    assert texts(run_op(site_routes, h, WANT, NH, manager="networkd", present=False)) == [
        "ip route del 100.64.0.0/10 via 192.0.2.2", "ip route del 172.16.100.0/24 via 192.0.2.2",
        f"rm -f {DROPIN}"]
    assert run_op(site_routes, FakeHost(outputs={StaticHost: data("statichost-networkd.txt")}),
                  WANT, NH, manager="networkd", present=False) == []


def test_ifupdown_hook_script():
    canned = data("statichost-networkd.txt").replace("networkd\n", "ifupdown\n")
    h = FakeHost(outputs={StaticHost: canned})
    h.apply(run_op(site_routes, h, WANT, NH))
    hook = h.fs[HOOK].decode()
    assert hook.startswith("#!/bin/sh\n# Managed by s2s")
    assert ('[ "$IFACE" = eth0 ] || exit 0\n'
            "ip route replace 100.64.0.0/10 via 192.0.2.2 dev eth0 proto static\n") in hook
    assert h.modes[HOOK] == 755
    assert owned_prefixes(hook.splitlines()) == WANT


def test_gateway_already_the_router_needs_nothing():
    h = FakeHost(outputs={StaticHost: data("statichost-ifupdown-gw-router.txt")})
    assert run_op(site_routes, h, WANT, NH) == []
    assert "default gateway already is the site's router 192.0.2.2: no routes needed" in h.logs


def test_no_manager_or_unreachable_next_hop_fails_the_host():
    with pytest.raises(OperationError, match="no known network manager"):
        run_op(site_routes, FakeHost(outputs={StaticHost: data("statichost-networkd.txt").replace(
            "\nnetworkd\n", "\nnone\n")}), WANT, NH)
    with pytest.raises(OperationError, match="on no connected network"):
        nowhere = "@@routes\n[]\n@@dev\n\n@@manager\nnone\n"
        run_op(site_routes, FakeHost(outputs={StaticHost: nowhere}), WANT, NH)


NM_STATE = data("statichost-networkd.txt").replace("\nnetworkd\n", "\nnetworkmanager\n").replace(
    "@@nm_connection\n", "@@nm_connection\nWired LAN\n@@nm_routes\n10.99.0.0/16 192.0.2.7 50\n")


def test_networkmanager_routes_go_into_the_connection_and_the_marker_names_them():
    h = FakeHost(outputs={StaticHost: NM_STATE})
    cmds = texts(run_op(site_routes, h, WANT, NH))
    assert cmds[4] == ("nmcli connection modify 'Wired LAN' +ipv4.routes '100.64.0.0/10 192.0.2.2' "
                       "+ipv4.routes '172.16.100.0/24 192.0.2.2'")
    assert "upload /etc/NetworkManager/s2s-routes" in cmds
    assert "nmcli device reapply" not in " ".join(cmds)
    h.apply(run_op(site_routes, h, WANT, NH))
    done = NM_STATE.replace("10.99.0.0/16 192.0.2.7 50", "10.99.0.0/16 192.0.2.7 50, "
                            "100.64.0.0/10 192.0.2.2, 172.16.100.0/24 192.0.2.2")
    h.outputs[StaticHost] = with_routes(done, installed("100.64.0.0/10", "172.16.100.0/24"))
    assert run_op(site_routes, h, WANT, NH) == []
    # removal takes out only the routes the marker names (10.99.0.0/16 is the user's own)
    assert texts(run_op(site_routes, h, WANT, NH, present=False)) == [
        "nmcli connection modify 'Wired LAN' -ipv4.routes '100.64.0.0/10 192.0.2.2' "
        "-ipv4.routes '172.16.100.0/24 192.0.2.2'",
        "ip route del 100.64.0.0/10 via 192.0.2.2", "ip route del 172.16.100.0/24 via 192.0.2.2",
        "rm -f /etc/NetworkManager/s2s-routes"]


NETPLAN_STATE = (data("statichost-networkd.txt").replace("\nnetworkd\n", "\nnetplan\n")
                 + "@@netplan_type\nethernets\n")
NETPLAN_FILE = "/etc/netplan/90-s2s-routes.yaml"


def test_netplan_file_of_its_own_then_generate():
    h = FakeHost(outputs={StaticHost: NETPLAN_STATE})
    cmds = texts(run_op(site_routes, h, WANT, NH))
    assert cmds[:4] == ["mkdir -p /etc/netplan", f"upload {NETPLAN_FILE}",
                        f"chmod 600 {NETPLAN_FILE}", f"chown root:root {NETPLAN_FILE}"]
    assert cmds[4] == "netplan generate" and cmds[5].startswith("ip route replace 100.64.0.0/10")
    h.apply(run_op(site_routes, h, WANT, NH))
    assert ("  ethernets:\n    eth0:\n      routes:\n"
            "        - to: 100.64.0.0/10\n          via: 192.0.2.2\n") in \
        h.fs[NETPLAN_FILE].decode()
    h.outputs[StaticHost] = with_routes(NETPLAN_STATE, installed(*map(str, WANT)))
    assert run_op(site_routes, h, WANT, NH) == []
    with pytest.raises(OperationError, match="netplan defines no interface named eth0"):
        undefined = NETPLAN_STATE.replace("ethernets\n", "\n")
        run_op(site_routes, FakeHost(outputs={StaticHost: undefined}), WANT, NH)


# ------------------------------------------------------------------ dual-stack (issue 19)
# Canned from the lab (tests/e2e/static_ipv6_topology.toml): a NetworkManager host after a deploy,
# and `ip -j addr show` on its site's router.
DUAL = data("statichost-networkmanager-dual.txt")
LL = IPAddress("fe80::dc:38ff:fedf:50ca")  # a-router's link-local address on its LAN
WANT6 = [IPNetwork("fdb5:b::/64"), IPNetwork("fd7a:115c:a1e0::/48")]
BOTH = [*WANT, *WANT6]


def test_dual_stack_state_parses_ipv6_routes_address_and_nm_routes():
    state = StaticHost().process(DUAL.splitlines())
    assert state.has_ipv6 and state.nm_connection == "lan"
    assert state.route_for(IPNetwork("fdb5:b::/64")).gateway == str(LL)
    assert state.nm_routes6 == ((IPNetwork("fdb5:b::/64"), str(LL)), (IPNetwork("fd7a:115c:a1e0::/48"), str(LL)))
    assert state.default_gateway_of(6) is None
    v4only = StaticHost().process(data("statichost-networkd.txt").splitlines())
    assert not v4only.has_ipv6 and v4only.routes6 == ()


def test_router_link_local_is_read_from_its_lan_interface():
    from operations.facts.statichost import LanLinkLocal

    fact = LanLinkLocal()
    fact.command(address="192.0.2.2")
    assert fact.process(data("router-ip-addr-dual.json").splitlines()) == LL
    fact.command(address="192.0.2.2")  # an HA master: keepalived's vip6 (nodad) is listed first
    assert fact.process(data("ha-router-ip-addr-vip6.json").splitlines()) == IPAddress("fe80::1cbe:5eff:fecc:7049")
    fact.command(address="192.0.2.99")  # no interface holds it
    assert fact.process(data("router-ip-addr-dual.json").splitlines()) is None


def fresh_dual() -> str:
    """DUAL before any deploy: no routes of ours in the kernel or the connection."""
    state = json.loads(DUAL.split("@@routes\n")[1].split("\n")[0])
    six = json.loads(DUAL.split("@@routes6\n")[1].split("\n")[0])
    text = DUAL.replace(json.dumps(state, separators=(",", ":")), json.dumps([r for r in state if "gateway" not in r
                                                                              or r["dst"] == "default"]))
    text = text.replace(json.dumps(six, separators=(",", ":")), json.dumps([r for r in six if "gateway" not in r]))
    nm4, nm6 = DUAL.split("@@nm_routes\n")[1].split("\n")[0], DUAL.split("@@nm_routes6\n")[1].split("\n")[0]
    text = text.replace(f"@@nm_routes\n{nm4}\n", "@@nm_routes\n\n")
    return text.replace(f"@@nm_routes6\n{nm6}\n", "@@nm_routes6\n\n")


def test_networkmanager_gets_ipv6_routes_via_the_routers_link_local_then_nothing():
    h = FakeHost(outputs={StaticHost: fresh_dual()})
    cmds = texts(run_op(site_routes, h, BOTH, NH, next_hop6=LL))
    nm = next(c for c in cmds if c.startswith("nmcli"))
    assert "+ipv6.routes 'fdb5:b::/64 fe80::dc:38ff:fedf:50ca'" in nm
    assert "+ipv6.routes 'fd7a:115c:a1e0::/48 fe80::dc:38ff:fedf:50ca'" in nm
    assert "+ipv4.routes '172.16.100.0/24 192.0.2.2'" in nm
    assert cmds[-2:] == ["ip route replace fdb5:b::/64 via fe80::dc:38ff:fedf:50ca dev eth0 proto static",
                         "ip route replace fd7a:115c:a1e0::/48 via fe80::dc:38ff:fedf:50ca dev eth0 proto static"]
    h.apply(run_op(site_routes, h, BOTH, NH, next_hop6=LL))
    assert "route fdb5:b::/64 fe80::dc:38ff:fedf:50ca\n" in h.fs["/etc/NetworkManager/s2s-routes"].decode()
    h.outputs[StaticHost] = DUAL  # what the lab's host held after that deploy
    assert run_op(site_routes, h, BOTH, NH, next_hop6=LL) == []
    # removal: both families out of the connection and the kernel, via the next hops the marker names
    gone = texts(run_op(site_routes, h, BOTH, NH, present=False))
    assert "-ipv6.routes 'fdb5:b::/64 fe80::dc:38ff:fedf:50ca'" in gone[0]
    assert "ip route del fd7a:115c:a1e0::/48 via fe80::dc:38ff:fedf:50ca" in gone


@pytest.mark.parametrize(("kind", "line"), [
    ("networkd", "[Route]\nDestination=fdb5:b::/64\nGateway=fe80::dc:38ff:fedf:50ca\n"),
    ("ifupdown", "ip route replace fdb5:b::/64 via fe80::dc:38ff:fedf:50ca dev eth0 proto static\n"),
    ("netplan", "        - to: fdb5:b::/64\n          via: fe80::dc:38ff:fedf:50ca\n"),
])
def test_each_managers_file_carries_the_ipv6_routes_and_reads_back(kind, line):
    state = fresh_dual().replace("\nnetworkmanager\n", f"\n{kind}\n").replace(
        "@@networkd_file\n", "@@networkd_file\n/etc/systemd/network/20-lan.network\n").replace(
        "@@netplan_type\n", "@@netplan_type\nethernets\n")
    h = FakeHost(outputs={StaticHost: state})
    h.apply(run_op(site_routes, h, BOTH, NH, next_hop6=LL))
    (body,) = [v.decode() for k, v in h.fs.items() if "s2s-routes" in k]
    assert line in body
    from operations.statichost import owned_routes

    assert owned_routes(body.splitlines()) == [(p, NH) for p in WANT] + [(p, LL) for p in WANT6]


def test_no_ipv6_address_or_no_next_hop6_gives_ipv4_routes_only_and_says_why():
    h = networkd_host()  # IPv4 only
    cmds = texts(run_op(site_routes, h, BOTH, NH, manager="networkd", next_hop6=LL))
    assert not any("fdb5" in c for c in cmds) and "no IPv6 address on eth0: no IPv6 routes" in h.logs
    h = FakeHost(outputs={StaticHost: fresh_dual()})
    cmds = texts(run_op(site_routes, h, BOTH, NH))
    assert not any("fdb5" in c for c in cmds) and any("no IPv6 next hop" in m for m in h.logs)


def test_ipv4_default_via_the_router_still_gets_the_ipv6_routes():
    state = fresh_dual().replace('"gateway": "192.0.2.1"', '"gateway": "192.0.2.2"')
    h = FakeHost(outputs={StaticHost: state})
    cmds = texts(run_op(site_routes, h, BOTH, NH, next_hop6=LL))
    assert "default gateway already is the site's router 192.0.2.2: no routes needed" in h.logs
    assert not any("172.16.100.0/24" in c for c in cmds) and any("+ipv6.routes" in c for c in cmds)
