"""Decide, from the state gather.py read, which step is ok, broken or unknown at each site.

Pure: no I/O, so every verdict is tested from canned state. A step that
failed only because an earlier step is broken (tailscaled down, so no routes;
a route unapproved, so no LAN-to-LAN ping) is reported as unknown with the
cause, never as broken: the table names the step to fix, once.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass
from enum import Enum

from check import acl, ra
from check.dhcp import judge as judge_dhcp
from check.gather import TUNNEL_MTU, ControlState, RouterState, dual_stack
from check.peers import sample_note, tunnel_peers
from controlplane import hujson
from controlplane.model import Node
from controlplane.policy import TAILNET_RANGE6
from dhcp.plan import SitePlan
from operations import radvd
from sites.model import Site, SiteModel, SshTarget


class Status(str, Enum):
    OK = "ok"
    BROKEN = "broken"
    UNKNOWN = "unknown"


STEPS: tuple[tuple[str, str], ...] = (
    ("ssh", "router reachable over SSH"),
    ("tailscaled", "tailscaled running, logged in, online (router and control plane)"),
    ("routes", "site routes advertised, approved and primary"),
    ("prefs", "SNAT off, accept-routes on, stateful filtering off"),
    ("forwarding", "IPv4 forwarding on"),
    ("clamp", "TCP MSS clamped both ways on tailscale0"),
    ("policy", "policy allows every other site and 100.64.0.0/10 (IPv6: fd7a:115c:a1e0::/48), both ways"),
    ("dhcp", "the LAN's DHCP server sends the planned option 121/249"),
    ("tunnel", "router reaches every other router over the tailnet, full-size packets"),
    ("ra", "IPv6 LAN: router advertisement with lifetime 0 and the other sites' routes"),
    ("ping6", "IPv6 ping crosses LAN to LAN"),
)
STEP_IDS = tuple(s for s, _ in STEPS)
IPV6_STEPS = ("ra", "ping6")  # rows only for a site with a subnet6
# what a LAN-to-LAN ping between two routers needs at both ends
PATH_NEEDS = ("ssh", "tailscaled", "routes", "prefs", "policy")


@dataclass(frozen=True)
class Row:
    site: str
    step: str
    status: Status
    reason: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"site": self.site, "step": self.step, "status": self.status.value, "reason": self.reason,
                "fix": self.fix}


class Fixes:
    """The commands that repair a step, spelled for this site file."""

    def __init__(self, model: SiteModel) -> None:
        self.sites = shlex.quote(str(model.path))
        self.ssh_config = model.ssh.config_file

    def deploy(self, router: RouterState) -> str:
        """The deploy, limited to the router the fix is for."""
        limit = shlex.quote(SshTarget.parse(router.target).name)
        return f"SITES={self.sites} pyinfra -y inventory.py deploy.py --limit {limit}"

    def ssh(self, target: str, command: str) -> str:
        config = f"-F {shlex.quote(str(self.ssh_config))} " if self.ssh_config else ""
        return f"ssh {config}{shlex.quote(target)} {shlex.quote(command)}"

    def controlplane(self) -> str:
        return f"python -m controlplane apply --sites {self.sites}"

    def dhcp_push(self) -> str:
        return f"python -m dhcp push --sites {self.sites}"


def _ok(site: str, step: str, reason: str) -> Row:
    return Row(site, step, Status.OK, reason)


def _broken(site: str, step: str, reason: str, fix: str) -> Row:
    return Row(site, step, Status.BROKEN, reason, fix)


def _unknown(site: str, step: str, reason: str) -> Row:
    return Row(site, step, Status.UNKNOWN, reason)


def ssh_row(site: Site, r: RouterState, fx: Fixes) -> Row:
    if r.error:
        return _broken(site.name, "ssh", r.error, fx.ssh(r.target, "true") + "  # check [ssh] and the router")
    if r.facts_error:
        return _unknown(site.name, "ssh", f"reached, but its state did not parse: {r.facts_error}")
    return _ok(site.name, "ssh", f"{r.target} answers")


def tailscaled_row(site: Site, r: RouterState, cs: ControlState, fx: Fixes) -> Row:
    name = site.name
    if r.error or r.facts_error:
        return _unknown(name, "tailscaled", "router not readable (see ssh)")
    status = r.status
    if status is None:
        if r.tailscaled_unit in ("inactive", "failed", "deactivating"):
            return _broken(name, "tailscaled", f"tailscaled is not running (systemd: {r.tailscaled_unit})",
                           fx.ssh(r.target, "systemctl start tailscaled"))
        if r.prefs is None and r.tailscaled_unit in ("", "unknown"):
            return _broken(name, "tailscaled", "tailscale is not installed", fx.deploy(r))
        return _broken(name, "tailscaled", f"tailscaled does not answer (systemd: {r.tailscaled_unit or '?'})",
                       fx.ssh(r.target, "systemctl restart tailscaled"))
    if status.backend_state != "Running":
        return _broken(name, "tailscaled", f"BackendState {status.backend_state} (not logged in and up)",
                       fx.deploy(r))
    if not status.online:
        return _broken(name, "tailscaled", "the router reports itself offline (no control connection)",
                       fx.ssh(r.target, "tailscale netcheck; systemctl restart tailscaled"))
    ip = next((a for a in status.tailscale_ips if ":" not in a), "?")
    if cs.error:  # half of this step is the control plane's view: not read, so not ok
        return _unknown(name, "tailscaled", f"the router reports Running, online, {ip}; "
                        f"the control plane's view is unknown: {cs.error}")
    node = cs.nodes.get(name)
    if node is None:
        return _broken(name, "tailscaled", cs.node_errors.get(name, "not a node of the control plane"),
                       fx.deploy(r))
    if cs.online.get(node.id) is False:
        return _broken(name, "tailscaled", f"the control plane sees node {node.label} offline",
                       fx.ssh(r.target, "systemctl restart tailscaled"))
    return _ok(name, "tailscaled", f"Running, online, {ip} (node {node.label}), tailscale {status.version}")


def routes_row(site: Site, r: RouterState, cs: ControlState, fx: Fixes, tailscaled: Row) -> Row:
    name = site.name
    ours = [str(p) for p in site.advertised]
    # unknown only for want of the control plane's view: the router's own side is still judged
    router_side = cs.error and tailscaled.status == Status.UNKNOWN and r.status is not None
    if tailscaled.status != Status.OK and not router_side:
        return _unknown(name, "routes", "needs a running tailscaled (see tailscaled)")
    prefs, status = r.prefs, r.status
    assert status is not None
    missing = [p for p in ours if prefs is None or p not in prefs.advertise_routes]
    if missing:
        return _broken(name, "routes", f"not advertised by the router: {', '.join(missing)}", fx.deploy(r))
    if cs.error:
        return _unknown(name, "routes", f"advertised; approval unknown: {cs.error}")
    node = cs.nodes.get(name)
    if node is None:
        return _unknown(name, "routes", "advertised; the control plane has no node for it")
    unseen = [p for p in ours if p not in node.advertised]
    if unseen:
        return _broken(name, "routes", f"the control plane has not received {', '.join(unseen)}",
                       fx.ssh(r.target, "systemctl restart tailscaled"))
    unapproved = [p for p in ours if p not in node.approved]
    if unapproved:
        return _broken(name, "routes", f"advertised but not approved: {', '.join(unapproved)}", fx.controlplane())
    # Primary is the control plane's election where it reports it (Headscale); else the router's own netmap.
    # The router's view can lag or go empty while the policy lets it reach no peer, so it is second.
    elected = cs.primary.get(node.id, status.primary_routes) if cs.primary else status.primary_routes
    secondary = [p for p in ours if p not in elected]
    others = list(cs.other_router_nodes.get(name, {}).values()) if site.ha else []
    if secondary and others and cs.primary:
        # An HA site is served when each prefix is primary on one of its routers (after a failover
        # another router holds it; a recovered router does not reclaim it). The check reads the first router only.
        holders = {p: next((t.label for t in others if p in cs.primary.get(t.id, ())), None) for p in secondary}
        if all(holders.values()):
            return _ok(name, "routes", f"{', '.join(ours)} advertised, approved; primary on "
                       f"{', '.join(sorted(set(holders.values())))} (HA, {len(site.routers)} routers; "
                       f"{node.label} standing by)")
    if secondary:
        serving = sorted({n.label for n in cs.all_nodes if n.id != node.id
                          and set(secondary) & set(cs.primary.get(n.id, ()))})
        who = f"node {', '.join(serving)} is primary for it" if serving else "the control plane has not elected it"
        return _broken(name, "routes", f"approved but not primary on this router: {', '.join(secondary)} ({who})",
                       fx.ssh(r.target, "tailscale status --json | grep -A3 PrimaryRoutes"))
    if site.ha:
        return _ok(name, "routes", f"{', '.join(ours)} advertised, approved; primary on {node.label} "
                   f"(HA, {len(site.routers)} routers)")
    return _ok(name, "routes", f"{', '.join(ours)} advertised, approved, primary")


def prefs_row(site: Site, r: RouterState, fx: Fixes) -> Row:
    name = site.name
    if r.error or r.facts_error:
        return _unknown(name, "prefs", "router not readable (see ssh)")
    if r.prefs is None:
        return _unknown(name, "prefs", "no prefs: tailscaled not answering (see tailscaled)")
    wrong, flags = [], []
    if not r.prefs.no_snat:
        wrong.append("SNAT is on")
        flags.append("--snat-subnet-routes=false")
    if not r.prefs.route_all:
        wrong.append("accept-routes is off")
        flags.append("--accept-routes")
    if r.no_stateful_filtering is False:
        wrong.append("stateful filtering is on (drops inbound from other sites)")
        flags.append("--stateful-filtering=false")
    if wrong:
        return _broken(name, "prefs", "; ".join(wrong), fx.ssh(r.target, "tailscale set " + " ".join(flags)))
    sf = "stateful filtering off" if r.no_stateful_filtering else "stateful filtering not reported"
    return _ok(name, "prefs", f"SNAT off, accept-routes on, {sf}")


def forwarding_row(site: Site, r: RouterState, fx: Fixes) -> Row:
    name = site.name
    if r.error or r.facts_error:
        return _unknown(name, "forwarding", "router not readable (see ssh)")
    value = r.forwarding.get("net.ipv4.ip_forward")
    if value != "1":
        return _broken(name, "forwarding", f"net.ipv4.ip_forward = {value or '?'}", fx.deploy(r))
    ff = r.forward_filter
    if ff is not None and ff.blocks and not ff.ts_forward:
        return _broken(name, "forwarding", f"FORWARD policy {ff.policy} and tailscaled's ts-forward is not hooked",
                       fx.ssh(r.target, "systemctl restart tailscaled"))
    return _ok(name, "forwarding", "net.ipv4.ip_forward = 1" + (f", FORWARD policy {ff.policy}" if ff else ""))


def clamp_row(site: Site, r: RouterState, fx: Fixes) -> Row:
    name = site.name
    if r.error or r.facts_error:
        return _unknown(name, "clamp", "router not readable (see ssh)")
    c = r.clamp
    if c is None:
        return _broken(name, "clamp", "iptables-save not found", fx.deploy(r))
    if not c.complete:
        gone = [d for d, on in (("-i tailscale0", c.inbound), ("-o tailscale0", c.outbound)) if not on]
        return _broken(name, "clamp", f"no TCPMSS clamp for {' and '.join(gone)} in mangle FORWARD",
                       fx.ssh(r.target, "systemctl restart s2s-mss-clamp.service"))
    return _ok(name, "clamp", "TCPMSS --clamp-mss-to-pmtu on -i and -o tailscale0")


def policy_rows(model: SiteModel, cs: ControlState, fx: Fixes) -> list[Row]:
    names = list(model.sites)
    if cs.error:
        return [_unknown(n, "policy", f"control plane not readable: {cs.error}") for n in names]
    text = cs.policy_text or ""
    try:
        doc = hujson.loads(text) if text.strip() else None
    except hujson.HuJSONError as exc:
        return [_broken(n, "policy", f"policy is not valid HuJSON: {exc}", fx.controlplane()) for n in names]
    nodes = [acl.PolicyNode(n.addresses, n.tags, tuple(r for r in n.approved if r in n.advertised))
             for n in cs.all_nodes]
    compiled = acl.compile_policy(doc if isinstance(doc, dict) else None, nodes, modern=cs.modern)
    pairs = acl.check_pairs(compiled, [(s.name, [str(p) for p in s.advertised]) for s in model.sites.values()])
    rows = []
    for name in names:
        bad = [p for p in pairs if not p.ok and name in (p.src, p.dst)]
        if bad and all(p.deferred for p in bad):
            rows.append(_deferred(name, bad, compiled, cs, model, fx))
        elif bad:
            first = next(p for p in bad if not p.deferred)
            more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
            rows.append(_broken(name, "policy", f"{first.src} -> {first.dst}: {first.reason}{more}", fx.controlplane()))
        elif cs.server_test and name in _server_blames(cs.server_test, model):
            rows.append(_broken(name, "policy", f"the server's ACL test fails: {cs.server_test[:200]}",
                                fx.controlplane()))
        else:
            server = "; the server's ACL tests pass" if cs.server_test_run else ""
            note = f" ({compiled.notes[0]})" if compiled.allow_all and compiled.notes else ""
            rows.append(_ok(name, "policy", f"{_allowed(model.sites[name])} both ways{note}{server}"))
    return rows


def _deferred(name: str, bad: list[acl.PairResult], compiled: acl.Policy, cs: ControlState,
              model: SiteModel, fx: Fixes) -> Row:
    """A site whose pairs only aliases the server resolves (groups, users, via) may allow: the
    server's own policy tests decide, never a guess."""
    names = ", ".join(compiled.unresolved[:3])
    if not cs.server_test_run:
        return _unknown(name, "policy", f"{bad[0].src} -> {bad[0].dst} rests on {names}, which "
                                        "only the server resolves, and its policy tests did not run")
    if cs.server_test and name in _server_blames(cs.server_test, model):
        return _broken(name, "policy", f"the server's ACL test fails: {cs.server_test[:200]}",
                       fx.controlplane())
    return _ok(name, "policy", f"{_allowed(model.sites[name])} both ways: the server's ACL "
                               f"tests pass (it resolves {names})")


