"""N-site labs without booting anything: the generator, `graph`, which topology a verb acts on,
extra routes reaching the site file, the sudo operator written into a host's root."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tomllib
from itertools import combinations
from pathlib import Path

import pytest
from netaddr import IPNetwork

from lab import api, graph, roles
from lab.generate import generate
from lab.hosts import lab_hosts
from lab.sitefile import render_site_file
from lab.topology import DEFAULT_PATH, load_topology
from sites import load_sites

REPO = Path(__file__).resolve().parents[2]


def topo_file(tmp_path: Path, sites: int, layout: str = "uniform", routes: int = 0) -> Path:
    path = tmp_path / f"t{sites}{layout}{routes}.toml"
    path.write_text(generate(sites, layout, routes))
    return path


@pytest.mark.parametrize("layout", ["uniform", "mixed"])
@pytest.mark.parametrize("sites", [2, 4, 8, 12, 30])
def test_generated_topologies_are_valid_and_nothing_overlaps(tmp_path: Path, sites: int, layout: str) -> None:
    topo = load_topology(topo_file(tmp_path, sites, layout, routes=2))
    assert len(topo.sites) == sites
    prefixes = [p for s in topo.sites.values() for p in (s.subnet, *s.routes)] + [topo.wan_subnet]
    for a, b in combinations(prefixes, 2):
        assert a not in b and b not in a, (a, b)
    private = [IPNetwork("10.0.0.0/8"), IPNetwork("172.16.0.0/12"), IPNetwork("192.168.255.0/24")]
    assert all(any(p in r for r in private) for p in prefixes)  # private or documentation ranges only
    names = [h.name for h in lab_hosts(topo)]
    assert len(names) == len(set(names)) == 1 + 3 * sites
    ports = [link.switch_port for h in lab_hosts(topo) for link in h.links]
    assert len(ports) == len(set(ports)) and max(map(len, ports)) <= 15


def test_mixed_layout_covers_the_general_cases(tmp_path: Path) -> None:
    sites = list(load_topology(topo_file(tmp_path, 4, "mixed", 1)).sites.values())
    assert [s.subnet.prefixlen for s in sites] == [24, 16, 29, 27]
    assert [str(s.router) for s in sites] == ["10.1.0.2", "10.2.200.254", "10.3.0.1", "10.4.0.17"]
    assert [str(s.gateway) for s in sites] == ["10.1.0.1", "10.2.0.1", "10.3.0.6", "10.4.0.30"]
    assert all(len(s.routes) == 1 for s in sites)


def test_generator_cli_writes_toml_and_refuses_bad_counts(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "lab", "topology", "--sites", "12"], cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "t.toml").write_text(ok.stdout)
    assert list(load_topology(tmp_path / "t.toml").sites) == list("abcdefghijkl")
    for count in ("1", "201"):  # one site has nothing to join: the site file would refuse it
        bad = subprocess.run([sys.executable, "-m", "lab", "topology", "--sites", count], cwd=REPO,
                             capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stdout == ""
        assert bad.stderr.strip() == f"python -m lab topology: --sites: must be 2-200 ({count})"


def test_graph_names_every_link_and_needs_no_root(tmp_path: Path) -> None:
    path = topo_file(tmp_path, 3, "mixed", 1)
    topo = load_topology(path)
    text = graph.text(topo)
    for h in lab_hosts(topo):
        for link in h.links:
            assert f"{h.name}" in text and (link.cidr or "dhcp") in text
    assert "site b 10.2.0.0/16 (br-b); also advertises 172.16.16.0/24" in text
    dot = graph.dot(topo)
    assert dot.startswith("graph lab {") and dot.count(" -- ") == sum(len(h.links) for h in lab_hosts(topo))
    cli = subprocess.run([sys.executable, "-m", "lab", "graph", "--topology", str(path)], cwd=REPO,
                         capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout == text


def test_bad_topology_on_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(generate(2).replace('subnet = "10.2.0.0/24"', 'subnet = "10.2.0.0/30"'))
    cli = subprocess.run([sys.executable, "-m", "lab", "graph", "-t", str(path)], cwd=REPO,
                         capture_output=True, text=True)
    assert cli.returncode == 2
    assert cli.stderr == f"python -m lab: {path}: sites.b.subnet: must be a /16 to /29 (10.2.0.0/30)\n"


def test_verbs_follow_the_running_lab_unless_told(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("S2S_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.delenv(api.TOPOLOGY_ENV, raising=False)
    four = topo_file(tmp_path, 4)
    assert api.running_topology() is None
    assert api.resolve_topology().path == DEFAULT_PATH  # nothing running: the built-in lab
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "topology.toml").write_text(four.read_text())  # what `up -t four.toml` leaves
    (tmp_path / "lab" / "state.json").write_text(json.dumps({"topology": str(four)}))
    four.unlink()  # the lab remembers its own copy
    running = api.resolve_topology()
    assert running.path == four and list(running.sites) == ["a", "b", "c", "d"]
    assert api.resolve_topology(follow_running=False).path == DEFAULT_PATH  # what ensure_up() builds
    two = topo_file(tmp_path, 2)
    monkeypatch.setenv(api.TOPOLOGY_ENV, str(two))
    assert list(api.resolve_topology().sites) == ["a", "b"]
    assert api.resolve_topology(DEFAULT_PATH).path == DEFAULT_PATH  # explicit wins over the env


def test_topology_digest_ignores_the_path_but_not_the_content(tmp_path: Path) -> None:
    a = load_topology(topo_file(tmp_path, 2))
    copy = tmp_path / "copy.toml"
    copy.write_text(generate(2))
    assert api.topology_digest(a) == api.topology_digest(load_topology(copy))
    assert api.topology_digest(a) != api.topology_digest(load_topology(topo_file(tmp_path, 2, routes=1)))


def test_extra_routes_reach_the_lab_site_file(tmp_path: Path) -> None:
    topo = load_topology(topo_file(tmp_path, 3, "mixed", 2))
    out = tmp_path / "sites.toml"
    out.write_text(render_site_file(topo, ssh_config_file=None))
    model = load_sites(out)
    for name, site in topo.sites.items():
        assert model.sites[name].routes == site.routes
        assert (model.sites[name].next_hop, model.sites[name].gateway) == (site.router, site.gateway)


def test_sudo_user_is_written_once_with_key_and_nopasswd_sudo(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o640)
    for _ in range(2):
        roles.sudo_user(root, "ssh-ed25519 AAAA lab\n")
    assert (root / "etc/passwd").read_text().count("s2s:x:1000:1000:") == 1
    assert (root / "etc/shadow").read_text().splitlines()[1].startswith("s2s:*:")  # no password, not locked
    assert stat.S_IMODE((root / "etc/shadow").stat().st_mode) == 0o640
    keys = root / "home/s2s/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA lab\n" and keys.stat().st_uid == 1000
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    sudoers = root / "etc/sudoers.d/s2s"
    assert sudoers.read_text() == "s2s ALL=(ALL:ALL) NOPASSWD: ALL\n"
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440


def test_inotify_limit_is_raised_only_when_the_boot_would_run_out(tmp_path: Path, monkeypatch) -> None:
    from lab import container

    limit = tmp_path / "max_user_instances"
    monkeypatch.setattr(container, "INOTIFY_LIMIT", limit)
    monkeypatch.setattr(container, "_inotify_in_use", lambda: 75)
    limit.write_text("128\n")
    assert container.ensure_inotify_instances(2) is None and limit.read_text() == "128\n"  # 75+16+32 fits
    assert container.ensure_inotify_instances(17) == (
        "raised fs.inotify.max_user_instances 128 -> 1024 (the containers' systemds need inotify)")
    assert limit.read_text() == "1024\n"
    limit.write_text("4096\n")
    assert container.ensure_inotify_instances(200) is None and limit.read_text() == "4096\n"  # never lowered


@pytest.mark.parametrize("layout", ["uniform", "mixed"])
def test_generated_labs_validate_and_fit_the_reply_at_every_size(tmp_path: Path, layout: str) -> None:
    """`python -m lab topology --sites N` deploys as generated: its site file carries summaries =
    "auto", validates and plans with every LAN's option inside the reply (N = 2..60, and 200)."""
    from dhcp.plan import build_plan, option_budget, reply_size

    out = tmp_path / "sites.toml"
    for sites in [*range(2, 61), 200]:
        for routes in ((0, 16) if sites in (24, 50, 60) else (0,)):
            out.write_text(render_site_file(load_topology(topo_file(tmp_path, sites, layout, routes)),
                                            ssh_config_file=None))
            model = load_sites(out)
            assert model.dhcp.auto_summaries and len(model.sites) == sites
            plans = build_plan(model)
            assert max(reply_size(len(p.option_data), model.dhcp) for p in plans.values()) <= option_budget(model.dhcp)
            if sites >= 24:
                assert any(p.summaries for p in plans.values()), (sites, routes)


def test_topology_dhcp_summaries_reach_the_site_file_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(generate(3).replace('summaries = "auto"', 'summaries = ["10.0.0.0/8"]'))
    written = tomllib.loads(render_site_file(load_topology(path), ssh_config_file=None))
    assert written["dhcp"]["summaries"] == ["10.0.0.0/8"]
    path.write_text(generate(3).replace('summaries = "auto"', 'summaries = "some"'))
    with pytest.raises(ValueError, match=r'dhcp.summaries: must be "auto" or a list of IPv4 prefixes'):
        load_topology(path)
    assert "[dhcp]" not in render_site_file(load_topology(DEFAULT_PATH), ssh_config_file=None)
