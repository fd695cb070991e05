"""`python -m dhcp push`: put every site's option 121/249 into its Kea DHCPv4 server.

Per Kea server (sites sharing one server are pushed together, so the number of
HTTP round trips per server is constant, not per site):

    config-get -> edit the subnets' option-data in a copy -> nothing differs? "no change", stop
    config-test -> nobody changed it meanwhile? (config-hash-get on >= 2.4, a canonical
    re-read on 2.2) -> config-set -> config-write -> config-get, verify

When Kea runs the subnet_cmds hook (open source from 2.7.7; Debian's 3.0 ships
it) and exactly one subnet's options change, `subnet4-delta-add` sends just
those entries instead of config-test + config-set of the whole config; anything
more (several subnets, a pool or reservation, an entry to delete) stays with the
atomic config-set. The output says which path ran.

Routes the user already serves with 121/249 are kept in what is pushed
(dhcp/kea/keep.py). Every server of a run is read before any is changed; the
servers of an HA pair ([[sites.X.kea]]) are brought to the same option data,
a partner that differs is reported, and a failure on one says what each
partner is left with.

Every failure before config-set (or the delta) leaves the running config as it
was, and the message says so. A failed config-write leaves the running config changed but not
persisted; the message says how to finish (`python -m dhcp.kea write`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

import failpoint
from dhcp.kea.connect import TransportFactory, transport_for, tunnelled_factory
from dhcp.kea.keep import KeptRoute, RouteConflict, dedupe, merge, own_routes, wider_routes
from dhcp.kea.options import (
    ROUTE_CODES,
    KeaConfigError,
    SubnetIndex,
    canonical,
    config_for_set,
    desired_options,
    is_route_option,
    merge_options,
    option_bytes,
    option_code,
    option_diff,
    options_match,
)
from dhcp.kea.transport import KeaError, KeaTransport, KeaUnsupported, redact_url
from dhcp.plan import SitePlan, option_budget, reply_size
from dhcp.rfc3442 import encode
from sites.model import DhcpSettings, KeaEndpoint, SecretError


class PushFailed(Exception):
    """One Kea server could not be brought to the plan; str() says what state it is in."""


@dataclass
class _Change:
    plan: SitePlan
    label: str
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    desired: list[dict[str, Any]]
    scope: tuple[str, str] = ("subnet", "")  # ("pool", "a - b") / ("reservation", key): read-back


def _scopes_inside(subnet: dict[str, Any]) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """Pools and reservations of the subnet that set 121/249 themselves: they win over the
    subnet's option-data (reservation > pool > subnet), so they get the plan too."""
    found = []
    for pool in subnet.get("pools") or []:
        if any(is_route_option(o) for o in pool.get("option-data") or []):
            found.append((("pool", str(pool.get("pool"))), pool))
    for res in subnet.get("reservations") or []:
        if any(is_route_option(o) for o in res.get("option-data") or []):
            found.append((("reservation", _reservation_key(res)), res))
    return found


def _reservation_key(res: dict[str, Any]) -> str:
    for key in ("hw-address", "client-id", "duid", "circuit-id", "flex-id", "ip-address"):
        if res.get(key):
            return f"{key} {res[key]}"
    return "?"


def _locate(subnet: dict[str, Any], scope: tuple[str, str]) -> dict[str, Any] | None:
    kind, key = scope
    if kind == "subnet":
        return subnet
    items = subnet.get("pools" if kind == "pool" else "reservations") or []
    for item in items:
        if (kind == "pool" and str(item.get("pool")) == key) or \
                (kind == "reservation" and _reservation_key(item) == key):
            return item
    return None


@dataclass(frozen=True)
class ServerPlan:
    """What a push would change on one Kea server, decided from its config-get alone: the dry
    run prints it, the deploy shows it under --diff and applies only when it is not empty."""

    where: str
    notes: tuple[str, ...]  # what reading found: routes kept, scopes already right, HA differences
    diffs: tuple[str, ...]  # one option-data diff per scope that changes
    how: str  # "config-set" or "subnet4-delta-add"

    @property
    def empty(self) -> bool:
        return not self.diffs

    def change_lines(self) -> list[str]:
        if self.empty:
            return []
        return [*self.diffs, f"{self.where}: dry run, nothing sent but config-get (a push would use {self.how})"]

    def render(self) -> str:
        return "\n".join([*self.notes, *self.change_lines()])


