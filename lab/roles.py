"""What makes each host what it is: files written into its fresh layer before it boots.

Common to all: hostname, /etc/hosts for the lab, its SSH host key, the lab's
authorized key. The gateway gets Kea (DHCPv4 for its site + Control Agent with
basic auth), in the form its Debian suite's Kea release takes; the control host gets
Headscale and the apt repository server; a client booted as a container gets its
DHCP client (systemd-networkd or dhcpcd). Routers get nothing more: the router
deploy installs Tailscale on them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from lab import aptrepo, headscale, kea
from lab.hosts import Host
from lab.sh import run
from lab.topology import LabSite, Topology

KEA_USER = "kea-api"
KEA_PASSWORD_PATH = "/etc/kea/kea-api-password"
HEADSCALE_BIN = "/usr/local/bin/headscale"
APT_ROOT = "/srv/apt"
TAG = "tag:subnet-router"
# The non-root operator every container host has: the lab key, passwordless sudo (as a
# real router's admin account would be; `pyinfra --sudo` runs the deploy through it).
SUDO_USER, SUDO_UID = "s2s", 1000

# Units that only make sense on a console/VT; the lab's consoles are pipes.
_MASKED = (
    "console-getty.service",
    "systemd-remount-fs.service",
    "getty@tty1.service",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
)


def _write(root: Path, rel: str, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, *owner)
    path.chmod(mode)


def _enable(root: Path, unit: str, wanted_by: str = "multi-user.target") -> None:
    wants = root / "etc/systemd/system" / f"{wanted_by}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        src = Path("/lib/systemd/system") / unit
        if not (root / str(src).lstrip("/")).exists():
            src = Path("/etc/systemd/system") / unit
        link.symlink_to(src)


def _group_id(root: Path, group: str) -> int:
    for line in (root / "etc/group").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == group:
            return int(parts[2])
    raise KeyError(group)


def common(root: Path, host: Host, topo: Topology, authorized_key: str, host_key: tuple[str, str]) -> None:
    """Identity and SSH access every container host shares."""
    _write(root, "etc/hostname", f"{host.name}\n")
    lines = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}", f"{topo.control_address} control"]
    for s in topo.sites.values():
        lines.append(f"{s.gateway} {s.gateway_host}")
        for name, lan, wan in s.routers:
            lines += [f"{lan} {name}", f"{wan} {name}-wan"]
        if s.vip is not None:
            lines.append(f"{s.vip} {s.name}-vip")
    _write(root, "etc/hosts", "\n".join(lines) + "\n")
    _write(root, "etc/resolv.conf", "# lab host: no DNS, no route out\n")
    _write(root, "etc/ssh/ssh_host_ed25519_key", host_key[0], 0o600)
    _write(root, "etc/ssh/ssh_host_ed25519_key.pub", host_key[1])
    (root / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(root, "root/.ssh/authorized_keys", authorized_key, 0o600)
    # No PAM session for SSH logins: on Debian each login otherwise starts a systemd user manager
    # and stops it 10 s after logout, about 0.1 s of CPU per login (measured: 136 ms against 35 ms),
    # and the lab's hosts share the deploy machine's cores (a 50-site no-op logs in to 100 hosts;
    # a real router pays it on its own CPU). The host's own sshd checks the key and the account.
    _write(root, "etc/ssh/sshd_config.d/lab-session.conf", "UsePAM no\n")
    for unit in _MASKED:
        link = root / "etc/systemd/system" / unit
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    sudo_user(root, authorized_key)


def _append_line(root: Path, rel: str, line: str) -> None:
    path = root / rel
    text = path.read_text()
    if not any(existing.split(":")[0] == line.split(":")[0] for existing in text.splitlines()):
        mode = path.stat().st_mode & 0o7777
        path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line + "\n")
        path.chmod(mode)


def sudo_user(root: Path, authorized_key: str) -> None:
    """SUDO_USER: key-only SSH login (shadow `*`: no password, not locked), NOPASSWD sudo."""
    uid = SUDO_UID
    _append_line(root, "etc/passwd", f"{SUDO_USER}:x:{uid}:{uid}:s2s lab operator:/home/{SUDO_USER}:/bin/bash")
    _append_line(root, "etc/group", f"{SUDO_USER}:x:{uid}:")
    _append_line(root, "etc/shadow", f"{SUDO_USER}:*:20000:0:99999:7:::")
    home = root / "home" / SUDO_USER
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    for d in (home, home / ".ssh"):
        os.chown(d, uid, uid)
        d.chmod(0o700)
    _write(root, f"home/{SUDO_USER}/.ssh/authorized_keys", authorized_key, 0o600, (uid, uid))
    _write(root, f"etc/sudoers.d/{SUDO_USER}", f"{SUDO_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)


# Short renew timer (T1) so a client's RENEW comes within a minute: the lab measures which client
# kinds pick up a changed route set at renew (bench/clients_bench.py); leases still last 10 min.
RENEW_TIMER, REBIND_TIMER, VALID_LIFETIME = 20, 300, 600


def dhcp4_config(site: LabSite, kea_version: str, interface: str = "eth0") -> dict:
    """The gateway's kea-dhcp4.conf for the Kea release its Debian suite ships (the
    namespace lab's gateways and, through lab.vagrant.render, the Vagrant lab's)."""
    return kea.dhcp4_config(
        kea_version,
        interface=interface,
        subnet=str(site.subnet),
        pool=site.dhcp_pool,
        router=str(site.gateway),
        valid_lifetime=VALID_LIFETIME,
        timers={"renew-timer": RENEW_TIMER, "rebind-timer": REBIND_TIMER},
    )


def ctrl_agent_config() -> dict:
    """kea-ctrl-agent on loopback with basic auth (2.2, 2.6 and 3.0 take the same form)."""
    return kea.ctrl_agent_config(kea.basic_auth(KEA_USER, KEA_PASSWORD_PATH))


def gateway(root: Path, host: Host, topo: Topology, kea_password: str) -> None:
    """Kea DHCPv4 serving the site's pool, and the Control Agent on loopback with basic auth."""
    site = topo.sites[host.site or ""]
    kea_gid = _group_id(root, "_kea")
    _write(root, "etc/kea/kea-dhcp4.conf", json.dumps(dhcp4_config(site, site.kea_version), indent=2) + "\n")
    _write(root, "etc/kea/kea-ctrl-agent.conf", json.dumps(ctrl_agent_config(), indent=2) + "\n")
    _write(root, KEA_PASSWORD_PATH, kea_password, 0o640, (0, kea_gid))
    _enable(root, "kea-dhcp4-server.service")
    _enable(root, "kea-ctrl-agent.service")
    if site.subnet6 is not None:
        gateway_ra(root, site)


