"""Pure parts of the lab (no root, no programs): wiring plan, image key, generated configs."""

from __future__ import annotations

import json
from pathlib import Path

from lab import aptrepo, image, roles
from lab.hosts import lab_hosts
from lab.paths import PREFIX
from lab.topology import load_topology


def test_wiring_plan_names_fit_and_addresses_match_the_topology() -> None:
    topo = load_topology()
    hosts = lab_hosts(topo)
    assert [h.name for h in hosts] == topo.host_names()
    ports = [link.switch_port for h in hosts for link in h.links]
    assert len(set(ports)) == len(ports) and all(len(p) <= 15 and p.startswith("sl-") for p in ports)
    assert all(h.netns.startswith(f"{PREFIX}-") for h in hosts)
    by = {h.name: h for h in hosts}
    assert by["a-router"].addresses == ["192.0.2.2/24", "192.168.255.2/24"]
    assert by["a-router"].default_via == str(topo.control_address)
    assert by["control"].default_via is None and by["a-gw"].default_via is None
    assert by["a-client"].addresses == [] and not by["a-client"].container


def test_image_key_follows_the_package_list(monkeypatch) -> None:
    key = image.image_key()
    assert key == image.image_key()
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "htop"))
    assert image.image_key() != key
    assert "tailscale" not in image.PACKAGES  # routers install it from the lab repo


def test_headscale_config_uses_no_internet_derp_map() -> None:
    cfg = roles.headscale_config(load_topology())
    assert "urls: []" in cfg and "https://" not in cfg
    assert "mode: database" in cfg and "listen_addr: 0.0.0.0:8080" in cfg
    assert "server_url: http://192.168.255.10:8080" in cfg
    assert "disable_check_updates: true" in cfg and "enabled: false" in cfg  # logtail


def test_gateway_files(tmp_path: Path) -> None:
    root = tmp_path
    (root / "etc").mkdir()
    (root / "etc/group").write_text("root:x:0:\n_kea:x:105:\n")
    (root / "lib/systemd/system").mkdir(parents=True)
    for unit in ("kea-dhcp4-server.service", "kea-ctrl-agent.service"):
        (root / "lib/systemd/system" / unit).write_text("")
    host = next(h for h in lab_hosts(load_topology()) if h.name == "b-gw")
    roles.gateway(root, host, load_topology(), "pw")
    dhcp4 = json.loads((root / "etc/kea/kea-dhcp4.conf").read_text())["Dhcp4"]
    assert dhcp4["subnet4"][0]["subnet"] == "172.16.100.0/24"
    assert dhcp4["subnet4"][0]["pools"] == [{"pool": "172.16.100.100 - 172.16.100.199"}]
    agent = json.loads((root / "etc/kea/kea-ctrl-agent.conf").read_text())["Control-agent"]
    assert agent["http-host"] == "127.0.0.1" and agent["authentication"]["type"] == "basic"
    pw = root / roles.KEA_PASSWORD_PATH.lstrip("/")
    assert pw.stat().st_mode & 0o777 == 0o640 and pw.stat().st_gid == 105
    assert (root / "etc/systemd/system/multi-user.target.wants/kea-dhcp4-server.service").is_symlink()


def test_tailscaled_unit_keeps_logs_home() -> None:
    assert "--no-logs-no-support" in aptrepo.UNIT and "TS_NO_LOGS_NO_SUPPORT=true" in aptrepo.UNIT
    assert "/var/lib/tailscale" in aptrepo.UNIT
