"""Static-address LAN hosts end to end (step 6 of Tailscale's site-to-site guide for hosts
without DHCP): each manager kind on both sites, real Debian packages booted in the lab.

Site a's managers are detected, site b's are named in the site file. Tests run in order on
one lab and build on each other: dry run, deploy (kernel routes), pings across the tailnet
between hosts of one kind, a reboot, repair of a deleted route and an edited file, an
unreachable host, zero changes, removal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lab import drive
from tests.e2e.labs import booted_site_file

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("static_topology.toml")
KINDS = ("networkd", "networkmanager", "ifupdown", "netplan")
ADDRESS = {"networkd": 50, "networkmanager": 51, "ifupdown": 52, "netplan": 53}
SITES = {"a": ("192.0.2", "172.16.100"), "b": ("172.16.100", "192.0.2")}  # own LAN, the other LAN
OWNED = {"networkd": "/etc/systemd/network/20-lan.network.d/90-s2s-routes.conf",
         "networkmanager": "/etc/NetworkManager/s2s-routes",
         "ifupdown": "/etc/network/if-up.d/s2s-routes",
         "netplan": "/etc/netplan/90-s2s-routes.yaml"}
STEP = "Static hosts have the site routes"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with booted_site_file(TOPOLOGY, tmp_path_factory.mktemp("static")) as sites:
        yield sites


def hosts(kinds=KINDS) -> list[tuple[str, str, str]]:
    """(host, its site, kind) of every static host."""
    return [(f"{site}-static-{kind}", site, kind) for site in SITES for kind in kinds]


def kernel_routes(host: str) -> dict[str, str | None]:
    """Destination -> gateway of the host's main table, read from the kernel (`ip -j route`)."""
    out = drive.in_host(host, "ip", "-j", "-4", "route", "show", "table", "main").stdout
    return {r["dst"]: r.get("gateway") for r in json.loads(out)}


def wanted(site: str) -> dict[str, str]:
    own, other = SITES[site]
    return {"100.64.0.0/10": f"{own}.2", f"{other}.0/24": f"{own}.2"}


def assert_routed(host: str, site: str) -> None:
    table = kernel_routes(host)
    assert {dst: table.get(dst) for dst in wanted(site)} == wanted(site), table
    assert table.get("default") == f"{SITES[site][0]}.1"  # the LAN's own gateway stays the default


def test_dry_run_shows_the_change_and_changes_nothing(lab):
    result = drive.pyinfra(lab, "--dry", "--diff")
    assert result.returncode == 0, drive.why_failed(result)
    text = result.stdout + result.stderr
    for kind in KINDS:
        assert f"Will create {OWNED[kind]}" in text
        assert f"network manager detected: {kind} (on eth0)" in text  # site a's are detected
    assert "+ Destination=172.16.100.0/24" in text
    assert "+ ip route replace 192.0.2.0/24 via 172.16.100.2" in text
    for host, _site, _ in hosts():
        assert "100.64.0.0/10" not in kernel_routes(host)


def test_deploy_gives_every_static_host_the_routes(lab):
    result = drive.pyinfra(lab)
    assert result.returncode == 0, drive.why_failed(result)
    for host, site, kind in hosts():
        assert_routed(host, site)
        head = drive.in_host(host, "head", "-n", "3", OWNED[kind]).stdout
        assert "Managed by s2s" in head


def test_each_static_host_reaches_the_other_sites_host_of_its_kind(lab):
    for kind in KINDS:
        for site, (_, other) in SITES.items():
            result = drive.ping(f"{site}-static-{kind}", f"{other}.{ADDRESS[kind]}")
            assert result.returncode == 0, result.stdout[-1000:]


def test_second_run_plans_nothing(lab):
    assert drive.planned_changes(lab) == {}


def test_routes_come_back_after_a_reboot(lab):
    names = [host for host, _, _ in hosts()]
    drive.lab("restart", *names)
    for host, site, _ in hosts():
        assert_routed(host, site)
    for kind in KINDS:
        assert drive.ping(f"a-static-{kind}", f"172.16.100.{ADDRESS[kind]}").returncode == 0
    assert drive.planned_changes(lab) == {}


def static_checks(sites: Path) -> dict[str, tuple[str, str]]:
    """`python -m check --json`'s static rows: host -> (status, reason)."""
    result = subprocess.run([sys.executable, "-m", "check", "--sites", str(sites), "--json"],
                            cwd=drive.REPO, capture_output=True, text=True, timeout=300)
    rows = [r for r in json.loads(result.stdout)["rows"] if r["step"] == "static"]
    return {r["reason"].split(":")[0]: (r["status"], r["reason"]) for r in rows}


def test_check_reports_each_static_host(lab):
    rows = static_checks(lab)
    assert sorted(rows) == sorted(host for host, _, _ in hosts())
    assert {status for status, _ in rows.values()} == {"ok"}, rows


