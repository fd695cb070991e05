"""The control-plane interface: plan and apply on top of a few backend primitives.

Backends (Headscale, Tailscale API) only say how to list nodes, replace a
node's approved routes, read/check/write the policy and mint auth keys; the
decisions (which node is a site's router, which routes to send, the policy
merge, the order of writes) live here once.

Order of writes in `apply` (the deploy's order too: deploy.py), and what a failure leaves:
1. everything is read and checked first (routers found, policy merged and
   validated by the server) - a failure here writes nothing;
2. the policy first, with the server's concurrency check (ETag / re-read); a
   conflict re-reads and re-merges, a failure leaves the old policy whole and
   nothing else written. First because its autoApprovers and tagOwners must be
   in place before tagged routers join and advertise, and its ACLs alone open
   nothing: traffic needs an approved route and a client route as well;
3. routes are approved router by router - a failure leaves the policy written
   and the earlier routers approved (both harmless), re-run to finish;
4. router keys set not to expire (Tailscale).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from controlplane import policy as pol
from controlplane import routes as rt
from controlplane.model import (
    ChangeSet,
    ControlPlaneError,
    Node,
    PolicyChange,
    PolicyDoc,
    RouteChange,
    Unapproval,
    UnknownRouterError,
)
from removal.record import AppliedRouter
from sites.model import Router, Site, SiteModel, SshTarget

POLICY_ATTEMPTS = 3
SETTLE_SECONDS = 15.0  # how long plan(settle=...) waits for the server to see a re-advertised router
SETTLE_EVERY = 0.25


def router_ident(router: Router | AppliedRouter) -> list[str]:
    """Names a router may have in the tailnet: its tailnet_node if given, else its SSH host."""
    idents = [str(router.tailnet_node)] if router.tailnet_node else []
    if router.ssh:
        idents.append(SshTarget.parse(router.ssh).host)
    return idents


class ControlPlane(abc.ABC):
    """One tailnet control server. Idempotent: a second apply of a fresh plan changes nothing."""

    name = "control plane"
    manages_key_expiry = False
    lock_policy_writes = False  # True where the server has no concurrency check (controlplane.lock)

    def __init__(self, writes_policy: bool = True) -> None:
        self.writes_policy = writes_policy
        self._grants: bool | None = None

    def grants_supported(self) -> bool:
        """Whether the server takes `grants` and reads `*` as the tailnet's own ranges and approved
        routes (Tailscale, Headscale >= 0.29): asked once, then remembered."""
        if self._grants is None:
            self._grants = self._grants_supported()
        return self._grants

    def _grants_supported(self) -> bool:
        return False

    # --- backend primitives -------------------------------------------------
    @abc.abstractmethod
    def list_nodes(self) -> list[Node]: ...

    @abc.abstractmethod
    def set_routes(self, node: Node, routes: Sequence[str]) -> None:
        """Replace the node's approved routes with exactly `routes`."""

    @abc.abstractmethod
    def read_policy(self) -> PolicyDoc: ...

    @abc.abstractmethod
    def check_policy(self, text: str) -> bool:
        """Ask the server whether it would accept `text` (raise ControlPlaneError if not); writes
        nothing. False: the server has no way to check (Headscale before 0.29), so only the write
        itself validates, and the policy's `tests` were not run."""

    @abc.abstractmethod
    def write_policy(self, text: str, base: PolicyDoc) -> bool:
        """Write `text` if the server still holds `base`; False on a concurrent edit."""

    @abc.abstractmethod
    def create_auth_key(self, tags: Sequence[str], *, reusable: bool = False, expiry_seconds: int = 3600) -> str:
        """A pre-authorised auth key carrying `tags` (the caller must never print it)."""

    def disable_key_expiry(self, node: Node) -> None:
        raise NotImplementedError

    # --- shared logic -------------------------------------------------------
    def find_router(
        self, ident: str | Sequence[str], nodes: list[Node] | None = None, prefer: Sequence[str] = ()
    ) -> Node:
        """The node named `ident` (name, hostname, given name or tailnet IP).

        Several matches (a re-registered machine keeps its hostname) are narrowed
        to the ones advertising `prefer`; still ambiguous is an error, not a guess.
        """
        idents = [ident] if isinstance(ident, str) else list(ident)
        nodes = self.list_nodes() if nodes is None else nodes
        for one in idents:
            found = [n for n in nodes if n.matches(one)]
            if len(found) > 1 and prefer:
                want = {rt.canonical(p) for p in prefer}
                narrowed = [n for n in found if want & set(n.advertised)]
                found = narrowed or found
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                labels = ", ".join(f"{n.label} (id {n.id})" for n in found)
                raise ControlPlaneError(f"router {one!r} is ambiguous: nodes {labels} match")
        raise UnknownRouterError(
            f"router {' / '.join(repr(i) for i in idents)} is not registered with the {self.name} "
            "(no node has that name or tailnet IP): join it first, then re-run"
        )

    def settled_nodes(
        self,
        model: SiteModel,
        settle: Collection[str],
        timeout: float | None = None,
        retired: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Node]:
        """The node list once the server sees every router of the sites in `settle` advertise all of its
        site's prefixes and none of its `retired` ones (or after `timeout`: then as it is, and the plan
        shows what is "not advertised yet").

        A router that has just changed its advertised routes (`tailscale set`, an earlier step of the
        same deploy) tells the control server asynchronously: planned at once, the approval step
        would see the old list, approve nothing new, and only a second deploy would converge.
        """
        deadline = time.monotonic() + (SETTLE_SECONDS if timeout is None else timeout)
        while True:
            nodes = self.list_nodes()
            if (
                not settle
                or time.monotonic() >= deadline
                or all(self._advertises_ours(model.sites[name], nodes, retired or {}) for name in settle)
            ):
                return nodes
            time.sleep(SETTLE_EVERY)

    def _advertises_ours(self, site: Site, nodes: list[Node], retired: Mapping[str, Sequence[str]]) -> bool:
        """Every router of the site (an HA site has several) is seen advertising all of its prefixes,
        and none it no longer declares (retired)."""
        ours = tuple(rt.canonical(str(p)) for p in site.advertised)
        for router in site.routers:
            try:
                node = self.find_router(router_ident(router), nodes, prefer=ours)
            except ControlPlaneError:
                return False  # not registered yet (first join) or ambiguous: wait, plan() then says which
            if not set(ours) <= set(node.advertised):
                return False
            gone = {rt.canonical(p) for p in retired.get(SshTarget.parse(router.ssh).name, ())}
            if gone & set(node.advertised):
                return False
        return True

    def plan(
        self,
        model: SiteModel,
        *,
        routes: bool = True,
        policy: bool = True,
        settle: Collection[str] = (),
        retired: Mapping[str, Sequence[str]] | None = None,
    ) -> ChangeSet:
        """Read everything, decide everything, write nothing.

        The deploy plans the policy alone before routers join (it names no node) and the
        routes alone after they joined, so traffic rules and approvals each come at their step.
        `settle`: sites whose router changed earlier in this run; their approvals are decided
        once the server sees the routes they now advertise (settled_nodes).
        `retired`: router (inventory name) -> prefixes this project approved on it that its site no
        longer declares (removal.record.retired); dropped once the router stops advertising them.
        """
        spec = pol.PolicySpec.from_model(model)
        changes, keys = [], []
        nodes = self.settled_nodes(model, settle, retired=retired) if routes else []
        found: dict[str, str] = {}  # node id -> the router it was found as
        for site in model.sites.values() if routes else ():
            ours = tuple(rt.canonical(str(p)) for p in site.advertised)
            # every router of an HA site advertises the same prefixes; each gets them approved on its
            # own node (approval per node: the control plane then picks the primary among them)
            for router in site.routers:
                node = self.find_router(router_ident(router), nodes, prefer=ours)
                label = f"site {site.name} router {router.ssh}"
                if node.id in found:
                    raise ControlPlaneError(
                        f"{label} and {found[node.id]} are the same node {node.label} "
                        f"(id {node.id}): set tailnet_node per router"
                    )
                found[node.id] = label
                gone = tuple(rt.canonical(p) for p in (retired or {}).get(SshTarget.parse(router.ssh).name, ()))
                after = rt.desired(node.approved, node.advertised, ours, gone)
                changes.append(RouteChange(site.name, node, ours, after, gone))
                if self.manages_key_expiry and node.key_expiry_disabled is False:
                    keys.append(RouteChange(site.name, node, ours, after, gone))
        if not policy:
            return ChangeSet(self.name, spec, tuple(changes), tuple(keys), None, ())
        notes: list[str] = []
        policy_change = None
        base = self.read_policy()
        merged = pol.merge(base.text, spec, self.grants_supported())
        if merged != base.text:
            if self.writes_policy:
                policy_change = PolicyChange(base, merged)
            else:
                notes.append("policy file mode: the deploy's pyinfra operation writes this policy:")
                notes.append(PolicyChange(base, merged).diff().rstrip("\n"))
        return ChangeSet(self.name, spec, tuple(changes), tuple(keys), policy_change, tuple(notes))

    def plan_removal(self, model: SiteModel, removed: Sequence[AppliedRouter]) -> ChangeSet:
        """The removal run's control-plane part: each removed router's recorded prefixes unapproved.

        Reads only. A removed router whose node is gone needs nothing; a node that is also a
        declared router's (the same name re-used) is left alone: the routes step owns it.
        """
        nodes = self.list_nodes()
        declared: set[str] = set()
        for site in model.sites.values():
            for router in site.routers:
                try:
                    declared.add(self.find_router(router_ident(router), nodes).id)
                except ControlPlaneError:  # not joined yet, or ambiguous: the routes step says so
                    pass
        out, notes = [], []
        for gone in removed:
            ours = tuple(rt.canonical(p) for p in gone.prefixes)
            try:
                node = self.find_router(gone.idents, nodes, prefer=ours)
            except UnknownRouterError:
                notes.append(
                    f"site {gone.site} (removed): router {gone.host} is not in the tailnet: nothing to unapprove"
                )
                continue
            if node.id in declared:
                notes.append(
                    f"site {gone.site} (removed): node {node.label} is a declared router's now: left to the routes step"
                )
                continue
            out.append(Unapproval(gone.site, node, ours))
        return ChangeSet(self.name, pol.PolicySpec.from_model(model), unapprovals=tuple(out), notes=tuple(notes))

    def apply(self, changes: ChangeSet) -> list[str]:
        """Carry out a plan (order and failure states: see the module docstring); returns what was done."""
        done: list[str] = []
        if changes.policy is not None:
            self.check_policy(changes.policy.after)
            done.append(self._write_policy(changes))
        if changes.route_updates or changes.keys:
            fresh = {n.id: n for n in self.list_nodes()}
            for change in changes.route_updates:
                node = fresh.get(change.node.id)
                if node is None:
                    raise UnknownRouterError(
                        f"router {change.node.label} (id {change.node.id}) left the tailnet meanwhile"
                    )
                # re-derive from the live list: someone may have approved something since plan()
                after = rt.desired(node.approved, node.advertised, change.ours, change.retired)
                if set(after) != set(node.approved):
                    self.set_routes(node, after)
                    done.append(f"site {change.site}: {node.label}: approved routes now {', '.join(after) or '(none)'}")
            for change in changes.keys:
                self.disable_key_expiry(change.node)
                done.append(f"site {change.site}: {change.node.label}: key expiry disabled")
        if changes.unapproval_updates:
            fresh = {n.id: n for n in self.list_nodes()}
            for gone in changes.unapproval_updates:
                node = fresh.get(gone.node.id)
                if node is None:
                    done.append(f"site {gone.site} (removed): {gone.node.label} left the tailnet meanwhile")
                    continue
                after = rt.without(node.approved, gone.prefixes)  # re-derived from the live list
                if set(after) != set(node.approved):
                    self.set_routes(node, after)
                    done.append(
                        f"site {gone.site} (removed): {node.label}: unapproved "
                        + ", ".join(r for r in node.approved if r not in after)
                    )
        return done

    def _write_policy(self, changes: ChangeSet) -> str:
        assert changes.policy is not None
        base, text = changes.policy.base, changes.policy.after
        for attempt in range(1, POLICY_ATTEMPTS + 1):
            if self.write_policy(text, base):
                return "policy written" + (
                    f" (after {attempt - 1} concurrent edit(s), re-merged)" if attempt > 1 else ""
                )
            base = self.read_policy()  # someone edited it meanwhile: merge into theirs
            text = pol.merge(base.text, changes.spec, self.grants_supported())
            if text == base.text:
                return "policy already up to date (a concurrent edit did it)"
            self.check_policy(text)
        raise ControlPlaneError(
            f"policy: changed by someone else {POLICY_ATTEMPTS} times while writing; nothing overwritten, re-run"
        )


