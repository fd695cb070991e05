"""Removal of one router of an HA pair end to end (tests/e2e/ha_topology.toml: site a has
a-router and a-router2 sharing the VRRP address 192.0.2.3, site b one router).

One real deploy of the HA lab (it writes the applied record next to the site file), then
a-router2 (made the tailnet's primary and the VRRP holder first, so the removal has to move
both) is taken out of the site file while site a stays (with one router left, site a
is a plain single-router site: an HA site names two or more). The removal's `--dry`
previews it and changes nothing; the removal run logs a-router2 out, stops and disables
keepalived there and deletes the project's HA files and its live own-LAN rule; a-router2's
approval goes while a-router keeps site a's; the VRRP address and the primary move to a-router, a's client
still reaches b's and back, and a re-run plans zero changes. Tests run in order on one lab.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lab import drive
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).with_name("ha_topology.toml")
KEPT, GONE = "a-router", "a-router2"
VIP, SUBNET, B_SUBNET = "192.0.2.3", "192.0.2.0/24", "172.16.100.0/24"
OWNED = ["/etc/sysctl.d/99-s2s-forwarding.conf", "/usr/local/sbin/s2s-mss-clamp",
         "/etc/systemd/system/s2s-mss-clamp.service", "/etc/systemd/system/s2s-udp-gro@.service",
         "/etc/keepalived/keepalived.conf", "/usr/local/sbin/s2s-vrrp-check", "/usr/local/sbin/s2s-own-lan-rules",
         "/etc/systemd/system/s2s-own-lan-rules.service", "/etc/sysctl.d/99-s2s-ha.conf"]
KEPT_FILES = ["/etc/apt/sources.list.d/tailscale.sources",  # the Tailscale installation stays (docs/removal.md)
              "/etc/systemd/system/tailscaled.service.d/s2s-no-logs.conf"]
OWN_LAN_RULE = f"5260:\tfrom all to {SUBNET} lookup main suppress_prefixlength 0"


@pytest.fixture(scope="module")
def ha_lab(tmp_path_factory):
    """The HA lab booted, and a copy of its site file to edit (the record lands beside it); down after."""
    with booted(TOPOLOGY) as info:
        sites = tmp_path_factory.mktemp("removal_ha") / "sites.toml"
        sites.write_text(info.sites_file.read_text())  # names everything by absolute path: a copy works anywhere
        yield info, sites



def without_second_router(text: str, site: str = "a") -> str:
    """The site file with the second router of SITE's `routers` cut out and the site turned into a
    single-router one (the first entry's keys become the site's `router`, `ssh`, `tailnet_node`; no vip),
    as an operator does by hand (edited as TOML, written back with tomli-w)."""
    doc = tomllib.loads(text)
    table = doc["sites"][site]
    entries = table.pop("routers")
    assert len(entries) == 2, entries
    del table["vip"]
    first = entries[0]
    table.update({"router": first["address"], "ssh": first["ssh"],
                  **({"tailnet_node": first["tailnet_node"]} if "tailnet_node" in first else {})})
    return tomli_w.dumps(doc)


def approved_routes(sites: Path) -> dict[str, tuple[str, ...]]:
    """Approved routes per node, read from Headscale (through the lab's SSH)."""
    from controlplane import reach
    from sites import load_sites

    with reach(load_sites(sites)) as cp:
        return {n.label: n.approved for n in cp.list_nodes()}


def router_state(router: str) -> dict[str, object]:
    """What the removal acts on, read on the router."""
    backend = json.loads(drive.in_host(router, "tailscale", "status", "--json").stdout)["BackendState"]
    present = drive.in_host(router, "sh", "-c", "ls -d " + " ".join(OWNED + KEPT_FILES) + " 2>/dev/null",
                            check=False).stdout.split()
    units = drive.in_host(router, "systemctl", "list-units", "--all", "--plain", "--no-legend", "s2s-*").stdout
    keepalived = drive.in_host(router, "sh", "-c", "systemctl is-active keepalived; systemctl is-enabled keepalived",
                               check=False).stdout.split()
    rules = [line for line in drive.in_host(router, "ip", "-4", "rule").stdout.splitlines() if line.startswith("5260:")]
    return {"backend": backend, "files": sorted(present), "units": units.strip(), "keepalived": keepalived,
            "rules": rules}


def vrrp_holders() -> list[str]:
    from lab.failover import vrrp_holder
    return vrrp_holder([KEPT, GONE], VIP)


def wait_until(check, timeout: float = 40) -> float:
    """Seconds until check() holds; fails after timeout."""
    start = time.time()
    while not check():
        assert time.time() - start < timeout, f"not within {timeout}s: {check.__doc__}"
        time.sleep(0.5)
    return time.time() - start


def primary_is(router: str) -> bool:
    from lab.failover import primary_for
    return primary_for("b-router", SUBNET) == router and vrrp_holders() == [router]


def reach_both_ways() -> None:
    there = drive.ping("a-client", drive.client_address("b-client"))
    back = drive.ping("b-client", drive.client_address("a-client"))
    assert there.returncode == 0 and back.returncode == 0, there.stdout + back.stdout


def test_deploy_the_ha_lab_records_both_routers(ha_lab):
    _, sites = ha_lab
    result = drive.pyinfra(sites)
    assert result.returncode == 0, drive.why_failed(result)
    recorded = json.loads(Path(f"{sites}.applied.json").read_text())
    assert [(r["site"], r["ssh"], r["prefixes"]) for r in recorded["routers"]] == [
        ("a", KEPT, [SUBNET]), ("a", GONE, [SUBNET]), ("b", "b-router", [B_SUBNET])]
    state = router_state(GONE)
    assert state["backend"] == "Running" and state["keepalived"] == ["active", "enabled"]
    assert set(OWNED) <= set(state["files"]) and state["rules"] == [OWN_LAN_RULE]
    approved = approved_routes(sites)
    assert approved[KEPT] == (SUBNET,) and approved[GONE] == (SUBNET,)
    drive.lab("renew", "a-client", "b-client")
    if not primary_is(GONE):  # the router to remove carries the traffic: stop a-router's tailscaled a moment
        drive.in_host(KEPT, "systemctl", "stop", "tailscaled")
        try:
            wait_until(lambda: primary_is(GONE))
        finally:
            drive.in_host(KEPT, "systemctl", "start", "tailscaled")
        time.sleep(6)  # a-router is healthy again and reclaims neither role
    assert primary_is(GONE)
    reach_both_ways()


def test_the_edited_site_file_keeps_site_a_with_one_router(ha_lab):
    from sites import load_sites

    _, sites = ha_lab
    sites.write_text(without_second_router(sites.read_text()))
    site = load_sites(sites).sites["a"]
    assert not site.ha and [r.ssh for r in site.routers] == [KEPT] and str(site.next_hop) == "192.0.2.2"
    plain = drive.pyinfra(sites, "--dry")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert f"no longer declares router(s) {GONE} (site a)" in plain.stdout + plain.stderr


def test_dry_removal_previews_it_and_changes_nothing(ha_lab):
    _, sites = ha_lab
    before = router_state(GONE), approved_routes(sites), vrrp_holders(), Path(f"{sites}.applied.json").read_text()
    planned = drive.planned_changes(sites, "--data", "prune=true")
    assert planned["Removed routers' routes unapproved"] == ["control"]
    assert planned["Removed router: logged out, the project's files and units gone"] == [GONE]
    shown = drive.pyinfra(sites, "--dry", "--diff", "--data", "prune=true")
    text = shown.stdout + shown.stderr
    assert shown.returncode == 0, text[-3000:]
    assert f"unapprove {SUBNET}" in text and "tailscale logout" in text
    assert "systemctl stop keepalived.service" in text and "/etc/keepalived/keepalived.conf" in text
    assert f"ip -4 rule del priority 5260 from all to {SUBNET} lookup main suppress_prefixlength 0" in text
    after = router_state(GONE), approved_routes(sites), vrrp_holders(), Path(f"{sites}.applied.json").read_text()
    assert after == before


def test_the_removal_run_undoes_the_removed_routers_setup(ha_lab):
    info, sites = ha_lab
    result = drive.pyinfra(sites, "--data", "prune=true")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    secrets = [p.read_text().strip() for p in (info.sites_file.parent / "secrets").iterdir()]
    assert secrets and not [s for s in secrets if s and s in text]
    gone = router_state(GONE)
    assert gone["backend"] == "NeedsLogin"  # logged out
    assert gone["files"] == sorted(KEPT_FILES) and gone["units"] == ""
    assert gone["keepalived"][0] != "active" and gone["keepalived"][1:] == ["disabled"], gone["keepalived"]
    assert gone["rules"] == []  # the live own-LAN rule too, not only the unit that re-adds it at boot
    approved = approved_routes(sites)
    assert SUBNET not in approved[GONE]
    assert approved[KEPT] == (SUBNET,) and approved["b-router"] == (B_SUBNET,)
    recorded = json.loads(Path(f"{sites}.applied.json").read_text())
    assert [r["ssh"] for r in recorded["routers"]] == [KEPT, "b-router"]
    kept = router_state(KEPT)
    # a-router is declared (now single-router): the run that removes the other router leaves its HA setup in
    # place; its keepalived keeps the VRRP address for clients on old leases (a later run takes it down)
    assert kept["backend"] == "Running" and kept["keepalived"] == ["active", "enabled"]


def test_the_vip_is_on_the_remaining_router_and_a_and_b_still_reach_each_other(ha_lab):
    took = wait_until(lambda: primary_is(KEPT))  # counted from the end of the removal run
    print(f"after the removal run: {KEPT} primary and VRRP holder within {took:.1f}s")
    reach_both_ways()  # clients still on the vip as next hop (their lease predates the edit)
    drive.lab("renew", "a-client", "b-client")
    routes = drive.in_host("a-client", "ip", "-4", "route").stdout
    assert re.search(rf"^{re.escape(B_SUBNET)} via 192\.0\.2\.2 dev eth0", routes, re.M), routes  # the router now
    reach_both_ways()


def test_a_later_removal_run_takes_the_kept_routers_ha_setup_down(ha_lab):
    """Clients renewed (previous test): the next removal run stops keepalived on the router that
    stays and removes its HA files and own-LAN rule; the site works on the router's own address."""
    _, sites = ha_lab
    plain = drive.pyinfra(sites, "--dry")
    assert "keeps the HA setup" in plain.stdout + plain.stderr  # said on every plain run until then
    result = drive.pyinfra(sites, "--data", "prune=true")
    assert result.returncode == 0, drive.why_failed(result)
    kept = router_state(KEPT)
    assert kept["backend"] == "Running"
    assert kept["keepalived"][0] != "active" and kept["keepalived"][1:] == ["disabled"], kept["keepalived"]
    assert kept["rules"] == [] and kept["units"].count("s2s-own-lan-rules") == 0
    ha_files = OWNED[4:]  # keepalived.conf, the VRRP check, the own-LAN script and unit, the rp_filter file
    assert set(kept["files"]) & set(ha_files) == set(), kept["files"]
    assert set(OWNED[:4]) <= set(kept["files"])  # the router's own setup stays
    assert vrrp_holders() == []
    reach_both_ways()


def test_a_rerun_plans_zero_changes(ha_lab):
    _, sites = ha_lab
    assert drive.planned_changes(sites, "--data", "prune=true") == {}
    assert drive.planned_changes(sites) == {}
    plain = drive.pyinfra(sites, "--dry")
    assert "no longer declares" not in plain.stdout + plain.stderr
