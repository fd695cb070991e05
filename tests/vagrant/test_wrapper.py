"""lab/vagrant.py: `vagrant ssh-config` output -> the lab's site file and ssh config.

The ssh-config inputs are (1) a canned multi-host VirtualBox-style output and
(2) output rendered by Vagrant's own ssh-config template (Debian's vagrant gem)
for a libvirt-style lab. The results are read back by the real readers: the
project's site model and the ssh-config parsing of pyinfra's @ssh connector.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.connectors.sshuserclient.client import SSHClient

from lab.topology import load_topology
from lab.vagrant import VagrantLabError, endpoints_from_ssh_config, write_lab_files
from sites import load_sites
from tests.vagrant.support import REPO

TOPO = load_topology()
HOSTS = TOPO.host_names()

# What `vagrant ssh-config` prints for this Vagrantfile under VirtualBox (NAT port forwards on
# 127.0.0.1, one generated key per machine, a checkout path with a space in it).
VIRTUALBOX = "".join(
    f"""Host {name}
  HostName 127.0.0.1
  User vagrant
  Port {2222 + i}
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/ann/my labs/s2s/.lab/vagrant/dotvagrant/machines/{name}/virtualbox/private_key"
  IdentitiesOnly yes
  LogLevel FATAL

"""
    for i, name in enumerate(HOSTS)
)

RENDER_WITH_VAGRANT = """
require "vagrant"
require "vagrant/util/template_renderer"
ARGV.each_with_index do |name, i|
  puts Vagrant::Util::TemplateRenderer.render("commands/ssh_config/config",
    host_key: name, ssh_host: "192.168.121.#{10 + i}", ssh_port: 22, ssh_user: "vagrant",
    keys_only: true, verify_host_key: :never, log_level: nil, forward_agent: false,
    forward_x11: false, proxy_command: nil, config: nil,
    private_key_path: ["/srv/s2s/.lab/vagrant/dotvagrant/machines/#{name}/libvirt/private_key"])
  puts
end
"""


@pytest.fixture(scope="module")
def libvirt_ssh_config(ruby_exe: str, offline: list[str]) -> str:
    proc = subprocess.run(
        [*offline, ruby_exe, "-e", RENDER_WITH_VAGRANT, *HOSTS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\nHost ") + proc.stdout.startswith("Host ") == len(HOSTS)
    return proc.stdout


def pyinfra_view(ssh_config: Path, alias: str) -> tuple[str, dict, tuple[str, ...]]:
    """What pyinfra's @ssh connector makes of an alias in our ssh config."""
    hostname, cfg, _agent, _policy, known_hosts, _keepalive, _identity_agent = SSHClient().parse_config(
        alias, ssh_config_file=str(ssh_config)
    )
    return hostname, cfg, known_hosts


def check_outputs(state: Path, ssh_config_text: str, expected: dict[str, tuple[str, int, str]]) -> None:
    for name in TOPO.sites:
        (state / "secrets").mkdir(parents=True, exist_ok=True)
        (state / "secrets" / f"kea-{name}.password").write_text(f"pw-{name}\n")
    sites_path, ssh_path = write_lab_files(TOPO, ssh_config_text, state)
    assert (sites_path, ssh_path) == (state / "sites.toml", state / "ssh_config")

    model = load_sites(sites_path)
    assert list(model.sites) == ["a", "b"]
    for name, site in model.sites.items():
        assert site.routers[0].ssh == f"{name}-router"
        assert site.kea[0].ssh == f"{name}-gw" and site.kea[0].url == "http://127.0.0.1:8000"
        assert site.kea[0].user == "kea-api" and site.kea[0].password() == f"pw-{name}"
    assert model.ssh.config_file == ssh_path
    assert model.tailnet.ssh == "control" and model.tailnet.url == "http://127.0.0.1:8080"
    assert model.tailnet.login_server == "http://192.168.255.10:8080"
    assert model.tailnet.api_key_file is None  # no Headscale key fetched in this test

    for alias, (hostname, port, key) in expected.items():
        seen_host, cfg, known_hosts = pyinfra_view(ssh_path, alias)
        assert (seen_host, cfg["port"], cfg["username"], cfg["key_filename"]) == (hostname, port, "root", [key])
        assert known_hosts == (str(state / "known_hosts"),)  # not Vagrant's /dev/null


