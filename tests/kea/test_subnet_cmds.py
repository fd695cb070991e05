"""Kea >= 3.0 with the subnet_cmds hook: the push edits one subnet with subnet4-delta-add.

Debian's 3.0 ships libdhcp_subnet_cmds.so; 2.2/2.6 do not (the hook was premium
before 2.7.7), so those releases always take config-set (test_push_integration.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from dhcp.kea.options import SubnetIndex, is_route_option
from tests.kea.conftest import ROUTERS, TARGETS, write_site_file
from tests.kea.harness import SITE_A, SITE_B, KeaInstance
from tests.kea.roots import BY_NAME
from tests.kea.test_push_integration import cli, without_route_options

pytestmark = pytest.mark.integration
HOOK = "libdhcp_subnet_cmds.so"


@pytest.fixture(params=[t for t in TARGETS if t[0] >= "3.0"],
                ids=lambda t: f"kea{t[0]}" + ("-direct" if t[1] == "direct" else ""))
def kea_target(request):
    """Only the releases whose Debian package ships the hook (overrides conftest's)."""
    name, api = request.param
    return BY_NAME[name], api


@pytest.fixture
def with_hook(kea_factory, tmp_path):
    a = kea_factory(**SITE_A, hooks=(HOOK,))
    b = kea_factory(**SITE_B)
    return a, b, write_site_file(tmp_path / "sites.toml", {"a": a, "b": b})


def test_one_subnet_changes_with_subnet4_delta_add(with_hook):
    a, b, site_file = with_hook
    before = a.running_config()
    logged = len(a.received_commands())
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    assert f"Kea at {a.url.rstrip('/')}: changed with subnet4-delta-add" in result.stdout
    assert f"Kea at {b.url.rstrip('/')}: changed with config-set" in result.stdout  # no hook on b
    sent = a.received_commands()[logged:]
    assert "subnet4-delta-add" in sent and "config-set" not in sent and "config-test" not in sent
    assert sent[-2:] == ["config-write", "config-get"]
    assert without_route_options(a.running_config(), a) == without_route_options(before, a)
    assert f"100.64.0.0/10 via {ROUTERS['a']} " in a.dhclient()
    a.restart_dhcp4()  # persisted by config-write
    assert any(o.get("code") == 121 for o in SubnetIndex(a.running_config()).find(a.subnet)["option-data"])
    again = cli("dhcp", "push", "--sites", str(site_file))
    assert again.returncode == 0 and "updated" not in again.stdout


def test_a_pool_change_too_falls_back_to_config_set(kea_factory, tmp_path):
    def pool_routes(instance: KeaInstance) -> dict[str, Any]:
        config = instance.default_config()
        config["Dhcp4"]["subnet4"][0]["pools"][0]["option-data"] = [
            {"name": "classless-static-route", "data": "10.99.0.0/16 - 192.0.2.9"}]
        return config

    a = kea_factory(**SITE_A, hooks=(HOOK,), make_config=pool_routes)
    site_file = write_site_file(tmp_path / "sites.toml", {"a": a}, extra=(
        '\n[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n'))
    logged = len(a.received_commands())
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    assert "changed with config-set" in result.stdout
    sent = a.received_commands()[logged:]
    assert "config-set" in sent and "subnet4-delta-add" not in sent
    pool = SubnetIndex(a.running_config()).find(a.subnet)["pools"][0]
    assert any(is_route_option(o) for o in pool["option-data"])
