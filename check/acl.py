"""Evaluate a tailnet policy the way the control server compiles it: may site X reach site Y?

Tailscale's ACLs only accept (there is no deny): traffic passes when some rule's
`src` covers the sender and its `dst` covers the receiver on that port and
protocol. This evaluator resolves the aliases it meets (`*`, IPs and CIDRs,
`hosts` names, `tag:` and `autogroup:tagged/member` by the nodes the control
plane lists, `autogroup:danger-all`) to address sets and asks whether EVERY
address of one site may reach EVERY address of the other on every port, in
both directions, and the same between each site and 100.64.0.0/10. Groups and
user names need the server's user list, which the check does not read: they
resolve to nothing here (noted), so a policy that relies on them for the sites
is reported as broken by the evaluator and settled by the server's own tests
(`server_tests`, run through the control plane's policy check).

Semantics checked against Headscale v0.29.0 (hscontrol/policy/v2): a tag
resolves to its nodes' tailnet addresses only (not their routes); no `acls`
and no `grants` at all means allow-all; an empty policy is Headscale's
allow-all default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from netaddr import AddrFormatError, IPNetwork, IPSet

from controlplane.policy import TAILNET_RANGE

EVERYTHING = IPSet(["0.0.0.0/0", "::/0"])
TAILNET = "tailnet"  # the pseudo-site 100.64.0.0/10


@dataclass(frozen=True)
class PolicyNode:
    """What the evaluator needs of a tailnet node."""

    addresses: tuple[str, ...]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    src: IPSet
    dst: IPSet
    all_ports: bool  # every port and protocol
    label: str


@dataclass
class Policy:
    """A parsed policy compiled to address-set rules (plus what could not be resolved)."""

    rules: list[Rule]
    allow_all: bool = False
    notes: list[str] = field(default_factory=list)


def _split_port(entry: str) -> tuple[str, str]:
    """`alias:ports` -> (alias, ports); IPv6 may be bracketed."""
    alias, sep, ports = entry.rpartition(":")
    if not sep:
        return entry, "*"
    return alias.strip("[]"), ports


def _as_set(value: str) -> IPSet | None:
    try:
        return IPSet([IPNetwork(value)])
    except (AddrFormatError, ValueError, TypeError):
        return None


class Resolver:
    """Alias -> IPSet against one policy document and node list."""

    def __init__(self, doc: dict, nodes: Sequence[PolicyNode]) -> None:
        self.hosts = doc.get("hosts") or {}
        self.nodes = nodes
        self.notes: list[str] = []

    def _nodes(self, keep) -> IPSet:  # noqa: ANN001 - predicate on PolicyNode
        return IPSet([a.split("/")[0] for n in self.nodes if keep(n) for a in n.addresses])

    def resolve(self, alias: str) -> IPSet:
        alias = alias.strip()
        if alias in ("*", "autogroup:danger-all"):
            return IPSet(EVERYTHING)
        if alias in self.hosts:
            got = _as_set(str(self.hosts[alias]))
            if got is None:
                self.notes.append(f"hosts.{alias} is not an address ({self.hosts[alias]!r})")
            return got or IPSet()
        if alias.startswith("tag:"):
            return self._nodes(lambda n: alias in n.tags)
        if alias == "autogroup:tagged":
            return self._nodes(lambda n: bool(n.tags))
        if alias == "autogroup:member":
            return self._nodes(lambda n: not n.tags)
        direct = _as_set(alias)
        if direct is not None:
            return direct
        self.notes.append(f"{alias!r} resolved to nothing here (groups, users and autogroup:self need the server)")
        return IPSet()


def _ports_all(ports: str) -> bool:
    return ports.strip() in ("*", "0-65535")


def compile_policy(doc: dict | None, nodes: Iterable[PolicyNode] = ()) -> Policy:
    """Compile the policy's `acls` (and IP `grants`) into address-set rules."""
    if not doc:
        return Policy([], allow_all=True, notes=["no policy: the server's default allows everything"])
    if doc.get("acls") is None and doc.get("grants") is None:
        return Policy([], allow_all=True, notes=["no acls and no grants: the server allows everything"])
    resolver = Resolver(doc, list(nodes))
    rules: list[Rule] = []
    for i, acl in enumerate(doc.get("acls") or []):
        if not isinstance(acl, dict) or acl.get("action", "accept") != "accept":
            continue
        src = IPSet()
        for alias in acl.get("src") or []:
            src |= resolver.resolve(str(alias))
        any_proto = not acl.get("proto")
        for entry in acl.get("dst") or []:
            alias, ports = _split_port(str(entry))
            rules.append(Rule(src, resolver.resolve(alias), any_proto and _ports_all(ports), f"acls[{i}]"))
    for i, grant in enumerate(doc.get("grants") or []):
        if not isinstance(grant, dict):
            continue
        src = IPSet()
        for alias in grant.get("src") or []:
            src |= resolver.resolve(str(alias))
        every = any(str(p).strip() == "*" for p in grant.get("ip") or [])
        if not grant.get("ip"):
            continue  # an app-capability grant opens no IP traffic
        for alias in grant.get("dst") or []:
            rules.append(Rule(src, resolver.resolve(str(alias)), every, f"grants[{i}]"))
    return Policy(rules, notes=resolver.notes)


