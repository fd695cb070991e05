"""Read the live state the check judges: routers over SSH, the control plane over its API.

Nothing here changes anything: every router command is a read (the deploy's
own facts, batched into one SSH command), the DHCP probe takes no lease, the
pings are pings, and the control plane is only listed and asked to *check* a
policy (never to store one). Routers are read in parallel, one thread each.
"""

from __future__ import annotations

import json
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import FactProcessError

from check import acl, ra
from check.dhcp import PROBE_SCRIPT, DhcpParseError, ProbeResult, parse_probe_output
from check.peers import tunnel_peers
from check.ra import RouterAdvert
from check.remote import RemoteError, Router
from controlplane import ControlPlaneError, Node, PolicyError, hujson, reach
from controlplane.base import ControlPlane, router_ident
from operations.batch import Batch
from operations.facts import (
    ForwardChain,
    ForwardFilter,
    ForwardingState,
    LivePrefs,
    MssClamp,
    MssClampRules,
    NodeStatus,
    TailscalePrefs,
    TailscaleStatus,
)
from operations.facts.addresses import InterfaceAddresses
from operations.owned import UnitState
from sites.model import SecretError, Site, SiteModel

RA_PROBE = Path(__file__).with_name(ra.PROBE_SCRIPT_NAME)
PROBE_WAIT = 2.0  # seconds the LAN host listens for DHCP answers
PING_WAIT = 3  # seconds per ping kind (all run at once)
TUNNEL_MTU = 1280  # tailscale0's MTU: the largest packet a site-to-site path must carry
ICMP_OVERHEAD = 28
PROBE_SIZES = (1200, 1000, 576)  # smaller DF packets tried too: how far below 1280 a bad path is


FACTS: dict[str, tuple] = {  # what the check reads on each router, in one command, by name
    "prefs": (TailscalePrefs, ()),
    "status": (TailscaleStatus, ()),
    "tailscaled": (UnitState, (("unit", "tailscaled.service"),)),
    "clamp": (MssClampRules, ()),
    "forwarding": (ForwardingState, ()),
    "forward_filter": (ForwardFilter, ()),
    "addresses": (InterfaceAddresses, (("version", 4),)),
    "addresses6": (InterfaceAddresses, (("version", 6),)),  # a dual-stack router's, for ping6
}


@dataclass
class RouterState:
    """One router as read over SSH; `error` set when it could not be read at all."""

    site: str
    target: str
    error: str | None = None
    prefs: LivePrefs | None = None
    status: NodeStatus | None = None
    no_stateful_filtering: bool | None = None
    tailscaled_unit: str = ""
    clamp: MssClamp | None = None
    forwarding: dict[str, str] = field(default_factory=dict)
    forward_filter: ForwardChain | None = None
    addresses: dict[str, list[str]] = field(default_factory=dict)
    facts_error: str | None = None
    lan_interface: str | None = None
    probe: ProbeResult | None = None
    probe_error: str | None = None
    pings: dict[str, dict[str, Any]] = field(default_factory=dict)  # peer site -> {tsping, mtu, small, via}
    router: Router | None = None
    other_routers: list[RouterState] = field(default_factory=list)  # an HA site's other routers (facts only)
    ping_source: str = ""  # the LAN address the tunnel pings went from (an HA site: the VRRP holder's vip)
    addresses6: list[str] = field(default_factory=list)  # global IPv6 addresses
    ra: RouterAdvert | None = None  # the advertisement seen leaving the LAN interface (dual stack)
    ra_error: str | None = None  # the RA probe could not run or its output did not parse
    ra_probed: bool = False
    pings6: dict[str, bool | None] = field(default_factory=dict)  # peer -> ping6 ok (None: no address)
    ping6_source: str | None = None  # this site's router address in its subnet6 the ping6 went from


