"""Lab static-address hosts (topology `static_hosts`): names, addresses, the site file's
[[sites.X.hosts]], and each manager's own config written into the host's root."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import roles
from lab.hosts import lab_hosts
from lab.sitefile import render_site_file
from lab.topology import TopologyError, load_topology
from sites import load_sites
from tests.lab_unit.two_sites import two_site_topology


def topo(tmp_path: Path, extra: str = 'static_hosts = ["networkd", "ifupdown"]'):
    path = tmp_path / "t.toml"
    path.write_text(two_site_topology(extra))
    return load_topology(path)


def test_static_hosts_are_named_addressed_and_listed(tmp_path: Path) -> None:
    t = topo(tmp_path)
    statics = [h for h in lab_hosts(t) if h.role == "static"]
    assert [(h.name, h.manager, h.addresses, h.container) for h in statics] == [
        ("a-static-networkd", "networkd", ["192.0.2.50/24"], True),
        ("a-static-ifupdown", "ifupdown", ["192.0.2.52/24"], True)]
    assert all(h.self_configured and h.default_via is None and h.gateway == "192.0.2.1"
               for h in statics)
    (tmp_path / "sites.toml").write_text(render_site_file(t))
    model = load_sites(tmp_path / "sites.toml")
    assert [(h.ssh, h.manager) for h in model.sites["a"].hosts] == [
        ("a-static-networkd", None), ("a-static-ifupdown", None)]  # the first site's are detected


@pytest.mark.parametrize("extra, problem", [
    ('static_hosts = ["wicked"]', "must be one of networkd, networkmanager, ifupdown, netplan"),
    ('static_hosts = ["netplan", "netplan"]', "must be a list of distinct manager kinds"),
    ('static_hosts = "netplan"', "must be a list of distinct manager kinds"),
])
def test_bad_static_hosts_are_one_line(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(TopologyError) as err:
        topo(tmp_path, extra)
    assert "sites.a.static_hosts: " in str(err.value) and problem.split(" (")[0] in str(err.value)


@pytest.mark.parametrize("kind, path, needle", [
    ("networkd", "etc/systemd/network/20-lan.network", "Address=192.0.2.5"),
    ("ifupdown", "etc/network/interfaces", "iface eth0 inet static"),
    ("networkmanager", "etc/NetworkManager/system-connections/lan.nmconnection", "method=manual"),
    ("netplan", "etc/netplan/10-lan.yaml", "renderer: networkd"),
])
def test_each_manager_gets_its_own_config(tmp_path: Path, kind: str, path: str,
                                          needle: str) -> None:
    t = topo(tmp_path, f'static_hosts = ["{kind}"]')
    host = next(h for h in lab_hosts(t) if h.role == "static")
    root = tmp_path / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    roles.static(root, host)
    assert needle in (root / path).read_text()
    assert "192.0.2.1\n" in (root / path).read_text()  # the default gateway is the gateway host
    assert list((root / "etc/systemd/system/multi-user.target.wants").iterdir())


@pytest.mark.parametrize("kind, path, needles", [
    ("networkd", "etc/systemd/network/20-lan.network", ("Address=2001:db8:a::32/64", "IPv6AcceptRA=no")),
    ("ifupdown", "etc/network/interfaces", ("iface eth0 inet6 static\n    address 2001:db8:a::34/64",
                                            "accept_ra 0")),
    ("networkmanager", "etc/NetworkManager/system-connections/lan.nmconnection",
     ("[ipv6]\nmethod=manual\naddress1=2001:db8:a::33/64",)),
    ("netplan", "etc/netplan/10-lan.yaml", ("2001:db8:a::35/64",
                                            "accept-ra: false")),
])
def test_dual_stack_static_host_gets_a_static_ipv6_address_and_ignores_ras(
        tmp_path: Path, kind: str, path: str, needles: tuple[str, ...]) -> None:
    t = topo(tmp_path, f'subnet6 = "2001:db8:a::/64"\nstatic_hosts = ["{kind}"]')
    host = next(h for h in lab_hosts(t) if h.role == "static")
    root = tmp_path / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    roles.static(root, host)
    text = (root / path).read_text()
    assert all(n in text for n in needles), text
    v4 = topo(tmp_path, f'static_hosts = ["{kind}"]')  # an IPv4-only LAN: no IPv6 address
    assert next(h for h in lab_hosts(v4) if h.role == "static").address6 is None
