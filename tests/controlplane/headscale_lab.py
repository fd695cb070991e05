"""A real Headscale and two real tailscaled routers, each in a network namespace of ours.

Layout (namespaces from tests.support.Namespaces, uniquely named per run; links
named sc-* inside them; all addresses live only inside the namespaces): role "hs"
holds Headscale (192.168.255.10, embedded DERP, no DERP map from the internet)
and a bridge; roles "ra" / "rb" hold one tailscaled each (192.168.255.2 / .3,
real TUN). The namespaces have no route anywhere else.

The test process never sends a packet to a namespace address: it reaches the
REST API through a unix socket (socat in the namespace forwards it to
Headscale's 127.0.0.1:8080) and a host-side socat on 127.0.0.1:<port>.
The admin CLI (users, pre-auth and API keys) uses Headscale's unix socket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lab.headscale import render_config
from tests.support import Namespaces, free_port, netns_prerequisites, sh, wait_for

NS_HS, NS_RA, NS_RB = "hs", "ra", "rb"  # namespace roles (their real names are unique per run)
HS_ADDR = "192.168.255.10"
ROUTERS = {NS_RA: ("sc-ra", "192.168.255.2"), NS_RB: ("sc-rb", "192.168.255.3")}
LOGIN = f"http://{HS_ADDR}:8080"

__all__ = ["NS_RA", "NS_RB", "HeadscaleLab", "prerequisites"]


@dataclass
class HeadscaleLab:
    headscale: Path
    tailscale: Path
    tailscaled: Path
    tmp: Path
    api_url: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)
    user_id: str = ""
    ns: Namespaces = field(default_factory=lambda: Namespaces("cp"))

    # --- network ------------------------------------------------------------
    def build_network(self) -> None:
        hs, ns = self.ns.add(NS_HS), self.ns
        sh("ip", "-n", hs, "link", "add", "sc-br", "type", "bridge")
        sh("ip", "-n", hs, "addr", "add", f"{HS_ADDR}/24", "dev", "sc-br")
        sh("ip", "-n", hs, "link", "set", "sc-br", "up")
        for role, (name, addr) in ROUTERS.items():
            router = ns.add(role)
            sh("ip", "-n", hs, "link", "add", f"{name}-h", "type", "veth", "peer", "name", name, "netns", router)
            sh("ip", "-n", hs, "link", "set", f"{name}-h", "master", "sc-br", "up")
            sh("ip", "-n", router, "addr", "add", f"{addr}/24", "dev", name)
            sh("ip", "-n", router, "link", "set", name, "up")

    def spawn(self, name: str, *cmd: str, ns: str | None = None, env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
        proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    # --- headscale ----------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.tmp / "headscale.yaml"

    def hs(self, *args: str) -> str:
        """The headscale admin CLI over its unix socket (no network)."""
        return sh(str(self.headscale), "-c", str(self.config), "--force", *args).stdout

    def start_headscale(self) -> None:
        self.config.write_text(render_config(server_url=LOGIN, listen_port=8080, address=HS_ADDR,
                                             state_dir=str(self.tmp), unix_socket=f"{self.tmp}/headscale.sock",
                                             stun_listen=HS_ADDR, region_code="s2s",
                                             region_name="s2s embedded DERP"))
        self.spawn("headscale", str(self.headscale), "serve", "-c", str(self.config), ns=self.ns[NS_HS])
        wait_for("headscale unix socket", lambda: (self.tmp / "headscale.sock").exists())
        wait_for("headscale CLI", lambda: self.hs("users", "list") is not None)
        api_sock = self.tmp / "api.sock"
        self.spawn("socat-ns", "socat", f"UNIX-LISTEN:{api_sock},fork", "TCP:127.0.0.1:8080", ns=self.ns[NS_HS])
        wait_for("api socket", api_sock.exists)
        port = free_port()
        self.spawn("socat-host", "socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                   f"UNIX-CONNECT:{api_sock}")
        self.api_url = f"http://127.0.0.1:{port}"

        def health() -> bool:
            import requests

            return requests.get(self.api_url + "/health", timeout=2).ok

        wait_for("headscale API through socat", health)

    def api_key(self) -> str:
        return self.hs("apikeys", "create", "--expiration", "2h").strip().splitlines()[-1].strip()

    def preauth_key(self) -> str:
        if not self.user_id:
            self.hs("users", "create", "lab")
            users = json.loads(self.hs("users", "list", "-o", "json"))
            self.user_id = str(next(u["id"] for u in users if u["name"] == "lab"))
        out = json.loads(self.hs("preauthkeys", "create", "--user", self.user_id, "--reusable",
                                 "--expiration", "2h", "-o", "json"))
        return out["key"]

    # --- routers ------------------------------------------------------------
    def router_env(self) -> dict:
        return dict(os.environ, TS_NO_LOGS_NO_SUPPORT="true")

    def ts(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        sock = self.tmp / role / "tailscaled.sock"
        return sh(str(self.tailscale), f"--socket={sock}", *args, ns=self.ns[role], env=self.router_env(),
                  check=check, timeout=90)

    def start_router(self, role: str, routes: list[str], authkey: str) -> None:
        name, _ = ROUTERS[role]
        state = self.tmp / role
        state.mkdir(exist_ok=True)
        self.spawn(f"tailscaled-{role}", str(self.tailscaled), f"--statedir={state}",
                   f"--socket={state / 'tailscaled.sock'}", "--tun=sc-ts0", "--port=41641",
                   "--no-logs-no-support", ns=self.ns[role], env=self.router_env())
        wait_for(f"tailscaled in {role}", lambda: (state / "tailscaled.sock").exists())
        self.ts(role, "up", f"--login-server={LOGIN}", f"--authkey={authkey}", f"--hostname={name}",
                f"--advertise-routes={','.join(routes)}", "--accept-dns=false", "--netfilter-mode=off",
                "--timeout=60s")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.ns.delete()

    def logs(self) -> str:
        parts = []
        for f in sorted(self.tmp.glob("*.log")):
            parts.append(f"--- {f.name}\n" + f.read_text()[-2000:])
        return "\n".join(parts)


def prerequisites() -> str | None:
    """Why the real lab cannot run here, or None."""
    reason = netns_prerequisites("socat")
    if reason is None and not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing"
    return reason
