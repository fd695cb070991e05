"""lab/topology.toml loading and validation: the contract both labs build from."""

from __future__ import annotations

from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork

from lab.topology import DEFAULT_PATH, LabSite, TopologyError, load_topology
from tests.lab_unit.two_sites import two_site_topology

GOOD = two_site_topology()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return path


def test_repo_topology_is_the_guides_example() -> None:
    topo = load_topology()
    assert topo.path == DEFAULT_PATH
    assert topo.wan_subnet == IPNetwork("192.168.255.0/24")
    assert topo.control_address == IPAddress("192.168.255.10")
    assert (topo.headscale_port, topo.apt_port) == (8080, 8081)
    assert list(topo.sites) == ["a", "b"]
    assert topo.sites["a"] == LabSite(
        "a",
        IPNetwork("192.0.2.0/24"),
        IPAddress("192.0.2.1"),
        IPAddress("192.0.2.2"),
        IPAddress("192.168.255.2"),
        "192.0.2.100 - 192.0.2.199",
    )
    assert topo.sites["b"].router == IPAddress("172.16.100.2")
    assert topo.sites["b"].pool_range.size == 100
    assert topo.headscale_url == "http://192.168.255.10:8080"
    assert topo.apt_url == "http://192.168.255.10:8081"
    assert topo.host_names() == ["control", "a-gw", "a-router", "a-client", "b-gw", "b-router", "b-client"]


def test_values_are_frozen() -> None:
    topo = load_topology()
    with pytest.raises(AttributeError):
        topo.sites["a"].router = IPAddress("192.0.2.3")  # type: ignore[misc]


