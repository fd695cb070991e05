"""HA sites in the lab's topology: a second router and a VRRP address, validated; hosts and site file follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.hosts import lab_hosts
from lab.sitefile import render_site_file
from lab.topology import TopologyError, load_topology
from sites import load_sites

HA = Path(__file__).resolve().parents[1] / "e2e" / "ha_topology.toml"


def test_ha_topology_has_two_routers_at_site_a():
    topo = load_topology(HA)
    a = topo.sites["a"]
    assert a.ha and str(a.vip) == "192.0.2.3" and [name for name, _, _ in a.routers] == ["a-router", "a-router2"]
    assert not topo.sites["b"].ha
    routers = [h for h in lab_hosts(topo) if h.role == "router"]
    assert [h.name for h in routers] == ["a-router", "a-router2", "b-router"]
    ports = [link.switch_port for h in lab_hosts(topo) for link in h.links]
    assert len(ports) == len(set(ports))  # every veth end distinct


def test_ha_site_file_loads_with_both_routers_and_the_vip(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(render_site_file(load_topology(HA)))
    a = load_sites(path).sites["a"]
    assert a.ha and str(a.next_hop) == "192.0.2.3"
    assert [(str(r.address), r.ssh) for r in a.routers] == [("192.0.2.2", "a-router"), ("192.0.2.4", "a-router2")]


@pytest.mark.parametrize("old,new,key", [
    ('vip = "192.0.2.3"\n', "", "sites.a.vip"),
    ('vip = "192.0.2.3"', 'vip = "192.0.2.2"', "sites.a.vip"),
    ('router2 = "192.0.2.4"', 'router2 = "192.0.2.1"', "sites.a.router2"),
    ('router2 = "192.0.2.4"', 'router2 = "192.0.2.150"', "sites.a.dhcp_pool"),
    ('router2_wan = "192.168.255.4"', 'router2_wan = "192.168.255.3"', "sites.b.router_wan"),
    ('router2_wan = "192.168.255.4"', 'router2_wan = "192.0.2.9"', "sites.a.router2_wan"),
])
def test_bad_ha_topology_is_one_line_naming_the_key(tmp_path, old, new, key):
    path = tmp_path / "t.toml"
    text = HA.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert f": {key}: " in str(info.value) and "\n" not in str(info.value)


def test_the_vagrant_lab_refuses_an_ha_topology(capsys):
    from lab.vagrant import main
    assert main(["--topology", str(HA), "validate"]) == 2
    err = capsys.readouterr().err
    assert "sites.a" in err and "namespace lab only" in err and err.count("\n") == 1


HA3 = HA.with_name("ha3_topology.toml")


def test_a_third_router_is_a_host_and_a_router_of_the_site_file(tmp_path):
    topo = load_topology(HA3)
    assert [name for name, _, _ in topo.sites["a"].routers] == ["a-router", "a-router2", "a-router3"]
    assert [h.name for h in lab_hosts(topo) if h.role == "router"] == ["a-router", "a-router2", "a-router3",
                                                                       "b-router"]
    path = tmp_path / "sites.toml"
    path.write_text(render_site_file(topo))
    a = load_sites(path).sites["a"]
    assert [(str(r.address), r.ssh) for r in a.routers] == [("192.0.2.2", "a-router"), ("192.0.2.4", "a-router2"),
                                                            ("192.0.2.5", "a-router3")]


@pytest.mark.parametrize("old,new,key", [
    ('router3_wan = "192.168.255.5"\n', "", "sites.a.router3_wan"),
    ('router3 = "192.0.2.5"', 'router3 = "192.0.2.4"', "sites.a.router3"),
    ('router3_wan = "192.168.255.5"', 'router3_wan = "192.168.255.4"', "sites.a.router3_wan"),
    ('router3 = "192.0.2.5"', 'router3 = "192.0.2.150"', "sites.a.dhcp_pool"),
])
def test_a_bad_third_router_is_one_line_naming_the_key(tmp_path, old, new, key):
    bad = tmp_path / "t.toml"
    text = HA3.read_text()
    assert old in text
    bad.write_text(text.replace(old, new))
    with pytest.raises(TopologyError) as err:
        load_topology(bad)
    assert str(err.value).startswith(f"{bad}: {key}:") and "\n" not in str(err.value)


def test_a_third_router_without_an_ha_site_is_refused(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text(HA3.read_text().replace('router2 = "192.0.2.4"\n', "").replace('router2_wan = "192.168.255.4"\n', "")
                   .replace('vip = "192.0.2.3"\n', ""))
    with pytest.raises(TopologyError, match=r"sites\.a\.router3: a third router needs an HA site"):
        load_topology(bad)


@pytest.mark.parametrize(("topology", "says"), [
    ("ipv6_topology.toml", "IPv6 LANs (subnet6"),
    ("static_topology.toml", "static-address hosts"),
])
def test_the_vagrant_lab_refuses_what_its_vms_do_not_build(capsys, topology, says):
    """A dual-stack or static-host topology is refused in one line, not turned into an IPv4
    lab whose site file still claims the IPv6 prefix or the static hosts."""
    from lab.vagrant import main
    assert main(["--topology", str(HA.with_name(topology)), "render"]) == 2
    err = capsys.readouterr().err
    assert says in err and "namespace lab only" in err and err.count("\n") == 1
