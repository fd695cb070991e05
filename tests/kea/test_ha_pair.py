"""A site served by a Kea High Availability pair (hot-standby): two real kea-dhcp4 with the HA
hook (libdhcp_ha.so + libdhcp_lease_cmds.so) in two namespaces on one LAN bridge.

The partners talk HA over the LAN (each its own dedicated HA listener); the push
reaches each through its own Control Agent (or 3.0's HTTP socket). Asserted: both
end with the same option data, a partner that differed is reported, and a failure
on the second server names exactly what is changed where.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dhcp.kea.keep import option_routes
from dhcp.kea.options import SubnetIndex, is_route_option
from tests.kea.conftest import ROUTERS
from tests.kea.harness import HOOKS_DIR, SITE_A, KeaInstance, unix_command
from tests.kea.test_push_integration import cli

pytestmark = pytest.mark.integration
HA_PORT = 8005
PEERS = {"a1": "192.0.2.1", "a2": "192.0.2.3"}


def ha_config(name: str, extra: Callable[[dict[str, Any]], None] | None = None):
    def build(instance: KeaInstance) -> dict[str, Any]:
        config = instance.default_config()
        dhcp4 = config["Dhcp4"]
        dhcp4["multi-threading"] = {"enable-multi-threading": True, "thread-pool-size": 2,
                                    "packet-queue-size": 16}
        dhcp4["hooks-libraries"] = [
            {"library": f"{HOOKS_DIR}/libdhcp_lease_cmds.so"},
            {"library": f"{HOOKS_DIR}/libdhcp_ha.so", "parameters": {"high-availability": [{
                "this-server-name": name, "mode": "hot-standby",
                "heartbeat-delay": 1000, "max-response-delay": 5000, "max-ack-delay": 2000,
                "max-unacked-clients": 0, "sync-timeout": 5000,
                "multi-threading": {"enable-multi-threading": True, "http-dedicated-listener": True,
                                    "http-listener-threads": 1, "http-client-threads": 1},
                "peers": [{"name": peer, "url": f"http://{addr}:{HA_PORT}/",
                           "role": "primary" if peer == "a1" else "standby", "auto-failover": True}
                          for peer, addr in PEERS.items()]}]}}]
        if extra:
            extra(dhcp4)
        return config
    return build


def ha_state(kea: KeaInstance) -> str:
    answer = unix_command(kea.socket_path, "status-get")
    servers = (answer.get("arguments") or {}).get("high-availability") or [{}]
    return str(servers[0].get("ha-servers", {}).get("local", {}).get("state", "?"))


def wait_ha(pair: list[KeaInstance], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [ha_state(k) for k in pair]
        if states == ["hot-standby", "hot-standby"]:
            return
        time.sleep(0.3)
    raise AssertionError(f"HA pair did not reach hot-standby: {states}")


@pytest.fixture
def ha_pair(kea_factory):
    def make(extra2: Callable[[dict[str, Any]], None] | None = None) -> list[KeaInstance]:
        a1 = kea_factory(**{**SITE_A, "tag": "a1"}, make_config=ha_config("a1"))
        a2 = kea_factory(**{**SITE_A, "tag": "a2", "gateway": SITE_A["gateway"] + 2},
                         make_config=ha_config("a2", extra2), lan=a1)
        wait_ha([a1, a2])
        return [a1, a2]
    return make


def site_file(path: Path, pair: list[KeaInstance]) -> Path:
    servers = "".join(f'[[sites.a.kea]]\nurl = "{k.url}"\nuser = "{k.user}"\n'
                      f'password_file = "{k.password_path}"\napi = "{k.api}"\n' for k in pair)
    path.write_text(f'[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "{ROUTERS["a"]}"\n'
                    f'gateway = "192.0.2.1"\n{servers}\n'
                    '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n')
    return path


def route_data(kea: KeaInstance) -> dict[int, str]:
    subnet = SubnetIndex(kea.running_config()).find(kea.subnet)
    return {o["code"]: o["data"].upper() for o in subnet["option-data"] if is_route_option(o)}


def test_both_servers_get_the_same_options_and_a_differing_one_is_reported(ha_pair, tmp_path):
    def user_route_on_a2(dhcp4: dict[str, Any]) -> None:  # only the standby has the user's route
        dhcp4["subnet4"][0]["option-data"].append(
            {"code": 121, "space": "dhcp4", "csv-format": False, "data": "100A63C0000209"})
    a1, a2 = ha_pair(user_route_on_a2)
    sites = site_file(tmp_path / "sites.toml", [a1, a2])
    result = cli("dhcp", "push", "--sites", str(sites))
    assert result.returncode == 0, result.stderr
    assert f"Kea at {a2.url.rstrip('/')} differs from its HA partner Kea at {a1.url.rstrip('/')}" in result.stdout
    assert route_data(a1) == route_data(a2) and set(route_data(a1)) == {121, 249}
    carried = {(str(n), str(h)) for n, h in option_routes({"data": route_data(a1)[121]})}
    assert ("10.99.0.0/16", "192.0.2.9") in carried  # a2's own route is now on both
    assert ("100.64.0.0/10", ROUTERS["a"]) in carried
    wait_ha([a1, a2])  # config-set restarted HA on both; the pair comes back
    routes = a1.dhclient()  # served by the primary
    assert "10.99.0.0/16 via 192.0.2.9 " in routes and f"100.64.0.0/10 via {ROUTERS['a']} " in routes
    again = cli("dhcp", "push", "--sites", str(sites))
    assert again.returncode == 0 and "updated" not in again.stdout and "differs" not in again.stdout


def test_failure_on_the_second_server_says_which_is_changed(ha_pair, tmp_path):
    a1, a2 = ha_pair()
    sites = site_file(tmp_path / "sites.toml", [a1, a2])
    saved = a2.config_path.with_suffix(".saved")  # a2 cannot persist (config-write fails)
    a2.config_path.rename(saved)
    a2.config_path.mkdir()
    try:
        result = cli("dhcp", "push", "--sites", str(sites))
    finally:
        a2.config_path.rmdir()
        saved.rename(a2.config_path)
    assert result.returncode == 1
    line, = [ln for ln in result.stderr.splitlines() if "(HA pair)" in ln]
    assert f"Kea at {a1.url.rstrip('/')}: changed and written" in line
    assert f"Kea at {a2.url.rstrip('/')}: CHANGED but NOT persisted" in line
    assert "python -m dhcp.kea write" in result.stderr
    assert a1.password not in result.stdout + result.stderr and a2.password not in result.stderr


def test_an_unreachable_partner_leaves_both_unchanged(ha_pair, tmp_path):
    a1, a2 = ha_pair()
    before = a1.running_config()
    sites = site_file(tmp_path / "sites.toml", [a1, a2])
    a2.stop_dhcp4()
    a2.stop_ca()
    result = cli("dhcp", "push", "--sites", str(sites))
    assert result.returncode == 1
    assert f"Kea at {a1.url.rstrip('/')}: not pushed: site a's HA partner" in result.stderr
    line, = [ln for ln in result.stderr.splitlines() if "(HA pair)" in ln]
    assert f"Kea at {a1.url.rstrip('/')}: unchanged" in line and f"Kea at {a2.url.rstrip('/')}: unchanged" in line
    assert a1.running_config() == before