@dataclass
class ControlState:
    """The control plane's view; `error` set when it could not be read."""

    error: str | None = None
    nodes: dict[str, Node | None] = field(default_factory=dict)  # site -> its router's node
    # HA site -> ssh target of each of its other routers -> that router's node
    other_router_nodes: dict[str, dict[str, Node]] = field(default_factory=dict)
    node_errors: dict[str, str] = field(default_factory=dict)
    online: dict[str, bool | None] = field(default_factory=dict)  # node id -> online
    primary: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node id -> primary routes (Headscale)
    policy_text: str | None = None
    all_nodes: list[Node] = field(default_factory=list)
    server_test: str | None = None  # None: passed or not run; else the server's complaint
    server_test_run: bool = False
    modern: bool = True  # the server reads `*` as Tailscale and Headscale >= 0.29 do (check.acl)


# The tailscale CLI waits about 2 s for a daemon that is not there, per call: when systemd says
# tailscaled is stopped, a shell function stands in for the CLI so its facts read as "no answer" at once.
SKIP_STOPPED_DAEMON = (
    'case "$(systemctl is-active tailscaled 2>/dev/null)" in inactive|failed) tailscale() { return 1; } ;; esac; '
)


def read_facts(router: Router, state: RouterState) -> None:
    batch = Batch()
    command = SKIP_STOPPED_DAEMON + batch.command(specs=tuple(FACTS.values()))
    result = router.run(command)
    try:
        values = dict(zip(FACTS, batch.process(result.stdout.splitlines()), strict=True))
    except FactProcessError as exc:
        state.facts_error = " ".join(str(exc).split())
        return
    state.prefs, state.status, state.clamp = values["prefs"], values["status"], values["clamp"]
    state.tailscaled_unit = values["tailscaled"].state
    state.forwarding, state.forward_filter = values["forwarding"], values["forward_filter"]
    state.addresses = values["addresses"]
    state.addresses6 = [a for held in values["addresses6"].values() for a in held]
    if state.prefs is not None:
        state.no_stateful_filtering = state.prefs.no_stateful_filtering


def probe_dhcp(router: Router, state: RouterState, site: Site) -> None:
    """The DHCP exchange from the router's LAN interface (the one holding the site's router address)."""
    own = str(site.routers[0].address)  # the router the check reads in full; on an HA site not the vip,
    # which is on whichever router is VRRP master
    state.lan_interface = next((i for i, ips in state.addresses.items() if own in ips), None)
    if state.lan_interface is None:
        state.probe_error = f"no interface holds the router address {own}"
        return
    command = f"python3 - {shlex.quote(state.lan_interface)} {shlex.quote(own)} {PROBE_WAIT:g}"
    result = router.run(command, stdin=PROBE_SCRIPT.read_text(), timeout=PROBE_WAIT + 10)
    if result.rc != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        state.probe_error = f"the DHCP probe could not run on the router (it needs python3 and root): {last}"
        return
    try:
        state.probe = parse_probe_output(result.stdout)
    except DhcpParseError as exc:
        state.probe_error = str(exc)


def read_router(model: SiteModel, site: Site) -> RouterState:
    """The site's (first) router: facts, the DHCP probe (pings later); on an HA site also the other
    routers' facts (the probe and the pings go from the first one only)."""
    first = site.routers[0].ssh
    state = RouterState(site.name, first)
    try:
        router = state.router = Router(first, model.ssh)
        read_facts(router, state)
        probe_dhcp(router, state, site)
    except RemoteError as exc:
        state.error = str(exc)
    state.other_routers = [read_other_router(model, site.name, other.ssh) for other in site.routers[1:]]
    return state


def read_other_router(model: SiteModel, site: str, ssh: str) -> RouterState:
    """An HA site's other router: its facts (kept connected: if it holds the VRRP address, the
    site's tunnel pings go from it)."""
    other = RouterState(site, ssh)
    try:
        router = other.router = Router(ssh, model.ssh)
        read_facts(router, other)
    except RemoteError as exc:
        other.error = str(exc)
    return other


