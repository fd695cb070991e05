"""The lean Vagrant lab end to end: two real VMs under libvirt (KVM or qemu/TCG), then the deploy.

Opt-in (S2S_VAGRANT_E2E=1, or ./scripts/test-vagrant): under TCG on 2 shared
cores booting and provisioning the VMs takes minutes, so it is kept out of the
default run; tests/vagrant/conftest.py says so at collection time, never as a skip.

Order matters (one lab for the module): up, deploy, routes, ping, a second
deploy that plans nothing, down leaving no VM, network, namespace or process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import vagrant_lean, vagrant_libvirt
from tests.vagrant.support import REPO

pytestmark = pytest.mark.integration

SITE_B_SUBNET = "172.16.100.0/24"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    state = Path(os.environ.get("S2S_VAGRANT_STATE") or tmp_path_factory.mktemp("vagrant-lab")).resolve()
    env = dict(os.environ, S2S_VAGRANT_STATE=str(state))
    up = subprocess.run([sys.executable, "-m", "lab.vagrant", "up", "--lean"], cwd=REPO, env=env, timeout=3600,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield state
    finally:  # the last test already took it down; this is for a failure on the way
        if vagrant_libvirt.netns_exists():
            subprocess.run([sys.executable, "-m", "lab.vagrant", "down"], cwd=REPO, env=env, timeout=600)


def test_up_used_the_detected_accelerator_and_wrote_a_valid_site_file(lab: Path) -> None:
    accel = (lab / "accel").read_text().strip()
    assert accel in ("kvm", "qemu")
    from sites import load_sites

    model = load_sites(lab / "sites.toml")
    assert sorted(model.sites) == ["a", "b"]


def test_first_deploy_applies(lab: Path) -> None:
    result = vagrant_lean.pyinfra(lab)
    assert result.returncode == 0, result.stderr[-4000:]


def test_site_a_client_gets_the_routes(lab: Path) -> None:
    vagrant_lean.renew_client(lab, "site-a")
    routes = vagrant_lean.client_routes(lab, "site-a")
    assert f"{SITE_B_SUBNET} via 192.0.2.2" in routes
    assert "100.64.0.0/10 via 192.0.2.2" in routes


def test_site_a_client_pings_site_b_client(lab: Path) -> None:
    vagrant_lean.renew_client(lab, "site-b")
    target = vagrant_lean.client_address(lab, "site-b")
    result = vagrant_lean.ping(lab, "site-a", target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0% packet loss" in result.stdout


def test_second_deploy_plans_zero_changes(lab: Path) -> None:
    result = vagrant_lean.pyinfra(lab, "--dry", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads(result.stdout)["plan"]
    changing = [op["name"] for op in plan if op["hosts_with_change"] or op["hosts_with_conditional_change"]]
    assert changing == []


def test_down_leaves_no_vm_network_namespace_or_process(lab: Path) -> None:
    env = dict(os.environ, S2S_VAGRANT_STATE=str(lab))
    subprocess.run([sys.executable, "-m", "lab.vagrant", "down"], cwd=REPO, env=env, timeout=600, check=True)
    assert not vagrant_libvirt.netns_exists()
    assert not vagrant_libvirt.running()
    leftovers = subprocess.run(["pgrep", "-f", f"guest={vagrant_libvirt.LAB_PREFIX}-"],
                               capture_output=True, text=True).stdout
    assert leftovers == ""
