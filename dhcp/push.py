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

Every failure before config-set (or the delta) leaves the running config as it
was, and the message says so. A failed config-write leaves the running config changed but not
persisted; the message says how to finish (`python -m dhcp.kea write`).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from dhcp.kea.connect import TransportFactory, transport_for, tunnelled_factory
from dhcp.kea.keep import KeptRoute, RouteConflict, dedupe, merge, own_routes, wider_routes
from dhcp.kea.options import (ROUTE_CODES, KeaConfigError, SubnetIndex, canonical, config_for_set,
                              desired_options, find_subnet, is_route_option, merge_options,
                              option_code, option_diff, options_match)
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


@dataclass
class ServerPush:
    """The push of one Kea server's sites (one transport, one config)."""

    endpoint: KeaEndpoint
    plans: list[SitePlan]
    codes: tuple[int, ...]
    out: TextIO
    transport: KeaTransport | None = None
    dhcp: DhcpSettings = field(default_factory=DhcpSettings)
    changes: list[_Change] = field(default_factory=list)
    path: str = ""  # how the change was applied: "config-set" or "subnet4-delta-add"
    kept: list[tuple[str, KeptRoute]] = field(default_factory=list)  # (site, route) for the report

    @property
    def where(self) -> str:
        via = f" via ssh {self.endpoint.ssh}" if self.endpoint.ssh else ""
        return f"Kea at {redact_url(self.endpoint.url)}{via}"

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def run(self, dry_run: bool) -> None:
        t = self.transport
        assert t is not None
        got = self._call("config-get", None, "nothing was changed")
        config = config_for_set(got)
        self._edit(config)
        if not self.changes:
            return
        delta = self._delta_change(got)
        if dry_run:
            for change in self.changes:
                self.say(option_diff(change.before, change.after, change.label).rstrip("\n"))
            how = "subnet4-delta-add" if delta else "config-set"
            self.say(f"{self.where}: dry run, nothing sent but config-get (a push would use {how})")
            return
        if delta is None or not self._apply_delta(got, delta):
            self._apply_config_set(got, config)
        written = self._write()
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
        subnet = find_subnet(got, change.plan.site.subnet, change.plan.site.kea.subnet_id)  # type: ignore[union-attr]
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

    def _edit(self, config: dict[str, Any]) -> None:
        """Apply every site's options to `config` in place; record what differs and what is kept."""
        seen: dict[int, str] = {}
        index = SubnetIndex(config)
        for plan in self.plans:
            kea = plan.site.kea
            assert kea is not None
            try:
                subnet = index.find(plan.site.subnet, kea.subnet_id)
            except KeaConfigError as exc:
                raise PushFailed(f"{self.where}: site {plan.site.name}: {exc}; nothing was "
                                 "changed") from None
            if id(subnet) in seen:
                raise PushFailed(f"{self.where}: sites {seen[id(subnet)]} and {plan.site.name} "
                                 "resolve to the same subnet4; nothing was changed")
            seen[id(subnet)] = plan.site.name
            label = f"{self.where} subnet4 {subnet.get('subnet')} (id {subnet.get('id')})"
            try:
                wider = wider_routes(config, subnet, index.network_of.get(id(subnet)))
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
            subnet = index.find(change.plan.site.subnet, change.plan.site.kea.subnet_id)  # type: ignore[union-attr]
            scope = _locate(subnet, change.scope) or {}
            if not options_match(list(scope.get("option-data") or []), change.desired):
                raise PushFailed(f"{self.where}: site {change.plan.site.name}: read-back after "
                                 "config-set does not show the pushed options 121/249")


def _endpoint_key(endpoint: KeaEndpoint) -> tuple[str, str | None, str | None]:
    return (endpoint.url.rstrip("/"), endpoint.user, endpoint.ssh)


def group_by_server(plans: dict[str, SitePlan]) -> list[tuple[KeaEndpoint, list[SitePlan]]]:
    """Sites with a kea table and a needed push, grouped by the Kea server they name."""
    groups: dict[tuple[str, str | None, str | None], tuple[KeaEndpoint, list[SitePlan]]] = {}
    for plan in plans.values():
        kea = plan.site.kea
        if kea is None or not plan.push_needed:
            continue
        groups.setdefault(_endpoint_key(kea), (kea, []))[1].append(plan)
    return list(groups.values())


def run(plans: dict[str, SitePlan], *, codes: tuple[int, ...] = ROUTE_CODES, dry_run: bool = False,
        factory: TransportFactory = transport_for, out: TextIO | None = None,
        err: TextIO | None = None, dhcp: DhcpSettings | None = None) -> int:
    """Push every server; 0 when all are as planned, 1 when any failed, 2 for a bad secret."""
    out = out or sys.stdout
    err = err or sys.stderr
    for plan in plans.values():
        if plan.site.kea is None:
            print(f"site {plan.site.name}: no kea table, skipped", file=out)
        elif not plan.push_needed:
            print(f"site {plan.site.name}: skipped: {plan.reason}", file=out)
    dhcp = dhcp or DhcpSettings()
    pushes = [ServerPush(ep, ps, codes, out, dhcp=dhcp) for ep, ps in group_by_server(plans)]
    try:  # every secret is read before any server is contacted
        for push in pushes:
            push.transport = factory(push.endpoint)
    except SecretError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except KeaError as exc:
        print(f"error: {exc}; nothing was contacted", file=err)
        return 1
    failed = 0
    for push in pushes:
        try:
            push.run(dry_run)
        except PushFailed as exc:
            failed += 1
            names = ", ".join(p.site.name for p in push.plans)
            print(f"error: sites {names}: {exc}", file=err)
    return 1 if failed else 0


def main(args: argparse.Namespace) -> int:
    """Entry point of `python -m dhcp push` (args.sites, args.dry_run)."""
    from dhcp.cli import load_plans_or_exit

    model, plans = load_plans_or_exit(args.sites)
    codes = ROUTE_CODES if model.dhcp.option_249 else (121,)
    with ExitStack() as tunnels:
        return run(plans, codes=codes, dry_run=bool(getattr(args, "dry_run", False)),
                   factory=tunnelled_factory(model.ssh, tunnels), dhcp=model.dhcp)
