"""The deploy's removal steps: removed routers' routes unapproved, and the applied record kept.

A router the applied record names but the site file no longer declares is "removed"
(removal.record). Without `--data prune=true` the deploy only warns, with the command
to run; with it, the control-plane step takes back the routes this project approved on
the removed node, and deploy.py runs operations.teardown.removed on each removed router
that inventory.py added (group `removed_routers`). The record is rewritten once a real
run's operations are done (never with --dry; not an operation, so no run counts it as a
change): the declared routers, plus every removed router not cleaned in this run (not
pruning, or its host failed or was unreachable), so nothing is forgotten before it is undone.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback, State

from controlplane import ChangeSet, ControlPlaneError, reach
from controlplane.base import router_ident
from operations.util import warn
from pyinfra_internals import run_id
from removal import record
from removal.record import AppliedAwsSite, AppliedRouter, AppliedStaticHost
from sites.model import SiteModel
from steps.planned import plan_then_apply
from steps.tailnet import FAILURES, LABEL, _transport
from steps.vpc import cleaned_tables


def prune_command(model: SiteModel, dry: bool = False) -> str:
    return f"SITES={model.path} pyinfra inventory.py deploy.py --data {record.PRUNE_KEY}=true" + (
        " --dry --diff" if dry else ""
    )


@operation()
def routes_unapproved(
    model: SiteModel, removed: list[AppliedRouter], prune: bool, coordinating: bool = True
) -> Generator[Any, None, None]:
    """Routes this project approved on removed routers' nodes are unapproved (the removal run).

    + model: the validated site model
    + removed: recorded routers the site file no longer declares
    + prune: `--data prune=true` was given; without it the step only warns
    + coordinating: False on every host but the one that carries the control-plane steps
    """
    if not coordinating or not removed:
        host.noop(f"{LABEL}: no removed router" if coordinating else f"{LABEL}: planned on another host")
        return
    names = ", ".join(f"{r.host} (site {r.site})" for r in removed)
    if not prune:
        warn(
            f"the site file no longer declares router(s) {names} that an earlier deploy configured; "
            f"preview their removal with `{prune_command(model, dry=True)}`, "
            f"then run `{prune_command(model)}`"
        )
        host.noop(f"{LABEL}: removal of {names} not requested")
        return
    if model.tailnet is None:
        host.noop(f"{LABEL}: no [tailnet] table")
        return

    def plan() -> ChangeSet:
        with reach(model, transport=_transport(host)) as cp:
            changes = cp.plan_removal(model, removed)
        for note in changes.notes:
            host.log(f"{LABEL}: {note}", logger.info)
        return changes

    def apply(on_host: Host) -> list[str]:
        with reach(model, transport=_transport(on_host)) as cp:
            changes = cp.plan_removal(model, removed)
            return cp.apply(changes) if not changes.empty else []

    yield from plan_then_apply(LABEL, plan, apply, failures=FAILURES, done="removed routers' routes already unapproved")


_addresses: dict[int, tuple[str, ...] | None] = {}


def declared_addresses(model: SiteModel) -> tuple[str, ...] | None:
    """Tailnet addresses of every router the site file declares (read once per run); None when the
    control plane cannot be read. The router step refuses a removed host that is one of them: the
    same machine under a new ssh target would otherwise be logged out."""
    key = run_id()
    if key not in _addresses:
        if model.tailnet is None:
            _addresses[key] = ()
            return ()
        try:
            with reach(model, transport=_transport(host)) as cp:
                nodes = cp.list_nodes()
                found = []
                for site in model.sites.values():
                    for router in site.routers:
                        try:
                            found += [a.split("/")[0] for a in cp.find_router(router_ident(router), nodes).addresses]
                        except ControlPlaneError:  # not joined (yet): it cannot be this host's node
                            pass
                _addresses[key] = tuple(found)
        except FAILURES as exc:
            warn(f"{LABEL}: {exc}")
            _addresses[key] = None
    return _addresses[key]


def still_recorded(
    model: SiteModel, recorded: list[AppliedRouter], cleaned: set[str], failed: bool = False
) -> list[AppliedRouter]:
    """What the record holds after a run: the declared routers, then removed ones not cleaned (by host name).

    After a run where a host failed, a declared router keeps its recorded prefixes too: one its
    site dropped may not have been unapproved yet (the routes step may not have run).
    """
    declared = record.declared(model)
    if failed:
        declared = record.keeping_retired(declared, recorded)
    return declared + [r for r in record.removed(model, recorded) if r.host not in cleaned]


class RecordApplied(BaseStateCallback):
    """Writes the applied record once every operation has run (at the first disconnect of a run that
    executed: pyinfra's run_ops marks the state executing in every mode; --dry never does)."""

    def __init__(
        self,
        model: SiteModel,
        recorded: list[AppliedRouter],
        path: Path,
        recorded_static: list[AppliedStaticHost] | None = None,
        recorded_aws: list[AppliedAwsSite] | None = None,
    ) -> None:
        self.model, self.recorded, self.path = model, recorded, path
        self.recorded_static = recorded_static or []
        self.recorded_aws = recorded_aws or []
        self.done = False

    def host_disconnect(self, state: State, host: Host) -> None:
        if self.done or not state.is_executing:
            return
        self.done = True
        # a removed router counts as cleaned when its removal ran on it without failing, and no
        # other host failed (the control-plane part runs on another host): else it stays recorded
        gone = state.inventory.get_group("removed_routers", default=[])
        others_failed = any(h not in gone for h in state.failed_hosts)
        cleaned = (
            set()
            if others_failed
            else {h.name for h in gone if h not in state.failed_hosts and h in state.activated_hosts}
        )
        routers = still_recorded(self.model, self.recorded, cleaned, failed=bool(state.failed_hosts))
        for host in gone:
            if host.name not in cleaned:
                logger.warning(
                    f"--> Removed router {host.name} not cleaned up (unreachable, or a host failed): it "
                    f"stays in {self.path.name}; the control-plane and Kea parts ran. When it answers, "
                    f"run `{prune_command(self.model)}` again"
                )
        gone_static = state.inventory.get_group("removed_static_hosts", default=[])
        cleaned_static = {h.name for h in gone_static if h not in state.failed_hosts and h in state.activated_hosts}
        statics = record.declared_static(self.model) + [
            h for h in record.removed_static(self.model, self.recorded_static) if h.host not in cleaned_static
        ]
        aws = still_recorded_aws(self.model, self.recorded_aws, cleaned_tables())
        try:
            if record.write(self.path, routers, statics, aws):
                logger.info(f"--> Applied record written: {self.path}")
        except OSError as exc:
            logger.error(
                f"--> Applied record NOT written ({self.path}: {exc.strerror}); "
                "a later removal may not find routers added in this run"
            )


def still_recorded_aws(model: SiteModel, recorded: list[AppliedAwsSite],
                       cleaned: set[tuple[str, str]]) -> list[AppliedAwsSite]:
    """The declared AWS sites, each with the tables it no longer lists whose removal did not run
    yet (not pruning, or it failed), and removed sites with such tables: nothing forgotten."""
    out = {a.site: a for a in record.declared_aws(model)}
    for gone in record.removed_aws(model, recorded):
        left = tuple(t for t in gone.route_tables if (gone.site, t) not in cleaned)
        if not left:
            continue
        kept = out.get(gone.site)
        out[gone.site] = replace(kept, route_tables=kept.route_tables + left) if kept else replace(
            gone, route_tables=left)
    return list(out.values())


_registered: set[int] = set()


def keep_record(
    state: State,
    model: SiteModel,
    recorded: list[AppliedRouter],
    recorded_static: list[AppliedStaticHost] | None = None,
    recorded_aws: list[AppliedAwsSite] | None = None,
) -> None:
    """Register the record writer once per run (deploy.py runs once per host)."""
    if id(state) not in _registered:
        _registered.add(id(state))
        state.add_callback_handler(RecordApplied(model, recorded, record.record_path(model), recorded_static,
                                                 recorded_aws))