def gateway_radvd_conf(site: LabSite, interface: str = "eth0") -> str:
    """The gateway's router advertisements: the LAN's /64 for SLAAC and itself as the default
    router, as an ISP's or office's router does (its IPv6 forwarding stays off: no route out)."""
    return f"""# s2s lab gateway: the LAN's IPv6 prefix (SLAAC) and the default router
interface {interface}
{{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    prefix {site.subnet6}
    {{
        AdvOnLink on;
        AdvAutonomous on;
    }};
}};
"""


def gateway_ra(root: Path, site: LabSite) -> None:
    """Debian's radvd from the lab's mirror cache, unpacked into the gateway's layer (the image has
    none, and the gateway has no route to fetch it), started by Debian's own unit."""
    with tempfile.TemporaryDirectory() as tmp:
        run(["dpkg-deb", "-x", str(aptrepo.debian_deb("radvd")), tmp])
        # file by file, through the layer's own symlinks (/lib -> usr/lib on merged-/usr Debian):
        # unpacking onto the root would replace those links with directories
        for src in sorted(Path(tmp).rglob("*")):
            if src.is_file() and not src.is_symlink():
                dest = root / src.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    _write(root, "etc/radvd.conf", gateway_radvd_conf(site))
    _enable(root, "radvd.service")


