"""What `lab up` writes for its users: ssh_config (root and sudo user), known_hosts, the apt
key and the lab's site files, each validated by sites/ (the only reader of site files)."""

from __future__ import annotations

from pathlib import Path

from lab import aptrepo, keys, roles
from lab.hosts import lab_hosts
from lab.paths import lab_dir
from lab.sitefile import SshEndpoint, render_site_file, render_ssh_config
from lab.topology import Topology

# (site file, the ssh config it names, the SSH user in that config)
SITE_FILES = (("sites.toml", "ssh_config", "root"), ("sites-sudo.toml", "ssh_config-sudo", roles.SUDO_USER))


def write(topo: Topology) -> None:
    """ssh_config, known_hosts, apt key and the lab's site file (validated by sites/)."""
    d = lab_dir()
    hosts = [h for h in lab_hosts(topo) if h.container]
    known = keys.write_known_hosts([h.name for h in hosts])
    key = keys.client_key()
    for _, config, user in SITE_FILES:
        # pyinfra takes User from the ssh config over its ssh_user data: one config per user
        (d / config).write_text(render_ssh_config(
            SshEndpoint(alias=h.name, hostname=h.name, user=user, identity_file=str(key),
                        known_hosts_file=str(known),
                        proxy_command=f"ip netns exec {h.netns} socat STDIO TCP:127.0.0.1:22,nodelay")
            for h in hosts))
    (d / "apt-key.asc").write_text(aptrepo.ensure_key())
    from sites import load_sites  # the only reader of site files: prove ours are valid
    for name, config, _ in SITE_FILES:
        (d / name).write_text(site_file(topo, d / config))
        load_sites(d / name)


def site_file(topo: Topology, ssh_config: Path) -> str:
    """The lab's site file, reaching its hosts through `ssh_config`."""
    d = lab_dir()
    kea_files = {s: str(keys.secret_path(keys.kea_secret(s))) for s in topo.sites}
    return render_site_file(
        topo,
        kea_password_files=kea_files,
        kea_user=roles.KEA_USER,
        headscale_api_key_file=str(keys.secret_path(keys.API_KEY_SECRET)),
        auth_key_file=str(keys.secret_path(keys.AUTH_KEY_SECRET)),
        headscale_local_url=f"http://127.0.0.1:{topo.headscale_port}",
        login_server=topo.headscale_url,
        apt_repo_url=topo.apt_url,
        apt_key_file=str(d / "apt-key.asc"),
        apt_suite=aptrepo.SUITE,
        apt_component=aptrepo.COMPONENT,
        no_logs_no_support=True,  # the lab's tailscaled never talks to Tailscale's log servers
        ssh_config_file=str(ssh_config),
        generated_by="`python -m lab up`",
    )
