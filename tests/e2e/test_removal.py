"""Clean removal end to end: a 3-site lab, site c taken out of the site file, `--data prune=true`.

The topology comes from the generator (`python -m lab topology --sites 3`). One real
deploy of all three sites (it writes the applied record next to the site file), then
site c is deleted from the file: a plain deploy warns with the command to run, the
removal's `--dry` previews every change and changes nothing, the removal run undoes
what the project owns (a/b's Kea options, c's approved routes, the policy, c's router
logged out and its files and units gone, nothing else touched), a and b still reach
each other, and a re-run plans zero changes. Tests run in order on one lab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab import drive
from tests.e2e.labs import booted, generated_topology

pytestmark = pytest.mark.integration

GONE_PREFIX = "10.3.0.0/24"  # site c's LAN in the generated uniform topology
OWNED = ["/etc/sysctl.d/99-s2s-forwarding.conf", "/usr/local/sbin/s2s-mss-clamp",
         "/etc/systemd/system/s2s-mss-clamp.service", "/etc/systemd/system/s2s-udp-gro@.service"]
KEPT = ["/etc/sysctl.d/90-not-ours.conf",  # someone else's file, put there by the test
        "/etc/apt/sources.list.d/tailscale.sources",  # the Tailscale installation stays (docs/removal.md)
        "/etc/systemd/system/tailscaled.service.d/s2s-no-logs.conf"]


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    """A fresh generated 3-site lab, and a copy of its site file to edit (the record lands beside it)."""
    where = tmp_path_factory.mktemp("removal")
    with booted(generated_topology(where / "three.toml", "--sites", "3"), export=False) as info:
        sites = where / "sites.toml"  # the lab's file names everything by absolute path: a copy works anywhere
        sites.write_text(info.sites_file.read_text())
        yield info, sites



def without_site(text: str, name: str) -> str:
    """The site file with [sites.NAME] and its sub-tables cut out (what an operator does by hand)."""
    return re.sub(rf"\n\[sites\.{name}(\.[a-z_]+)?\]\n(?:(?!\n\[).)*", "", text, flags=re.S)


def node_and_policy(sites: Path) -> tuple[dict[str, tuple[str, ...]], str]:
    """Approved routes per node and the policy text, read from Headscale (through the lab's SSH)."""
    from controlplane import reach
    from sites import load_sites

    with reach(load_sites(sites)) as cp:
        return {n.label: n.approved for n in cp.list_nodes()}, cp.read_policy().text


def c_router_state() -> dict[str, object]:
    backend = json.loads(drive.in_host("c-router", "tailscale", "status", "--json").stdout)["BackendState"]
    present = drive.in_host("c-router", "sh", "-c", "ls -d " + " ".join(OWNED + KEPT) + " 2>/dev/null",
                            check=False).stdout.split()
    units = drive.in_host("c-router", "systemctl", "list-units", "--all", "--plain", "--no-legend", "s2s-*").stdout
    clamps = drive.in_host("c-router", "iptables-save", "-t", "mangle").stdout.count("TCPMSS")
    return {"backend": backend, "files": sorted(present), "units": units.strip(), "clamps": clamps}


def client_routes(client: str) -> str:
    return drive.in_host(client, "ip", "-4", "route").stdout


def test_deploy_three_sites_records_what_it_applied(lab3):
    info, sites = lab3
    result = drive.pyinfra(sites)
    assert result.returncode == 0, drive.why_failed(result)
    recorded = json.loads(Path(f"{sites}.applied.json").read_text())
    assert [(r["site"], r["ssh"], r["prefixes"]) for r in recorded["routers"]] == [
        ("a", "a-router", ["10.1.0.0/24"]), ("b", "b-router", ["10.2.0.0/24"]), ("c", "c-router", [GONE_PREFIX])]
    drive.in_host("c-router", "sh", "-c", "echo 'vm.swappiness = 10' > /etc/sysctl.d/90-not-ours.conf")
    drive.lab("renew", "a-client", "b-client")
    assert f"{GONE_PREFIX} via 10.1.0.2" in client_routes("a-client")


def test_a_plain_deploy_after_the_edit_warns_with_the_command(lab3):
    _, sites = lab3
    sites.write_text(without_site(sites.read_text(), "c"))
    assert "[sites.c" not in sites.read_text() and "[sites.b.kea]" in sites.read_text()
    result = drive.pyinfra(sites, "--dry")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"then run `SITES={sites} pyinfra inventory.py deploy.py --data prune=true`"
            in result.stdout + result.stderr)


