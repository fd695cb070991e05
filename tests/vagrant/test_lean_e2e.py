"""The lean Vagrant lab end to end, brought up the way docs/vagrant.md tells a user to.

Two real VMs under the lab's own libvirtd (KVM, or qemu/TCG where KVM guests
hang), in a network namespace with no route out. The fixture runs the block of
docs/vagrant.md that follows `<!-- plain-vagrant-up -->`, as written, with bash:
`prepare`, then a plain `vagrant up`, then `sitefile`; the whole block runs under
`unshare --net`, so nothing it starts on the host can reach a network. Part of the
default run (./scripts/test, so CI): one boot for the module, the box cached by
its inputs (lab/box.py), the VMs booted in parallel.

Order matters (one lab for the module): up, deploy, routes, ping, a second
deploy that plans nothing, down leaving no VM, network, namespace or process.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab import vagrant_lean, vagrant_libvirt
from tests.vagrant.support import REPO, assert_nothing_left, documented_block, lab_env, wrapper

pytestmark = pytest.mark.integration

SITE_B_SUBNET = "172.16.100.0/24"


def prerequisites() -> None:
    """What the documented block would otherwise make itself, made first with the network the
    builds need (Go modules, Debian packages): the box, Headscale and the Tailscale repository."""
    from lab import aptrepo, box, gobuild

    box.ensure_added()
    gobuild.binary("headscale")
    aptrepo.ensure_repo()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, offline: list[str]) -> Path:
    state = tmp_path_factory.mktemp("vagrant-lab").resolve()
    env = lab_env(state)
    block = documented_block("plain-vagrant-up")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S2S_VAGRANT_STATE", str(state))  # lab.vagrant_libvirt reads it in this process too
        prerequisites()
        try:
            up = subprocess.run([*offline, "bash", "-euc", block], cwd=REPO, env=env, timeout=3600,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            assert up.returncode == 0, up.stderr[-3000:]
            yield state
        finally:  # the last test already took it down; this is for a failure on the way
            if vagrant_libvirt.netns_exists():
                wrapper(env, "down", check=False)


def test_plain_vagrant_up_booted_both_vms_on_the_private_libvirtd(lab: Path, offline: list[str]) -> None:
    env = dict(lab_env(lab), S2S_VAGRANT_LAYOUT="lean", VAGRANT_DEFAULT_PROVIDER="libvirt",
               VAGRANT_CHECKPOINT_DISABLE="1")
    status = subprocess.run([*offline, "vagrant", "status", "--machine-readable"], cwd=REPO, capture_output=True,
                            text=True, env=env)
    states = {line.split(",")[1]: line.split(",")[3] for line in status.stdout.splitlines() if ",state," in line}
    assert states == {"site-a": "running", "site-b": "running"}
    domains = vagrant_libvirt.virsh("list", "--name").stdout.split()
    assert sorted(domains) == [f"{vagrant_libvirt.LAB_PREFIX}-site-a", f"{vagrant_libvirt.LAB_PREFIX}-site-b"]
    assert (lab / "accel").read_text().strip() in ("kvm", "qemu")
    from sites import load_sites

    assert sorted(load_sites(lab / "sites.toml").sites) == ["a", "b"]


def test_no_route_out_of_the_namespace_or_the_vms(lab: Path) -> None:
    for family in ("-4", "-6"):
        routes = subprocess.run(["ip", family, "-n", vagrant_libvirt.NETNS, "route", "show", "default"],
                                capture_output=True, text=True, check=True)
        assert routes.stdout == ""
    for vm in ("site-a", "site-b"):
        assert vagrant_lean.on_vm(lab, vm, "ip -4 route show default; ip -6 route show default").stdout == ""


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
    wrapper(lab_env(lab), "down")
    assert os.environ["S2S_VAGRANT_STATE"] == str(lab)
    assert_nothing_left(lab)
