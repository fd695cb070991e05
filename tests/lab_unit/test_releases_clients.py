"""Per-site Debian releases (router, gateway -> Kea version) and DHCP client kinds in the lab:
topology validation, the hosts they make, each Kea release's gateway config, client roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import image, roles
from lab.hosts import lab_hosts
from lab.topology import TopologyError, load_topology
from tests.lab_unit.two_sites import two_site_topology


def topo(tmp_path: Path, extra: str = ""):
    path = tmp_path / "t.toml"
    path.write_text(two_site_topology(extra))
    return load_topology(path)


def test_defaults_are_todays_lab(tmp_path: Path) -> None:
    t = topo(tmp_path)
    a = t.sites["a"]
    assert (a.router_release, a.gw_release, a.kea_version, a.dhcp_clients) == (
        "bookworm",
        "bookworm",
        "2.2",
        ("dhclient",),
    )
    assert a.client_hosts == [("a-client", "dhclient")]
    assert t.host_names() == ["control", "a-gw", "a-router", "a-client", "b-gw", "b-router", "b-client"]
    by = {h.name: h for h in lab_hosts(t)}
    assert not by["a-client"].container and by["a-client"].dhcp_client == "dhclient"
    assert {h.release for h in by.values()} == {"bookworm"}


def test_releases_and_client_kinds_make_hosts(tmp_path: Path) -> None:
    t = topo(
        tmp_path, 'gw_release = "sid"\nrouter_release = "trixie"\ndhcp_client = ["dhclient", "networkd", "dhcpcd"]'
    )
    a = t.sites["a"]
    assert a.kea_version == "3.0"
    assert a.client_hosts == [("a-client", "dhclient"), ("a-client2", "networkd"), ("a-client3", "dhcpcd")]
    by = {h.name: h for h in lab_hosts(t)}
    assert by["a-gw"].release == "sid" and by["a-router"].release == "trixie"
    assert by["b-gw"].release == "bookworm"
    assert [by[n].container for n in ("a-client", "a-client2", "a-client3")] == [False, True, True]
    ports = [link.switch_port for h in by.values() for link in h.links]
    assert len(set(ports)) == len(ports) and all(len(p) <= 15 for p in ports)
    assert t.host_names()[4:6] == ["a-client2", "a-client3"]
    assert topo(tmp_path, 'dhcp_client = "dhcpcd"').sites["a"].client_hosts == [("a-client", "dhcpcd")]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ('gw_release = "buster"', "sites.a.gw_release: must be one of bookworm, trixie, sid (buster)"),
        ('router_release = "sid"', "sites.a.router_release: must be one of bookworm, trixie (sid)"),
        ('dhcp_client = "udhcpc"',
         "sites.a.dhcp_client: must be one of dhclient, networkd, dhcpcd, networkmanager (udhcpc)"),
        ('dhcp_client = []', "sites.a.dhcp_client: must be a client kind or a list of 1-9 of them ([])"),
        ('dhcp_client = 3', "sites.a.dhcp_client: must be a client kind or a list of 1-9 of them (3)"),
        ('kea_release = "3.0"', "sites.a.kea_release: unknown key (3.0)"),
    ],
)
def test_bad_release_or_client_is_one_line(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(TopologyError) as err:
        topo(tmp_path, extra)
    assert str(err.value) == f"{tmp_path / 't.toml'}: {expected}"


@pytest.mark.parametrize(
    "version, key", [("2.2", "control-socket"), ("2.6", "control-socket"), ("3.0", "control-sockets")]
)
def test_gateway_config_per_kea_release(tmp_path: Path, version: str, key: str) -> None:
    site = topo(tmp_path).sites["a"]
    dhcp4 = roles.dhcp4_config(site, version)["Dhcp4"]
    other = {"control-socket", "control-sockets"} - {key}
    assert key in dhcp4 and not other & set(dhcp4)
    sock = dhcp4[key][0] if isinstance(dhcp4[key], list) else dhcp4[key]
    assert sock == {"socket-type": "unix", "socket-name": "/run/kea/kea4-ctrl-socket"}
    agent = roles.ctrl_agent_config()["Control-agent"]
    assert agent["control-sockets"]["dhcp4"]["socket-name"] == sock["socket-name"]
    assert dhcp4["renew-timer"] < dhcp4["rebind-timer"] < dhcp4["valid-lifetime"]


def test_gateway_on_sid_writes_kea_3_config(tmp_path: Path) -> None:
    t = topo(tmp_path, 'gw_release = "sid"')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\n_kea:x:105:\n")
    host = next(h for h in lab_hosts(t) if h.name == "a-gw")
    roles.gateway(root, host, t, "pw")
    dhcp4 = json.loads((root / "etc/kea/kea-dhcp4.conf").read_text())["Dhcp4"]
    assert "control-sockets" in dhcp4 and "control-socket" not in dhcp4


@pytest.mark.parametrize(
    "kind, files, unit",
    [
        ("networkd", ["etc/systemd/network/20-lab-eth0.network"], "systemd-networkd.service"),
        ("dhcpcd", ["etc/dhcpcd.conf", "etc/systemd/system/lab-dhcpcd.service"], "lab-dhcpcd.service"),
        ("networkmanager", [roles.NM_CONNECTION, "etc/NetworkManager/conf.d/lab.conf"], "NetworkManager.service"),
    ],
)
def test_client_roles(tmp_path: Path, kind: str, files: list[str], unit: str) -> None:
    t = topo(tmp_path, f'dhcp_client = "{kind}"')
    root = tmp_path / "root"
    host = next(h for h in lab_hosts(t) if h.name == "a-client")
    roles.client(root, host)
    assert all((root / f).is_file() for f in files)
    assert (root / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()
    if kind == "networkd":
        assert "DHCP=ipv4" in (root / files[0]).read_text()
    elif kind == "networkmanager":
        text = (root / files[0]).read_text()
        assert "[ipv4]\nmethod=auto" in text and "[ipv6]\nmethod=disabled" in text  # an IPv4-only LAN
        assert (root / files[0]).stat().st_mode & 0o777 == 0o600  # NetworkManager ignores a readable keyfile
    else:
        assert "classless_static_routes" in (root / files[0]).read_text()


def test_image_per_suite() -> None:
    keys = {s: image.image_key(s) for s in image.SUITES}
    assert len(set(keys.values())) == 3
    assert image.image_root("sid").name == f"image-sid-{keys['sid']}"
    assert "isc-dhcp-client" not in image.packages("sid")  # sid no longer ships it
    assert "dhcpcd-base" in image.packages("trixie") and "kea-ctrl-agent" in image.packages("sid")


def test_host_mirror_is_read_from_apt_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("S2S_DEBIAN_MIRROR", raising=False)
    one = tmp_path / "a.list"
    one.write_text(
        "deb http://mirror.invalid/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.invalid/debian bookworm main\n"
    )
    assert image.host_mirror((one,)) == "http://mirror.invalid/debian"
    deb822 = tmp_path / "b.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://m2.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://m2.invalid/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert image.host_mirror((tmp_path / "missing.list", deb822)) == "http://m2.invalid/debian"
    monkeypatch.setenv("S2S_DEBIAN_MIRROR", "http://override.invalid/debian")
    assert image.host_mirror((one,)) == "http://override.invalid/debian"