def test_dry_removal_previews_everything_and_changes_nothing(lab3):
    _, sites = lab3
    before = c_router_state(), node_and_policy(sites), Path(f"{sites}.applied.json").read_text()
    assert before[0]["backend"] == "Running" and before[0]["units"] and before[0]["clamps"] == 2
    planned = drive.planned_changes(sites, "--data", "prune=true")
    assert planned["Removed routers' routes unapproved"] == ["control"]
    assert planned["Removed router: logged out, the project's files and units gone"] == ["c-router"]
    assert planned["Kea hands out the site routes (option 121/249)"] == ["a-gw", "b-gw"]
    assert planned["Tailnet policy allows the sites"] == ["control"]
    shown = drive.pyinfra(sites, "--dry", "--diff", "--data", "prune=true")
    text = shown.stdout + shown.stderr
    assert shown.returncode == 0, text[-3000:]
    assert "site c (removed): router c-router" in text and f"unapprove {GONE_PREFIX}" in text
    assert "tailscale logout" in text and "rm -f /etc/sysctl.d/99-s2s-forwarding.conf" in text
    assert re.search(rf'^\s+-.*"{re.escape(GONE_PREFIX)}": \["tag:subnet-router"\]', text, re.M)  # autoApprovers
    assert "90-not-ours" not in text
    assert (c_router_state(), node_and_policy(sites), Path(f"{sites}.applied.json").read_text()) == before


def test_an_unreachable_removed_router_is_named_and_the_rest_is_done_anyway(lab3):
    _, sites = lab3
    drive.in_host("c-router", "systemctl", "stop", "ssh.socket", "ssh.service")
    try:
        result = drive.pyinfra(sites, "--data", "prune=true")
        text = result.stdout + result.stderr
        assert result.returncode != 0  # pyinfra's own exit for a host it could not reach
        assert "c-router: FAILED before any step ran" in text
        assert "Removed router c-router not cleaned up" in text, text[-3000:]
        approved, policy = node_and_policy(sites)
        assert GONE_PREFIX not in approved["c-router"] and GONE_PREFIX not in policy  # done anyway
        recorded = json.loads(Path(f"{sites}.applied.json").read_text())
        assert [r["site"] for r in recorded["routers"]] == ["a", "b", "c"]  # kept for the next removal run
    finally:
        drive.in_host("c-router", "systemctl", "start", "ssh.socket", "ssh.service")
    assert c_router_state()["backend"] == "Running"  # nothing done on the router itself


def test_the_removal_run_undoes_what_the_project_owns(lab3):
    info, sites = lab3
    result = drive.pyinfra(sites, "-vvv", "--data", "prune=true")
    assert result.returncode == 0, drive.why_failed(result)
    secrets = [p.read_text().strip() for p in (info.sites_file.parent / "secrets").iterdir()]
    assert secrets and not [s for s in secrets if s and s in result.stdout + result.stderr]  # not even at -vvv
    after = c_router_state()
    assert after["backend"] == "NeedsLogin"  # logged out
    assert after["files"] == sorted(KEPT) and after["units"] == "" and after["clamps"] == 0
    approved, policy = node_and_policy(sites)
    assert GONE_PREFIX not in approved["c-router"]
    assert approved["a-router"] == ("10.1.0.0/24",) and approved["b-router"] == ("10.2.0.0/24",)
    assert GONE_PREFIX not in policy and "10.1.0.0/24" in policy
    recorded = json.loads(Path(f"{sites}.applied.json").read_text())
    assert [r["site"] for r in recorded["routers"]] == ["a", "b"]


