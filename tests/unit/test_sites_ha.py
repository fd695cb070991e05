"""HA sites in the site file: several routers, one VRRP address; every bad value is one line, exit 2."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from netaddr import IPAddress

from sites import SiteFileError, load_sites
from sites.model import Router, Site

REPO = Path(__file__).resolve().parents[2]

HA = """
[sites.a]
subnet = "192.0.2.0/24"
gateway = "192.0.2.1"
vip = "192.0.2.3"
vrid = 7
[[sites.a.routers]]
address = "192.0.2.2"
ssh = "a-router"
[[sites.a.routers]]
address = "192.0.2.4"
ssh = "root@a-router2"
tailnet_node = "a-router2"
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
ssh = "b-router"
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent(text))
    return load_sites(path)


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(SiteFileError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "sites.toml") + ": ")
    return message


def test_ha_site_has_every_router_and_the_vip_as_next_hop(tmp_path):
    a = load(tmp_path, HA).sites["a"]
    assert a.ha and a.vip == IPAddress("192.0.2.3") and a.vrid == 7
    assert a.next_hop == a.vip  # what LAN clients get (option 121)
    assert a.routers == (
        Router(IPAddress("192.0.2.2"), "a-router", None),
        Router(IPAddress("192.0.2.4"), "root@a-router2", "a-router2"),
    )
    assert a.router_at("root@a-router2").address == IPAddress("192.0.2.4")


def test_single_router_site_is_unchanged_and_has_one_router(tmp_path):
    b = load(tmp_path, HA).sites["b"]
    assert not b.ha and b.vip is None
    assert b.routers == (Router(IPAddress("172.16.100.2"), "b-router", None),)
    assert b.next_hop == IPAddress("172.16.100.2") == b.gateway


def test_a_site_has_at_least_one_router():
    with pytest.raises(ValueError, match="at least one router"):
        Site(
            "x",
            subnet=__import__("netaddr").IPNetwork("10.0.0.0/24"),
            routers=(),
            next_hop=IPAddress("10.0.0.2"),
            gateway=IPAddress("10.0.0.1"),
        )


def test_vip_defaults_gateway_when_none_given(tmp_path):
    a = load(tmp_path, HA.replace('gateway = "192.0.2.1"\n', "")).sites["a"]
    assert a.gateway == a.vip


@pytest.mark.parametrize(
    "change,key,value",
    [
        (('vip = "192.0.2.3"', 'vip = "198.51.100.3"'), "sites.a.vip", "198.51.100.3"),
        (('vip = "192.0.2.3"', 'vip = "192.0.2.255"'), "sites.a.vip", "192.0.2.255"),
        (('vip = "192.0.2.3"', 'vip = "192.0.2.0"'), "sites.a.vip", "192.0.2.0"),
        (('vip = "192.0.2.3"', 'vip = "192.0.2.4"'), "sites.a.vip", "192.0.2.4"),
        (('vip = "192.0.2.3"', 'vip = "nope"'), "sites.a.vip", "nope"),
        (('vip = "192.0.2.3"\n', ''), "sites.a.vip", None),
        (('vrid = 7', 'vrid = 256'), "sites.a.vrid", "256"),
        (('vrid = 7', 'vrid = "7"'), "sites.a.vrid", "'7'"),
        (('address = "192.0.2.4"', 'address = "192.0.2.2"'), "sites.a.routers[1].address", "192.0.2.2"),
        (('address = "192.0.2.4"', 'address = "10.0.0.4"'), "sites.a.routers[1].address", "10.0.0.4"),
        (('ssh = "root@a-router2"', 'ssh = "a-router"'), "sites.a.routers[1].ssh", "a-router"),
        (('ssh = "root@a-router2"', 'ssh = "a router"'), "sites.a.routers[1].ssh", "a router"),
        (('tailnet_node = "a-router2"', 'color = "red"'), "sites.a.routers[1].color", "red"),
        (('gateway = "192.0.2.1"', 'gateway = "192.0.2.4"'), "sites.a.gateway", "192.0.2.4"),
        (('vip = "192.0.2.3"', 'vip = "192.0.2.3"\nrouter = "192.0.2.2"'), "sites.a.router", "192.0.2.2"),
        (('ssh = "b-router"', 'ssh = "a-router"'), "sites.b.ssh", "a-router"),
        (('router = "172.16.100.2"', 'router = "172.16.100.2"\nvip = "172.16.100.3"'), "sites.b.vip", "172.16.100.3"),
    ],
)
def test_bad_ha_values_name_key_and_value(tmp_path, change, key, value):
    message = error_for(tmp_path, HA.replace(*change))
    assert f": {key}: " in message
    if value is not None:
        assert value in message


