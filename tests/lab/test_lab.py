"""The built-in lab, against the real programs: sshd, Kea, dhclient, Headscale, apt, tailscaled."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import api, container, net
from lab.paths import PREFIX, REPO_ROOT, hosts_dir
from sites import load_sites

pytestmark = pytest.mark.integration


def ssh(info: api.LabInfo, host: str, cmd: str, input: str | None = None, check: bool = True) -> str:
    """Run a shell command on a lab host over real SSH (ProxyCommand enters its namespace)."""
    proc = subprocess.run(
        ["ssh", "-F", str(info.ssh_config), "-o", "BatchMode=yes", host, cmd],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{host}: {cmd!r} exit {proc.returncode}: {proc.stderr[-500:]}")
    return proc.stdout


def in_ns(netns: str, *cmd: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], input=input, capture_output=True, text=True, timeout=60)


def test_every_host_answers_a_fact_through_pyinfra_ssh(lab: api.LabInfo, tmp_path: Path) -> None:
    hosts = lab.ssh_hosts()
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"lab = {[(h, {'ssh_config_file': str(lab.ssh_config)}) for h in hosts]!r}\n")
    # The console script, not `python -m pyinfra`: only the former sets up gevent for ProxyCommand.
    exe = Path(sys.executable).with_name("pyinfra")
    proc = subprocess.run(
        [str(exe) if exe.exists() else "pyinfra", "-y", str(inventory), "fact", "server.Hostname"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    facts = json.loads(out[out.index("{", out.index("Fact data for")) : out.rindex("}") + 1])
    assert facts == {h: h for h in hosts}


def test_headscale_answers_on_the_lab_network_and_the_api_key_works(lab: api.LabInfo) -> None:
    topo = lab.topology
    router = lab.host("a-router")
    health = ssh(lab, router.name, f"curl -sf {topo.headscale_url}/health")
    assert json.loads(health) == {"status": "pass"}
    # The API key file the site file names is accepted by Headscale's REST API.
    key = Path(load_sites(lab.sites_file).tailnet.api_key_file).read_text().strip()  # type: ignore[arg-type]
    script = (
        "import sys, urllib.request; k = sys.stdin.read().strip(); "
        f"r = urllib.request.Request('{topo.headscale_url}/api/v1/user', "
        "headers={'Authorization': 'Bearer ' + k}); print(urllib.request.urlopen(r).status)"
    )
    good = in_ns(router.netns, sys.executable, "-c", script, input=key)
    assert good.stdout.strip() == "200", good.stderr[-300:]
    bad = in_ns(router.netns, sys.executable, "-c", script, input="hskey-api-not.a-real-key")
    assert bad.returncode != 0 and "401" in bad.stderr


def test_router_installs_tailscale_from_the_signed_lab_repo(lab: api.LabInfo) -> None:
    model = load_sites(lab.sites_file)
    apt = model.tailscale
    key = Path(apt.apt_key_file).read_text()  # type: ignore[arg-type]
    source = f"deb [signed-by=/etc/apt/keyrings/s2s-lab.asc] {apt.apt_repo} {apt.apt_suite} {apt.apt_component}"
    host = "b-router"
    try:
        # A repo signed by some other key is refused: the signature is really checked.
        ssh(lab, host, "mkdir -p /etc/apt/keyrings && cat > /etc/apt/keyrings/s2s-lab.asc", input=_other_public_key())
        ssh(lab, host, f"echo '{source}' > /etc/apt/sources.list.d/s2s-lab.list")
        refused = ssh(lab, host, "apt-get update 2>&1", check=False)
        assert "NO_PUBKEY" in refused or "not signed" in refused, refused
        ssh(lab, host, "cat > /etc/apt/keyrings/s2s-lab.asc", input=key)
        ssh(lab, host, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tailscale")
        version = ssh(lab, host, "tailscale version")
        assert version.splitlines()[0].startswith(lab_version()), version
        assert ssh(lab, host, "systemctl is-active tailscaled").strip() == "active"
        args = ssh(lab, host, "cat /proc/$(systemctl show -p MainPID --value tailscaled)/cmdline | tr '\\0' ' '")
        assert "--no-logs-no-support" in args
    finally:
        ssh(
            lab,
            host,
            "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q tailscale; "
            "rm -rf /etc/apt/sources.list.d/s2s-lab.list /etc/apt/keyrings/s2s-lab.asc /var/lib/tailscale; "
            "apt-get update -q",
            check=False,
        )


def test_routers_may_forward_and_have_a_tun_device(lab: api.LabInfo) -> None:
    """What the router deploy does first: write forwarding sysctls, open /dev/net/tun (over real SSH)."""
    for name in ("a-router", "b-router"):
        out = ssh(
            lab,
            name,
            "sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && "
            "sysctl -w net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 && test -c /dev/net/tun && echo ok",
        )
        assert out.strip().endswith("ok"), out


def lab_version() -> str:
    from lab.versions import TAILSCALE_VERSION

    return TAILSCALE_VERSION.lstrip("v")


def _other_public_key() -> str:
    """A throwaway signing key that did not sign the lab repo."""
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        gpg = ["gpg", "--batch", "--quiet", "--homedir", home]
        subprocess.run(
            [
                *gpg,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "other <other@s2s.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
            check=True,
        )
        out = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True, text=True).stdout
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    return out


def test_clients_lease_from_their_sites_kea(lab: api.LabInfo) -> None:
    for site in lab.topology.sites.values():
        client = lab.host(site.client_host)
        addrs = net.addresses(client.netns)
        assert len(addrs) == 1, addrs
        ip = addrs[0].split("/")[0]
        assert ip in [str(a) for a in site.pool_range], (ip, site.dhcp_pool)
        route = in_ns(client.netns, "ip", "-4", "route", "show", "default").stdout
        assert f"via {site.gateway}" in route


def test_kea_control_agent_wants_the_lab_password(lab: api.LabInfo) -> None:
    model = load_sites(lab.sites_file)
    for site in model.sites.values():
        (kea,) = site.kea
        assert kea.ssh
        password = kea.password()
        gw = lab.host(kea.ssh)
        script = (
            "import base64, json, sys, urllib.request, urllib.error; u, p = sys.stdin.read().split('\\n')[:2]; "
            "r = urllib.request.Request(sys.argv[1], data=json.dumps({'command': 'config-get', "
            "'service': ['dhcp4']}).encode(), headers={'Content-Type': 'application/json', "
            "'Authorization': 'Basic ' + base64.b64encode(f'{u}:{p}'.encode()).decode()})\n"
            "try: print(json.load(urllib.request.urlopen(r))[0]['arguments']['Dhcp4']['subnet4'][0]['subnet'])\n"
            "except urllib.error.HTTPError as e: print(e.code)"
        )
        ok = in_ns(gw.netns, sys.executable, "-c", script, kea.url, input=f"{kea.user}\n{password}\n")
        assert ok.stdout.strip() == str(site.subnet), ok.stderr[-300:]
        bad = in_ns(gw.netns, sys.executable, "-c", script, kea.url, input=f"{kea.user}\nwrong\n")
        assert bad.stdout.strip() == "401"


def test_lab_has_no_way_out(lab: api.LabInfo) -> None:
    """Nothing in the host's namespace touches the lab, and the lab has no route out."""
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert " sl-" not in host_links
    control = lab.host("control")
    assert in_ns(control.netns, "ip", "route", "show", "default").stdout.strip() == ""
    assert in_ns(control.netns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    for h in lab.hosts:
        routes = in_ns(h.netns, "ip", "-4", "route").stdout
        for line in routes.splitlines():
            if line.startswith("default"):
                via = line.split()[2]
                assert via in (
                    str(lab.topology.control_address),
                    *(str(s.gateway) for s in lab.topology.sites.values()),
                ), line


def test_outputs_are_valid_and_secrets_private(lab: api.LabInfo) -> None:
    model = load_sites(lab.sites_file)
    assert set(model.sites) == set(lab.topology.sites)
    assert model.tailnet is not None and model.tailnet.auth_key()
    secret_files = [Path(model.tailnet.api_key_file), Path(model.tailnet.auth_key_file)]  # type: ignore[arg-type]
    secret_files += [Path(k.password_file) for s in model.sites.values() for k in s.kea]  # type: ignore[arg-type]
    for f in secret_files:
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert (lab.ssh_key.stat().st_mode & 0o077) == 0
    # `up` on the running lab prints its outputs but never a secret.
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "up"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    printed = proc.stdout + proc.stderr
    assert "pyinfra" in printed and str(lab.sites_file) in printed
    for f in secret_files:
        assert f.read_text().strip() not in printed
    status = subprocess.run(
        [sys.executable, "-m", "lab", "status"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert status.returncode == 0, status.stdout
    for h in lab.hosts:
        assert re.search(rf"^{re.escape(h.name)}\s+\S+\s+up\b", status.stdout, re.M), status.stdout


def test_every_host_has_a_sudo_operator_and_its_own_cgroup(lab: api.LabInfo) -> None:
    for host in lab.ssh_hosts():
        proc = subprocess.run(
            ["ssh", "-F", str(lab.sudo_ssh_config), "-o", "BatchMode=yes", host, "id -un; sudo -n id -un"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stdout.split() == ["s2s", "root"], (host, proc.stdout, proc.stderr[-300:])
        h = lab.host(host)
        cgroups = Path(f"/proc/{container.leader_pid(host)}/cgroup").read_text()
        assert f"/{container.CGROUP_PARENT}/{h.netns}/payload/" in cgroups, (host, cgroups)
    assert load_sites(lab.sudo_sites_file).ssh.config_file == lab.sudo_ssh_config


def test_up_twice_is_safe_and_fast(lab: api.LabInfo) -> None:
    before = {h: container.nspawn_pid(h) for h in lab.ssh_hosts()}
    t0 = time.monotonic()
    again = api.ensure_up()
    assert time.monotonic() - t0 < 15
    assert again.sites_file == lab.sites_file
    assert {h: container.nspawn_pid(h) for h in lab.ssh_hosts()} == before  # nothing was rebooted
    assert ssh(lab, "a-gw", "hostname").strip() == "a-gw"


def _leftovers(pids: list[int]) -> list[str]:
    found = [f"netns {n}" for n in net.lab_namespaces()]
    found += (
        [f"/etc/netns/{p.name}" for p in Path("/etc/netns").glob(f"{PREFIX}-*")] if Path("/etc/netns").is_dir() else []
    )
    mounts = Path("/proc/self/mounts").read_text()
    mine = str(hosts_dir().resolve()) + "/"  # other checkouts' labs (own S2S_LAB_PREFIX) are not ours
    found += [
        f"mount {line.split()[1]}"
        for line in mounts.splitlines()
        if line.split()[1].startswith(mine)
        or (line.split()[0] == container.NSPAWN_TMPFS_SOURCE and not api._nspawn_running())
    ]  # shared while any runs
    found += [
        f"veth {link.split(':')[1].strip()}"
        for link in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
        if link.split(":")[1].strip().startswith("sl-")
    ]
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            found.append(f"process {pid} ({stat[stat.index('(') + 1 : stat.rindex(')')]})")
    return found


def test_down_leaves_nothing_behind_then_up_again(lab: api.LabInfo) -> None:
    pids = [p for h in lab.hosts for p in net.pids(h.netns)]
    pids += [p for p in (container.nspawn_pid(h) for h in lab.ssh_hosts()) if p]
    assert len(pids) > 20  # containers, their services and the dhclients are really running
    applied = lab.sites_file.with_name(lab.sites_file.name + ".applied.json")
    if not applied.exists():  # as a deploy leaves it
        applied.write_text('{"version": 1, "routers": []}\n')
    api.down()
    assert _leftovers(pids) == []
    assert [d for h in lab.ssh_hosts() for d in container.host_cgroups(h) if d.exists()] == []
    assert not lab.sites_file.exists()
    assert not applied.exists()  # the deploy's record of that lab's tailnet goes with it
    # ... and the lab comes back (later tests in the session still have it).
    t0 = time.monotonic()
    api.ensure_up()
    assert time.monotonic() - t0 < 60
    assert ssh(lab, "b-router", "hostname").strip() == "b-router"
