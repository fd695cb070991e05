"""Routes the user already serves with option 121/249 are kept, against real Kea 2.2/2.6/3.0.

The user's option is written the way that Kea release lets a person write it: by
name ("prefix - router", Kea >= 2.5.5) on 2.6/3.0, hex on 2.2. Ground truth: the
kernel routes dhclient installed, config-get from kea-dhcp4's own socket, and the
commands kea-dhcp4 logged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dhcp.kea.keep import option_routes
from dhcp.kea.options import KEPT_KEY, MANAGED_BY, SubnetIndex, is_route_option
from dhcp.rfc3442 import encode
from tests.kea.conftest import ROUTERS, write_site_file
from tests.kea.harness import SITE_A, SITE_B, KeaInstance, version_tuple
from tests.kea.test_push_integration import cli

pytestmark = pytest.mark.integration


def user_121(instance: KeaInstance, routes: list[tuple[str, str]]) -> dict[str, Any]:
    """A hand-made option 121 as a person writes it on this release."""
    if version_tuple(instance.release) >= (2, 6):
        return {"name": "classless-static-route",
                "data": ", ".join(f"{net} - {hop}" for net, hop in routes)}
    return {"code": 121, "space": "dhcp4", "csv-format": False, "data": encode(routes).hex()}


def with_user_routes(where: str, routes: list[tuple[str, str]]) -> Callable[[KeaInstance], dict]:
    def build(instance: KeaInstance) -> dict[str, Any]:
        config = instance.default_config()
        dhcp4 = config["Dhcp4"]
        option = user_121(instance, routes)
        if where == "subnet":
            dhcp4["subnet4"][0]["option-data"].append(option)
        elif where == "global":
            dhcp4["option-data"].append(option)
        elif where == "pool":
            dhcp4["subnet4"][0]["pools"][0]["option-data"] = [option]
        return config
    return build


def route_options(options: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {o["code"]: o for o in options if is_route_option(o)}


@pytest.fixture
def site_pair(kea_factory, tmp_path):
    def make(where: str, routes: list[tuple[str, str]]) -> tuple[KeaInstance, KeaInstance, Path]:
        a = kea_factory(**SITE_A, make_config=with_user_routes(where, routes))
        b = kea_factory(**SITE_B)
        return a, b, write_site_file(tmp_path / "sites.toml", {"a": a, "b": b})
    return make


USER = [("10.99.0.0/16", "192.0.2.9"), ("198.51.100.0/24", "192.0.2.10")]


def test_subnet_routes_kept_merged_and_stable(site_pair):
    a, b, site_file = site_pair("subnet", USER)
    dry = cli("dhcp", "push", "--dry-run", "--sites", str(site_file))
    assert dry.returncode == 0, dry.stderr
    assert "keeping 10.99.0.0/16 via 192.0.2.9 (subnet4 option 121)" in dry.stdout
    assert f'"{KEPT_KEY}"' in dry.stdout  # the diff shows the record

    first = cli("dhcp", "push", "--sites", str(site_file))
    assert first.returncode == 0, first.stderr
    assert "keeping 198.51.100.0/24 via 192.0.2.10" in first.stdout
    options = route_options(SubnetIndex(a.running_config()).find(a.subnet)["option-data"])
    assert set(options) == {121, 249}
    assert options[121]["user-context"] == {"managed-by": MANAGED_BY,
                                            KEPT_KEY: [f"{n} - {h}" for n, h in USER]}
    carried = {(str(n), str(h)) for n, h in option_routes(options[121])}
    assert set(USER) <= carried and ("100.64.0.0/10", ROUTERS["a"]) in carried
    routes = a.dhclient()
    for net, hop in USER:  # the user's routes still reach the client, next to ours
        assert f"{net} via {hop} " in routes, routes
    assert f"100.64.0.0/10 via {ROUTERS['a']} " in routes and "default via 192.0.2.1 " in routes

    logged = len(a.received_commands())
    again = cli("dhcp", "push", "--sites", str(site_file))  # config-get round trip compares equal
    assert again.returncode == 0, again.stderr
    assert "no change" in again.stdout and "updated" not in again.stdout
    assert a.received_commands()[logged:] == ["config-get"]

    a.restart_dhcp4()  # from the written file, the record is there too
    third = cli("dhcp", "push", "--sites", str(site_file))
    assert third.returncode == 0 and "updated" not in third.stdout, third.stdout


def test_a_changed_plan_keeps_the_kept_routes(site_pair, tmp_path):
    a, b, site_file = site_pair("subnet", USER)
    assert cli("dhcp", "push", "--sites", str(site_file)).returncode == 0
    site_file.write_text(site_file.read_text() + '\n[sites.c]\nsubnet = "172.31.0.0/24"\n'
                         'router = "172.31.0.2"\n')
    second = cli("dhcp", "push", "--sites", str(site_file))
    assert second.returncode == 0, second.stderr
    options = route_options(SubnetIndex(a.running_config()).find(a.subnet)["option-data"])
    carried = {(str(n), str(h)) for n, h in option_routes(options[121])}
    assert set(USER) <= carried and ("172.31.0.0/24", ROUTERS["a"]) in carried


def test_global_routes_are_carried_into_the_subnet(site_pair):
    a, b, site_file = site_pair("global", USER)
    before = a.running_config()["Dhcp4"]["option-data"]
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    assert "keeping 10.99.0.0/16 via 192.0.2.9 (global option 121)" in result.stdout
    assert a.running_config()["Dhcp4"]["option-data"] == before  # the global scope is not ours
    options = route_options(SubnetIndex(a.running_config()).find(a.subnet)["option-data"])
    assert KEPT_KEY not in options[121]["user-context"]  # read again on every push
    routes = a.dhclient()
    assert "10.99.0.0/16 via 192.0.2.9 " in routes and f"100.64.0.0/10 via {ROUTERS['a']} " in routes
    again = cli("dhcp", "push", "--sites", str(site_file))
    assert "updated" not in again.stdout, again.stdout


def test_pool_with_its_own_routes_gets_the_plan_too(site_pair):
    a, b, site_file = site_pair("pool", USER)
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    pool = SubnetIndex(a.running_config()).find(a.subnet)["pools"][0]
    options = route_options(pool["option-data"])
    assert options[121]["user-context"][KEPT_KEY] == [f"{n} - {h}" for n, h in USER]
    routes = a.dhclient()  # the client's address is from that pool
    assert "10.99.0.0/16 via 192.0.2.9 " in routes and f"100.64.0.0/10 via {ROUTERS['a']} " in routes
    again = cli("dhcp", "push", "--sites", str(site_file))
    assert "updated" not in again.stdout, again.stdout


def test_conflicting_next_hop_is_one_line_and_nothing_changes(site_pair):
    a, b, site_file = site_pair("subnet", [("172.16.100.0/24", "192.0.2.77")])  # site b's LAN
    before = a.running_config()
    logged = len(a.received_commands())
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 1
    line, = [ln for ln in result.stderr.splitlines() if "conflicts" in ln]
    assert f"172.16.100.0/24 via {ROUTERS['a']} (the plan)" in line
    assert "172.16.100.0/24 via 192.0.2.77 (subnet4 option 121)" in line
    assert "nothing was changed" in line
    assert a.received_commands()[logged:] == ["config-get"]
    assert a.running_config() == before