@dataclass
class ServerPush:
    """The push of one Kea server's sites (one transport, one config). What it says is kept in
    `said` and, given an `out`, printed as it goes (the CLI)."""

    endpoint: KeaEndpoint
    plans: list[SitePlan]
    codes: tuple[int, ...]
    out: TextIO | None = None
    transport: KeaTransport | None = None
    dhcp: DhcpSettings = field(default_factory=DhcpSettings)
    changes: list[_Change] = field(default_factory=list)
    path: str = ""  # how the change was applied: "config-set" or "subnet4-delta-add"
    state: str = "unchanged"  # what a failure leaves on this server (HA reports)
    got: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    delta: _Change | None = None
    kept: list[tuple[str, KeptRoute]] = field(default_factory=list)  # (site, route) for the report
    said: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        via = f" via ssh {self.endpoint.ssh}" if self.endpoint.ssh else ""
        return f"Kea at {redact_url(self.endpoint.url)}{via}"

    def say(self, text: str) -> None:
        self.said.append(text)
        if self.out is not None:
            print(text, file=self.out)

    def run(self, dry_run: bool) -> None:
        """One server on its own: read, edit, then show (dry run) or apply."""
        self.read()
        self.prepare({})
        self.show_dry() if dry_run else self.apply()

    def read(self) -> None:
        """config-get: every server of a run is read before any is changed."""
        self.got = self._call("config-get", None, "nothing was changed")

    def subnet_id(self, plan: SitePlan) -> int | None:
        """The site's subnet id on THIS server (HA partners may number it differently)."""
        key = _endpoint_key(self.endpoint)
        for endpoint in plan.site.kea:
            if _endpoint_key(endpoint) == key:
                return endpoint.subnet_id
        return None

    def _subnet(self, config: dict[str, Any], plan: SitePlan,
                index: SubnetIndex | None = None) -> dict[str, Any]:
        try:
            return (index or SubnetIndex(config)).find(plan.site.subnet, self.subnet_id(plan))
        except KeaConfigError as exc:
            raise PushFailed(f"{self.where}: site {plan.site.name}: {exc}; nothing was "
                             "changed") from None

    def served_routes(self, plan: SitePlan) -> list[KeptRoute]:
        """The user's routes this server's clients of the site get at subnet level (its own
        121/249 and wider scopes): what its HA partners must keep too."""
        index = SubnetIndex(self.got)
        subnet = self._subnet(self.got, plan, index)
        found = own_routes(subnet.get("option-data") or [], "subnet4")
        found += wider_routes(self.got, subnet, index.network_of.get(id(subnet)))
        return [KeptRoute(k.prefix, k.via, f"{k.origin} on HA partner {self.where}") for k in found]

    def route_data(self, plan: SitePlan) -> dict[int, bytes | None]:
        """The subnet's 121/249 as sent (code -> bytes): compared across HA partners."""
        subnet = self._subnet(self.got, plan)
        return {option_code(o): option_bytes(o) for o in subnet.get("option-data") or []  # type: ignore[misc]
                if is_route_option(o)}

    def prepare(self, partner_routes: dict[str, list[KeptRoute]]) -> None:
        """Edit a copy of the config; `partner_routes` (site -> routes) are HA partners' user
        routes, kept here too so every partner ends with the same option data."""
        self.config = config_for_set(self.got)
        self._edit(self.config, partner_routes)
        self.delta = self._delta_change(self.got) if self.changes else None

    def plan(self) -> ServerPlan:
        """What apply() would change (after read() and prepare(); nothing is sent)."""
        return ServerPlan(self.where, tuple(self.said),
                          tuple(option_diff(c.before, c.after, c.label).rstrip("\n") for c in self.changes),
                          "subnet4-delta-add" if self.delta else "config-set")

    def show_dry(self) -> None:
        for line in self.plan().change_lines():
            self.say(line)

    def apply(self) -> None:
        if not self.changes:
            self.state = "no change needed"
            return
        if self.delta is None or not self._apply_delta(self.got, self.delta):
            self._apply_config_set(self.got, self.config)
        self.state = "CHANGED but NOT persisted"
        failpoint.reached(failpoint.KEA_AFTER_SET)
        written = self._write()
        self.state = "changed and written"
        self._verify()
        for change in self.changes:
            self.say(f"site {change.plan.site.name}: updated {change.label}")
        self.say(f"{self.where}: changed with {self.path}, config written to "
                 f"{written.get('filename', 'its config file')}")

    def _apply_config_set(self, got: dict[str, Any], config: dict[str, Any]) -> None:
        """The whole config: validated, unchanged since config-get, then set (atomic)."""
        self._call("config-test", config, "config-test rejected the new config; the running "
                   "config is unchanged")
        self._check_unchanged(got)
        self._call("config-set", config, "config-set failed; the running config is unchanged")
        self.path = "config-set"

    def _delta_change(self, got: dict[str, Any]) -> _Change | None:
        """The one subnet-level change subnet4-delta-add can make on its own, when Kea runs the
        subnet_cmds hook (open source since 2.7.7). More than one changed scope, a pool or a
        reservation, or an entry to remove: None (config-set, which is atomic)."""
        hooks = (got.get("Dhcp4") or {}).get("hooks-libraries") or []
        if not any("libdhcp_subnet_cmds" in str(h.get("library", "")) for h in hooks):
            return None
        if len(self.changes) != 1 or self.changes[0].scope[0] != "subnet":
            return None
        change = self.changes[0]
        wanted = {option_code(d) for d in change.desired}
        if any(is_route_option(o) and option_code(o) not in wanted for o in change.before):
            return None  # delta-add cannot delete (a managed 249 after option_249 = false)
        return change

    def _apply_delta(self, got: dict[str, Any], change: _Change) -> bool:
        """Only the subnet's 121/249 entries, sent with subnet4-delta-add; False when this Kea
        lacks the command after all (then config-set runs)."""
        subnet = self._subnet(got, change.plan)
        self._check_unchanged(got)
        arguments = {"subnet4": [{"id": subnet.get("id"), "subnet": subnet.get("subnet"),
                                  "option-data": change.desired}]}
        try:
            self.transport.command("subnet4-delta-add", arguments)  # type: ignore[union-attr]
        except KeaUnsupported:
            return False
        except KeaError as exc:
            raise PushFailed(f"{exc}; subnet4-delta-add failed, the running config is "
                             "unchanged") from None
        self.path = "subnet4-delta-add"
        return True

    # -- steps -------------------------------------------------------------------------
    def _call(self, name: str, arguments: dict[str, Any] | None, state: str) -> Any:
        try:
            return self.transport.command(name, arguments)  # type: ignore[union-attr]
        except KeaError as exc:
            raise PushFailed(f"{exc}; {state}") from None

    def _edit(self, config: dict[str, Any], partner_routes: dict[str, list[KeptRoute]]) -> None:
        """Apply every site's options to `config` in place; record what differs and what is kept."""
        seen: dict[int, str] = {}
        index = SubnetIndex(config)
        for plan in self.plans:
            subnet = self._subnet(config, plan, index)
            if id(subnet) in seen:
                raise PushFailed(f"{self.where}: sites {seen[id(subnet)]} and {plan.site.name} "
                                 "resolve to the same subnet4; nothing was changed")
            seen[id(subnet)] = plan.site.name
            label = f"{self.where} subnet4 {subnet.get('subnet')} (id {subnet.get('id')})"
            try:
                wider = wider_routes(config, subnet, index.network_of.get(id(subnet)))
                wider += partner_routes.get(plan.site.name, [])
                scopes = [(("subnet", ""), subnet, label, wider)]
                scopes += [(key, scope, f"{label} {key[0]} {key[1]}", [])
                           for key, scope in _scopes_inside(subnet)]
                for key, scope, scope_label, inherited in scopes:
                    self._edit_scope(plan, key, scope, scope_label, inherited)
            except RouteConflict as exc:
                raise PushFailed(f"{self.where}: site {plan.site.name}: {exc}") from None

    def _edit_scope(self, plan: SitePlan, key: tuple[str, str], scope: dict[str, Any], label: str,
                    inherited: list[KeptRoute]) -> None:
        """One scope: plan + the routes kept there, as 121/249; a change is recorded, not sent."""
        where = f"site {plan.site.name}"
        before = list(scope.get("option-data") or [])
        own = dedupe(own_routes(before, "subnet4" if key[0] == "subnet" else f"{key[0]} {key[1]}"), where)
        routes, added = merge(plan.routes, [*own, *inherited], where)
        for k in added:
            self.kept.append((plan.site.name, k))
            self.say(f"{where}: keeping {k.prefix} via {k.via} ({k.origin}) in {label}")
        data = encode(routes)
        if reply_size(len(data), self.dhcp) > option_budget(self.dhcp):
            raise PushFailed(f"{self.where}: {where}: {len(routes)} routes ({len(added)} kept from "
                             f"the running config) make a {len(data)}-byte option 121, over what a "
                             f"{self.dhcp.max_message_size}-byte reply leaves; nothing was changed")
        desired = desired_options(data, self.codes, [k.text for k in own])
        if options_match(before, desired):
            self.say(f"{where}: no change ({label})")
            return
        after = merge_options(before, desired)
        if plan.summaries:  # the diff shows hex: name what [dhcp] summaries = "auto" chose
            self.say(f"{where}: auto summaries {', '.join(map(str, plan.summaries))} via {plan.site.next_hop} "
                     f"in {label}")
        scope["option-data"] = after
        self.changes.append(_Change(plan, label, before, after, desired, key))

    def _check_unchanged(self, got: dict[str, Any]) -> None:
        """Refuse to config-set over somebody else's edit made since our config-get."""
        state = "nothing was set; rerun the push"
        if "hash" in got:
            try:
                now = self._call("config-hash-get", None, state).get("hash")
            except PushFailed:
                now = None  # a server that reports a hash but lacks the command: compare texts
            if now is not None:
                if now != got["hash"]:
                    raise PushFailed(f"{self.where}: the config changed since config-get "
                                     f"(config-hash-get differs); {state}")
                return
        if canonical(self._call("config-get", None, state)) != canonical(got):
            raise PushFailed(f"{self.where}: the config changed since config-get (somebody else "
                             f"edited it meanwhile); {state}")

    def _write(self) -> dict[str, Any]:
        try:
            return self.transport.command("config-write")  # type: ignore[union-attr]
        except KeaError as exc:
            sites = " ".join(c.plan.site.name for c in self.changes)
            raise PushFailed(
                f"{exc}. The running config HAS the new routes (sites: {sites}) but they are NOT "
                "persisted: a Kea restart or config-reload drops them. Fix: make Kea's config "
                "file writable by the Kea server (on Debian /etc/kea/kea-dhcp4.conf is root-owned "
                "and kea-dhcp4 runs as _kea), then run `python -m dhcp.kea write` (same --sites) "
                "to send config-write") from None

    def _verify(self) -> None:
        """Read back what Kea now runs and compare by code and bytes."""
        check = self._call("config-get", None, "the routes are set and written but could not "
                           "be read back")
        index = SubnetIndex(check)
        for change in self.changes:
            subnet = self._subnet(check, change.plan, index)
            scope = _locate(subnet, change.scope) or {}
            if not options_match(list(scope.get("option-data") or []), change.desired):
                raise PushFailed(f"{self.where}: site {change.plan.site.name}: read-back after "
                                 "config-set does not show the pushed options 121/249 (Kea "
                                 "restarted or reloaded meanwhile?); it serves what it read back, "
                                 "the next run pushes again")