def test_clients_lose_the_removed_sites_route_and_a_b_still_reach_each_other(lab3):
    drive.lab("renew", "a-client", "b-client")
    for client in ("a-client", "b-client"):
        table = client_routes(client)
        assert GONE_PREFIX not in table, (client, table)
        assert "100.64.0.0/10 via" in table  # the rest of the option is still there
    there = drive.ping("a-client", drive.client_address("b-client"))
    back = drive.ping("b-client", drive.client_address("a-client"))
    assert there.returncode == 0 and back.returncode == 0, there.stdout + back.stdout


def test_a_rerun_plans_zero_changes(lab3):
    _, sites = lab3
    assert drive.planned_changes(sites, "--data", "prune=true") == {}
    assert drive.planned_changes(sites) == {}
    plain = drive.pyinfra(sites, "--dry")
    assert "no longer declares" not in plain.stdout + plain.stderr  # nothing left to remove


def test_a_prefix_dropped_from_a_site_that_stays_is_unapproved_by_a_plain_deploy(lab3):
    """The applied record remembers the prefixes the deploy approved: one the site file no longer
    declares is taken back once the router stops advertising it, in the same run, without prune."""
    _, sites = lab3
    declared = sites.read_text()
    extra = "10.250.1.0/24"
    sites.write_text(declared.replace("[sites.a]\n", f'[sites.a]\nroutes = ["{extra}"]\n', 1))
    try:
        result = drive.pyinfra(sites)
        assert result.returncode == 0, drive.why_failed(result)
        assert node_and_policy(sites)[0]["a-router"] == ("10.1.0.0/24", extra)
        assert extra in Path(f"{sites}.applied.json").read_text()
    finally:
        sites.write_text(declared)
    result = drive.pyinfra(sites)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    approved, policy = node_and_policy(sites)
    assert approved["a-router"] == ("10.1.0.0/24",), text[-3000:]
    assert extra not in policy
    assert extra not in Path(f"{sites}.applied.json").read_text()
    assert drive.planned_changes(sites) == {}


def test_a_renamed_router_is_neither_logged_out_nor_unapproved(lab3, tmp_path):
    """a-router recorded under an old ssh alias: same machine, so the removal leaves it alone
    (and drops the stale entry from the record)."""
    info, sites = lab3
    config = info.ssh_config.read_text()
    block = re.search(r"^Host a-router\n(?:[ \t].*\n?)*", config, re.M).group(0)
    alias_config = tmp_path / "ssh_config"
    alias_config.write_text(config + "\n" + block.replace("Host a-router", "Host a-router-old", 1))
    renamed = tmp_path / "sites.toml"
    renamed.write_text(sites.read_text().replace(str(info.ssh_config), str(alias_config)))
    assert str(alias_config) in renamed.read_text()
    # with its tailnet node name recorded, the control plane finds a declared router's node
    old = {"site": "a", "ssh": "a-router-old", "tailnet_node": "a-router", "prefixes": ["10.1.0.0/24"]}
    recorded = json.loads(Path(f"{sites}.applied.json").read_text())
    Path(f"{renamed}.applied.json").write_text(json.dumps({**recorded, "routers": recorded["routers"] + [old]}))
    dry = drive.pyinfra(renamed, "--dry", "--diff", "--data", "prune=true")
    assert "declared router's now: left to the routes step" in dry.stdout + dry.stderr
    result = drive.pyinfra(renamed, "--data", "prune=true")
    text = result.stdout + result.stderr
    assert result.returncode == 0 and "of a router the site file still declares" in text, text[-3000:]
    status = json.loads(drive.in_host("a-router", "tailscale", "status", "--json").stdout)
    assert status["BackendState"] == "Running"
    assert node_and_policy(sites)[0]["a-router"] == ("10.1.0.0/24",)
    assert "a-router-old" not in Path(f"{renamed}.applied.json").read_text()  # a stale entry: dropped
