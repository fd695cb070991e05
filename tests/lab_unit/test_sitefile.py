"""The lab's rendered site file and ssh config, read back by the real readers (sites/, paramiko)."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import paramiko
import pytest
from netaddr import IPAddress, IPNetwork

import sites
from lab.sitefile import SshEndpoint, render_site_file, render_ssh_config
from lab.topology import load_topology

TOPO = load_topology()


def full_render(tmp_path: Path, **extra: object) -> str:
    kwargs: dict = dict(
        kea_user="kea-api",
        kea_password_files={"a": str(tmp_path / "kea a.pw"), "b": str(tmp_path / "kea-b.pw")},
        headscale_api_key_file=str(tmp_path / "headscale.key"),
        auth_key_file=str(tmp_path / "auth.key"),
        headscale_local_url="http://127.0.0.1:8080",
        login_server=TOPO.headscale_url,
    )
    kwargs.update(extra)
    return render_site_file(TOPO, **kwargs)


def test_site_file_is_toml_with_every_site(tmp_path: Path) -> None:
    data = tomllib.loads(full_render(tmp_path, ssh_aliases={"a-router": "root@a-router", "a-gw": "gw-a"}))
    assert list(data["sites"]) == ["a", "b"]
    a = data["sites"]["a"]
    assert a["subnet"] == "192.0.2.0/24" and a["router"] == "192.0.2.2" and a["gateway"] == "192.0.2.1"
    assert a["ssh"] == "root@a-router"
    assert a["kea"] == {
        "url": "http://127.0.0.1:8000",
        "ssh": "gw-a",
        "user": "kea-api",
        "password_file": str(tmp_path / "kea a.pw"),
    }
    assert data["sites"]["b"]["ssh"] == "b-router"
    assert data["sites"]["b"]["kea"]["ssh"] == "b-gw"
    assert data["tailnet"] == {
        "backend": "headscale",
        "url": "http://127.0.0.1:8080",
        "ssh": "control",
        "login_server": "http://192.168.255.10:8080",
        "api_key_file": str(tmp_path / "headscale.key"),
        "auth_key_file": str(tmp_path / "auth.key"),
    }
    # Lab extensions are written only when asked for.
    assert "ssh" not in data and "tailscale" not in data


def test_lab_extensions_and_odd_characters_survive(tmp_path: Path) -> None:
    weird = str(tmp_path / 'dir "quoted" \\ ünï')
    data = tomllib.loads(
        full_render(tmp_path, apt_repo_url=TOPO.apt_url, apt_key_file=weird, ssh_config_file=weird + "/ssh_config")
    )
    assert data["tailscale"] == {"apt_repo": "http://192.168.255.10:8081", "apt_key_file": weird}  # unset: left out
    assert data["ssh"] == {"config_file": weird + "/ssh_config"}


def test_headscale_reached_directly_has_no_ssh(tmp_path: Path) -> None:
    data = tomllib.loads(full_render(tmp_path, headscale_local_url=None))
    assert data["tailnet"]["url"] == TOPO.headscale_url
    assert "ssh" not in data["tailnet"]


def test_unknown_alias_or_site_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown lab host 'c-router'"):
        render_site_file(TOPO, ssh_aliases={"c-router": "x"})
    with pytest.raises(ValueError, match="unknown site 'c'"):
        render_site_file(TOPO, kea_password_files={"c": "/x"})


def test_site_file_loads_with_the_site_model(tmp_path: Path) -> None:
    for site in ("a", "b"):
        (tmp_path / ("kea a.pw" if site == "a" else "kea-b.pw")).write_text(f"pw-{site}\n")
    (tmp_path / "headscale.key").write_text("hskey\n")
    (tmp_path / "auth.key").write_text("authkey\n")
    path = tmp_path / "sites.toml"
    path.write_text(full_render(tmp_path))
    model = sites.load_sites(path)
    assert list(model.sites) == ["a", "b"]
    a = model.sites["a"]
    assert a.subnet == IPNetwork("192.0.2.0/24")
    assert a.next_hop == IPAddress("192.0.2.2") and a.gateway == IPAddress("192.0.2.1")
    assert a.routers[0].ssh == "a-router"
    assert a.kea[0].url == "http://127.0.0.1:8000" and a.kea[0].ssh == "a-gw" and a.kea[0].user == "kea-api"
    assert a.kea[0].password() == "pw-a"
    assert model.sites["b"].kea[0].password() == "pw-b"
    assert model.tailnet.backend == "headscale"
    assert model.tailnet.login_server == "http://192.168.255.10:8080"
    assert model.tailnet.api_key() == "hskey"
    assert model.tailnet.auth_key() == "authkey"


def test_site_file_with_lab_extensions_loads_with_the_site_model(tmp_path: Path) -> None:
    path = tmp_path / "sites.toml"
    path.write_text(
        full_render(
            tmp_path,
            apt_repo_url=TOPO.apt_url,
            apt_suite="lab",
            apt_component="main",
            apt_key_file="/lab/apt key.gpg",
            ssh_config_file="/lab/ssh_config",
        )
    )
    model = sites.load_sites(path)
    assert model.tailscale.apt_repo == "http://192.168.255.10:8081"
    assert (model.tailscale.apt_suite, model.tailscale.apt_component) == ("lab", "main")
    assert model.tailscale.apt_key_file == Path("/lab/apt key.gpg")
    assert model.tailscale.apt_key_url is None  # the lab key replaces Tailscale's URL
    assert model.ssh.config_file == Path("/lab/ssh_config")


def parse_ssh(text: str) -> paramiko.SSHConfig:
    config = paramiko.SSHConfig()
    config.parse(io.StringIO(text))
    return config


def test_ssh_config_parses_to_the_intended_values() -> None:
    text = render_ssh_config(
        [
            SshEndpoint(
                "a-router",
                "127.0.0.1",
                2200,
                "vagrant",
                "/home/u/my vms/.vagrant/private_key",
                None,
                "/lab/known_hosts",
            ),
            SshEndpoint(
                "b-gw",
                "172.16.100.1",
                proxy_command="ip netns exec s2s-b-gw socat STDIO TCP:%h:%p",
            ),
        ]
    )
    config = parse_ssh(text)
    assert set(config.get_hostnames()) >= {"a-router", "b-gw"}
    a = config.lookup("a-router")
    assert a["hostname"] == "127.0.0.1"
    assert a["port"] == "2200"
    assert a["user"] == "vagrant"
    assert a["identityfile"] == ["/home/u/my vms/.vagrant/private_key"]
    assert a["identitiesonly"] == "yes"
    assert a["userknownhostsfile"] == "/lab/known_hosts"
    assert a["stricthostkeychecking"] == "accept-new"
    assert "proxycommand" not in a
    b = config.lookup("b-gw")
    assert b["hostname"] == "172.16.100.1" and b["port"] == "22" and b["user"] == "root"
    assert b["proxycommand"] == "ip netns exec s2s-b-gw socat STDIO TCP:172.16.100.1:22"
    assert "identityfile" not in b and "userknownhostsfile" not in b
    # An alias not in the file stays unconfigured (no catch-all block leaks settings).
    assert config.lookup("other").get("user") is None


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (SshEndpoint("a b", "h"), "bad host alias"),
        (SshEndpoint("*", "h"), "bad host alias"),
        (SshEndpoint("a", "h", port=0), "bad port"),
        (SshEndpoint("a", "h", identity_file='/x/"y"'), "unusable value"),
        (SshEndpoint("a", "h", identity_file="/x/%d"), "'%' not supported"),
        (SshEndpoint("a", "h", proxy_command="nc h\n22"), "unusable value"),
    ],
)
def test_ssh_config_refuses_what_it_cannot_express(endpoint: SshEndpoint, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_ssh_config([endpoint])


def test_duplicate_alias_refused() -> None:
    with pytest.raises(ValueError, match="duplicate host alias 'a'"):
        render_ssh_config([SshEndpoint("a", "h"), SshEndpoint("a", "h2")])