def _endpoint_key(endpoint: KeaEndpoint) -> tuple[str, str | None, str | None]:
    return (endpoint.url.rstrip("/"), endpoint.user, endpoint.ssh)


def group_by_server(plans: dict[str, SitePlan]) -> list[tuple[KeaEndpoint, list[SitePlan]]]:
    """Sites with a kea table and a needed push, grouped by the Kea server they name (every
    server of an HA pair is a group of its own)."""
    groups: dict[tuple[str, str | None, str | None], tuple[KeaEndpoint, list[SitePlan]]] = {}
    for plan in plans.values():
        if not plan.push_needed:
            continue
        for kea in plan.site.kea:
            groups.setdefault(_endpoint_key(kea), (kea, []))[1].append(plan)
    return list(groups.values())


class PushRun:
    """One push run over several servers: all read first, HA partners made equal, then applied
    server by server; a failure is reported with what it leaves on each partner."""

    def __init__(self, pushes: list[ServerPush], out: TextIO, err: TextIO) -> None:
        self.pushes, self.out, self.err = pushes, out, err
        self.failed: set[int] = set()
        self.partners: dict[str, list[ServerPush]] = {}
        for push in pushes:
            for plan in push.plans:
                if len(plan.site.kea) > 1:
                    self.partners.setdefault(plan.site.name, []).append(push)

    def fail(self, push: ServerPush, message: str) -> None:
        self.failed.add(id(push))
        names = ", ".join(p.site.name for p in push.plans)
        print(f"error: sites {names}: {message}", file=self.err)

    def group_failed(self, push: ServerPush) -> str | None:
        """The partner that failed, when `push` is in an HA group that already has a failure."""
        for site, group in self.partners.items():
            if push in group:
                for other in group:
                    if other is not push and id(other) in self.failed:
                        return f"site {site}'s HA partner {other.where} failed"
        return None

    def step(self, pushes: list[ServerPush], action: Callable[[ServerPush], None]) -> None:
        for push in pushes:
            if id(push) in self.failed:
                continue
            why = self.group_failed(push)
            if why and action is not ServerPush.read:
                self.fail(push, f"{push.where}: not pushed: {why}; this server is unchanged")
                continue
            try:
                action(push)
            except PushFailed as exc:
                self.fail(push, str(exc))

    def partner_routes(self, push: ServerPush) -> dict[str, list[KeptRoute]]:
        found: dict[str, list[KeptRoute]] = {}
        for site, group in self.partners.items():
            if push not in group:
                continue
            plan = next(p for p in push.plans if p.site.name == site)
            for other in group:
                if other is not push and id(other) not in self.failed:
                    found.setdefault(site, []).extend(other.served_routes(plan))
        return found

    def report_differences(self) -> None:
        for site, group in self.partners.items():
            alive = [p for p in group if id(p) not in self.failed]
            if len(alive) < 2:
                continue
            plan = next(p for p in alive[0].plans if p.site.name == site)
            first = alive[0].route_data(plan)
            for other in alive[1:]:
                if other.route_data(plan) != first:
                    print(f"site {site}: {other.where} differs from its HA partner {alive[0].where} "
                          "(option 121/249 data); the push brings both to the same", file=self.out)

    def report_partners(self) -> None:
        """After a failure in an HA group: exactly which partner is changed and which is not."""
        for site, group in self.partners.items():
            if any(id(p) in self.failed for p in group):
                states = "; ".join(f"{p.where}: {p.state}" for p in group)
                print(f"error: site {site} (HA pair): {states}", file=self.err)

    def run(self, dry_run: bool) -> int:
        self.step(self.pushes, ServerPush.read)
        for push in self.pushes:
            if id(push) not in self.failed and self.group_failed(push) is None:
                try:
                    push.prepare(self.partner_routes(push))
                except PushFailed as exc:
                    self.fail(push, str(exc))
        self.step(self.pushes, lambda p: None)  # partners of a failed server are left alone
        self.report_differences()
        self.step(self.pushes, ServerPush.show_dry if dry_run else ServerPush.apply)
        self.report_partners()
        return 1 if self.failed else 0