def test_a_deleted_route_and_an_edited_file_are_repaired(lab):
    for host, site, kind in hosts():
        if site == "a":  # a route deleted by hand on each of site a's
            drive.in_host(host, "ip", "route", "del", "172.16.100.0/24")
        else:  # the owned file edited on each of site b's
            drive.in_host(host, "sed", "-i", "s/192.0.2.0/192.0.3.0/", OWNED[kind])
    assert static_checks(lab)["a-static-ifupdown"] == (
        "broken", "a-static-ifupdown: missing 172.16.100.0/24 via 192.0.2.2")
    assert drive.planned_changes(lab) == {STEP: sorted(host for host, _, _ in hosts())}
    result = drive.pyinfra(lab)
    assert result.returncode == 0, drive.why_failed(result)
    for host, site, kind in hosts():
        assert_routed(host, site)
        if site == "b":
            assert "192.0.3.0" not in drive.in_host(host, "cat", OWNED[kind]).stdout
    assert drive.planned_changes(lab) == {}


def test_an_unreachable_host_is_named_and_the_others_finish(lab):
    drive.in_host("b-static-ifupdown", "systemctl", "stop", "ssh.socket", "ssh.service")
    drive.in_host("a-static-networkd", "ip", "route", "del", "100.64.0.0/10")
    try:
        result = drive.pyinfra(lab)
        text = result.stdout + result.stderr
        assert result.returncode != 0
        assert "b-static-ifupdown: FAILED before any step ran" in text
        assert_routed("a-static-networkd", "a")  # repaired all the same
        assert static_checks(lab)["b-static-ifupdown"][0] == "unknown"
    finally:
        drive.in_host("b-static-ifupdown", "systemctl", "start", "ssh.service")


def test_hosts_dropped_from_the_site_file_lose_their_routes_in_the_removal_run(lab):
    doc = tomllib.loads(lab.read_text())
    del doc["sites"]["b"]["hosts"]  # site b's static hosts dropped from the site file by hand
    lab.write_text(tomli_w.dumps(doc))
    assert "b-static-" not in lab.read_text()
    plain = drive.pyinfra(lab)
    assert plain.returncode == 0, drive.why_failed(plain)
    warned = plain.stdout + plain.stderr
    assert "no longer declares static host(s) b-static-networkd (site b)" in warned
    assert_routed("b-static-ifupdown", "b")  # without prune: only the warning
    result = drive.pyinfra(lab, "--data", "prune=true")
    assert result.returncode == 0, drive.why_failed(result)
    for host, site, kind in hosts():
        if site == "a":
            assert_routed(host, site)
            continue
        table = kernel_routes(host)
        assert "100.64.0.0/10" not in table and "192.0.2.0/24" not in table, (host, table)
        assert table.get("default") == "172.16.100.1"  # nothing else touched
        assert drive.in_host(host, "test", "-e", OWNED[kind], check=False).returncode != 0
    nm = drive.in_host("b-static-networkmanager", "nmcli", "-g", "ipv4.routes", "connection",
                       "show", "lan")
    assert nm.stdout.strip() == ""
    recorded = json.loads(Path(f"{lab}.applied.json").read_text())
    assert [h["ssh"] for h in recorded["static_hosts"]] == [f"a-static-{kind}" for kind in KINDS]
    assert drive.planned_changes(lab, "--data", "prune=true") == {}
    drive.lab("restart", "b-static-netplan", "b-static-networkmanager")  # gone from the config too
    for host in ("b-static-netplan", "b-static-networkmanager"):
        assert "192.0.2.0/24" not in kernel_routes(host)


def test_a_host_whose_default_gateway_is_the_router_needs_nothing(lab):
    """Issue 18: such a host needs no routes, and the plan says so; what an earlier deploy gave it
    goes (the default route covers it all)."""
    host = "a-static-ifupdown"
    assert drive.in_host(host, "test", "-e", OWNED["ifupdown"], check=False).returncode == 0  # given before
    drive.in_host(host, "ip", "route", "replace", "default", "via", "192.0.2.2", "dev", "eth0")
    result = drive.pyinfra(lab, "--dry")
    text = result.stdout + result.stderr
    assert f"[{host}]" in text and "default gateway already is the site's router 192.0.2.2: no routes needed" in text
    result = drive.pyinfra(lab)
    assert result.returncode == 0, drive.why_failed(result)
    table = kernel_routes(host)
    assert "100.64.0.0/10" not in table and "172.16.100.0/24" not in table and table["default"] == "192.0.2.2"
    assert drive.in_host(host, "test", "-e", OWNED["ifupdown"], check=False).returncode != 0
    # through the router all the same, to site b's router (b's static hosts lost their routes to
    # site a in the removal test before this one, so they could not answer)
    assert drive.ping(host, "172.16.100.2").returncode == 0
    assert drive.planned_changes(lab) == {}
    assert static_checks(lab)[host] == ("ok", f"{host}: default gateway is the site's router 192.0.2.2")