def test_pool_is_normalised(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, GOOD.replace('"192.0.2.100 - 192.0.2.199"', '"192.0.2.100-192.0.2.199"')))
    assert topo.sites["a"].dhcp_pool == "192.0.2.100 - 192.0.2.199"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'router = "192.0.2.2"',
            'router = "192.0.3.2"',
            "sites.a.router: not inside sites.a.subnet 192.0.2.0/24 (192.0.3.2)",
        ),
        ('gateway = "192.0.2.1"', 'gateway = "192.0.2.0"', "sites.a.gateway: is the network or broadcast address"),
        ('gateway = "192.0.2.1"', 'gateway = "192.0.2.x"', "sites.a.gateway: invalid address (192.0.2.x)"),
        ('router_wan = "192.168.255.2"', 'router_wan = "192.0.2.3"', "sites.a.router_wan: not inside wan.subnet"),
        (
            'router_wan = "192.168.255.3"',
            'router_wan = "192.168.255.2"',
            "sites.b.router_wan: already used by sites.a.router_wan",
        ),
        (
            'router_wan = "192.168.255.2"',
            'router_wan = "192.168.255.10"',
            "sites.a.router_wan: already used by control.address",
        ),
        ('address = "192.168.255.10"', 'address = "203.0.113.10"', "control.address: not inside wan.subnet"),
        ('subnet = "192.0.2.0/24"', 'subnet = "192.0.2.1/24"', "sites.a.subnet: host bits set (192.0.2.1/24)"),
        (
            GOOD[GOOD.index("[sites.b]") :],
            GOOD[GOOD.index("[sites.b]") :].replace("172.16.100.0/24", "192.0.0.0/22").replace("172.16.100", "192.0.1"),
            "sites.b.subnet: overlaps sites.a.subnet 192.0.2.0/24 (192.0.0.0/22)",
        ),
        ('subnet = "192.168.255.0/24"', 'subnet = "2001:db8::/64"', "wan.subnet: must be IPv4"),
        ('"192.0.2.100 - 192.0.2.199"', '"192.0.2.100"', 'sites.a.dhcp_pool: must be "first - last" (192.0.2.100)'),
        (
            '"192.0.2.100 - 192.0.2.199"',
            '"192.0.2.199 - 192.0.2.100"',
            "sites.a.dhcp_pool: first address is after the last",
        ),
        (
            '"192.0.2.100 - 192.0.2.199"',
            '"192.0.2.2 - 192.0.2.199"',
            "sites.a.dhcp_pool: contains the router address 192.0.2.2",
        ),
        (
            '"192.0.2.100 - 192.0.2.199"',
            '"192.0.2.100 - 172.16.100.199"',
            "sites.a.dhcp_pool: not inside sites.a.subnet",
        ),
        (
            "headscale_port = 8080",
            "headscale_port = 70000",
            "control.headscale_port: must be a TCP port 1-65535 (70000)",
        ),
        ("apt_port = 8081", "apt_port = 8080", "control.apt_port: same port as control.headscale_port (8080)"),
        ('router = "192.0.2.2"', 'router = "192.0.2.2"\nrouterr = "x"', "sites.a.routerr: unknown key (x)"),
        ("[control]", "[control]\nextra = 1", "control.extra: unknown key (1)"),
        ("[wan]", "[lan]\nx = 1\n[wan]", "lan: unknown key"),
        ('gateway = "172.16.100.1"\n', "", "sites.b.gateway: missing key"),
        ("[sites.a]", "[sites.a_b]", "sites.a_b: site name must be"),
        (
            'subnet = "172.16.100.0/24"',
            'subnet = "172.16.0.0/15"',
            "sites.b.subnet: must be a /16 to /29 (172.16.0.0/15)",
        ),
        (
            'subnet = "172.16.100.0/24"',
            'subnet = "172.16.100.0/30"',
            "sites.b.subnet: must be a /16 to /29 (172.16.100.0/30)",
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = "198.18.0.0/24"',
            'sites.a.routes: must be a list of prefixes like ["198.18.0.0/24"] (198.18.0.0/24)',
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = ["198.18.0.0/24", "198.18.0.5/24"]',
            "sites.a.routes[1]: host bits set (198.18.0.5/24)",
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = ["192.0.2.128/25"]',
            "sites.a.routes[0]: overlaps sites.a.subnet 192.0.2.0/24 (192.0.2.128/25)",
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = ["198.18.0.0/16", "198.18.3.0/24"]',
            "sites.a.routes[1]: overlaps sites.a.routes[0] 198.18.0.0/16 (198.18.3.0/24)",
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = ["172.16.0.0/12"]',
            "sites.b.subnet: overlaps sites.a.routes[0] 172.16.0.0/12 (172.16.100.0/24)",
        ),
        (
            'router = "192.0.2.2"',
            'router = "192.0.2.2"\nroutes = ["192.168.255.128/25"]',
            "sites.a.routes[0]: overlaps wan.subnet 192.168.255.0/24 (192.168.255.128/25)",
        ),
        ('router = "172.16.100.2"', 'router = "172.16.100.2"\nroutes = ["198.18.0.0/24"]\n', None),
    ],
)
def test_bad_topology_is_one_line_naming_key_and_value(
    tmp_path: Path, old: str, new: str, expected: str | None
) -> None:
    assert old in GOOD
    if expected is None:  # the same prefix behind two sites: the second one is named
        old, new = 'router = "192.0.2.2"', 'router = "192.0.2.2"\nroutes = ["198.18.0.0/16"]'
        text = GOOD.replace(old, new, 1).replace(
            'router = "172.16.100.2"', 'router = "172.16.100.2"\nroutes = ["198.18.0.0/24"]'
        )
        expected = "sites.b.routes[0]: overlaps sites.a.routes[0] 198.18.0.0/16 (198.18.0.0/24)"
    else:
        text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_table_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"control: missing table$"):
        load_topology(write(tmp_path, GOOD.split("[control]")[0]))
    with pytest.raises(TopologyError, match="not valid TOML"):
        load_topology(write(tmp_path, "[wan\n"))
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "nope.toml")


def test_any_lan_size_and_any_router_position(tmp_path: Path) -> None:
    text = (
        GOOD.replace("172.16.100.0/24", "172.16.0.0/16")
        .replace('"172.16.100.1"', '"172.16.9.9"')
        .replace('"172.16.100.2"', '"172.16.255.254"')
        .replace("172.16.100.100 - 172.16.100.199", "172.16.1.1 - 172.16.1.3")
        .replace("192.0.2.0/24", "192.0.2.0/29")
        .replace('"192.0.2.1"', '"192.0.2.6"')
        .replace('router = "192.0.2.2"', 'router = "192.0.2.1"\nroutes = ["198.18.0.0/24", "10.0.0.0/8"]')
        .replace("192.0.2.100 - 192.0.2.199", "192.0.2.2 - 192.0.2.5")
    )
    topo = load_topology(write(tmp_path, text))
    a, b = topo.sites["a"], topo.sites["b"]
    assert (a.subnet.prefixlen, a.router, a.gateway, a.pool_range.size) == (
        29,
        IPAddress("192.0.2.1"),
        IPAddress("192.0.2.6"),
        4,
    )
    assert a.routes == (IPNetwork("198.18.0.0/24"), IPNetwork("10.0.0.0/8"))
    assert (b.subnet.prefixlen, b.router, b.gateway, b.routes) == (
        16,
        IPAddress("172.16.255.254"),
        IPAddress("172.16.9.9"),
        (),
    )
