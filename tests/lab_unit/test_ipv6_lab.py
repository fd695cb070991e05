"""The lab's IPv6 pieces: topology `subnet6`, the site file carrying it, the gateway's and the
clients' configs (tests/e2e/test_ipv6.py boots them for real)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from netaddr import IPNetwork

import sites
from lab import roles
from lab.hosts import Host
from lab.topology import TopologyError, load_topology
from tests.lab_unit.test_sitefile import full_render

E2E = Path(__file__).resolve().parents[1] / "e2e"
TOPO6 = load_topology(E2E / "ipv6_topology.toml")


def test_topology_takes_subnet6_and_the_site_file_carries_it(tmp_path: Path) -> None:
    assert TOPO6.sites["a"].subnet6 == IPNetwork("2001:db8:a::/64")
    data = tomllib.loads(full_render(tmp_path))  # the default lab: no subnet6 anywhere
    assert all("subnet6" not in site for site in data["sites"].values())
    from lab.sitefile import render_site_file
    rendered = render_site_file(TOPO6, kea_user="kea-api", kea_password_files={"a": "a.pw", "b": "b.pw"},
                                headscale_api_key_file="k", auth_key_file="a")
    data = tomllib.loads(rendered)
    assert data["sites"]["a"]["subnet6"] == "2001:db8:a::/64" and data["sites"]["b"]["subnet6"] == "fdb5:b::/64"
    path = tmp_path / "sites.toml"
    path.write_text(rendered)
    model = sites.load_sites(path)  # the real reader accepts it
    assert [str(p) for p in model.sites["b"].advertised6] == ["fdb5:b::/64"]


@pytest.mark.parametrize("value,problem", [
    ('"2001:db8:a::/48"', "must be an IPv6 /64"),
    ('"192.0.3.0/24"', "must be an IPv6 /64"),
    ('"2001:db8:a::1/64"', "host bits set"),
    ('"fe80::/64"', "global unicast or unique local"),
    ('"fd7a:115c:a1e0:1::/64"', "outside fd7a:115c:a1e0::/48"),
    ('"fdb5:b::/64"', "overlaps sites.a.subnet6"),
])
def test_bad_subnet6_is_one_line(tmp_path: Path, value: str, problem: str) -> None:
    text = (E2E / "ipv6_topology.toml").read_text().replace('subnet6 = "fdb5:b::/64"', f"subnet6 = {value}")
    if value == '"fdb5:b::/64"':
        text = text.replace('subnet6 = "2001:db8:a::/64"', 'subnet6 = "fdb5:b::/64"')
    path = tmp_path / "topology.toml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert "sites.b.subnet6" in str(info.value) and problem in str(info.value)
    assert "\n" not in str(info.value)


def test_gateway_advertises_the_prefix_and_itself_as_default() -> None:
    conf = roles.gateway_radvd_conf(TOPO6.sites["a"])
    assert "prefix 2001:db8:a::/64" in conf and "AdvAutonomous on;" in conf
    assert "AdvDefaultLifetime" not in conf  # radvd's default: a non-zero lifetime, the LAN's default router


def test_networkd_clients_accept_ras_only_on_dual_stack_sites(tmp_path: Path) -> None:
    host = Host("a-client", "client", "a", (), dhcp_client="networkd")
    roles.client(tmp_path, host, TOPO6.sites["a"])
    unit = (tmp_path / "etc/systemd/network/20-lab-eth0.network").read_text()
    assert "IPv6AcceptRA=yes" in unit and "LinkLocalAddressing=ipv6" in unit
    plain = tmp_path / "plain"
    roles.client(plain, host, load_topology().sites["a"])
    assert "IPv6AcceptRA=no" in (plain / "etc/systemd/network/20-lab-eth0.network").read_text()


def test_networkmanager_clients_take_ras_on_dual_stack_sites(tmp_path: Path) -> None:
    host = Host("b-client2", "client", "b", (), dhcp_client="networkmanager")
    assert TOPO6.sites["b"].client_hosts == [("b-client", "networkd"), ("b-client2", "networkmanager")]
    roles.client(tmp_path, host, TOPO6.sites["b"])
    text = (tmp_path / roles.NM_CONNECTION).read_text()
    assert "[ipv4]\nmethod=auto" in text and "[ipv6]\nmethod=auto" in text


def test_generator_writes_dual_stack_sites(tmp_path: Path) -> None:
    from lab.generate import generate
    path = tmp_path / "t.toml"
    path.write_text(generate(30, "mixed", ipv6=True))
    topo = load_topology(path)
    nets = [s.subnet6 for s in topo.sites.values()]
    assert len(set(nets)) == 30 and all(n is not None and n.prefixlen == 64 for n in nets)
    assert all(s.dhcp_clients == ("networkd",) for s in topo.sites.values())
    assert "subnet6" not in generate(3, "mixed")