def pinger(site: Site, state: RouterState) -> tuple[RouterState, str]:
    """Which router the site's LAN-to-LAN pings go from, and from which address: peers accept a
    site's prefixes only from its primary router, which the VRRP address follows, so on an HA site
    the router holding the vip, from the vip; else the router, from its own LAN address."""
    if site.ha:
        vip = str(site.vip)
        for candidate in (state, *state.other_routers):
            if candidate.router is not None and any(vip in ips for ips in candidate.addresses.values()):
                return candidate, vip
    return state, str(site.routers[0].address)


def _ping_command(peers: list[tuple[str, str, str]], source: str) -> str:
    """Every peer at once: `tailscale ping` to its tailnet IP, then LAN to LAN pings with and without DF."""
    size = TUNNEL_MTU - ICMP_OVERHEAD
    parts = []
    for name, tailnet_ip, lan_ip in peers:
        n, t, lan, src = (shlex.quote(x) for x in (name, tailnet_ip, lan_ip, source))
        if tailnet_ip:
            parts.append(
                f"( out=$(tailscale ping -c 1 --until-direct=false --timeout={PING_WAIT}s {t} 2>&1); "
                f"echo \"tsping {n} $? $(echo \"$out\" | tail -n 1)\" ) &"
            )
        base = f"ping -n -q -c 2 -i 0.2 -w {PING_WAIT} -I {src}"
        parts.append(f"( {_mtu_ping(base, size, lan)}; echo \"mtu {n} $? $(echo \"$out\" | {PING_GIST})\" ) &")
        for total in PROBE_SIZES:
            parts.append(
                f"( {base} -M do -s {total - ICMP_OVERHEAD} {lan} >/dev/null 2>&1; echo \"df{total} {n} $?\" ) &"
            )
        parts.append(f"( {base} -s 56 {lan} >/dev/null 2>&1; echo \"small {n} $?\" ) &")
    return " ".join(parts) + " wait"


# what ping said about a failed 1280-byte ping: its count line, and the sender's own path MTU if
# the kernel refused the packet locally ("local error: message too long, mtu=1200")
PING_GIST = "grep -o -e 'mtu=[0-9]*' -e '[0-9]* received' | sort -u | tr '\\n' ' '"
MTU_RETRY_WAIT = 5  # seconds: the second 1280-byte ping, alone (the first went out in a burst of them)


def _mtu_ping(base: str, size: int, lan: str) -> str:
    return f"out=$({base} -M do -s {size} {lan} 2>&1)"


def _mtu_retry_command(peers: list[str], lans: dict[str, str], source: str) -> str:
    """A second 1280-byte DF ping to the peers whose first one failed while smaller ones passed."""
    size = TUNNEL_MTU - ICMP_OVERHEAD
    base = f"ping -n -q -c 2 -i 0.2 -w {MTU_RETRY_WAIT} -I {shlex.quote(source)}"
    parts = [f"( {_mtu_ping(base, size, shlex.quote(lans[p]))}; "
             f"echo \"mtu2 {shlex.quote(p)} $? $(echo \"$out\" | {PING_GIST})\" ) &" for p in peers]
    return " ".join(parts) + " wait"


