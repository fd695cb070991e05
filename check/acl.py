"""Evaluate a tailnet policy the way the control server compiles it: may site X reach site Y?

Tailscale's ACLs and grants only accept (there is no deny): traffic passes when some
rule's `src` covers the sender and its `dst` covers the receiver on that port and
protocol. This evaluator compiles both `acls` and `grants` (their `ip` ports and
protocols) to address sets and asks whether EVERY address of one site may reach EVERY
address of the other on every port, in both directions, and the same between each
site and the tailnet's range; family by family (IPv4 prefixes to IPv4 ones and 100.64.0.0/10,
IPv6 prefixes to IPv6 ones and fd7a:115c:a1e0::/48), as packets go.

Aliases, as Headscale v0.29.0 resolves them (hscontrol/policy/v2 types.go, filter.go;
its CHANGELOG says the same of Tailscale):
- `*` as a source: the tailnet's ranges (100.64.0.0/10 without the ChromeOS VM range
  100.115.92.0/23, and fd7a:115c:a1e0::/48) plus every approved subnet route; as a
  destination: every address. Before 0.29 Headscale read `*` as every address.
- `autogroup:danger-all` (sources only): every address.
- IPs, CIDRs, `hosts` names; `tag:`, `autogroup:tagged`, `autogroup:member`: their
  nodes' tailnet addresses (not their routes); `autogroup:internet` reaches only
  through exit nodes, so no site.
- Groups, users, `autogroup:self` and grants steered with `via` need what the check
  does not read (the server's users, per-viewer routes): the evaluator does not guess.
  A pair it cannot show allowed is then `deferred` to the server's own policy tests
  (`server_tests`, run through the control plane's policy check).
No `acls` and no `grants` at all, or no policy, is the server's allow-all default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from netaddr import AddrFormatError, IPNetwork, IPSet

from controlplane.policy import TAILNET_RANGE, TAILNET_RANGE6

EVERYTHING = IPSet(["0.0.0.0/0", "::/0"])
TAILNET = "tailnet"  # the pseudo-site 100.64.0.0/10 (and fd7a:115c:a1e0::/48 for IPv6 prefixes)
CHROMEOS_VMS = "100.115.92.0/23"  # inside 100.64.0.0/10, never a node's address (tsaddr)
TAILNET_ADDRESSES = IPSet([TAILNET_RANGE, TAILNET_RANGE6]) - IPSet([CHROMEOS_VMS])
EXIT_ROUTES = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class PolicyNode:
    """What the evaluator needs of a tailnet node."""

    addresses: tuple[str, ...]
    tags: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()  # approved subnet routes it advertises (exit routes left out)


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
    unresolved: list[str] = field(default_factory=list)  # aliases only the server resolves


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
    """Alias -> IPSet against one policy document and node list.

    `modern`: the server reads `*` as Headscale >= 0.29 and Tailscale do (see the module doc).
    """

    def __init__(self, doc: dict, nodes: Sequence[PolicyNode], modern: bool = True) -> None:
        self.hosts = doc.get("hosts") or {}
        self.nodes = nodes
        self.modern = modern
        self.notes: list[str] = []
        self.unresolved: list[str] = []

    def _nodes(self, keep: Callable[[PolicyNode], bool]) -> IPSet:
        return IPSet([a.split("/")[0] for n in self.nodes if keep(n) for a in n.addresses])

    def _wildcard_sources(self) -> IPSet:
        routes = [r for n in self.nodes for r in n.routes if r not in EXIT_ROUTES]
        return TAILNET_ADDRESSES | IPSet([IPNetwork(r) for r in routes])

    def source(self, alias: str) -> IPSet:
        alias = alias.strip()
        if alias == "*":
            return self._wildcard_sources() if self.modern else IPSet(EVERYTHING)
        if alias == "autogroup:danger-all":
            return IPSet(EVERYTHING)
        return self.resolve(alias)

    def destination(self, alias: str) -> IPSet:
        alias = alias.strip()
        if alias == "*":
            return IPSet(EVERYTHING)  # compiled to the filter's "*": any address
        if alias == "autogroup:danger-all":
            self.notes.append("autogroup:danger-all is a source only: the server refuses it as a "
                              "destination")
            return IPSet()
        if alias == "autogroup:internet":
            return IPSet()  # reached through exit nodes only, never a subnet route
        return self.resolve(alias)

    def resolve(self, alias: str) -> IPSet:
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
        self.defer(alias, f"{alias!r} needs the server (groups, users and autogroup:self are "
                          "resolved there)")
        return IPSet()

    def defer(self, alias: str, note: str) -> None:
        if alias not in self.unresolved:
            self.unresolved.append(alias)
            self.notes.append(note)


def _ports_all(ports: str) -> bool:
    return ports.strip() in ("*", "0-65535")


def ip_all(entry: str) -> bool:
    """A grant's `ip` entry that opens every port of the default protocols: "*", or bare ports
    covering all of them ("0-65535"). "tcp:*", "icmp:*" and the like open one protocol only."""
    entry = entry.strip()
    return entry == "*" or (":" not in entry and _ports_all(entry))


def compile_policy(doc: dict | None, nodes: Iterable[PolicyNode] = (),
                   modern: bool = True) -> Policy:
    """Compile the policy's `acls` and IP `grants` into address-set rules.

    `modern`: `*` as Headscale >= 0.29 and Tailscale read it; False for older Headscale.
    """
    if not doc:
        return Policy([], allow_all=True, notes=["no policy: the server's default allows everything"])
    if doc.get("acls") is None and doc.get("grants") is None:
        return Policy([], allow_all=True, notes=["no acls and no grants: the server allows everything"])
    resolver = Resolver(doc, list(nodes), modern)
    rules: list[Rule] = []
    for i, acl in enumerate(doc.get("acls") or []):
        if not isinstance(acl, dict) or acl.get("action", "accept") != "accept":
            continue
        src = _sources(resolver, acl.get("src"))
        any_proto = not acl.get("proto")
        for entry in acl.get("dst") or []:
            alias, ports = _split_port(str(entry))
            every = any_proto and _ports_all(ports)
            rules.append(Rule(src, resolver.destination(alias), every, f"acls[{i}]"))
    for i, grant in enumerate(doc.get("grants") or []):
        if not isinstance(grant, dict) or not grant.get("ip"):
            continue  # an app-capability grant opens no IP traffic
        if grant.get("via"):
            resolver.defer(f"grants[{i}].via", f"grants[{i}] is steered with via: the server "
                                               "decides which routers carry it")
            continue
        src = _sources(resolver, grant.get("src"))
        every = any(ip_all(str(p)) for p in grant["ip"])
        for alias in grant.get("dst") or []:
            rules.append(Rule(src, resolver.destination(str(alias)), every, f"grants[{i}]"))
    return Policy(rules, notes=resolver.notes, unresolved=resolver.unresolved)


def _sources(resolver: Resolver, aliases: object) -> IPSet:
    src = IPSet()
    for alias in aliases if isinstance(aliases, list) else []:
        src |= resolver.source(str(alias))
    return src


def reach_pieces(policy: Policy, src: IPSet) -> list[tuple[IPSet, IPSet]]:
    """`src` split into pieces that the same all-ports rules cover, each with every address those
    rules let it reach. Computed once per source and reused for every destination: splitting is the
    costly part, and a 50-site check asks it for 51 destinations (check_pairs)."""
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
    out = []
    for piece, members in pieces:
        reach = IPSet()
        for i in members:
            reach |= full[i].dst
        out.append((piece, reach))
    return out


def uncovered(policy: Policy, src: IPSet, dst: IPSet,
              pieces: list[tuple[IPSet, IPSet]] | None = None) -> tuple[IPSet, IPSet] | None:
    """None when every address of `src` may reach every address of `dst` on every port; else an
    example (source addresses, destination addresses they cannot reach). `pieces`: src's
    reach_pieces, when already computed."""
    if policy.allow_all:
        return None
    for piece, reach in pieces if pieces is not None else reach_pieces(policy, src):
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
    deferred: bool = False  # not shown allowed; the policy names aliases only the server resolves


def _cidrs(s: IPSet) -> str:
    cidrs = [str(c) for c in s.iter_cidrs()]
    return ", ".join(cidrs[:3]) + (f" (+{len(cidrs) - 3} more)" if len(cidrs) > 3 else "")


def _family(s: IPSet, version: int) -> IPSet:
    return IPSet(c for c in s.iter_cidrs() if c.version == version)


def tailnet_range(version: int) -> IPSet:
    """What a node's address can be, per family: 100.64.0.0/10 (less ChromeOS's VMs) or
    fd7a:115c:a1e0::/48."""
    return _family(TAILNET_ADDRESSES, version)


def check_pairs(policy: Policy, sites: Sequence[tuple[str, Sequence[str]]]) -> list[PairResult]:
    """Every ordered pair of sites, and each site to and from the tailnet's range.

    Family by family, as packets go (none crosses from IPv4 to IPv6): a site's IPv4 prefixes
    to the other's IPv4 ones and 100.64.0.0/10, its IPv6 prefixes to the other's IPv6 ones and
    fd7a:115c:a1e0::/48. A family one end lacks is no part of the pair.
    """
    sets = {name: IPSet([IPNetwork(p) for p in prefixes]) for name, prefixes in sites}
    sets[TAILNET] = TAILNET_ADDRESSES
    names = [name for name, _ in sites]
    pairs = [(a, b) for a in names for b in [*names, TAILNET] if a != b] + [(TAILNET, a) for a in names]
    out = []
    by_family = {(name, v): _family(s, v) for name, s in sets.items() for v in (4, 6)}
    pieces: dict[tuple[str, int], list[tuple[IPSet, IPSet]]] = {}  # per source and family, once
    for a, b in pairs:
        gap = None
        for version in (4, 6):
            src, dst = by_family[a, version], by_family[b, version]
            if not (src and dst):
                continue
            if (a, version) not in pieces and not policy.allow_all:
                pieces[a, version] = reach_pieces(policy, src)
            gap = uncovered(policy, src, dst, pieces.get((a, version)))
            if gap is not None:
                break
        if gap is None:
            out.append(PairResult(a, b, True, "allowed on all ports"))
            continue
        src, dst = gap
        some = partial_rules(policy, src, dst)
        only = f"; only some ports/protocols via {', '.join(some)}" if some else ""
        reason = f"no rule lets {_cidrs(src)} reach {_cidrs(dst)} on all ports{only}"
        out.append(PairResult(a, b, False, reason, deferred=bool(policy.unresolved)))
    return out


def server_tests(sites: Sequence[tuple[str, str]], tailnet_ip: str = "100.64.0.1", port: int = 22,
                 sites6: Sequence[tuple[str, str]] = (), tailnet_ip6: str | None = None) -> list[dict]:
    """The same pairs as the policy's `tests` block (one address per site: its router's LAN address),
    for the server to evaluate with its own compiler (Headscale policy/check, Tailscale acl/validate).

    `sites6`, `tailnet_ip6`: the IPv6 half, family by family as packets go (one address in each
    dual-stack site's IPv6 prefix, a node's fd7a:115c:a1e0::/48 address), written `[addr]:port`."""
    tests = _family_tests(sites, tailnet_ip, port)
    if sites6 and tailnet_ip6 is not None:
        tests += _family_tests(sites6, tailnet_ip6, port)
    return tests


def test_address6(subnet6: IPNetwork) -> str:
    """The address the server's IPv6 tests name for a dual-stack site: the first host of its IPv6
    prefix (the site file names no IPv6 address of a router; any address of the prefix is what a
    CIDR rule covers)."""
    return str(IPNetwork(subnet6)[1])


def _family_tests(sites: Sequence[tuple[str, str]], tailnet_ip: str, port: int) -> list[dict]:
    def dst(addr: str) -> str:
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    tests = []
    for name, addr in sites:
        others = [dst(o) for n, o in sites if n != name]
        tests.append({"src": addr, "accept": [*others, dst(tailnet_ip)]})
    tests.append({"src": tailnet_ip, "accept": [dst(addr) for _, addr in sites]})
    return tests
