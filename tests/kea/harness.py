"""Real Kea DHCPv4 servers (Debian's 2.2, 2.6, 3.0), Control Agents and a real dhclient, for tests and benchmarks.

Why this shape: each Kea release runs from its own cached Debian root
(tests/kea/roots.py) via chroot, inside its own network namespace with a veth
pair to a client namespace where the host's dhclient runs. `ip netns exec`
gives every daemon a private mount namespace, where the test's temp dirs are
bind-mounted over Debian's packaged layout (/etc/kea, /run/kea, /var/lib/kea,
/var/log/kea): Kea sees exactly the paths its package uses, which is what 2.6.3
and 3.0's path rules (socket dir 0750, config-write only into the config's
directory, password files, hooks) are checked against, and nothing of the host
or the shared root is written.

The Control Agent (or, with api="direct", kea-dhcp4's own HTTP control socket
on 3.0) listens on 127.0.0.1 inside the server namespace, as Debian's default
does on a Kea host; tests reach it through `NetnsForward`, a loopback port in
the test's namespace whose connections are opened inside the server namespace.

Network safety: no namespace made here has a route to anywhere; all DHCP
traffic stays on the veth pair (or bridge, for HA pairs) between the
namespaces. The namespaces are tests.support.Namespaces (uniquely named, only
these removed); veths start with "sk".
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netaddr import IPAddress, IPNetwork

from lab import kea as kea_configs
from tests.kea.roots import BY_NAME, Release, ensure_root
from tests.support import Namespaces, sh
from tunnel import relay

DHCLIENT = "/sbin/dhclient"
DEBIAN_PACKAGES = ("isc-dhcp-client", "iproute2", "debootstrap")
CA_PORT = kea_configs.CA_PORT  # Debian's kea-ctrl-agent.conf default
DIRECT_PORT = 8004      # kea-dhcp4's own HTTP control socket (3.0), inside the namespace
HOOKS_DIR = "/usr/lib/x86_64-linux-gnu/kea/hooks"
# Debian's packaged directories, and where each lives in a test's workdir.
LAYOUT = {"etc": "/etc/kea", "lib": "/var/lib/kea", "log": "/var/log/kea"}


class HarnessError(RuntimeError):
    """The harness could not bring a component up; the message says which and why."""


def missing_prerequisites(release: Release | None = None) -> list[str]:
    """What this machine lacks to run the real-Kea tests (empty when all is there). A missing
    Kea root is not listed: `ensure_root` builds it (debootstrap) on first use."""
    missing = [p for p in (DHCLIENT,) if not os.access(p, os.X_OK)]
    for tool in ("ip", "debootstrap", "chroot"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if os.geteuid() != 0:
        missing.append("root (network namespaces, chroot)")
    return missing


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return sh(*cmd, check=check, timeout=timeout)


def unix_command(path: str | Path, command: str, arguments: dict[str, Any] | None = None,
                 timeout: float = 10) -> dict[str, Any]:
    """Send one command straight to kea-dhcp4's unix socket (bypassing the CA): the
    tests' independent view of the running config."""
    body: dict[str, Any] = {"command": command}
    if arguments is not None:
        body["arguments"] = arguments
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(body).encode())
        buf = b""
        decoder = json.JSONDecoder()
        while True:
            chunk = s.recv(65536)
            if chunk:
                buf += chunk
            try:
                answer, _ = decoder.raw_decode(buf.decode())
                return answer
            except ValueError:
                if not chunk:
                    raise HarnessError(f"kea socket {path}: incomplete answer {buf[:200]!r}") from None


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsForward:
    """127.0.0.1:<port> here, every connection opened to 127.0.0.1:<target> inside `ns`.

    Why: Kea's HTTP listeners stay on their namespace's loopback (Debian's default),
    and the test process must not route into the lab. A socket belongs to the network
    namespace its creating thread is in, so each relay thread switches in with
    setns(2) just to create its socket, then back."""

    def __init__(self, ns: str, target: int) -> None:
        self.ns, self.target = ns, target
        self._ns_fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        self._home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{ns}").start()

    def _inner_socket(self) -> socket.socket:
        if _libc.setns(self._ns_fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {self.ns}")
        try:
            return socket.socket()
        finally:
            _libc.setns(self._home_fd, _CLONE_NEWNET)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._closed:
                conn.close()
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        inner = self._inner_socket()
        try:
            inner.connect(("127.0.0.1", self.target))  # refused: the client sees its connection close
            inner.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            inner.close()
            conn.close()
            return
        relay(conn, inner)

    def close(self) -> None:
        """Stop accepting. shutdown() first: it wakes the thread blocked in accept(); a bare
        close() would leave it blocked on a file descriptor number that a later listener
        may get, and it would then steal that listener's connections."""
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for fd in (self._ns_fd, self._home_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def kea_release(name: str | None = None) -> Release:
    """A release by name ("2.2", "2.6", "3.0"); default: S2S_KEA_RELEASE or 2.2."""
    return BY_NAME[name or os.environ.get("S2S_KEA_RELEASE") or "2.2"]


def version_tuple(release: Release) -> tuple[int, int]:
    return kea_configs.version_tuple(release.name)


@dataclass
class KeaInstance:
    """One site's Kea: kea-dhcp4 (+ CA) of one Debian release in `server_ns`, a dhclient LAN in
    `client_ns`."""

    tag: str                      # short, unique in the lab ("a", "b")
    workdir: Path
    subnet: IPNetwork
    gateway: IPAddress            # kea-dhcp4's own LAN address
    pool: str                     # "first - last"
    subnet_id: int = 1
    user: str = "kea-api"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(2))
    make_config: Callable[[KeaInstance], dict[str, Any]] | None = None
    release: Release = field(default_factory=kea_release)
    api: str = "control-agent"    # or "direct": kea-dhcp4's own HTTP socket (Kea >= 3.0), no CA
    hooks: tuple[str, ...] = ()   # hook library file names loaded by kea-dhcp4
    lan: KeaInstance | None = None  # join this instance's LAN (HA partner) instead of a new one
    as_packaged: bool = False     # Debian's owners/modes on /etc/kea and the daemons run as _kea

    def __post_init__(self) -> None:
        if self.api == "direct" and version_tuple(self.release) < (3, 0):
            raise HarnessError(f"Kea {self.release.name} has no HTTP control socket (api=direct)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in LAYOUT:
            (self.workdir / sub).mkdir(exist_ok=True)
        # /run/kea: short (unix socket paths <= 107 bytes) and 0750, which 2.6.3/3.0 insist on.
        self.rundir = Path(tempfile.mkdtemp(prefix="s2sk-", dir="/tmp"))
        self.rundir.chmod(0o750)
        self.spaces = Namespaces(f"kea{self.tag}")
        self.server_ns = ""  # set by setup_network
        self.client_ns = self.lan.client_ns if self.lan else ""
        self.srv_if = f"sk{self.token}{self.tag}s"[:15]
        self.cli_if = f"sk{self.token}{self.tag}c"[:15]
        self.config_path = self.workdir / "etc" / "kea-dhcp4.conf"
        self.ca_config_path = self.workdir / "etc" / "kea-ctrl-agent.conf"
        self.socket_path = self.rundir / "kea4-ctrl-socket"
        self.leases_path = self.workdir / "lib" / "kea-leases4.csv"
        self.log_path = self.workdir / "log" / "kea-dhcp4.log"
        self.ca_log_path = self.workdir / "log" / "kea-ctrl-agent.log"
        self.password_path = self.workdir / "etc" / "kea-api-password"
        self.root: Path | None = None
        self._forward: NetnsForward | None = None
        self._dhcp4: subprocess.Popen[bytes] | None = None
        self._ca: subprocess.Popen[bytes] | None = None
        self._sshd: subprocess.Popen[bytes] | None = None
        self._sshd_forward: NetnsForward | None = None

    def inner(self, path: Path) -> str:
        """The path Kea sees for a host-side file of this instance (Debian's layout)."""
        if path.parent == self.rundir:
            return f"/run/kea/{path.name}"
        rel = path.relative_to(self.workdir)
        return f"{LAYOUT[rel.parts[0]]}/{'/'.join(rel.parts[1:])}"

    # -- addresses ---------------------------------------------------------------------
    @property
    def ca_url(self) -> str:
        """The URL the push uses: the CA, or kea-dhcp4's own HTTP socket when api="direct"."""
        assert self._forward is not None, "not started"
        return f"http://127.0.0.1:{self._forward.port}/"

    @property
    def url(self) -> str:
        return self.ca_url

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEA_")}
        env["KEA_PIDFILE_DIR"] = "/run/kea"
        env["KEA_LOCKFILE_DIR"] = "/run/kea"
        return env

    # -- network -----------------------------------------------------------------------
    def setup_network(self) -> None:
        """The server namespace and a veth to the LAN: a new client namespace, or (HA partner)
        the bridge in `lan`'s client namespace."""
        self.server_ns = self.spaces.add("server")
        if self.lan is None:
            self.client_ns = self.spaces.add("client")
            run("ip", "-n", self.client_ns, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", self.client_ns, "link", "set", "br0", "up")
            # dhclient-script writes /etc/resolv.conf: `ip netns exec` bind-mounts this over it.
            etc = Path("/etc/netns") / self.client_ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("")
        run("ip", "link", "add", self.srv_if, "netns", self.server_ns, "type", "veth",
            "peer", "name", self.cli_if, "netns", self.client_ns)
        run("ip", "-n", self.client_ns, "link", "set", self.cli_if, "master", "br0")
        run("ip", "-n", self.server_ns, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}",
            "dev", self.srv_if)
        for ns, ifname in ((self.server_ns, self.srv_if), (self.client_ns, self.cli_if)):
            run("ip", "-n", ns, "link", "set", ifname, "up")

    # -- kea-dhcp4 ---------------------------------------------------------------------
    def _authentication(self) -> dict[str, Any]:
        return kea_configs.basic_auth(self.user, self.password_path.name, realm=f"s2s-kea-{self.tag}",
                                      directory=LAYOUT["etc"])

    def hook_libraries(self) -> list[dict[str, Any]]:
        return [{"library": f"{HOOKS_DIR}/{name}"} for name in self.hooks]

    def default_config(self) -> dict[str, Any]:
        """The lab's Kea config (lab/kea.py) for this LAN, made a little more realistic: a DNS
        option and a reservation in the subnet, a global option, raw sockets, leases and log
        in the workdir (callers add an unrelated subnet, shared networks, hooks, HA)."""
        http = (kea_configs.http_socket(self._authentication(), DIRECT_PORT) if self.api == "direct"
                else None)
        config = kea_configs.dhcp4_config(
            self.release.name, interface=self.srv_if, subnet=str(self.subnet), pool=self.pool,
            router=str(self.gateway), subnet_id=self.subnet_id, valid_lifetime=600,
            socket_name=self.inner(self.socket_path), http=http, log_output=self.inner(self.log_path),
            lease_database={"type": "memfile", "persist": True, "name": self.inner(self.leases_path),
                            "lfc-interval": 0})
        dhcp4 = config["Dhcp4"]
        dhcp4["interfaces-config"]["dhcp-socket-type"] = "raw"
        dhcp4["option-data"] = [{"name": "domain-name", "data": "lab.example"}]
        subnet = dhcp4["subnet4"][0]
        subnet["option-data"].append({"name": "domain-name-servers", "data": str(self.gateway)})
        subnet["reservations"] = [{"hw-address": "02:00:00:00:00:99", "ip-address": str(self.subnet[50]),
                                   "hostname": "reserved-host"}]
        if self.hooks:
            dhcp4["hooks-libraries"] = self.hook_libraries()
        return config

    def write_config(self) -> None:
        config = (self.make_config or KeaInstance.default_config)(self)
        self.config_path.write_text(json.dumps(config, indent=2))

    def _chroot_argv(self, program: list[str]) -> list[str]:
        """`ip netns exec` (a private mount namespace) + bind mounts of this instance's dirs over
        Debian's layout + chroot into the release's root."""
        assert self.root is not None
        root = self.root
        mounts = [f"mount --bind /dev {root}/dev", f"mount -t proc proc {root}/proc",
                  f"mount --bind {self.rundir} {root}/run/kea"]
        mounts += [f"mount --bind {self.workdir / sub} {root}{inner}" for sub, inner in LAYOUT.items()]
        if self.as_packaged:  # as Debian's unit runs it: User=_kea with CAP_NET_RAW/NET_BIND_SERVICE
            caps = "+net_raw,+net_bind_service"
            program = ["setpriv", "--reuid=_kea", "--regid=_kea", "--init-groups",
                       f"--inh-caps={caps}", f"--ambient-caps={caps}", *program]
        script = " && ".join(mounts) + " && exec chroot " + str(root) + " " + " ".join(program)
        return ["ip", "netns", "exec", self.server_ns, "sh", "-c", script]

    def start_dhcp4(self, write_config: bool = False) -> None:
        """Start kea-dhcp4 in the server namespace from `config_path` (written on first start)."""
        if write_config or not self.config_path.exists():
            self.write_config()
        self.socket_path.unlink(missing_ok=True)
        self._dhcp4 = self._spawn("kea-dhcp4", self._chroot_argv(
            ["/usr/sbin/kea-dhcp4", "-c", self.inner(self.config_path)]),
            self.log_path, self._dhcp4_answers, f"did not open {self.socket_path}")

    def _dhcp4_answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            unix_command(self.socket_path, "version-get", timeout=2)
            return True
        except OSError:
            return False

    def _spawn(self, name: str, argv: list[str], log: Path, ready: Callable[[], bool],
               not_ready: str) -> subprocess.Popen:
        """Start a Kea daemon and wait until `ready()`; a daemon that exits is an error with its log."""
        out = open(self.workdir / f"{name}.stdout", "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise HarnessError(f"{name} {self.release.name} ({self.tag}) exited {proc.returncode}: "
                                   f"{self._tail(self.workdir / f'{name}.stdout')}{self._tail(log)}")
            if ready():
                return proc
            time.sleep(0.05)
        self._stop(proc)
        raise HarnessError(f"{name} {self.release.name} ({self.tag}) {not_ready}")

    def stop_dhcp4(self) -> None:
        self._stop(self._dhcp4)
        self._dhcp4 = None

    def restart_dhcp4(self) -> None:
        """Stop and start again from the config FILE (what config-write left there)."""
        self.stop_dhcp4()
        self.start_dhcp4()

    @property
    def dhcp4_running(self) -> bool:
        return self._dhcp4 is not None and self._dhcp4.poll() is None

    def socket_command(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return unix_command(self.socket_path, command, arguments)

    def running_config(self) -> dict[str, Any]:
        """config-get straight from the server socket (hash removed): the tests' ground truth."""
        answer = self.socket_command("config-get")
        if answer.get("result") != 0:
            raise HarnessError(f"config-get ({self.tag}): {answer}")
        args = dict(answer["arguments"])
        args.pop("hash", None)
        return args

    def file_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def received_commands(self) -> list[str]:
        """Commands kea-dhcp4 itself logged as received (COMMAND_RECEIVED, INFO level)."""
        return re.findall(r"COMMAND_RECEIVED Received command '([^']+)'", self.log_text())

    # -- control agent -----------------------------------------------------------------
    def write_password(self) -> None:
        self.password_path.write_text(self.password)
        self.password_path.chmod(0o600)

    def write_ca_config(self) -> None:
        config = kea_configs.ctrl_agent_config(self._authentication(), socket_name=self.inner(self.socket_path),
                                               port=CA_PORT, log_output=self.inner(self.ca_log_path))
        self.ca_config_path.write_text(json.dumps(config, indent=2))

    def start_ca(self) -> None:
        """kea-ctrl-agent on 127.0.0.1:8000 in the server namespace with basic auth, forwarding
        to kea-dhcp4's unix socket (Debian's layout: /etc/kea, /run/kea)."""
        if not self.as_packaged:
            self.write_password()
            self.write_ca_config()
        self._ca = self._spawn("kea-ctrl-agent", self._chroot_argv(
            ["/usr/sbin/kea-ctrl-agent", "-c", self.inner(self.ca_config_path)]),
            self.ca_log_path, self._http_listens, "did not listen on 127.0.0.1:8000")

    def _http_listens(self) -> bool:
        """An HTTP answer through the forward (a refused inner connection closes at once)."""
        try:
            with socket.create_connection(("127.0.0.1", self._forward.port), timeout=1) as s:  # type: ignore[union-attr]
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return bool(s.recv(16))
        except OSError:
            return False

    def stop_ca(self) -> None:
        self._stop(self._ca)
        self._ca = None

    # -- sshd: the Kea host as `kea.ssh` reaches it ------------------------------------
    def start_sshd(self, key_dir: Path) -> Path:
        """Debian's sshd (from the release's root) on 127.0.0.1:22 in the server namespace, key
        login for root; returns an ssh_config naming the host "kea-<tag>" (reached through a
        loopback forward). The CA stays on the namespace's loopback, as on a real Kea host."""
        import paramiko

        assert self.root is not None
        if not (self.root / "usr/sbin/sshd").exists():
            raise HarnessError(f"no sshd in the Kea {self.release.name} root")
        (self.root / "run" / "sshd").mkdir(exist_ok=True)
        etc = self.workdir / "etc"
        host_key = paramiko.RSAKey.generate(2048)
        host_key.write_private_key_file(str(etc / "ssh_host_rsa_key"))
        client_key = paramiko.RSAKey.generate(2048)
        key_dir.mkdir(parents=True, exist_ok=True)
        client_key.write_private_key_file(str(key_dir / "id_rsa"))
        (etc / "authorized_keys").write_text(f"ssh-rsa {client_key.get_base64()}\n")
        (etc / "sshd_config").write_text(
            "ListenAddress 127.0.0.1:22\nHostKey /etc/kea/ssh_host_rsa_key\n"
            "AuthorizedKeysFile /etc/kea/authorized_keys\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
            "AllowTcpForwarding local\nPidFile /run/kea/sshd.pid\n")
        self._sshd_forward = NetnsForward(self.server_ns, 22)
        self._sshd = self._spawn("sshd", self._chroot_argv(
            ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/kea/sshd_config"]),
            self.workdir / "sshd.stdout", self._sshd_listens, "did not listen on 127.0.0.1:22")
        # the client knows this host's key, as an operator's known_hosts would (unknown keys are refused)
        known = key_dir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self._sshd_forward.port} ssh-rsa {host_key.get_base64()}\n")
        config = key_dir / "ssh_config"
        config.write_text(f"Host kea-{self.tag}\n  HostName 127.0.0.1\n  Port {self._sshd_forward.port}\n"
                          f"  User root\n  IdentityFile {key_dir / 'id_rsa'}\n  UserKnownHostsFile {known}\n")
        return config

    def _sshd_listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._sshd_forward.port), timeout=1) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    # -- client ----------------------------------------------------------------------
    def dhclient(self, timeout: float = 30) -> str:
        """A fresh DHCP bind by Debian's dhclient (default config and script) on the LAN bridge
        of the client namespace; returns `ip -4 route` there afterwards (the kernel's routes)."""
        self.stop_dhclient()
        run("ip", "-n", self.client_ns, "addr", "flush", "dev", "br0")
        run("ip", "-n", self.client_ns, "route", "flush", "dev", "br0", check=False)
        lease = self.workdir / "dhclient.leases"
        lease.unlink(missing_ok=True)
        proc = run("ip", "netns", "exec", self.client_ns, DHCLIENT, "-1", "-v",
                   "-pf", str(self.workdir / "dhclient.pid"), "-lf", str(lease), "br0",
                   check=False, timeout=timeout)
        if proc.returncode != 0:
            raise HarnessError(f"dhclient ({self.tag}) got no lease (exit {proc.returncode}): "
                               f"{proc.stderr[-800:]}")
        return self.routes()

    def routes(self) -> str:
        return run("ip", "-n", self.client_ns, "-4", "route", "show").stdout

    def lease_text(self) -> str:
        path = self.workdir / "dhclient.leases"
        return path.read_text() if path.exists() else ""

    def stop_dhclient(self) -> None:
        pidfile = self.workdir / "dhclient.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
            pidfile.unlink(missing_ok=True)

    # -- lifecycle ---------------------------------------------------------------------
    def kea_ids(self) -> tuple[int, int]:
        """uid, gid of _kea in this release's root."""
        assert self.root is not None
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            name, _, uid, gid, *_ = line.split(":")
            if name == "_kea":
                return int(uid), int(gid)
        raise HarnessError(f"no _kea user in {self.root}")

    def apply_packaged_layout(self) -> None:
        """Owners and modes as the release's package leaves them: /etc/kea like the root's,
        config files root:root 0644 (so config-write fails until the deploy's step), the
        runtime, lease and log dirs _kea's (systemd RuntimeDirectory, postinst)."""
        assert self.root is not None
        etc = self.root / "etc" / "kea"
        st = etc.stat()
        uid, gid = self.kea_ids()
        os.chown(self.workdir / "etc", st.st_uid, st.st_gid)
        (self.workdir / "etc").chmod(st.st_mode & 0o7777)
        for path in (self.workdir / "etc").iterdir():
            os.chown(path, 0, 0)
            path.chmod(0o644)
        os.chown(self.password_path, uid, gid)  # a secret only Kea reads
        self.password_path.chmod(0o600)
        for path in (self.rundir, self.workdir / "lib", self.workdir / "log"):
            os.chown(path, uid, gid)
            path.chmod(0o750)
        # The workdir itself must let _kea through to the bind-mount sources (they are
        # mounted over /etc/kea etc. inside the root, the path above is not seen there).

    def start(self) -> KeaInstance:
        self.root = ensure_root(self.release)
        for inner in ("/run/kea", *LAYOUT.values()):  # mount points (the package makes some at run time)
            (self.root / inner.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self.setup_network()
        self._forward = NetnsForward(self.server_ns, DIRECT_PORT if self.api == "direct" else CA_PORT)
        self.write_password()
        if self.as_packaged:
            self.write_config()
            if self.api != "direct":
                self.write_ca_config()
            self.apply_packaged_layout()
        self.start_dhcp4()
        if self.api != "direct":
            self.start_ca()
        return self

    def close(self) -> None:
        """Stop everything this instance started and delete its namespaces (idempotent)."""
        self.stop_dhclient()
        self.stop_ca()
        self.stop_dhcp4()
        self._stop(self._sshd)
        self._sshd = None
        for forward in (self._forward, self._sshd_forward):
            if forward is not None:
                forward.close()
        self._forward = self._sshd_forward = None
        if "client" in self.spaces.names:
            shutil.rmtree(Path("/etc/netns") / self.client_ns, ignore_errors=True)
        self.spaces.delete()
        shutil.rmtree(self.rundir, ignore_errors=True)

    def __enter__(self) -> KeaInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # sh exec'd chroot exec'd the daemon: the signal reaches Kea itself
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    @staticmethod
    def _tail(path: Path, n: int = 600) -> str:
        try:
            return path.read_text()[-n:]
        except OSError:
            return ""


# The two documentation-range LANs of the built-in lab (lab/topology.toml).
SITE_A = dict(tag="a", subnet=IPNetwork("192.0.2.0/24"), gateway=IPAddress("192.0.2.1"),
              pool="192.0.2.100 - 192.0.2.199", subnet_id=1)
SITE_B = dict(tag="b", subnet=IPNetwork("172.16.100.0/24"), gateway=IPAddress("172.16.100.1"),
              pool="172.16.100.100 - 172.16.100.199", subnet_id=7)
