"""The Vagrantfile, checked with the real tools available here (no VM can boot: no KVM).

- it provisions what Python renders (`python -m lab.vagrant render`: the validated topology,
  the lab's own Kea and Headscale configs), and stops on a bad topology with Python's error;
- `vagrant validate` (Debian's vagrant 2.3 + vagrant-libvirt) accepts it, and rejects a bad topology;
- the Kea configs its provisioner writes pass the real `kea-dhcp4 -t` / `kea-ctrl-agent -t`;
- its shell provisioners parse with `bash -n`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.vagrant.support import REPO, require


def test_vagrantfile_reads_the_topology_python_validated(vagrantfile_eval) -> None:
    from lab.topology import load_topology
    from lab.vagrant import render

    expected = tomllib.loads((REPO / "lab" / "topology.toml").read_text())
    seen = vagrantfile_eval("S2SLab.topology")
    assert seen == render(load_topology())["topology"]
    for name, site in expected["sites"].items():
        assert {k: seen["sites"][name][k] for k in site} == site  # what tomllib reads, value for value
    assert seen["control"]["address"] == expected["control"]["address"]
    assert seen["wan"]["subnet"] == expected["wan"]["subnet"]


def vagrant_validate(
    offline: list[str], vagrant_exe: str, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*offline, vagrant_exe, "validate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.integration
def test_vagrant_validate_with_libvirt_provider(
    offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]
) -> None:
    """The provider's own config checks run too: vagrant-libvirt is Debian's packaged provider."""
    plugins = subprocess.run([*offline, vagrant_exe, "plugin", "list"], env=vagrant_env, capture_output=True, text=True)
    require(
        "vagrant-libvirt" in plugins.stdout, "vagrant-libvirt plugin not installed (apt-get install vagrant-libvirt)"
    )
    env = dict(vagrant_env, VAGRANT_DEFAULT_PROVIDER="libvirt")
    proc = vagrant_validate(offline, vagrant_exe, env, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully." in proc.stdout
    assert "Ignoring provider config" not in proc.stdout


@pytest.mark.integration
def test_vagrant_validate_ignoring_provider(offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]) -> None:
    """VirtualBox is not installed here, so its provider options are checked only by a real VirtualBox user."""
    proc = vagrant_validate(offline, vagrant_exe, vagrant_env, REPO, "--ignore-provider")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully." in proc.stdout
    for host in ("control", "a-gw", "a-router", "a-client", "b-gw", "b-router", "b-client"):
        assert f"==> {host}: Ignoring provider config" in proc.stdout
    # The secrets went to the state dir given, created private.
    secrets = Path(vagrant_env["S2S_VAGRANT_STATE"]) / "secrets"
    assert sorted(p.name for p in secrets.iterdir()) == ["kea-a.password", "kea-b.password"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets.iterdir())


@pytest.mark.integration
def test_vagrant_validate_fails_on_a_bad_topology(
    tmp_path: Path, offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]
) -> None:
    bad = tmp_path / "topology.toml"
    bad.write_text((REPO / "lab" / "topology.toml").read_text().replace("apt_port = 8081", "apt_port = [8081]"))
    env = dict(vagrant_env, S2S_VAGRANT_TOPOLOGY=str(bad))
    proc = vagrant_validate(offline, vagrant_exe, env, REPO, "--ignore-provider")
    assert proc.returncode != 0
    assert "control.apt_port: must be a TCP port 1-65535 ([8081])" in proc.stdout + proc.stderr


@pytest.mark.integration
def test_kea_configs_pass_real_kea_config_checks(vagrantfile_eval, tmp_path: Path) -> None:
    for program in ("kea-dhcp4", "kea-ctrl-agent"):
        require(
            shutil.which(program) is not None,
            f"{program} not installed (apt-get install kea-dhcp4-server kea-ctrl-agent)",
        )
    configs = vagrantfile_eval(
        "S2SLab.topology['sites'].map { |n, s| S2SLab.kea_dhcp4_config(n, s) } + [S2SLab.kea_ctrl_agent_config]"
    )
    *dhcp4, agent = configs
    assert [c["Dhcp4"]["subnet4"][0]["subnet"] for c in dhcp4] == ["192.0.2.0/24", "172.16.100.0/24"]
    for i, config in enumerate(dhcp4):
        path = tmp_path / f"dhcp4-{i}.json"
        path.write_text(json.dumps(config).replace("@IFACE@", "lo"))
        proc = subprocess.run(["kea-dhcp4", "-t", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    password = tmp_path / "kea-api-password"
    password.write_text("not-a-real-secret\n")
    assert agent["Control-agent"]["authentication"]["clients"][0]["password-file"] == "/etc/kea/kea-api-password"
    agent["Control-agent"]["authentication"]["clients"][0]["password-file"] = str(password)
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(agent))
    proc = subprocess.run(
        [*_with_kea_run_dir(), "kea-ctrl-agent", "-t", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "listening on 127.0.0.1, port 8000" in proc.stdout + proc.stderr


def _with_kea_run_dir() -> list[str]:
    """Kea 2.6 (Debian 13) checks that its socket directory /run/kea exists with mode 750, which
    its systemd unit creates when it starts; on a machine where Kea was installed but never
    started, the check runs in a private mount namespace with a fresh /run/kea."""
    if Path("/run/kea").is_dir():
        return []
    # made private from inside (a chroot's / is no mount point, so unshare cannot do it there;
    # the chroot's parent namespace already is private), so the tmpfs never reaches this machine
    script = (
        '{ mount --make-rprivate / 2>/dev/null || ! mountpoint -q /; } && '
        'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 750 /run/kea && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script, "sh"]


def headscale_binary() -> Path:
    """The pinned Headscale the labs use: built under CI, used from the cache otherwise."""
    from lab.gobuild import MODULES, binary, build_id, cache_dir
    from tests.support import IN_CI

    version = MODULES["headscale"][1]
    cached = cache_dir() / "bin" / build_id("headscale") / "headscale"  # where binary() puts it
    if cached.exists() or IN_CI:
        return binary("headscale")
    require(False, f"headscale {version} not built yet (python -m lab.gobuild, or run the namespace lab once)")
    raise AssertionError  # unreachable


@pytest.mark.integration
def test_headscale_config_passes_real_configtest(vagrantfile_eval, tmp_path: Path, offline: list[str]) -> None:
    config = vagrantfile_eval("S2SLab.headscale_config")
    assert isinstance(config, str)
    # Same file, with the VM's state paths moved into tmp_path (configtest creates keys and the DB).
    local = config.replace("/var/lib/headscale", str(tmp_path)).replace("/var/run/headscale", str(tmp_path))
    exe = headscale_binary()
    good, bad = tmp_path / "config.yaml", tmp_path / "bad.yaml"
    good.write_text(local)
    bad.write_text("\n".join(line for line in local.splitlines() if not line.startswith("server_url:")))
    proc = subprocess.run(
        [*offline, str(exe), "configtest", "-c", str(good)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "noise_private.key").exists()
    proc = subprocess.run(
        [*offline, str(exe), "configtest", "-c", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "server_url" in proc.stderr  # the check is real: a broken file fails


@pytest.mark.integration
def test_vagrant_validate_lean_layout_on_qemu(
    offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]
) -> None:
    """The lean layout (2 VMs, isolated management network, TCG) passes vagrant-libvirt's own checks."""
    env = dict(vagrant_env, VAGRANT_DEFAULT_PROVIDER="libvirt", S2S_VAGRANT_LAYOUT="lean", S2S_LIBVIRT_DRIVER="qemu")
    proc = vagrant_validate(offline, vagrant_exe, env, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = subprocess.run(
        [*offline, vagrant_exe, "status", "--machine-readable"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    names = {line.split(",")[1] for line in status.stdout.splitlines() if ",state," in line}
    assert names == {"site-a", "site-b"}  # one VM per site, and two distinct names (hashicorp/vagrant#8152)


def test_lean_site_script_parses_with_bash_and_keeps_the_lab_closed(vagrantfile_eval, tmp_path: Path) -> None:
    script = vagrantfile_eval("S2SLab.lean_site_script('a', S2SLab.topology['sites']['a'])")
    path = tmp_path / "lean.sh"
    path.write_text(script)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Address=192.0.2.1/24" in script and "Address=192.0.2.2/24" in script  # gateway and router on br-lan
    assert "apt-get" not in script  # everything is in the box: no VM fetches packages
    # Kea starts after the client's veth gives br-lan a carrier (else it opens no socket).
    assert script.index("systemctl restart s2s-lan-client") < script.index("systemctl restart kea-dhcp4-server")


def test_users_with_vagrant_cloud_get_debian_bookworm64_by_default(vagrantfile_eval, vagrant_env) -> None:
    vagrant_env.pop("S2S_VAGRANT_BOX", None)
    assert vagrantfile_eval("[S2SLab::BOX, S2SLab::LOCAL_BOX]") == ["debian/bookworm64", None]
    vagrant_env["S2S_VAGRANT_BOX"] = "s2s/bookworm"
    assert vagrantfile_eval("[S2SLab::BOX, S2SLab::LOCAL_BOX]") == ["s2s/bookworm", "s2s/bookworm"]


@pytest.mark.integration
def test_vagrant_validate_full_layout_on_the_local_box(
    tmp_path: Path, offline: list[str], vagrant_exe: str, vagrant_env: dict[str, str]
) -> None:
    """The closed 7-VM layout (the private libvirtd's provider settings, the Headscale upload) passes
    vagrant-libvirt's checks; without a Headscale binary to upload it stops with one clear line."""
    headscale = tmp_path / "headscale"
    headscale.write_text("")
    env = dict(vagrant_env, VAGRANT_DEFAULT_PROVIDER="libvirt", S2S_VAGRANT_BOX="s2s/bookworm",
               S2S_LIBVIRT_DRIVER="qemu", S2S_HEADSCALE_BINARY=str(headscale))
    proc = vagrant_validate(offline, vagrant_exe, env, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env["S2S_HEADSCALE_BINARY"] = str(tmp_path / "missing")
    proc = vagrant_validate(offline, vagrant_exe, env, REPO)
    assert proc.returncode != 0
    assert "S2S_HEADSCALE_BINARY must name a headscale binary" in proc.stderr


def test_closed_layout_provisioners_fetch_nothing_and_parse(vagrantfile_eval, tmp_path: Path) -> None:
    scripts = {
        "control": vagrantfile_eval("S2SLab.control_script_closed"),
        "client": vagrantfile_eval("S2SLab.client_script(S2SLab.topology['sites']['a'])"),
        "gateway": vagrantfile_eval("S2SLab.gateway_script('a', S2SLab.topology['sites']['a'])"),
    }
    for name, script in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
    assert not any(word in scripts["control"] for word in ("curl", "apt-get", "https://"))
    # the gateway installs Kea only where the box lacks it (the lab's box has it, and no apt source)
    assert "if ! dpkg-query -W kea-dhcp4-server kea-ctrl-agent" in scripts["gateway"]
    # the client's LAN NIC is the one without an address: not the management NIC, whatever its name
    assert 'ip -4 -o addr show dev "$dev" | grep -q .' in scripts["client"]