def _allowed(site: Site) -> str:
    """What the policy step found allowed for a site, naming IPv6 where the site has it."""
    if site.advertised6:
        return f"every other site and 100.64.0.0/10, IPv6 too (and {TAILNET_RANGE6})"
    return "every other site and 100.64.0.0/10"


def _server_blames(message: str, model: SiteModel) -> set[str]:
    """Sites named in the server's failed-test lines (`SRC -> DST:PORT: expected ALLOWED`), by their
    routers' addresses; every site when the message names none (Tailscale says only "test(s) failed")."""
    by_ip = {str(s.next_hop): name for name, s in model.sites.items()}
    by_ip |= {acl.test_address6(s.subnet6): name for name, s in model.sites.items() if s.subnet6 is not None}
    named = set()
    for src, dst in re.findall(r"(\S+) -> (\S+?):\d+: expected ALLOWED", message):
        hosts = (src, dst.strip("[]"))  # an IPv6 destination is written [addr]:port
        named |= {by_ip[ip] for ip in hosts if ip in by_ip}  # a tailnet address names no site
    return named or set(model.sites)


def dhcp_row(site: Site, plan: SitePlan, r: RouterState, model: SiteModel, fx: Fixes) -> Row:
    name = site.name
    if not plan.push_needed:
        return _ok(name, "dhcp", plan.reason)
    if r.error or r.facts_error:
        return _unknown(name, "dhcp", "router not readable (see ssh): no LAN host to probe from")
    if r.probe is None:
        return _unknown(name, "dhcp", r.probe_error or "not probed")
    codes = model.dhcp.route_codes
    verdict = judge_dhcp(r.probe, plan, codes)
    if verdict.ok:
        return _ok(name, "dhcp", verdict.reason)
    if not r.probe.replies:
        fix = (fx.ssh(site.kea[0].ssh, "systemctl start kea-dhcp4-server") if site.kea and site.kea[0].ssh
               else "start the LAN's DHCP server")
    else:
        fix = fx.dhcp_push() if site.kea else "add option 121/249 to the LAN's DHCP server (python -m dhcp plan)"
    return _broken(name, "dhcp", verdict.reason, fix)


