"""Router advertisements on the LAN (operations/radvd.py) from canned output, and radvd's own
config check on the rendered file (Debian's radvd from the lab mirror's cache)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork
from ops_harness import FakeHost, data, run_op, texts
from pyinfra.api import OperationError

from operations import ha, radvd, teardown
from operations.facts.addresses import InterfaceOfAddress
from operations.facts.ha import DebPackageVersion, ManagedByUs
from sites.model import Router, Site, SiteModel

R1 = Router(IPAddress("192.0.2.2"), "a-router")
R2 = Router(IPAddress("192.0.2.4"), "a-router2")
A = Site("a", IPNetwork("192.0.2.0/24"), routers=(R1,), next_hop=IPAddress("192.0.2.2"),
         gateway=IPAddress("192.0.2.1"), subnet6=IPNetwork("2001:db8:a::/64"))
B = Site("b", IPNetwork("172.16.100.0/24"), routers=(Router(IPAddress("172.16.100.2"), "b-router"),),
         next_hop=IPAddress("172.16.100.2"), gateway=IPAddress("172.16.100.1"),
         subnet6=IPNetwork("fdb5:b::/64"), routes=(IPNetwork("2001:db8:99::/48"),))
C = Site("c", IPNetwork("198.51.100.0/24"), routers=(Router(IPAddress("198.51.100.2"), "c-router"),),
         next_hop=IPAddress("198.51.100.2"), gateway=IPAddress("198.51.100.2"))
MODEL = SiteModel(path=Path("sites.toml"), sites={"a": A, "b": B, "c": C})
HA = Site("a", IPNetwork("192.0.2.0/24"), routers=(R1, R2), next_hop=IPAddress("192.0.2.3"),
          gateway=IPAddress("192.0.2.1"), vip=IPAddress("192.0.2.3"), subnet6=IPNetwork("2001:db8:a::/64"))
HA_MODEL = SiteModel(path=Path("sites.toml"), sites={"a": HA, "b": B})
INSTALLED = "install ok installed\t1:2.19-1+b1\n"
MARK = "# Managed by s2s (operations/radvd.py): route information\n"


def key(cls, **kwargs):
    return (cls, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))


def router_host(installed: str = "", ours: str = "", vip_held: bool = True) -> FakeHost:
    addrs = data("ip-j-4-addr-ha-router.json")
    outputs = {DebPackageVersion: installed, InterfaceOfAddress: addrs, ManagedByUs: ours}
    if not vip_held:  # the vip on no interface: real `ip -j addr` output without it
        links = json.loads(addrs)
        for link in links:
            link["addr_info"] = [a for a in link["addr_info"] if a["local"] != "192.0.2.3"]
        outputs[key(InterfaceOfAddress, address="192.0.2.3")] = json.dumps(links)
    return FakeHost(outputs=outputs)


def test_routes_are_the_other_sites_ipv6_prefixes_and_the_tailnet_range():
    assert radvd.ra_routes(MODEL, A) == ["fdb5:b::/64", "2001:db8:99::/48", "fd7a:115c:a1e0::/48"]
    assert radvd.ra_routes(MODEL, B) == ["2001:db8:a::/64", "fd7a:115c:a1e0::/48"]
    assert radvd.ra_routes(MODEL, C) == []  # no IPv6 on c's LAN: nothing to advertise


def test_config_has_router_lifetime_0_no_prefix_and_one_route_each():
    conf = radvd.radvd_conf(A, "eth0", radvd.ra_routes(MODEL, A))
    assert conf.startswith("# Managed by s2s")
    assert "AdvDefaultLifetime 0;" in conf and "interface eth0" in conf
    assert "prefix " not in conf  # the LAN's addressing stays with its own router
    assert conf.count("    route ") == 3 and "route fd7a:115c:a1e0::/48" in conf


def test_fresh_router_installs_configures_starts_then_converged():
    host = router_host()
    cmds = run_op(radvd.advertise, host, site=A, model=MODEL, router=R1)
    t = texts(cmds)
    assert "apt-get" in t[0] and "install --no-install-recommends radvd" in t[0], t
    assert f"upload {radvd.CONF}" in t
    assert t[-2:] == ["systemctl start radvd.service", "systemctl enable radvd.service"]
    host.apply(cmds)
    host.outputs[DebPackageVersion] = INSTALLED
    host.outputs[ManagedByUs] = MARK
    assert run_op(radvd.advertise, host, site=A, model=MODEL, router=R1) == []
    # drift: a hand edit is put back and the running daemon reloads it
    host.fs[radvd.CONF] += b"# hand edit\n"
    t = texts(run_op(radvd.advertise, host, site=A, model=MODEL, router=R1))
    assert t[0] == f"upload {radvd.CONF}" and t[-1] == "systemctl reload-or-restart radvd.service"


def test_a_hand_written_radvd_conf_is_never_clobbered():
    host = router_host(installed=INSTALLED, ours="interface eth0 { AdvSendAdvert on; };\n")
    host.fs[radvd.CONF] = b"interface eth0 { AdvSendAdvert on; };\n"
    with pytest.raises(OperationError, match="not the project's"):
        run_op(radvd.advertise, host, site=A, model=MODEL, router=R1)


def test_removal_takes_the_advertisements_away():
    host = router_host(installed=INSTALLED, ours=MARK)
    host.fs[radvd.CONF] = MARK.encode()
    host.units["radvd.service"] = {"active": True, "enabled": True}
    no_v6 = Site(**{**A.__dict__, "subnet6": None})
    t = texts(run_op(radvd.advertise, host, site=no_v6, model=MODEL, router=R1))
    assert t == ["systemctl stop radvd.service", f"rm -f {radvd.CONF}"]
    # and a router without IPv6 (or with it gone) gets nothing
    assert run_op(radvd.advertise, router_host(), site=C, model=MODEL, router=R1) == []


def test_ha_router_leaves_starting_to_keepalived_and_follows_the_vip():
    host = router_host()
    t = texts(run_op(radvd.advertise, host, site=HA, model=HA_MODEL, router=R1))
    assert "systemctl disable radvd.service" in t and "systemctl start radvd.service" not in t
    host.apply(run_op(radvd.advertise, host, site=HA, model=HA_MODEL, router=R1))
    host.outputs[DebPackageVersion] = INSTALLED
    host.outputs[ManagedByUs] = MARK
    assert run_op(radvd.advertise, host, site=HA, model=HA_MODEL, router=R1) == []
    # the router holding the vip sends; the other does not
    assert texts(run_op(radvd.follow_vrrp, host, site=HA, model=HA_MODEL, router=R1)) == [
        "systemctl start radvd.service"]
    backup = router_host(installed=INSTALLED, ours=MARK, vip_held=False)
    backup.units["radvd.service"] = {"active": True, "enabled": False}
    assert texts(run_op(radvd.follow_vrrp, backup, site=HA, model=HA_MODEL, router=R2)) == [
        "systemctl stop radvd.service"]
    conf = ha.keepalived_conf(HA, R1, "eth0")
    assert 'notify_master "/bin/systemctl start radvd.service"' in conf
    assert 'notify_backup "/bin/systemctl stop radvd.service"' in conf
    v4_only = Site(**{**HA.__dict__, "subnet6": None})
    assert "notify" not in ha.keepalived_conf(v4_only, R1, "eth0")


def test_an_ha_dual_stack_router_sends_from_its_own_link_local_not_the_vip6():
    """radvd takes an interface's first link-local, which on the VRRP master is keepalived's vip6:
    pinned to the router's own (read from lab output with the vip6 on eth0)."""
    from dataclasses import replace

    from operations.facts.statichost import LanLinkLocal

    ha6 = replace(HA, vip6=IPAddress("fe80::200:5eff:fe00:233"))
    host = router_host()
    host.outputs[LanLinkLocal] = data("ha-router-ip-addr-vip6.json")
    host.apply(run_op(radvd.advertise, host, site=ha6, model=HA_MODEL, router=R1))
    conf = host.fs[radvd.CONF].decode()
    assert "    AdvRASrcAddress { fe80::1cbe:5eff:fecc:7049; };\n" in conf and "5eff:fe00:233" not in conf
    assert "AdvRASrcAddress" not in radvd.radvd_conf(HA, "eth0", radvd.ra_routes(HA_MODEL, HA))  # no vip6
    host = router_host()  # fresh: no radvd.conf yet
    host.outputs[LanLinkLocal] = "[]"
    with pytest.raises(OperationError, match="no link-local IPv6 address of its own on eth0"):
        run_op(radvd.advertise, host, site=ha6, model=HA_MODEL, router=R1)