def test_virtualbox_output_becomes_site_file_and_ssh_config(tmp_path: Path) -> None:
    expected = {
        name: (
            "127.0.0.1",
            2222 + i,
            f"/home/ann/my labs/s2s/.lab/vagrant/dotvagrant/machines/{name}/virtualbox/private_key",
        )
        for i, name in enumerate(HOSTS)
    }
    check_outputs(tmp_path / "state", VIRTUALBOX, expected)


def test_output_of_vagrants_own_template_becomes_site_file_and_ssh_config(
    tmp_path: Path, libvirt_ssh_config: str
) -> None:
    expected = {
        name: (f"192.168.121.{10 + i}", 22, f"/srv/s2s/.lab/vagrant/dotvagrant/machines/{name}/libvirt/private_key")
        for i, name in enumerate(HOSTS)
    }
    check_outputs(tmp_path / "state", libvirt_ssh_config, expected)


def test_proxy_command_is_kept() -> None:
    text = VIRTUALBOX.replace("Host a-gw\n", "Host a-gw\n  ProxyCommand ssh -W %h:%p jump.example\n")
    endpoints = {e.alias: e for e in endpoints_from_ssh_config(text, TOPO, known_hosts_file=None)}
    assert endpoints["a-gw"].proxy_command == "ssh -W 127.0.0.1:2223 jump.example"  # %h/%p expanded as ssh would
    assert endpoints["b-gw"].proxy_command is None


def test_a_missing_vm_is_a_clear_error() -> None:
    text = VIRTUALBOX.split("Host b-client")[0]
    with pytest.raises(VagrantLabError, match=r"no entry for b-client \(is the VM up\?"):
        endpoints_from_ssh_config(text, TOPO, known_hosts_file=None)


def run_wrapper(args: list[str], offline: list[str], vagrant_env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*offline, sys.executable, "-m", "lab.vagrant", *args],
        cwd=REPO,
        env=vagrant_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.integration
def test_status_with_real_vagrant(offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]) -> None:
    env = dict(vagrant_env, VAGRANT_DEFAULT_PROVIDER="libvirt")
    proc = run_wrapper(["status"], offline, env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == HOSTS
    assert all(line.split()[1:3] == ["not_created", "libvirt"] for line in lines)
    assert "192.0.2.2, 192.168.255.2" in proc.stdout


@pytest.mark.integration
def test_sitefile_without_vms_fails_cleanly_with_real_vagrant(
    offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]
) -> None:
    env = dict(vagrant_env, VAGRANT_DEFAULT_PROVIDER="libvirt")
    proc = run_wrapper(["sitefile"], offline, env)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip().splitlines()[-1] == "error: vagrant ssh-config failed (exit 1); see vagrant's output above"
    )
    assert "not yet ready for SSH" in proc.stderr  # vagrant's own words
    assert "Traceback" not in proc.stderr
    assert not (Path(env["S2S_VAGRANT_STATE"]) / "sites.toml").exists()


def test_bad_topology_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "topology.toml"
    bad.write_text((REPO / "lab" / "topology.toml").read_text().replace('router = "192.0.2.2"', 'router = "10.0.0.2"'))
    proc = subprocess.run(
        [sys.executable, "-m", "lab.vagrant", "--topology", str(bad), "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, S2S_VAGRANT_STATE=str(tmp_path)),
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: {bad}: sites.a.router: not inside sites.a.subnet 192.0.2.0/24 (10.0.0.2)\n"