NETWORKD_UNIT = """\
# s2s lab client: systemd-networkd's DHCPv4 client on the LAN (it requests option 121)
[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
SendRelease=yes
"""

DHCPCD_CONF = """\
# s2s lab client: dhcpcd, IPv4 only, asking for classless static routes (121) and 249
ipv4only
noipv4ll
noarp
nohook resolv.conf
option classless_static_routes, ms_classless_static_routes
release
"""

DHCPCD_UNIT = """\
[Unit]
Description=dhcpcd on eth0 (s2s lab client)
After=network-pre.target

[Service]
ExecStart=/usr/sbin/dhcpcd --nobackground --config /etc/dhcpcd.conf eth0
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


NM_CONNECTION = "etc/NetworkManager/system-connections/lan.nmconnection"
# The lab's eth0 is up before the container boots (with a SLAAC address on a dual-stack LAN):
# NetworkManager would take that as someone else's configuration and only watch it ("connected
# (externally)"). On a real box NetworkManager configures the link from the start; so here.
NM_LAB_CONF = "[device-lab-eth0]\nmatch-device=interface-name:eth0\nkeep-configuration=no\n"

# A dual-stack LAN: networkd also takes the router advertisements (SLAAC and the default from the
# gateway; the subnet routers' route information, which it installs by default).
NETWORKD_UNIT6 = NETWORKD_UNIT.replace(
    "DHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n", "DHCP=ipv4\nLinkLocalAddressing=ipv6\nIPv6AcceptRA=yes\n"
)


def networkmanager_connection(dual_stack: bool) -> str:
    """NetworkManager's keyfile for the LAN: DHCPv4 with its own client (it asks for option 121 and
    249); on a dual-stack LAN it also takes the router advertisements (SLAAC and the default from
    the gateway; the subnet routers' route information, which it installs as routes)."""
    six = "method=auto" if dual_stack else "method=disabled"
    return ("# s2s lab client: NetworkManager on the LAN\n[connection]\nid=lan\ntype=ethernet\n"
            f"interface-name=eth0\nautoconnect=true\n\n[ipv4]\nmethod=auto\n\n[ipv6]\n{six}\n")


def client(root: Path, host: Host, site: LabSite | None = None) -> None:
    """A LAN client booted as a container: systemd-networkd, dhcpcd or NetworkManager gets its
    lease at boot."""
    dual = site is not None and site.subnet6 is not None
    if host.dhcp_client == "networkd":
        unit = NETWORKD_UNIT6 if dual else NETWORKD_UNIT
        _write(root, "etc/systemd/network/20-lab-eth0.network", unit)
        _enable(root, "systemd-networkd.service")
        _enable(root, "systemd-networkd.socket", "sockets.target")
    elif host.dhcp_client == "dhcpcd":
        _write(root, "etc/dhcpcd.conf", DHCPCD_CONF)
        _write(root, "etc/systemd/system/lab-dhcpcd.service", DHCPCD_UNIT)
        _enable(root, "lab-dhcpcd.service")
    elif host.dhcp_client == "networkmanager":
        _write(root, NM_CONNECTION, networkmanager_connection(dual), 0o600)  # NM skips a readable keyfile
        _write(root, "etc/NetworkManager/conf.d/lab.conf", NM_LAB_CONF)
        _enable(root, "NetworkManager.service")
    else:
        raise ValueError(f"{host.name}: no container role for DHCP client {host.dhcp_client!r}")


def headscale_config(topo: Topology) -> str:
    """Headscale on the WAN: embedded DERP only (no DERP map from the internet), policy in the DB."""
    return headscale.render_config(
        server_url=topo.headscale_url,
        listen_port=topo.headscale_port,
        address=str(topo.control_address),
        state_dir="/var/lib/headscale",
        unix_socket="/var/run/headscale/headscale.sock",
    )


HEADSCALE_UNIT = f"""\
[Unit]
Description=Headscale control server (s2s lab)
After=network.target

[Service]
ExecStart={HEADSCALE_BIN} serve
WorkingDirectory=/var/lib/headscale
StateDirectory=headscale
RuntimeDirectory=headscale
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def control(root: Path, topo: Topology) -> None:
    """Headscale and the apt repository HTTP server (repo bind-mounted read-only at /srv/apt)."""
    _write(root, "etc/headscale/config.yaml", headscale_config(topo))
    _write(root, "etc/systemd/system/headscale.service", HEADSCALE_UNIT)
    _write(
        root,
        "etc/systemd/system/lab-apt-repo.service",
        f"""\
[Unit]
Description=s2s lab apt repository (HTTP)
After=network.target

[Service]
ExecStart=/usr/bin/python3 -m http.server {topo.apt_port} --bind {topo.control_address} --directory {APT_ROOT}
DynamicUser=yes
Restart=on-failure

[Install]
WantedBy=multi-user.target
""",
    )
    _enable(root, "headscale.service")
    _enable(root, "lab-apt-repo.service")


# A static-address LAN host, configured the way its network manager is on a real box: the
# address and default gateway (the site's gateway host, not the subnet router) in the manager's
# own files; on a dual-stack LAN a static IPv6 address too, with router advertisements ignored
# (so the routes to the other sites' IPv6 prefixes are the deploy's, not radvd's). The routes to
# the other sites are the deploy's to add.
def _static_files(host: Host) -> dict[str, tuple[str, int]]:
    addr, gw, addr6 = host.addresses[0], host.gateway, host.address6
    lab = "# s2s lab: a static-address LAN host"
    networkd6 = f"Address={addr6}\nLinkLocalAddressing=ipv6\n" if addr6 else "LinkLocalAddressing=no\n"
    ifupdown6 = (f"\niface eth0 inet6 static\n    address {addr6}\n    accept_ra 0\n    autoconf 0\n"
                 if addr6 else "")
    nm6 = f"[ipv6]\nmethod=manual\naddress1={addr6}\n" if addr6 else "[ipv6]\nmethod=disabled\n"
    netplan6 = ("      accept-ra: false\n      link-local: [ipv6]\n" if addr6 else "")
    return {
        "networkd": {
            "etc/systemd/network/20-lan.network": (
                f"{lab}\n[Match]\nName=eth0\n\n[Network]\nAddress={addr}\nGateway={gw}\n"
                f"{networkd6}IPv6AcceptRA=no\n",
                0o644,
            )
        },
        "ifupdown": {
            "etc/network/interfaces": (
                f"{lab}\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n"
                f"    address {addr}\n    gateway {gw}\n{ifupdown6}",
                0o644,
            )
        },
        "networkmanager": {
            "etc/NetworkManager/system-connections/lan.nmconnection": (
                f"{lab}\n[connection]\nid=lan\ntype=ethernet\ninterface-name=eth0\nautoconnect=true\n\n"
                f"[ipv4]\nmethod=manual\naddress1={addr},{gw}\n\n{nm6}",
                0o600,
            )
        },
        "netplan": {
            "etc/netplan/10-lan.yaml": (
                f"{lab}\nnetwork:\n  version: 2\n  renderer: networkd\n  ethernets:\n    eth0:\n"
                f"      addresses: [{addr}{', ' + addr6 if addr6 else ''}]\n{netplan6}      routes:\n"
                f"        - to: default\n          via: {gw}\n",
                0o600,
            )
        },
    }[host.manager or ""]


_NETWORKD_UNITS = (("systemd-networkd.service", "multi-user.target"), ("systemd-networkd.socket", "sockets.target"))
_STATIC_UNITS = {
    "networkd": _NETWORKD_UNITS,
    "netplan": _NETWORKD_UNITS,  # netplan renders for networkd here
    "ifupdown": (("networking.service", "multi-user.target"),),
    "networkmanager": (("NetworkManager.service", "multi-user.target"),),
}


def static(root: Path, host: Host) -> None:
    """A static host: its manager's config for eth0, and that manager enabled at boot."""
    for rel, (text, mode) in _static_files(host).items():
        _write(root, rel, text, mode)
    for unit, target in _STATIC_UNITS[host.manager or ""]:
        _enable(root, unit, target)