def parse_pings(text: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        bits = line.split(" ", 3)
        if len(bits) < 3 or not (bits[0] in ("tsping", "mtu", "mtu2", "small") or re.fullmatch(r"df\d+", bits[0])):
            continue
        entry = out.setdefault(bits[1], {})
        entry[bits[0]] = bits[2] == "0"
        if bits[0] == "tsping":
            entry["detail"] = bits[3].strip() if len(bits) > 3 else ""
        elif bits[0] in ("mtu", "mtu2"):
            entry[f"{bits[0]}_detail"] = bits[3].strip() if len(bits) > 3 else ""
    return out


def mtu_retry_peers(pings: dict[str, dict[str, Any]]) -> list[str]:
    """Peers whose 1280-byte DF ping failed while a smaller ping passed: worth a second, lone try
    before calling it a path MTU fault (the first went out with every other ping of the router at
    once; on a loaded 50-site lab some were lost while smaller ones of the same burst passed)."""
    return [peer for peer, got in pings.items()
            if got.get("mtu") is False and any(v is True for k, v in got.items() if k == "small" or k.startswith("df"))]


def ping_peers(model: SiteModel, states: dict[str, RouterState]) -> None:
    """Phase two, once every router's tailnet IP is known: each router pings its peers (every other
    one, or a ring sample on a large file: check.peers)."""

    def tailnet_ip(name: str) -> str:
        status = states[name].status
        return next((ip for ip in (status.tailscale_ips if status else ()) if ":" not in ip), "")

    def pings_from(name: str) -> None:
        state = states[name]
        if state.router is None or state.error:
            return
        peers = [(o, tailnet_ip(o), str(model.sites[o].next_hop)) for o in tunnel_peers(list(model.sites), name)]
        sender, state.ping_source = pinger(model.sites[name], state)
        try:
            result = sender.router.run(_ping_command(peers, state.ping_source), timeout=PING_WAIT + 10)
            state.pings = parse_pings(result.stdout)
            if again := mtu_retry_peers(state.pings):
                lans = {peer: lan for peer, _, lan in peers}
                result = sender.router.run(_mtu_retry_command(again, lans, state.ping_source),
                                           timeout=MTU_RETRY_WAIT + 10)
                for peer, got in parse_pings(result.stdout).items():
                    state.pings.setdefault(peer, {}).update(got)
            if model.sites[name].subnet6 is not None:
                probe_ipv6(model, name, states, sender)
        except RemoteError as exc:
            state.error = state.error or str(exc)

    with ThreadPoolExecutor(max_workers=max(1, len(states))) as pool:
        list(pool.map(pings_from, states))


def _sender_of(model: SiteModel, name: str, states: dict[str, RouterState]) -> RouterState:
    return pinger(model.sites[name], states[name])[0]


def probe_ipv6(model: SiteModel, name: str, states: dict[str, RouterState], sender: RouterState) -> None:
    """A dual-stack site: the advertisement leaving the sending router's LAN interface (the VRRP
    holder's on an HA site), then ping6 from its subnet6 address to every dual-stack peer's."""
    state, site = states[name], model.sites[name]
    state.ra_probed = True
    iface = next(
        (i for i, ips in sender.addresses.items() if str(site.routers[0].address) in ips or str(site.vip) in ips), None
    )
    if iface is None:
        state.ra_error = "no interface holds the router's LAN address"
    else:
        result = sender.router.run(
            f"python3 - {shlex.quote(iface)} {ra.RA_WAIT:g}", stdin=RA_PROBE.read_text(), timeout=ra.RA_WAIT + 10
        )
        try:
            state.ra = ra.parse_probe(result.stdout) if result.rc == 0 else None
            if result.rc != 0:
                state.ra_error = (
                    "the RA probe could not run (python3 and root needed): "
                    + (result.stderr.strip().splitlines() or ["no output"])[-1]
                )
        except ra.RaParseError as exc:
            state.ra_error = str(exc)
    state.ping6_source = ra.address_in(sender.addresses6, str(site.subnet6))
    parts = []
    for peer in tunnel_peers(dual_stack(model), name):
        other = model.sites[peer]
        target = ra.address_in(_sender_of(model, peer, states).addresses6, str(other.subnet6))
        if state.ping6_source is None or target is None:
            state.pings6[peer] = None
            continue
        src, dst, n = (shlex.quote(x) for x in (state.ping6_source, target, peer))
        parts.append(
            f"( ping -6 -n -q -c 2 -i 0.2 -w {PING_WAIT} -I {src} {dst} >/dev/null 2>&1; echo \"ping6 {n} $?\" ) &"
        )
    if parts:
        out = sender.router.run(" ".join(parts) + " wait", timeout=PING_WAIT + 10).stdout
        for line in out.splitlines():
            bits = line.split()
            if len(bits) == 3 and bits[0] == "ping6":
                state.pings6[bits[1]] = bits[2] == "0"


def dual_stack(model: SiteModel) -> list[str]:
    """The sites with a subnet6, in site-file order (the ping6 peers are sampled among them)."""
    return [name for name, site in model.sites.items() if site.subnet6 is not None]


def _live_flags(state: ControlState) -> None:
    """Node id -> online, and -> the routes it is primary for, where the backend reports them
    (controlplane.Node: Headscale both, Tailscale's API `connectedToControl` only)."""
    for node in state.all_nodes:
        state.online[node.id] = node.online
        if node.primary_routes is not None:
            state.primary[node.id] = node.primary_routes


def _other_router_nodes(cp: ControlPlane, site: Site, nodes: list[Node], ours: tuple[str, ...]) -> dict[str, Node]:
    """An HA site's other routers' nodes, by ssh target (the ones the control plane knows): any of them
    may be the site's primary after a failover, which is healthy."""
    found = {}
    for router in site.routers[1:]:
        try:
            found[router.ssh] = cp.find_router(router_ident(router), nodes, prefer=ours)
        except ControlPlaneError:
            continue
    return found


def read_control(model: SiteModel) -> ControlState:
    state = ControlState()
    if model.tailnet is None:
        state.error = "the site file has no [tailnet] table"
        return state
    try:
        with reach(model, timeout=10) as cp:
            state.all_nodes = cp.list_nodes()
            for site in model.sites.values():
                ours = tuple(str(p) for p in site.advertised)
                try:
                    state.nodes[site.name] = cp.find_router(router_ident(site.routers[0]), state.all_nodes, prefer=ours)
                except ControlPlaneError as exc:
                    state.nodes[site.name] = None
                    state.node_errors[site.name] = " ".join(str(exc).split())
                state.other_router_nodes[site.name] = _other_router_nodes(cp, site, state.all_nodes, ours)
            _live_flags(state)
            state.policy_text = cp.read_policy().text
            state.modern = cp.grants_supported()
            _server_tests(cp, model, state)
    except (ControlPlaneError, PolicyError, SecretError) as exc:
        state.error = " ".join(str(exc).split())
    return state


def _server_tests(cp: ControlPlane, model: SiteModel, state: ControlState) -> None:
    """Ask the server to run the site pairs as the policy's `tests` (check only: nothing is stored)."""
    if not (state.policy_text or "").strip():
        return
    try:
        doc = hujson.loads(state.policy_text)
    except hujson.HuJSONError as exc:
        state.server_test, state.server_test_run = f"the policy is not valid HuJSON: {exc}", True
        return
    tailnet_ip = next((a for n in state.all_nodes for a in n.addresses if ":" not in a), "100.64.0.1")
    tailnet_ip6 = next((a for n in state.all_nodes for a in n.addresses if ":" in a), "fd7a:115c:a1e0::1")
    sites6 = [(s.name, acl.test_address6(s.subnet6)) for s in model.sites.values() if s.subnet6 is not None]
    doc["tests"] = acl.server_tests([(s.name, str(s.next_hop)) for s in model.sites.values()], tailnet_ip,
                                    sites6=sites6, tailnet_ip6=tailnet_ip6)
    try:
        state.server_test_run = cp.check_policy(json.dumps(doc))  # False: the server cannot run them
    except ControlPlaneError as exc:
        state.server_test, state.server_test_run = " ".join(str(exc).split()), True


def gather(model: SiteModel) -> tuple[dict[str, RouterState], ControlState]:
    """Everything, in parallel: each router's facts and DHCP probe, and the control plane; then the pings."""
    with ThreadPoolExecutor(max_workers=len(model.sites) + 1) as pool:
        control = pool.submit(read_control, model)
        routers = dict(zip(model.sites, pool.map(lambda s: read_router(model, s), model.sites.values()), strict=True))
        control_state = control.result()
    try:
        ping_peers(model, routers)
    finally:
        for state in routers.values():
            for read in (state, *state.other_routers):
                if read.router is not None:
                    read.router.close()
                    read.router = None
    return routers, control_state