def _causes(so_far: dict[tuple[str, str], Row], ends: tuple[str, str]) -> list[str]:
    """The steps a LAN-to-LAN ping between two routers needs that are not ok: broken ones if any
    (the root causes), else the unknown ones."""
    rows = [so_far[(s, step)] for s in ends for step in PATH_NEEDS if (s, step) in so_far]
    bad = [r for r in rows if r.status == Status.BROKEN] or [r for r in rows if r.status == Status.UNKNOWN]
    return [f"{r.site}: {r.step}" for r in bad]


def tunnel_rows(model: SiteModel, routers: dict[str, RouterState], so_far: dict[tuple[str, str], Row],
                fx: Fixes) -> list[Row]:
    rows = []
    for name, site in model.sites.items():
        r = routers[name]
        if r.error or r.facts_error:
            rows.append(_unknown(name, "tunnel", "router not readable (see ssh)"))
            continue
        failures, notes = [], []
        explained = []
        for peer in tunnel_peers(list(model.sites), name):
            got = r.pings.get(peer, {})
            tsping, mtu, small = got.get("tsping"), got.get("mtu"), got.get("small")
            if tsping is False or (not mtu and not small):
                what = (f"tailscale ping {peer} fails ({got.get('detail') or 'no answer'})" if tsping is False
                        else f"no LAN-to-LAN ping {r.ping_source or site.next_hop} -> {model.sites[peer].next_hop}")
            elif not mtu and got.get("mtu2"):
                lost = got.get("mtu_detail") or "no answer"
                notes.append(f"{peer}: path MTU >= {TUNNEL_MTU} (a second {TUNNEL_MTU}-byte ping, alone, crossed; "
                             f"the first, in the router's burst of pings, was lost: {lost})")
                continue
            elif not mtu:
                fits = [int(k[2:]) for k, v in got.items() if k.startswith("df") and v and int(k[2:]) < TUNNEL_MTU]
                largest = f"the largest that does is {max(fits)} bytes" if fits else "nor do 576-byte ones"
                said = got.get("mtu2_detail") or got.get("mtu_detail")
                what = (f"{TUNNEL_MTU}-byte DF packets do not reach {peer}, small ones do: {largest} "
                        f"(path MTU below {TUNNEL_MTU}" + (f"; ping: {said}" if said else "") + ")")
            else:
                via = (got.get("detail") or "").split(" via ", 1)[-1].split(" in ")[0] if got.get("detail") else ""
                notes.append(f"{peer}: path MTU >= {TUNNEL_MTU}, tailscale ping via {via or '?'}")
                continue
            causes = _causes(so_far, (name, peer))
            (explained if causes else failures).append((what, causes))
        if failures:
            what = failures[0][0] + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else "")
            rows.append(_broken(name, "tunnel", what,
                                fx.ssh(r.target, "tailscale netcheck; tailscale status") + "  # UDP 41641 / DERP"))
        elif explained:
            what, causes = explained[0]
            rows.append(_unknown(name, "tunnel", f"{what}; explained by {', '.join(sorted(set(causes)))}"))
        else:
            sampled = sample_note(list(model.sites))
            rows.append(_ok(name, "tunnel", f"{TUNNEL_MTU}-byte DF pings cross LAN to LAN; "
                                            f"{'; '.join(notes) or 'no peers'}" + (f"; {sampled}" if sampled else "")))
    return rows


