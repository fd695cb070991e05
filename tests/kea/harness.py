"""A real Kea DHCPv4 server, its Control Agent and a real dhclient, for tests and benchmarks.

Why this shape: kea-dhcp4 must bind a LAN interface, so it runs inside its own
network namespace with a veth pair to a client namespace where dhclient runs;
the Control Agent runs in the host namespace on 127.0.0.1 (loopback only) and
reaches the server through its unix control socket (unix sockets cross network
namespaces). Every file (config, pid/lock files, leases, sockets, logs) lives in
a temp dir: KEA_PIDFILE_DIR and KEA_LOCKFILE_DIR point there, nothing under /etc
or /run/kea is touched. AppArmor: this machine kind has none (`aa-status`:
"apparmor not present"); where a profile confines /usr/sbin/kea-dhcp4 it would
refuse the temp paths, see docs/kea.md.

Network safety: no namespace made here has a route to anywhere; all DHCP
traffic stays on the veth pair between the two namespaces. Names start with the
prefix given (default "s2s-kea"), veths with "sk".
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from netaddr import IPAddress, IPNetwork

KEA_DHCP4 = "/usr/sbin/kea-dhcp4"
KEA_CA = "/usr/sbin/kea-ctrl-agent"
DHCLIENT = "/sbin/dhclient"
DEBIAN_PACKAGES = ("kea-dhcp4-server", "kea-ctrl-agent", "isc-dhcp-client", "iproute2")


class HarnessError(RuntimeError):
    """The harness could not bring a component up; the message says which and why."""


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the real-Kea tests (empty when all is there)."""
    missing = [p for p in (KEA_DHCP4, KEA_CA, DHCLIENT) if not os.access(p, os.X_OK)]
    if shutil.which("ip") is None:
        missing.append("ip (iproute2)")
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    return missing


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


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
                    raise HarnessError(f"kea socket {path}: incomplete answer {buf[:200]!r}")


