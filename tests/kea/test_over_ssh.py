"""Every Kea command takes one connection path: `kea.ssh` goes through an SSH forward.

Issue 14: `python -m dhcp.kea write` built its transport with transport_for and so
failed for every site whose Kea is reached over SSH. Here the Kea host is real:
Debian's sshd and Kea from the release's root, reached only through SSH: Kea 2.2's
CA on the host's loopback (Debian's default), and Kea 3.0 without any CA, its
kea-dhcp4's own HTTP socket on the loopback (how a CA-less Kea 3.2 host is run).
"""

from __future__ import annotations

import pytest

from dhcp.kea.options import SubnetIndex
from tests.kea.conftest import ROUTERS
from tests.kea.harness import CA_PORT, DIRECT_PORT, SITE_A, KeaInstance
from tests.kea.roots import BY_NAME
from tests.kea.test_push_integration import cli

pytestmark = pytest.mark.integration


@pytest.fixture(params=[("2.2", "control-agent"), ("3.0", "direct")], ids=["kea2.2", "kea3.0-direct"])
def kea_target(request):
    """The roots with sshd in them (overrides conftest's)."""
    return BY_NAME[request.param[0]], request.param[1]


@pytest.fixture
def over_ssh(kea_factory, tmp_path):
    kea: KeaInstance = kea_factory(**SITE_A)
    ssh_config = kea.start_sshd(tmp_path / "client")
    sites = tmp_path / "sites.toml"
    port = DIRECT_PORT if kea.api == "direct" else CA_PORT
    sites.write_text(f'[ssh]\nconfig_file = "{ssh_config}"\n'
                     f'[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "{ROUTERS["a"]}"\n'
                     'gateway = "192.0.2.1"\n'
                     f'[sites.a.kea]\nurl = "http://127.0.0.1:{port}"\nssh = "root@kea-a"\n'
                     f'user = "{kea.user}"\npassword_file = "{kea.password_path}"\napi = "{kea.api}"\n'
                     '[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n')
    return kea, sites


def test_push_and_write_both_go_through_ssh(over_ssh):
    kea, sites = over_ssh
    saved = kea.config_path.with_suffix(".saved")  # config-write fails: the push says how to finish
    kea.config_path.rename(saved)
    kea.config_path.mkdir()
    try:
        pushed = cli("dhcp", "push", "--sites", str(sites))
    finally:
        kea.config_path.rmdir()
        saved.rename(kea.config_path)
    assert pushed.returncode == 1 and "python -m dhcp.kea write" in pushed.stderr
    assert "via ssh root@kea-a" in pushed.stderr

    written = cli("dhcp.kea", "write", "--sites", str(sites))
    assert written.returncode == 0, written.stderr
    assert "config written to /etc/kea/kea-dhcp4.conf" in written.stdout
    assert any(o.get("code") == 121 for o in SubnetIndex(kea.file_config()).find(kea.subnet)["option-data"])
    assert kea.received_commands()[-1] == "config-write"
    for result in (pushed, written):
        assert kea.password not in result.stdout + result.stderr


def test_write_with_a_missing_password_is_exit_2_before_any_connection(over_ssh, tmp_path):
    kea, sites = over_ssh
    sites.write_text(sites.read_text().replace(str(kea.password_path), str(tmp_path / "nope")))
    logged = len(kea.received_commands())
    result = cli("dhcp.kea", "write", "--sites", str(sites))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "kea password: cannot read" in result.stderr
    assert kea.received_commands()[logged:] == []