def uncovered(policy: Policy, src: IPSet, dst: IPSet) -> tuple[IPSet, IPSet] | None:
    """None when every address of `src` may reach every address of `dst` on every port; else an
    example (source addresses, destination addresses they cannot reach)."""
    if policy.allow_all:
        return None
    full = [r for r in policy.rules if r.all_ports]
    pieces: list[tuple[IPSet, frozenset[int]]] = [(IPSet(src), frozenset())]
    for i, rule in enumerate(full):  # split src into pieces that the same rules cover
        split = []
        for piece, members in pieces:
            inside, outside = piece & rule.src, piece - rule.src
            if inside:
                split.append((inside, members | {i}))
            if outside:
                split.append((outside, members))
        pieces = split
    for piece, members in pieces:
        reach = IPSet()
        for i in members:
            reach |= full[i].dst
        missing = dst - reach
        if missing:
            return piece, missing
    return None


def partial_rules(policy: Policy, src: IPSet, dst: IPSet) -> list[str]:
    """Rules that let some of this traffic through on some ports or protocols only."""
    return sorted({r.label for r in policy.rules if not r.all_ports and (r.src & src) and (r.dst & dst)})


@dataclass(frozen=True)
class PairResult:
    src: str  # site name or TAILNET
    dst: str
    ok: bool
    reason: str


def _cidrs(s: IPSet) -> str:
    cidrs = [str(c) for c in s.iter_cidrs()]
    return ", ".join(cidrs[:3]) + (f" (+{len(cidrs) - 3} more)" if len(cidrs) > 3 else "")


def check_pairs(policy: Policy, sites: Sequence[tuple[str, Sequence[str]]]) -> list[PairResult]:
    """Every ordered pair of sites, and each site to and from 100.64.0.0/10."""
    sets = {name: IPSet([IPNetwork(p) for p in prefixes]) for name, prefixes in sites}
    sets[TAILNET] = IPSet([TAILNET_RANGE])
    names = [name for name, _ in sites]
    pairs = [(a, b) for a in names for b in [*names, TAILNET] if a != b] + [(TAILNET, a) for a in names]
    out = []
    for a, b in pairs:
        gap = uncovered(policy, sets[a], sets[b])
        if gap is None:
            out.append(PairResult(a, b, True, "allowed on all ports"))
            continue
        src, dst = gap
        some = partial_rules(policy, sets[a], sets[b])
        only = f"; only some ports/protocols via {', '.join(some)}" if some else ""
        out.append(PairResult(a, b, False, f"no rule lets {_cidrs(src)} reach {_cidrs(dst)} on all ports{only}"))
    return out


def server_tests(sites: Sequence[tuple[str, str]], tailnet_ip: str = "100.64.0.1", port: int = 22) -> list[dict]:
    """The same pairs as the policy's `tests` block (one address per site: its router's LAN address),
    for the server to evaluate with its own compiler (Headscale policy/check, Tailscale acl/validate)."""
    tests = []
    for name, addr in sites:
        others = [f"{o}:{port}" for n, o in sites if n != name]
        tests.append({"src": addr, "accept": [*others, f"{tailnet_ip}:{port}"]})
    tests.append({"src": tailnet_ip, "accept": [f"{addr}:{port}" for _, addr in sites]})
    return tests
