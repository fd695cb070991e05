"""Plain data the backends share: nodes, planned changes, errors (never a secret inside)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from netaddr import AddrFormatError, IPAddress

from controlplane import routes as rt
from controlplane.policy import PolicySpec


class ControlPlaneError(Exception):
    """A failure talking to the control server; str() is one line and holds no secret."""


class UnknownRouterError(ControlPlaneError):
    """A site's router is not (yet) a node of the tailnet."""


@dataclass(frozen=True)
class Node:
    """One tailnet node as a backend reports it, in backend-neutral terms."""

    id: str
    name: str  # Headscale: the node's hostname; Tailscale: the MagicDNS FQDN
    hostname: str = ""
    given_name: str = ""  # Headscale's unique display name
    addresses: tuple[str, ...] = ()
    advertised: tuple[str, ...] = ()  # routes the node asks for
    approved: tuple[str, ...] = ()  # routes the control plane enabled
    tags: tuple[str, ...] = ()
    key_expiry_disabled: bool | None = None  # None: the backend does not report it
    online: bool | None = None  # connected to the control server now (None: not reported)
    primary_routes: tuple[str, ...] | None = None  # routes the control server made it primary for
    # (Headscale's subnetRoutes; None: the backend does not report it, as Tailscale's API)

    def matches(self, ident: str) -> bool:
        """Same name (FQDN's first label too), hostname, given name or tailnet IP."""
        want = ident.strip().lower().rstrip(".")
        try:
            ip = IPAddress(want)
            return any(IPAddress(a.split("/")[0]) == ip for a in self.addresses)
        except (AddrFormatError, ValueError):
            pass
        names = {self.name.lower().rstrip("."), self.hostname.lower(), self.given_name.lower()}
        names |= {n.split(".")[0] for n in names if n}
        return want in names - {""}

    @property
    def label(self) -> str:
        return self.given_name or self.name or self.hostname or self.id


@dataclass(frozen=True)
class RouteChange:
    """The approved/enabled route list of one router before and after."""

    site: str
    node: Node
    ours: tuple[str, ...]  # the site's prefixes
    after: tuple[str, ...]
    retired: tuple[str, ...] = ()  # approved by this project earlier, no longer the site's (the applied record)

    @property
    def before(self) -> tuple[str, ...]:
        return self.node.approved

    @property
    def added(self) -> list[str]:
        return [r for r in self.after if r not in self.before]

    @property
    def removed(self) -> list[str]:
        return [r for r in self.before if r not in self.after]

    @property
    def not_advertised(self) -> list[str]:
        return [r for r in self.ours if r not in self.node.advertised]


@dataclass(frozen=True)
class Unapproval:
    """A removed router's node: the routes this project approved on it (its recorded prefixes) taken back.

    Only those prefixes go; anything else approved on the node (by someone else) is sent back.
    """

    site: str
    node: Node
    prefixes: tuple[str, ...]  # canonical, from the applied record

    @property
    def after(self) -> tuple[str, ...]:
        return rt.without(self.node.approved, self.prefixes)

    @property
    def removed(self) -> list[str]:
        return [r for r in self.node.approved if r not in self.after]


@dataclass(frozen=True)
class PolicyDoc:
    """The policy text as read, and what proves it unchanged when writing (ETag, timestamp)."""

    text: str
    version: str | None = None


@dataclass(frozen=True)
class PolicyChange:
    base: PolicyDoc
    after: str

    def diff(self) -> str:
        lines = difflib.unified_diff(
            self.base.text.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile="policy (control server)",
            tofile="policy (merged)",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True)
class ChangeSet:
    """Everything `apply` would do; rendering it is the dry-run (no secret is ever in it)."""

    backend: str
    spec: PolicySpec
    routes: tuple[RouteChange, ...] = ()  # every router, changed or not
    keys: tuple[RouteChange, ...] = ()  # routers whose key expiry gets disabled
    policy: PolicyChange | None = None  # None: unchanged, or not ours to write
    notes: tuple[str, ...] = field(default=())
    unapprovals: tuple[Unapproval, ...] = ()  # removed routers (the removal run)

    @property
    def unapproval_updates(self) -> list[Unapproval]:
        return [u for u in self.unapprovals if u.removed]

    @property
    def route_updates(self) -> list[RouteChange]:
        return [c for c in self.routes if set(c.after) != set(c.before)]

    @property
    def empty(self) -> bool:
        return not self.route_updates and not self.keys and self.policy is None and not self.unapproval_updates

    def render(self) -> str:
        out = [f"control plane: {self.backend}"]
        for c in self.routes:
            state = "approve " + ", ".join(c.added) if c.added else "routes already approved"
            if c.removed:
                state += "; drop (ours, no longer advertised) " + ", ".join(c.removed)
            out.append(f"  site {c.site}: router {c.node.label} (id {c.node.id}): {state}")
            if c.not_advertised:
                out.append(f"    not advertised yet: {', '.join(c.not_advertised)}")
            kept = [r for r in c.after if r not in c.ours]
            if kept:
                out.append(f"    kept (approved by someone else): {', '.join(kept)}")
        for u in self.unapprovals:
            state = "unapprove " + ", ".join(u.removed) if u.removed else "no route of ours approved"
            out.append(f"  site {u.site} (removed): router {u.node.label} (id {u.node.id}): {state}")
            kept = [r for r in u.after if r in u.node.approved]
            if kept:
                out.append(f"    kept (approved by someone else): {', '.join(kept)}")
        for c in self.keys:
            out.append(f"  site {c.site}: router {c.node.label}: disable key expiry")
        out.extend(f"  note: {n}" for n in self.notes)
        if self.policy is None:
            out.append("  policy: no change")
        else:
            out.append("  policy: changes:")
            out.append(self.policy.diff().rstrip("\n"))
        return "\n".join(out)
