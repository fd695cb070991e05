"""Every DHCP client kind, on mixed Debian and Kea releases, end to end.

The lab of tests/e2e/clients_topology.toml: site a's gateway runs Debian sid's Kea
3.0 and its router Debian 13 (nftables-era iptables); its LAN has one client of
each kind (ISC dhclient in a bare namespace, systemd-networkd and dhcpcd in booted
containers). Site b's gateway runs Debian 13's Kea 2.6. One deploy; then every
client's kernel routes carry the planned option-121 routes and each reaches site b.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import drive
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("clients_topology.toml")
A_ROUTER, B_ROUTER = "192.0.2.2", "172.16.100.2"
A_CLIENTS = {"a-client": "dhclient", "a-client2": "networkd", "a-client3": "dhcpcd"}


@pytest.fixture(scope="module")
def lab_sites():
    """The mixed lab, freshly booted (nothing deployed); every lab verb acts on it; down after."""
    with booted(TOPOLOGY) as info:
        yield info.sites_file


def test_hosts_run_the_releases_the_topology_names(lab_sites):
    assert drive.in_host("a-gw", "kea-dhcp4", "-v").stdout.startswith("3.0.")
    assert drive.in_host("b-gw", "kea-dhcp4", "-v").stdout.startswith("2.6.")
    assert 'VERSION_ID="13"' in drive.in_host("a-router", "cat", "/etc/os-release").stdout
    assert 'VERSION_ID="12"' in drive.in_host("b-router", "cat", "/etc/os-release").stdout
    assert "nf_tables" in drive.in_host("a-router", "iptables", "-V").stdout
    assert drive.in_host("a-client2", "systemctl", "is-active", "systemd-networkd").stdout.strip() == "active"
    assert drive.in_host("a-client3", "systemctl", "is-active", "lab-dhcpcd").stdout.strip() == "active"


def test_deploy_applies_on_kea_3_0_and_2_6_and_debian_13(lab_sites):
    result = drive.pyinfra(lab_sites)
    assert result.returncode == 0, drive.why_failed(result)
    for gw in ("a-gw", "b-gw"):
        assert "121" in drive.in_host(gw, "cat", "/etc/kea/kea-dhcp4.conf").stdout  # config-write persisted


@pytest.mark.parametrize("client", [*A_CLIENTS, "b-client"])
def test_each_client_kind_installs_the_option_121_routes(lab_sites, client):
    drive.lab("renew", client)
    routes = drive.in_host(client, "ip", "-4", "route").stdout
    if client.startswith("a-"):
        assert re.search(rf"^100\.64\.0\.0/10 via {A_ROUTER} dev eth0", routes, re.M), (client, routes)
        assert re.search(rf"^172\.16\.100\.0/24 via {A_ROUTER} dev eth0", routes, re.M), (client, routes)
        assert re.search(r"^default via 192\.0\.2\.1 dev eth0", routes, re.M), (client, routes)
    else:
        assert re.search(rf"^192\.0\.2\.0/24 via {B_ROUTER} dev eth0", routes, re.M), routes
        assert re.search(r"^default via 172\.16\.100\.1 dev eth0", routes, re.M), routes


@pytest.mark.parametrize("client", A_CLIENTS)
def test_each_client_kind_reaches_site_b_and_back(lab_sites, client):
    there = drive.ping(client, drive.client_address("b-client"))
    assert there.returncode == 0, there.stdout
    assert "ttl=62" in there.stdout  # two routers on the way: it crossed the tunnel
    back = drive.ping("b-client", drive.client_address(client))
    assert back.returncode == 0, back.stdout


def test_second_deploy_reports_zero_changes(lab_sites):
    assert drive.planned_changes(lab_sites) == {}


def test_debian_13_router_reboots_and_every_client_kind_still_reaches_site_b(lab_sites):
    drive.lab("restart", "a-router")
    assert drive.in_host("a-router", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    rules = drive.in_host("a-router", "iptables", "-t", "mangle", "-S", "FORWARD").stdout
    assert rules.count("--clamp-mss-to-pmtu") == 2, rules  # s2s-mss-clamp.service re-applied it (nft backend)
    for client in A_CLIENTS:
        there = drive.ping(client, drive.client_address("b-client"), deadline=60)
        assert there.returncode == 0, (client, there.stdout)