class Recorded(ControlPlane):
    """A control plane's node list and policy as read earlier, for planning only (writes refused).

    The deploy reads both while pyinfra loads (steps.readahead) and plans from them while
    nothing has changed since; applying always goes to the live server.
    """

    def __init__(self, live: ControlPlane, *, nodes: bool = True, policy: bool = True) -> None:
        super().__init__(writes_policy=live.writes_policy)
        self.name, self.manages_key_expiry = live.name, live.manages_key_expiry
        # The reads at once: each is a round trip through the SSH forward plus the server's own
        # API-key check (Headscale bcrypts the key on every request: docs/noop.md), so in turn they
        # cost several times the wall time. (Threads are greenlets under pyinfra's gevent.)
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="s2s-cp-read") as pool:
            listed = pool.submit(live.list_nodes) if nodes else None
            read = pool.submit(live.read_policy) if policy else None
            grants = pool.submit(live.grants_supported) if policy else None
            self._nodes = listed.result() if listed is not None else None
            self._policy = read.result() if read is not None else None
            self._grants = grants.result() if grants is not None else False

    def list_nodes(self) -> list[Node]:
        if self._nodes is None:
            raise ControlPlaneError("node list not recorded")
        return list(self._nodes)

    def read_policy(self) -> PolicyDoc:
        if self._policy is None:
            raise ControlPlaneError("policy not recorded")
        return self._policy

    def _refuse(self, *args, **kwargs):
        raise ControlPlaneError("a recorded control plane only plans; apply to the live server")

    set_routes = check_policy = write_policy = create_auth_key = _refuse  # type: ignore[assignment]
