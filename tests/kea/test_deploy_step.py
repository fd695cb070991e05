"""The deploy's Kea step (steps/kea_push.py: routes_pushed) against real Kea 2.2, 2.6, 3.0.

pyinfra's context is set up by hand (as pyinfra's own operation tests do): the
operation's planning reads the running config (config-get only) and yields the
change as a FunctionCommand, which is then run like pyinfra's execution phase
would. A second planning is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host, ctx_state

from dhcp.kea.options import SubnetIndex
from dhcp.plan import build_plan
from sites import load_sites
from steps import kea_push as kea_step
from tests.kea.conftest import ROUTERS, write_site_file
from tests.kea.harness import SITE_A, SITE_B

pytestmark = pytest.mark.integration


class Host(SimpleNamespace):
    """The bits of pyinfra's Host the step uses."""

    def __init__(self) -> None:
        super().__init__(name="coordinator", print_prefix="[coordinator] ", noops=[], logs=[],
                         in_op=True, in_callback_op=False, current_op_global_arguments=None,
                         current_op_hash=None, current_deploy_name=None, current_deploy_kwargs=None,
                         current_deploy_data=None, data={})

    def noop(self, text: str) -> None:
        self.noops.append(text)

    def log(self, text: str, log_func=None) -> None:
        self.logs.append(text)

    def log_styled(self, text: str, log_func=None, **_: object) -> None:
        self.logs.append(text)


class Inventory:
    def __init__(self, host: Host) -> None:
        self.hosts = [host]

    def get_group(self, name: str, default=None):
        return default

    def __iter__(self):
        return iter(self.hosts)


def plan_step(host: Host, model, plans) -> list:
    state = SimpleNamespace(config=SimpleNamespace(DIFF=True), inventory=Inventory(host),
                            is_executing=False, in_op=True, in_deploy=True, failed_hosts=set(),
                            should_check_for_changes=lambda: True)
    host.state = state  # pyinfra's Host carries its run's state
    with ctx_state.use(state), ctx_host.use(host):
        return list(kea_step.routes_pushed._inner(model=model, plans=plans)), state


def test_routes_pushed_changes_then_noops(kea_factory, tmp_path):
    keas = {"a": kea_factory(**SITE_A), "b": kea_factory(**SITE_B)}
    model = load_sites(write_site_file(tmp_path / "sites.toml", keas))
    plans = [p for p in build_plan(model).values() if p.push_needed]
    host = Host()
    commands, state = plan_step(host, model, plans)
    assert len(commands) == 2 and all(isinstance(c, FunctionCommand) for c in commands)
    assert any("Will change" in line for line in host.logs)
    for kea in keas.values():  # planning only read
        assert not any(o.get("code") == 121 for o in SubnetIndex(kea.running_config()).find(kea.subnet)["option-data"])
    for command in commands:  # pyinfra's execution phase
        assert command.function(state, host, *command.args, **command.kwargs) is True
    for name, kea in keas.items():
        assert f"100.64.0.0/10 via {ROUTERS[name]} " in kea.dhclient()
    again, _ = plan_step(host, model, plans)
    assert again == [] and sum("already as planned" in n for n in host.noops) == 2


def test_routes_pushed_brings_an_ha_pair_to_the_same_data(kea_factory, tmp_path):
    from tests.kea.test_ha_pair import ha_config, route_data, site_file, wait_ha

    def user_route_on_a2(dhcp4):
        dhcp4["subnet4"][0]["option-data"].append(
            {"code": 121, "space": "dhcp4", "csv-format": False, "data": "100A63C0000209"})

    a1 = kea_factory(**{**SITE_A, "tag": "a1"}, make_config=ha_config("a1"))
    a2 = kea_factory(**{**SITE_A, "tag": "a2", "gateway": SITE_A["gateway"] + 2},
                     make_config=ha_config("a2", user_route_on_a2), lan=a1)
    wait_ha([a1, a2])
    model = load_sites(site_file(tmp_path / "sites.toml", [a1, a2]))
    plans = [p for p in build_plan(model).values() if p.push_needed]
    host = Host()
    commands, state = plan_step(host, model, plans)
    assert len(commands) == 2  # each server of the pair (both by URL: from the coordinator)
    for command in commands:
        assert command.function(state, host, *command.args, **command.kwargs) is True
    assert route_data(a1) == route_data(a2)
    assert any("differs from its HA partner" in line for line in host.logs)
    again, _ = plan_step(host, model, plans)
    assert again == []


def test_a_site_whose_router_failed_this_run_gets_no_routes_the_other_does(kea_factory: Callable,
                                                                           tmp_path: Path) -> None:
    """Routes handed out through a router that is not on the tailnet blackhole the clients' traffic
    to the other sites: the push holds back a site whose router failed earlier in the same run."""
    keas = {"a": kea_factory(**SITE_A), "b": kea_factory(**SITE_B)}
    model = load_sites(write_site_file(tmp_path / "sites.toml", keas))
    plans = [p for p in build_plan(model).values() if p.push_needed]
    host = Host()
    commands, state = plan_step(host, model, plans)
    assert len(commands) == 2
    state.failed_hosts = [SimpleNamespace(name=ROUTERS["a"])]  # site a's router failed its join
    for command in commands:  # pyinfra's execution phase
        assert command.function(state, host, *command.args, **command.kwargs) is True
    held = [line for line in host.logs if "routes not pushed" in line]
    assert len(held) == 1 and "site a" in held[0], host.logs
    assert f"router {ROUTERS['a']} failed" in held[0]
    assert f"100.64.0.0/10 via {ROUTERS['a']} " not in keas["a"].dhclient()
    assert not any(o.get("code") == 121 for o in
                   SubnetIndex(keas["a"].running_config()).find(keas["a"].subnet)["option-data"])
    assert f"100.64.0.0/10 via {ROUTERS['b']} " in keas["b"].dhclient()
    state.failed_hosts = set()  # the next clean run pushes site a
    again, state = plan_step(host, model, plans)
    assert len(again) == 1
    assert again[0].function(state, host, *again[0].args, **again[0].kwargs) is True
    assert f"100.64.0.0/10 via {ROUTERS['a']} " in keas["a"].dhclient()