def test_one_router_in_the_list_is_refused(tmp_path):
    text = HA.replace(
        '[[sites.a.routers]]\naddress = "192.0.2.4"\nssh = "root@a-router2"\ntailnet_node = "a-router2"\n', ""
    )
    assert ": sites.a.routers: an HA site names two or more routers" in error_for(tmp_path, text)


def test_cli_exits_2_with_one_line(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent(HA.replace('vip = "192.0.2.3"', 'vip = "192.0.2.2"')))
    run = subprocess.run(
        [sys.executable, "-m", "sites", "--sites", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "sites.a.vip" in run.stderr and "Traceback" not in run.stderr


HA6 = HA.replace('vrid = 7\n', 'vrid = 7\nsubnet6 = "2001:db8:a::/64"\n')


def test_a_dual_stack_ha_site_gets_a_link_local_vip6_derived_from_its_vrid(tmp_path):
    """Existing site files stay valid: vip6 defaults to VRRP's IPv6 virtual MAC's link-local (vrid 7)."""
    assert load(tmp_path, HA6).sites["a"].vip6 == IPAddress("fe80::200:5eff:fe00:207")
    assert load(tmp_path, HA).sites["a"].vip6 is None  # IPv4-only HA site: no IPv6 instance
    chosen = HA6.replace('vrid = 7\n', 'vrid = 7\nvip6 = "fe80::53"\n')
    assert load(tmp_path, chosen).sites["a"].vip6 == IPAddress("fe80::53")


@pytest.mark.parametrize("value, problem", [
    ('"2001:db8:a::3"', "must be an IPv6 link-local address (fe80::/10)"),
    ('"192.0.2.3"', "must be an IPv6 link-local address (fe80::/10)"),
    ('"fe80::"', "must be an IPv6 link-local address (fe80::/10)"),
    ('"fe80::zz"', "not a valid IP address"),
    ("5", "must be a string"),
])
def test_a_bad_vip6_is_one_line(tmp_path, value, problem):
    message = error_for(tmp_path, HA6.replace('vrid = 7\n', f'vrid = 7\nvip6 = {value}\n'))
    assert f"sites.a.vip6: {problem}" in message


def test_vip6_only_on_an_ha_site_with_subnet6(tmp_path):
    no_v6 = HA.replace('vrid = 7\n', 'vrid = 7\nvip6 = "fe80::53"\n')
    assert "sites.a.vip6: only for HA sites with subnet6" in error_for(tmp_path, no_v6)
    single = HA.replace('ssh = "b-router"\n', 'ssh = "b-router"\nsubnet6 = "fdb5:b::/64"\nvip6 = "fe80::53"\n')
    assert "sites.b.vip6: only for HA sites with subnet6" in error_for(tmp_path, single)


def test_a_bad_vip6_exits_2_with_one_line(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent(HA6.replace('vrid = 7\n', 'vrid = 7\nvip6 = "2001:db8:a::3"\n')))
    run = subprocess.run([sys.executable, "-m", "sites", "--sites", str(path)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "sites.a.vip6" in run.stderr and "2001:db8:a::3" in run.stderr