@dataclass
class KeaInstance:
    """One site's Kea: kea-dhcp4 in `server_ns`, a dhclient LAN in `client_ns`, a CA on loopback."""

    tag: str                      # short, unique in the lab ("a", "b")
    workdir: Path
    subnet: IPNetwork
    gateway: IPAddress            # kea-dhcp4's own LAN address
    pool: str                     # "first - last"
    subnet_id: int = 1
    user: str = "kea-api"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    prefix: str = "s2s-kea"
    token: str = field(default_factory=lambda: secrets.token_hex(2))
    make_config: Callable[["KeaInstance"], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server_ns = f"{self.prefix}-{self.token}-{self.tag}-srv"
        self.client_ns = f"{self.prefix}-{self.token}-{self.tag}-cli"
        self.srv_if = f"sk{self.token}{self.tag}s"[:15]
        self.cli_if = f"sk{self.token}{self.tag}c"[:15]
        self.config_path = self.workdir / "kea-dhcp4.conf"
        self.ca_config_path = self.workdir / "kea-ctrl-agent.conf"
        self.socket_path = self.workdir / "kea4.sock"
        self.leases_path = self.workdir / "leases4.csv"
        self.log_path = self.workdir / "kea-dhcp4.log"
        self.ca_log_path = self.workdir / "kea-ctrl-agent.log"
        self.password_path = self.workdir / "ca-password"
        self.ca_port = 0
        self._dhcp4: subprocess.Popen[bytes] | None = None
        self._ca: subprocess.Popen[bytes] | None = None
        self._netns_made = False

    # -- addresses ---------------------------------------------------------------------
    @property
    def ca_url(self) -> str:
        return f"http://127.0.0.1:{self.ca_port}/"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KEA_PIDFILE_DIR"] = str(self.workdir)
        env["KEA_LOCKFILE_DIR"] = str(self.workdir)
        return env

    # -- network -----------------------------------------------------------------------
    def setup_network(self) -> None:
        """Two namespaces joined by one veth pair, created straight inside them."""
        run("ip", "netns", "add", self.server_ns)
        self._netns_made = True
        run("ip", "netns", "add", self.client_ns)
        run("ip", "link", "add", self.srv_if, "netns", self.server_ns, "type", "veth",
            "peer", "name", self.cli_if, "netns", self.client_ns)
        run("ip", "-n", self.server_ns, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}",
            "dev", self.srv_if)
        for ns, ifname in ((self.server_ns, self.srv_if), (self.client_ns, self.cli_if)):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", ifname, "up")
        # dhclient-script writes /etc/resolv.conf: `ip netns exec` bind-mounts this over it.
        etc = Path("/etc/netns") / self.client_ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("")

    # -- kea-dhcp4 ---------------------------------------------------------------------
    def default_config(self) -> dict[str, Any]:
        """A small but realistic config: one LAN subnet with a pool, routers/DNS options and a
        reservation, a global option, and one unrelated subnet, logging to the workdir."""
        return {"Dhcp4": {
            "interfaces-config": {"interfaces": [self.srv_if], "dhcp-socket-type": "raw"},
            "control-socket": {"socket-type": "unix", "socket-name": str(self.socket_path)},
            "lease-database": {"type": "memfile", "persist": True, "name": str(self.leases_path),
                               "lfc-interval": 0},
            "valid-lifetime": 600,
            "option-data": [{"name": "domain-name", "data": "lab.example"}],
            "subnet4": [{
                "id": self.subnet_id,
                "subnet": str(self.subnet),
                "pools": [{"pool": self.pool}],
                "option-data": [{"name": "routers", "data": str(self.gateway)},
                                {"name": "domain-name-servers", "data": str(self.gateway)}],
                "reservations": [{"hw-address": "02:00:00:00:00:99",
                                  "ip-address": str(self.subnet[50]),
                                  "hostname": "reserved-host"}],
            }],
            "loggers": [{"name": "kea-dhcp4", "severity": "INFO", "debuglevel": 0,
                         "output_options": [{"output": str(self.log_path)}]}],
        }}

    def write_config(self) -> None:
        config = (self.make_config or KeaInstance.default_config)(self)
        self.config_path.write_text(json.dumps(config, indent=2))

    def start_dhcp4(self, write_config: bool = False) -> None:
        """Start kea-dhcp4 in the server namespace from `config_path` (written on first start)."""
        if write_config or not self.config_path.exists():
            self.write_config()
        self.socket_path.unlink(missing_ok=True)
        self._dhcp4 = self._spawn("kea-dhcp4", ["ip", "netns", "exec", self.server_ns, KEA_DHCP4, "-c",
                                                str(self.config_path)], self.log_path, self._dhcp4_answers,
                                  f"did not open {self.socket_path}")

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
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise HarnessError(f"{name} ({self.tag}) exited {proc.returncode}: "
                                   f"{self._tail(self.workdir / f'{name}.stdout')}{self._tail(log)}")
            if ready():
                return proc
            time.sleep(0.05)
        self._stop(proc)
        raise HarnessError(f"{name} ({self.tag}) {not_ready}")

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
    def start_ca(self) -> None:
        """kea-ctrl-agent on 127.0.0.1:<free port> with basic auth, forwarding to our socket."""
        self.password_path.write_text(self.password)
        self.password_path.chmod(0o600)
        self.ca_port = free_port()
        config = {"Control-agent": {
            "http-host": "127.0.0.1",
            "http-port": self.ca_port,
            "authentication": {"type": "basic", "realm": f"s2s-kea-{self.tag}",
                               "directory": str(self.workdir),
                               "clients": [{"user": self.user,
                                            "password-file": self.password_path.name}]},
            "control-sockets": {"dhcp4": {"socket-type": "unix",
                                          "socket-name": str(self.socket_path)}},
            "loggers": [{"name": "kea-ctrl-agent", "severity": "INFO", "debuglevel": 0,
                         "output_options": [{"output": str(self.ca_log_path)}]}],
        }}
        self.ca_config_path.write_text(json.dumps(config, indent=2))
        self._ca = self._spawn("kea-ctrl-agent", [KEA_CA, "-c", str(self.ca_config_path)], self.ca_log_path,
                               self._ca_listens, f"did not listen on {self.ca_url}")

    def _ca_listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ca_port), timeout=1):
                return True
        except OSError:
            return False

    def stop_ca(self) -> None:
        self._stop(self._ca)
        self._ca = None

    # -- client ------------------------------------------------------------------------
    def dhclient(self, timeout: float = 30) -> str:
        """A fresh DHCP bind by Debian's dhclient (default config and script) in the client
        namespace; returns `ip -4 route` there afterwards (the routes the kernel got)."""
        self.stop_dhclient()
        run("ip", "-n", self.client_ns, "addr", "flush", "dev", self.cli_if)
        run("ip", "-n", self.client_ns, "route", "flush", "dev", self.cli_if, check=False)
        lease = self.workdir / "dhclient.leases"
        lease.unlink(missing_ok=True)
        proc = run("ip", "netns", "exec", self.client_ns, DHCLIENT, "-1", "-v",
                   "-pf", str(self.workdir / "dhclient.pid"), "-lf", str(lease), self.cli_if,
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
    def start(self) -> "KeaInstance":
        self.setup_network()
        self.start_dhcp4()
        self.start_ca()
        return self

    def close(self) -> None:
        """Stop everything this instance started and delete its namespaces (idempotent)."""
        self.stop_dhclient()
        self.stop_ca()
        self.stop_dhcp4()
        if self._netns_made:
            for ns in (self.client_ns, self.server_ns):
                run("ip", "netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / self.client_ns, ignore_errors=True)
            self._netns_made = False

    def __enter__(self) -> "KeaInstance":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
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
