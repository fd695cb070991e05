"""Which host carries which deploy step, from the site model (pure, no pyinfra run)."""

from types import SimpleNamespace

import pytest

from dhcp.plan import build_plan
from sites import load_sites
from steps import inputs

SITES = """
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
ssh = "a-router"
kea = { url = "http://127.0.0.1:8000", ssh = "root@a-gw" }
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
gateway = "172.16.100.1"
ssh = "b-router"
kea = { url = "https://kea-b.example.net:8000" }
[sites.c]
subnet = "198.51.100.0/24"
router = "198.51.100.1"
ssh = "c-router"
kea = { url = "http://127.0.0.1:8000", ssh = "c-gw" }
"""


@pytest.fixture
def model(tmp_path, monkeypatch):
    path = tmp_path / "sites.toml"
    path.write_text(SITES)
    loaded = load_sites(path)
    monkeypatch.setattr(inputs, "_load", lambda: (loaded, build_plan(loaded)))
    return loaded


def host(name):
    return SimpleNamespace(name=name)


def names(plans):
    return [p.site.name for p in plans]


def test_kea_reached_through_ssh_is_pushed_from_that_host(model):
    assert names(inputs.kea_plans(model, host("a-gw"))) == ["a"]
    assert names(inputs.kea_hosts_plans(model, host("a-gw"))) == ["a"]


def test_kea_reached_by_url_is_pushed_once_from_the_coordinator(model):
    assert names(inputs.kea_plans(model, host("a-router"), coordinator=True)) == ["b"]
    assert inputs.kea_plans(model, host("b-router"), coordinator=False) == []
    assert inputs.kea_hosts_plans(model, host("a-router")) == []  # no config file of ours to fix there


def test_site_whose_router_is_its_gateway_needs_no_push(model):
    assert inputs.kea_plans(model, host("c-gw")) == []


def test_router_site_by_ssh_host(model):
    assert inputs.router_site(model, host("b-router")).name == "b"
    assert inputs.router_site(model, host("a-gw")) is None


def test_pyinfra_deploy_with_a_bad_site_file_is_one_line_and_exit_2(tmp_path):
    """Validation happens in inventory.py, before pyinfra connects to anything."""
    import subprocess

    from lab.drive import PYINFRA, REPO

    bad = tmp_path / "sites.toml"
    bad.write_text(SITES.replace('router = "192.0.2.2"', 'router = "192.0.3.2"'))
    result = subprocess.run([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=REPO, capture_output=True,
                            text=True, env={"SITES": str(bad), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: sites.a.router: outside the site's subnet 192.0.2.0/24 (got '192.0.3.2')"]
    assert "Traceback" not in result.stdout + result.stderr
    assert "Connecting" not in result.stdout + result.stderr


def test_prompt_commands_sets_tcp_nodelay_on_a_direct_ssh_socket():
    import socket

    with socket.socket() as sock:
        transport = SimpleNamespace(sock=sock)
        direct = SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))
        assert inputs.prompt_commands(direct)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    proxied = SimpleNamespace(connector=SimpleNamespace(
        client=SimpleNamespace(get_transport=lambda: SimpleNamespace(sock=object()))))
    assert not inputs.prompt_commands(proxied)
    assert not inputs.prompt_commands(SimpleNamespace(connector=SimpleNamespace()))  # @local, @docker ...
