"""The main job end to end on a fresh lab: deploy, clients get routes, sites reach each other.

Real everything: Debian hosts booted with systemd-nspawn, sshd, Kea + Control
Agent, Headscale, tailscaled installed from the lab's signed apt mirror by the
deploy itself, dhclient. Tests run in order and build on each other (one lab).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lab import drive
from tests.support import need

pytestmark = pytest.mark.integration

A_ROUTER, B_ROUTER = "192.0.2.2", "172.16.100.2"
EXTRA_PREFIX = "198.18.0.0/24"  # RFC 2544 benchmark range: a third prefix behind site b


@pytest.fixture(scope="module")
def lab_sites():
    """A freshly booted lab (nothing deployed yet); torn down after the module."""
    from lab import api
    from lab.prereq import missing_prerequisites
    from lab.topology import DEFAULT_PATH

    missing = missing_prerequisites()
    need(f"the lab cannot run here: missing {', '.join(missing)}" if missing else None)
    api.down()
    info = api.ensure_up(DEFAULT_PATH)  # the tests know the built-in lab's addresses
    yield info.sites_file
    api.down()


def secrets_of(sites: Path) -> list[str]:
    folder = sites.parent / "secrets"
    return [p.read_text().strip() for p in folder.iterdir() if p.read_text().strip()]


def routes(host: str) -> str:
    return drive.in_host(host, "ip", "-4", "route").stdout


def test_dry_run_on_a_fresh_lab_changes_nothing(lab_sites):
    result = drive.pyinfra(lab_sites, "--dry", "--diff")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Will change tailscale prefs" in result.stderr  # it did plan the join (pyinfra logs to stderr) ...
    assert "Will create /etc/sysctl.d/99-s2s-forwarding.conf" in result.stderr  # ... with file diffs ...
    assert "+ net.ipv4.ip_forward = 1" in result.stderr
    assert drive.in_host("a-router", "dpkg-query", "-W", "tailscale", check=False).returncode != 0
    assert drive.in_host("a-router", "test", "-e", "/etc/sysctl.d/99-s2s-forwarding.conf",
                         check=False).returncode != 0
    assert "code\": 121" not in drive.in_host("a-gw", "cat", "/etc/kea/kea-dhcp4.conf").stdout
    for secret in secrets_of(lab_sites):
        assert secret not in result.stdout + result.stderr


def test_first_deploy_applies_and_prints_no_secret_even_at_vvv(lab_sites):
    result = drive.pyinfra(lab_sites, "-vvv")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for secret in secrets_of(lab_sites):
        assert secret not in output
    assert drive.in_host("a-router", "tailscale", "version").stdout.startswith("1.100.0")
    # clients must never get routes to a router that is not ready: the steps ran in the recipe's order
    started = re.findall(r"--> Starting (?:run once )?operation: (.+?)\s*$", result.stderr, re.M)
    order = [next(i for i, name in enumerate(started) if step in name) for step in (
        "Tailnet policy allows the sites", "Join the tailnet", "Clamp TCP MSS",
        "Subnet routes approved", "Kea hands out the site routes")]
    assert order == sorted(order), started


def test_clients_get_the_routes_at_their_next_bind(lab_sites):
    drive.lab("renew", "a-client", "b-client")
    a, b = routes("a-client"), routes("b-client")
    assert re.search(rf"^100\.64\.0\.0/10 via {A_ROUTER} dev eth0", a, re.M), a
    assert re.search(rf"^172\.16\.100\.0/24 via {A_ROUTER} dev eth0", a, re.M), a
    assert re.search(r"^default via 192\.0\.2\.1 dev eth0", a, re.M), a
    assert re.search(rf"^192\.0\.2\.0/24 via {B_ROUTER} dev eth0", b, re.M), b
    assert re.search(r"^default via 172\.16\.100\.1 dev eth0", b, re.M), b


def test_site_a_client_and_site_b_client_ping_each_other(lab_sites):
    a, b = drive.client_address("a-client"), drive.client_address("b-client")
    there = drive.ping("a-client", b)
    assert there.returncode == 0, there.stdout
    back = drive.ping("b-client", a)
    assert back.returncode == 0, back.stdout
    assert "ttl=62" in there.stdout  # two routers on the way: it crossed the tunnel


def test_site_b_sees_site_a_client_address_and_10mb_cross_the_tunnel(lab_sites):
    moved = drive.tcp_transfer("a-client", "b-client", 10 * 1024 * 1024)
    assert moved["peer"] == drive.client_address("a-client")  # SNAT is off
    assert moved["received"] == moved["bytes"] == 10 * 1024 * 1024


def test_mss_is_clamped_on_both_directions_of_tailscale0(lab_sites):
    rules = drive.in_host("a-router", "iptables", "-t", "mangle", "-S", "FORWARD").stdout
    assert re.search(r"-o tailscale0 .*--clamp-mss-to-pmtu", rules), rules
    assert re.search(r"-i tailscale0 .*--clamp-mss-to-pmtu", rules), rules


def test_second_deploy_reports_zero_changes(lab_sites):
    assert drive.planned_changes(lab_sites) == {}


def test_routers_reboot_and_everything_comes_back(lab_sites):
    drive.lab("restart", "a-router", "b-router")
    for router in ("a-router", "b-router"):
        assert drive.in_host(router, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
        rules = drive.in_host(router, "iptables", "-t", "mangle", "-S", "FORWARD").stdout
        assert rules.count("--clamp-mss-to-pmtu") == 2, rules
    there = drive.ping("a-client", drive.client_address("b-client"), deadline=60)
    assert there.returncode == 0, there.stdout
    assert drive.planned_changes(lab_sites) == {}


def test_a_third_prefix_previews_as_exactly_that_change_and_applies(lab_sites, tmp_path):
    changed = tmp_path / "sites.toml"
    shutil.copy(lab_sites, changed)
    text = changed.read_text().replace(
        'ssh = "b-router"\n', f'ssh = "b-router"\nroutes = ["{EXTRA_PREFIX}"]\n', 1)
    assert EXTRA_PREFIX in text
    changed.write_text(text)

    preview = drive.pyinfra(changed, "--dry", "--diff")
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert re.search(rf"AdvertiseRoutes: \[172\.16\.100\.0/24\] -> \[172\.16\.100\.0/24, {re.escape(EXTRA_PREFIX)}\]",
                     preview.stderr), preview.stderr[-4000:]
    # the Kea option diff: site a's option 121 gains 198.18.0.0/24 via a's router (18 C6 12 00 C0 00 02 02)
    assert re.search(r"^\s*\+\s+\"data\": \"[0-9A-F]*18C61200C0000202", preview.stderr, re.M), preview.stderr[-4000:]
    # the policy diff: the new prefix is allowed and auto-approved
    assert re.search(rf"^\s*\+.*{re.escape(EXTRA_PREFIX)}", preview.stderr, re.M), preview.stderr[-4000:]
    plan = drive.planned_changes(changed)
    assert plan == {
        "Tailnet policy allows the sites": plan["Tailnet policy allows the sites"],
        "Configure Tailscale subnet router | Join the tailnet and advertise the site's routes": ["b-router"],
        "Kea hands out the site routes (option 121/249)": ["a-gw"],
    }, plan

    applied = drive.pyinfra(changed)
    assert applied.returncode == 0, applied.stderr[-4000:]
    assert drive.planned_changes(changed) == {}
    nodes = json.loads(drive.in_host("control", "headscale", "nodes", "list", "-o", "json").stdout)
    b_node = next(n for n in nodes if n.get("given_name") == "b-router" or n.get("name") == "b-router")
    assert EXTRA_PREFIX in b_node.get("approved_routes", []), b_node
    drive.lab("renew", "a-client")
    assert re.search(rf"^{re.escape(EXTRA_PREFIX)} via {A_ROUTER} dev eth0", routes("a-client"), re.M)