def ra_row(model: SiteModel, site: Site, r: RouterState, fx: Fixes) -> Row:
    """The advertisement seen leaving the LAN interface: lifetime 0, every route it must carry."""
    name = site.name
    if site.subnet6 is None:
        return _ok(name, "ra", "no subnet6: no IPv6 on this LAN, nothing to advertise")
    if r.error or r.facts_error or not r.ra_probed:
        return _unknown(name, "ra", "router not readable (see ssh)")
    if r.ra_error:
        return _unknown(name, "ra", r.ra_error)
    good, why = ra.ra_verdict(radvd.ra_routes(model, site), r.ra)
    if good:
        return _ok(name, "ra", why)
    return _broken(name, "ra", why, fx.deploy(r))


def ping6_row(model: SiteModel, site: Site, r: RouterState, so_far: dict[tuple[str, str], Row],
              fx: Fixes) -> Row:
    """ping6 from the router's subnet6 address to each dual-stack peer router's."""
    name = site.name
    ipv6_sites = dual_stack(model)
    peers = tunnel_peers(ipv6_sites, name) if site.subnet6 is not None else []
    if site.subnet6 is None or not peers:
        return _ok(name, "ping6", "no IPv6 LAN pair to test (no subnet6 here or at any peer)")
    if r.error or r.facts_error or not r.ra_probed:
        return _unknown(name, "ping6", "router not readable (see ssh)")
    failed = [p for p in peers if r.pings6.get(p) is False]
    unknown = [p for p in peers if r.pings6.get(p) is None]
    if failed:
        causes = [c for p in failed for c in _causes(so_far, (name, p))]
        what = f"no ping6 {r.ping6_source} -> {', '.join(failed)}"
        if causes:
            return _unknown(name, "ping6", f"{what}; explained by {', '.join(sorted(set(causes)))}")
        return _broken(name, "ping6", what, fx.deploy(r) + "  # routes, policy, ip6tables")
    if unknown:
        return _unknown(name, "ping6", "no router address in subnet6 to ping from or to "
                        f"({', '.join(unknown)}): give the routers one to let the check ping IPv6 "
                        "LAN to LAN")
    sampled = sample_note(ipv6_sites)
    return _ok(name, "ping6", f"from {r.ping6_source} to {', '.join(peers)}" + (f"; {sampled}" if sampled else ""))