def run(plans: dict[str, SitePlan], *, codes: tuple[int, ...] = ROUTE_CODES, dry_run: bool = False,
        factory: TransportFactory = transport_for, out: TextIO | None = None,
        err: TextIO | None = None, dhcp: DhcpSettings | None = None) -> int:
    """Push every server; 0 when all are as planned, 1 when any failed, 2 for a bad secret."""
    out = out or sys.stdout
    err = err or sys.stderr
    for plan in plans.values():
        if not plan.site.kea:
            print(f"site {plan.site.name}: no kea table, skipped", file=out)
        elif not plan.push_needed:
            print(f"site {plan.site.name}: skipped: {plan.reason}", file=out)
    dhcp = dhcp or DhcpSettings()
    pushes = [ServerPush(ep, ps, codes, out, dhcp=dhcp) for ep, ps in group_by_server(plans)]
    try:  # every secret is read before any server is contacted
        for push in pushes:
            push.endpoint.password()
        for push in pushes:
            push.transport = factory(push.endpoint)
    except SecretError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except KeaError as exc:
        print(f"error: {exc}; nothing was contacted", file=err)
        return 1
    return PushRun(pushes, out, err).run(dry_run)


def main(args: argparse.Namespace) -> int:
    """Entry point of `python -m dhcp push` (args.sites, args.dry_run)."""
    from dhcp.cli import load_plans_or_exit

    model, plans = load_plans_or_exit(args.sites)
    codes = model.dhcp.route_codes
    with ExitStack() as tunnels:
        return run(plans, codes=codes, dry_run=bool(getattr(args, "dry_run", False)),
                   factory=tunnelled_factory(model.ssh, tunnels), dhcp=model.dhcp)
