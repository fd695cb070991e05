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
    planned = (loaded, build_plan(loaded))
    monkeypatch.setattr(inputs, "_load", lambda: planned)
    return loaded


def host(name, **data):
    """A pyinfra host as the deploy sees it: its roles are the data inventory.py attached."""
    return SimpleNamespace(name=name, data=SimpleNamespace(get=lambda key, default=None: data.get(key, default)))


def inventory_hosts(model) -> dict:
    """The hosts inventory.py builds for `model`, by name, with their role data."""
    import importlib
    import sys

    sys.modules.pop("inventory", None)
    inv = importlib.import_module("inventory")
    hosts: dict = {}
    for group in ("routers", "kea_servers", "policy_hosts", "control_hosts"):
        for name, data in getattr(inv, group):
            hosts.setdefault(name, {}).update(data)
    return {name: host(name, **data) for name, data in hosts.items()}


def names(plans):
    return [p.site.name for p in plans]


def test_kea_reached_through_ssh_is_pushed_from_that_host(model):
    hosts = inventory_hosts(model)
    assert names(inputs.kea_plans(hosts["a-gw"])) == ["a"]
    assert names(inputs.kea_hosts_plans(hosts["a-gw"])) == ["a"]


def test_kea_reached_by_url_is_pushed_once_from_the_coordinator(model):
    hosts = inventory_hosts(model)
    assert names(inputs.kea_plans(hosts["a-router"], coordinator=True)) == ["b"]
    assert inputs.kea_plans(hosts["b-router"], coordinator=False) == []
    assert inputs.kea_hosts_plans(hosts["a-router"]) == []  # no config file of ours to fix there


def test_site_whose_router_is_its_gateway_needs_no_push(model):
    assert inputs.kea_plans(inventory_hosts(model)["c-gw"]) == []


def test_router_site_by_ssh_host(model):
    hosts = inventory_hosts(model)
    assert inputs.router_site(model, hosts["b-router"]).name == "b"
    assert inputs.router_site(model, hosts["a-gw"]) is None


def test_roles_come_from_host_data_not_names(model):
    """A host's role is what inventory.py attached; a host named like a router but without
    the data is not one (the deploy re-derives nothing from names)."""
    assert inputs.router_site(model, host("b-router")) is None
    assert inputs.router_site(model, host("anything", site="b")).name == "b"
    assert inputs.kea_plans(host("a-gw")) == []


def test_one_host_with_several_roles_keeps_them_all(tmp_path, monkeypatch):
    """The router that also runs its site's Kea, the control host, a port in the target:
    one inventory host, all roles, pyinfra connects to the host with the port."""
    text = SITES.replace('ssh = "c-router"', 'ssh = "admin@c-gw:2222"').replace(
        '[sites.c]', '[tailnet]\nurl = "http://127.0.0.1:8080"\napi_key_env = "K"\nssh = "c-gw:2222"\n[sites.c]')
    path = tmp_path / "sites.toml"
    path.write_text(text)
    loaded = load_sites(path)
    monkeypatch.setattr(inputs, "_load", lambda: (loaded, build_plan(loaded)))
    hosts = inventory_hosts(loaded)
    c = hosts["c-gw:2222"]
    assert inputs.router_site(loaded, c).name == "c" and inputs.is_control_host(c)
    assert c.data.get("ssh_hostname") == "c-gw" and c.data.get("ssh_port") == 2222
    assert c.data.get("ssh_user") == "admin"


def pyinfra_errors(tmp_path, text: str) -> list[str]:
    """Run the deploy on a site file; it must stop with exit 2 before connecting to anything."""
    import subprocess

    from lab.drive import PYINFRA, REPO

    path = tmp_path / "sites.toml"
    path.write_text(text)
    result = subprocess.run([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=REPO, capture_output=True,
                            text=True, env={"SITES": str(path), "PATH": "/usr/bin:/bin"}, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Traceback" not in output
    assert "Connecting" not in output
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_pyinfra_deploy_with_a_bad_site_file_is_one_line_and_exit_2(tmp_path):
    """Validation happens in inventory.py, before pyinfra connects to anything."""
    errors = pyinfra_errors(tmp_path, SITES.replace('router = "192.0.2.2"', 'router = "192.0.3.2"'))
    assert errors == [f"error: {tmp_path / 'sites.toml'}: sites.a.router: outside the site's subnet "
                      f"192.0.2.0/24 (got '192.0.3.2')"]


def test_pyinfra_deploy_with_routes_that_do_not_fit_stops_before_connecting(tmp_path):
    many = "".join(f'[sites.s{i}]\nsubnet = "10.0.{2 * i}.0/24"\nrouter = "10.0.{2 * i}.2"\n'
                   f'gateway = "10.0.{2 * i}.1"\n' for i in range(40))
    errors = pyinfra_errors(tmp_path, SITES + many)
    assert len(errors) == 1 and "make a" in errors[0] and "summaries" in errors[0]


def _with_kea_ha_pair(tmp_path):
    """SITES with site a's Kea an HA pair: one server on a-gw1, its partner on a-gw2."""
    path = tmp_path / "sites.toml"
    path.write_text(SITES.replace('kea = { url = "http://127.0.0.1:8000", ssh = "root@a-gw" }\n', '''
[[sites.a.kea]]
url = "http://127.0.0.1:8000"
ssh = "root@a-gw1"
[[sites.a.kea]]
url = "http://127.0.0.1:8000"
ssh = "root@a-gw2"
''').replace("[sites.b]", "\n[sites.b]"))
    return load_sites(path)


def test_each_server_of_an_ha_pair_is_pushed_from_its_own_host(tmp_path, monkeypatch):
    loaded = _with_kea_ha_pair(tmp_path)
    monkeypatch.setattr(inputs, "_load", lambda: (loaded, build_plan(loaded)))
    hosts = inventory_hosts(loaded)
    for gw in ("a-gw1", "a-gw2"):
        assert names(inputs.kea_plans(hosts[gw])) == ["a"]
        assert names(inputs.kea_hosts_plans(hosts[gw])) == ["a"]
    first, second = loaded.sites["a"].kea
    assert inputs.kea_here(first, hosts["a-gw1"]) and not inputs.kea_here(second, hosts["a-gw1"])


def test_the_kea_step_pushes_only_the_servers_reached_from_its_host(tmp_path, monkeypatch):
    """steps/kea_push.py on one gateway of an HA pair: its own server only (the partner is
    pushed from the partner's host), through this host's SSH connection."""
    from contextlib import ExitStack

    from steps import kea_push as kea_step

    loaded = _with_kea_ha_pair(tmp_path)
    plans = build_plan(loaded)
    monkeypatch.setattr(inputs, "_load", lambda: (loaded, plans))
    handed: list = []

    def factory(ssh, stack, transports):
        handed.append(transports)
        return lambda endpoint: SimpleNamespace(endpoint=endpoint)

    monkeypatch.setattr(kea_step, "tunnelled_factory", factory)
    monkeypatch.setattr(kea_step, "is_coordinator", lambda inventory, host: False)
    gw2 = inventory_hosts(loaded)["a-gw2"]
    gw2.connector = SimpleNamespace(client=None)
    with ExitStack() as stack:
        pushes = [kea_step._connect(gw2, loaded, endpoint, grouped, stack)
                  for endpoint, grouped in kea_step._servers(gw2, inputs.kea_plans(gw2), inventory=None)]
    assert [p.endpoint.ssh for p in pushes] == ["root@a-gw2"]
    assert list(handed[0]) == ["root@a-gw2"]