def other_router_routes_row(site: Site, r: RouterState, node: Node | None, fx: Fixes, tailscaled: Row) -> Row:
    """An HA site's other router: advertises the site's prefixes and has them approved (it is
    ready to take over; which router is primary is the first router's routes row)."""
    name, ours = site.name, [str(p) for p in site.advertised]
    if tailscaled.status != Status.OK:
        return _unknown(name, "routes", "needs a running tailscaled (see tailscaled)")
    missing = [p for p in ours if r.prefs is None or p not in r.prefs.advertise_routes]
    if missing:
        return _broken(name, "routes", f"not advertised by the router: {', '.join(missing)}", fx.deploy(r))
    if node is None:
        return _unknown(name, "routes", "advertised; the control plane has no node for it")
    unapproved = [p for p in ours if p not in node.approved]
    if unapproved:
        return _broken(name, "routes", f"advertised but not approved: {', '.join(unapproved)}", fx.controlplane())
    return _ok(name, "routes", f"{', '.join(ours)} advertised, approved")


def other_router_rows(site: Site, other: RouterState, cs: ControlState, fx: Fixes) -> dict[str, Row]:
    """The router-local steps of an HA site's other router, with fixes aimed at that router."""
    at = site  # the rows read the other router's own state and aim their fixes at other.target
    node = cs.other_router_nodes.get(site.name, {}).get(other.target)
    view = dataclasses.replace(cs, nodes={**cs.nodes, site.name: node},
                               node_errors={**cs.node_errors, site.name: "not a node of the control plane"})
    rows = {"ssh": ssh_row(at, other, fx), "prefs": prefs_row(at, other, fx),
            "forwarding": forwarding_row(at, other, fx), "clamp": clamp_row(at, other, fx)}
    rows["tailscaled"] = tailscaled_row(at, other, view, fx)
    rows["routes"] = other_router_routes_row(at, other, node, fx, rows["tailscaled"])
    return rows