def test_removed_router_stops_radvd_and_deletes_the_projects_config():
    from test_ops_teardown import deployed_router
    host = deployed_router()
    host.outputs[key(ManagedByUs, path=radvd.CONF)] = MARK
    cmds = texts(run_op(teardown.removed, host))
    assert "systemctl stop radvd.service" in cmds
    assert radvd.CONF in next(c for c in cmds if c.startswith("rm -f "))
    host = deployed_router()  # a radvd.conf of the admin's stays
    host.outputs[key(ManagedByUs, path=radvd.CONF)] = "interface eth0 {};\n"
    assert not any("radvd" in c for c in texts(run_op(teardown.removed, host)))


def test_radvd_accepts_the_config():
    """radvd's own config check (Debian's radvd, unpacked from the lab mirror's cached .deb)."""
    from lab.aptrepo import debian_deb
    deb = debian_deb("radvd")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        conf = Path(tmp) / "radvd.conf"
        conf.write_text(radvd.radvd_conf(A, "eth0", radvd.ra_routes(MODEL, A), IPAddress("fe80::1")))
        ok = subprocess.run([f"{tmp}/usr/sbin/radvd", "-c", "-C", str(conf)], capture_output=True, text=True)
        conf.write_text(conf.read_text().replace("AdvDefaultLifetime 0;", "AdvDefaultLifetime zero;"))
        bad = subprocess.run([f"{tmp}/usr/sbin/radvd", "-c", "-C", str(conf)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode != 0  # the check can fail


def test_ha_own_lan_rules_cover_both_families():
    """The other router's advertisement of the LAN's IPv6 prefix must not win over table main either."""
    from operations.facts.ha import PolicyRules
    from operations.facts.sysctl import SysctlValues
    v6 = [{"priority": 0, "src": "all", "table": "local"}, {"priority": 5270, "src": "all", "table": "52"},
          {"priority": 32766, "src": "all", "table": "main"}]  # `ip -j -6 rule show`, iproute2 6.1
    v6_rules = json.dumps(v6)
    host = FakeHost(outputs={key(PolicyRules): data("ip-j-4-rule-tailscale.json"),
                             key(PolicyRules, family=6): v6_rules,
                             SysctlValues: data("sysctl-rp-filter-strict.txt")})
    t = texts(run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24", "2001:db8:a::/64"]))
    assert "ip -4 rule add priority 5260 to 192.0.2.0/24 lookup main suppress_prefixlength 0" in t
    assert "ip -6 rule add priority 5260 to 2001:db8:a::/64 lookup main suppress_prefixlength 0" in t
    assert "ip -6 rule show priority 5260 to 2001:db8:a::/64" in ha.rules_script(["2001:db8:a::/64"])
    host.outputs[key(PolicyRules, family=6)] = json.dumps(v6[:1] + [
        {"priority": 5260, "src": "all", "dst": "2001:db8:a::", "dstlen": 64, "table": "main",
         "suppress_prefixlen": 0}] + v6[1:])
    t = texts(run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24"]))  # subnet6 dropped
    assert "ip -6 rule del priority 5260 from all to 2001:db8:a::/64 lookup main suppress_prefixlength 0" in t
    assert not any(c.startswith("ip -4 rule del") for c in t)
