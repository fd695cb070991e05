"""`python -m dhcp push` against real kea-dhcp4 + kea-ctrl-agent, checked by a real dhclient.

Ground truth comes from outside the code under test: the kernel routes dhclient
installed, config-get straight from kea-dhcp4's unix socket, the config file on
disk, and the commands kea-dhcp4 itself logged as received.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dhcp.kea.connect import transport_for
from dhcp.kea.options import MANAGED_BY, SubnetIndex, is_route_option
from dhcp.plan import build_plan
from dhcp.push import run as push_run
from dhcp.rfc3442 import decode
from sites import load_sites
from tests.kea.conftest import ROUTERS, write_site_file
from tests.kea.harness import SITE_A, KeaInstance

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WRITES = {"config-test", "config-set", "config-write"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, from the repo root, as a person would run it."""
    env = dict(os.environ)
    env.pop("SITES", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def subnet_options(kea: KeaInstance, config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    config = config or kea.running_config()
    return list(SubnetIndex(config).find(kea.subnet).get("option-data") or [])


def without_route_options(config: dict[str, Any], kea: KeaInstance) -> dict[str, Any]:
    """The config with the LAN subnet's 121/249 entries removed: what must not change."""
    config = copy.deepcopy(config)
    subnet = SubnetIndex(config).find(kea.subnet)
    subnet["option-data"] = [o for o in subnet.get("option-data") or [] if not is_route_option(o)]
    return config


def assert_client_routes(routes: str, name: str, other: KeaInstance) -> None:
    router = ROUTERS[name]
    assert f"100.64.0.0/10 via {router} " in routes, routes
    assert f"{other.subnet} via {router} " in routes, routes
    assert f"default via {gateway_of(name)} " in routes, routes


def gateway_of(name: str) -> str:
    return {"a": "192.0.2.1", "b": "172.16.100.1"}[name]


def recording_factory(made: list[Any]):
    def factory(endpoint):
        transport = transport_for(endpoint)
        made.append(transport)
        return transport
    return factory


def push_in_process(site_file: Path, factory, dry_run: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = push_run(build_plan(load_sites(site_file)), dry_run=dry_run, factory=factory,
                    out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_push_two_sites_then_dhclient_gets_the_routes(two_sites, site_file):
    before = {n: k.running_config() for n, k in two_sites.items()}
    for kea in two_sites.values():  # before the push the LAN only has its default route
        assert "100.64.0.0/10" not in kea.dhclient()

    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    assert "updated" in result.stdout

    for name, kea in two_sites.items():
        other = two_sites["b" if name == "a" else "a"]
        options = {o["code"]: o for o in subnet_options(kea) if is_route_option(o)}
        assert set(options) == {121, 249}
        assert options[121]["data"] == options[249]["data"]
        assert options[121]["user-context"] == {"managed-by": MANAGED_BY}
        assert options[121]["csv-format"] is False
        pushed = decode(bytes.fromhex(options[121]["data"]))
        assert (str(other.subnet), ROUTERS[name]) in [(str(n), str(h)) for n, h in pushed]
        # Everything else (global option, other options, reservation, other subnets) survives.
        assert without_route_options(kea.running_config(), kea) == \
            without_route_options(before[name], kea)
        assert_client_routes(kea.dhclient(), name, other)


def test_second_push_sends_no_config_set(two_sites, site_file):
    assert cli("dhcp", "push", "--sites", str(site_file)).returncode == 0
    configs = {n: k.running_config() for n, k in two_sites.items()}
    logged = {n: len(k.received_commands()) for n, k in two_sites.items()}

    made: list[Any] = []
    code, out, err = push_in_process(site_file, recording_factory(made))
    assert code == 0, err
    assert out.count("no change") == 2, out
    assert [t.commands for t in made] == [["config-get"], ["config-get"]]
    for name, kea in two_sites.items():
        # kea-dhcp4's own log: only a config-get arrived since the first push.
        assert kea.received_commands()[logged[name]:] == ["config-get"]
        assert kea.running_config() == configs[name]


def test_kea_restarted_from_its_file_still_serves_the_routes(two_sites, site_file):
    assert cli("dhcp", "push", "--sites", str(site_file)).returncode == 0
    for name, kea in two_sites.items():
        on_disk = SubnetIndex(kea.file_config()).find(kea.subnet)
        assert any(o.get("code") == 121 for o in on_disk.get("option-data", []))
        kea.restart_dhcp4()
        assert_client_routes(kea.dhclient(), name, two_sites["b" if name == "a" else "a"])


def test_dry_run_prints_the_diff_and_only_reads(two_sites, site_file):
    before = {n: k.running_config() for n, k in two_sites.items()}
    logged = {n: len(k.received_commands()) for n, k in two_sites.items()}
    result = cli("dhcp", "push", "--dry-run", "--sites", str(site_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(after push)") == 2
    assert '+    "code": 121,' in result.stdout and '+    "code": 249,' in result.stdout
    for name, kea in two_sites.items():
        assert kea.received_commands()[logged[name]:] == ["config-get"]
        assert kea.running_config() == before[name]


def test_wrong_password_exit_1_and_config_unchanged(two_sites, tmp_path):
    bad = tmp_path / "bad-password"
    bad.write_text("not-the-password-xyzzy")
    site_file = write_site_file(tmp_path / "sites.toml", two_sites, password_files={"a": bad})
    before = two_sites["a"].running_config()
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 1
    assert "401" in result.stderr and "nothing was changed" in result.stderr
    assert "xyzzy" not in result.stdout + result.stderr
    for kea in two_sites.values():
        assert kea.password not in result.stdout + result.stderr
    assert two_sites["a"].running_config() == before
    assert two_sites["b"].running_config() != {}  # site b is still pushed: servers are independent


def test_kea_down_exit_1_and_config_unchanged(two_sites, site_file):
    a = two_sites["a"]
    before = a.running_config()
    file_before = a.config_path.read_text()
    a.stop_dhcp4()  # the CA answers, the server behind it does not (direct: nothing answers)
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 1
    if a.api == "direct":
        assert "unreachable" in result.stderr
    else:
        assert "unable to forward command to the dhcp4 service" in result.stderr  # Kea's own text
    assert "nothing was changed" in result.stderr
    assert a.config_path.read_text() == file_before
    a.start_dhcp4()
    assert a.running_config() == before

    if a.api == "direct":
        return  # no CA: "kea-dhcp4 down" above was already "nothing listens"
    a.stop_ca()  # nothing listens at all
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "nothing was changed" in result.stderr
    assert a.running_config() == before


def test_config_test_rejection_exit_1_and_config_unchanged(kea_factory, tmp_path):
    """A hand-made option-def (249 as an array of addresses: Kea defines no 249, every version
    accepts the def) makes Kea reject the RFC 3442 bytes: config-test fails with Kea's text and
    nothing is set."""
    def with_old_option_def(instance: KeaInstance) -> dict[str, Any]:
        config = instance.default_config()
        config["Dhcp4"]["option-def"] = [{"name": "old-routes", "code": 249, "space": "dhcp4",
                                          "type": "ipv4-address", "array": True}]
        return config

    a = kea_factory(**SITE_A, make_config=with_old_option_def)
    site_file = write_site_file(tmp_path / "sites.toml", {"a": a}, extra=(
        '\n[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n'
        'routes = ["10.20.0.0/16"]\n'))  # 27 option bytes for a: not a multiple of 4
    before = a.running_config()
    logged = len(a.received_commands())
    result = cli("dhcp", "push", "--sites", str(site_file))
    assert result.returncode == 1
    assert "option data does not match option definition" in result.stderr
    assert "config-test rejected" in result.stderr and "unchanged" in result.stderr
    assert a.received_commands()[logged:] == ["config-get", "config-test"]
    assert a.running_config() == before


def test_config_write_failure_says_not_persisted_and_how_to_fix(two_sites, site_file):
    a = two_sites["a"]
    saved = a.config_path.with_suffix(".saved")
    a.config_path.rename(saved)
    a.config_path.mkdir()  # Kea cannot open a directory for writing
    try:
        result = cli("dhcp", "push", "--sites", str(site_file))
    finally:
        a.config_path.rmdir()
        saved.rename(a.config_path)
    assert result.returncode == 1
    assert "config-write failed" in result.stderr
    assert "NOT persisted" in result.stderr and "python -m dhcp.kea write" in result.stderr
    assert any(o.get("code") == 121 for o in subnet_options(a))  # running: changed
    assert not any(o.get("code") == 121 for o in subnet_options(a, a.file_config()))

    # The advertised fix: the file is writable again, write, restart, routes still served.
    fixed = cli("dhcp.kea", "write", "--sites", str(site_file))
    assert fixed.returncode == 0, fixed.stderr
    a.restart_dhcp4()
    assert_client_routes(a.dhclient(), "a", two_sites["b"])


def test_concurrent_edit_is_not_overwritten(two_sites, site_file):
    """Somebody config-sets between our config-get and config-set: the push must stop."""
    a = two_sites["a"]

    class EditAfterTest:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def command(self, name, arguments=None):
            answer = self.inner.command(name, arguments)
            if name == "config-test" and self.inner.url.rstrip("/") == a.ca_url.rstrip("/"):
                config = a.running_config()
                config["Dhcp4"]["valid-lifetime"] = 1234  # the other admin's edit
                assert a.socket_command("config-set", config)["result"] == 0
            return answer

    code, out, err = push_in_process(site_file, lambda ep: EditAfterTest(transport_for(ep)))
    assert code == 1
    assert "changed since config-get" in err
    assert a.running_config()["Dhcp4"]["valid-lifetime"] == 1234  # their edit stands
    assert not any(o.get("code") == 121 for o in subnet_options(a))
    assert any(o.get("code") == 121 for o in subnet_options(two_sites["b"]))  # b unaffected