def with_other_router(row: Row, router: str, other: Row) -> Row:
    """One site row for both routers: the first not-ok verdict wins (named by router), else ok for both."""
    if other.status == Status.OK:
        return dataclasses.replace(row, reason=f"{row.reason}; {router}: ok") if row.status == Status.OK else row
    named = dataclasses.replace(other, reason=f"router {router}: {other.reason}")
    if row.status == Status.OK:
        return named
    if row.status == Status.UNKNOWN and other.status == Status.BROKEN:
        return dataclasses.replace(named, reason=f"{named.reason}; first router: {row.reason}")
    return dataclasses.replace(row, reason=f"{row.reason}; {named.reason}")


def judge(model: SiteModel, plans: dict[str, SitePlan], routers: dict[str, RouterState],
          cs: ControlState) -> list[Row]:
    """Every site x step, in STEPS order."""
    fx = Fixes(model)
    rows: dict[tuple[str, str], Row] = {}
    for name, site in model.sites.items():
        r = routers[name]
        rows[(name, "ssh")] = ssh_row(site, r, fx)
        rows[(name, "tailscaled")] = ts = tailscaled_row(site, r, cs, fx)
        rows[(name, "routes")] = routes_row(site, r, cs, fx, ts)
        rows[(name, "prefs")] = prefs_row(site, r, fx)
        rows[(name, "forwarding")] = forwarding_row(site, r, fx)
        rows[(name, "clamp")] = clamp_row(site, r, fx)
        rows[(name, "dhcp")] = dhcp_row(site, plans[name], r, model, fx)
        for other_router in r.other_routers:
            for step, other in other_router_rows(site, other_router, cs, fx).items():
                rows[(name, step)] = with_other_router(rows[(name, step)], other_router.target, other)
    for row in policy_rows(model, cs, fx):
        rows[(row.site, "policy")] = row
    for row in tunnel_rows(model, routers, rows, fx):
        rows[(row.site, "tunnel")] = row
    for name, site in model.sites.items():
        rows[(name, "ra")] = ra_row(model, site, routers[name], fx)
        rows[(name, "ping6")] = ping6_row(model, site, routers[name], rows, fx)
    return [rows[(name, step)] for name, site in model.sites.items() for step in STEP_IDS
            if site.subnet6 is not None or step not in IPV6_STEPS]
