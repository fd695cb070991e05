"""The control-plane steps of the deploy: the tailnet policy, then route approvals.

Both talk to one control server (not to the host pyinfra runs them on), so the
deploy plans and runs them on one host only (steps.inputs.is_coordinator).
Deciding reads only; writing happens at execution time through
ControlPlane.apply, which re-reads and keeps its guarantees (validate first,
never overwrite a concurrent policy edit). The plan/apply wrapping is
steps.planned's. Order (deploy.py): the policy before the routers join
(autoApprovers and tagOwners must be in place for the tagged routers), the
approvals after they joined.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.api.host import Host

from controlplane import ChangeSet, ControlPlaneError, PolicyError, UnknownRouterError, reach
from controlplane.base import ControlPlane, Recorded
from controlplane.lock import lock_key, policy_lock
from pyinfra_internals import commands_run, ssh_transport
from sites.model import SecretError, SiteModel
from steps import readahead
from steps.inputs import is_control_host, retired_prefixes
from steps.planned import plan_then_apply

FAILURES = (ControlPlaneError, PolicyError, SecretError)
LABEL = "control plane"


def _transport(on_host: Host):
    """pyinfra's own SSH connection when this host is the one the control server's API is reached
    through ([tailnet] ssh), so the deploy opens no second connection to it."""
    return ssh_transport(on_host) if is_control_host(on_host) else None


READ_AHEAD = "control plane"


def writing_policy(model: SiteModel, cp: ControlPlane, on_host: Host,
                   policy: bool) -> AbstractContextManager:
    """The policy lock around a policy step's re-read, merge and write, where the server has no
    concurrency check of its own (Headscale: controlplane.lock); nothing for the other steps."""
    if not policy or not cp.lock_policy_writes:
        return nullcontext()
    return policy_lock(lock_key(model), cp.api.shown + cp.api.via,
                       on_wait=lambda line: on_host.log(f"{LABEL}: {line}"))


def read_ahead(model: SiteModel, coordinating: bool) -> None:
    """While pyinfra loads deploy.py (the routers read their facts meanwhile): read the node list
    and the policy once, for both control-plane steps to plan from on a run that changes nothing
    before them (steps.readahead). A failure here is left for the steps to report."""
    if not coordinating or model.tailnet is None:
        return
    try:
        with reach(model, transport=_transport(host)) as cp:
            readahead.remember(READ_AHEAD, host.name, Recorded(cp))
    except FAILURES:
        return


def changed_router_sites(model: SiteModel) -> list[str]:
    """Sites whose router host has run a command earlier in this deploy (a no-op run and --dry: none).

    Their routers may have just re-advertised, so the approval waits until the control server
    sees the new routes (ControlPlane.settled_nodes) instead of needing a second deploy.
    """
    changed = []
    for router_host in state.inventory:
        name = router_host.data.get("site")
        if name in model.sites and commands_run(on=router_host):
            changed.append(name)
    return changed


def _step(model: SiteModel, coordinating: bool, *, routes: bool, policy: bool, done: str):
    """Plan one control-plane step on the coordinating host; yield its apply only if needed."""
    if not coordinating:
        host.noop(f"{LABEL}: planned on another host")
        return
    if model.tailnet is None:
        host.noop(f"{LABEL}: no [tailnet] table")
        return

    settle = changed_router_sites(model) if routes else []
    retired = retired_prefixes(model) if routes else {}

    def plan() -> ChangeSet:
        recorded = readahead.recall(READ_AHEAD, host.name)
        if recorded is not None and not settle:
            return recorded.plan(model, routes=routes, policy=policy, retired=retired)
        with reach(model, transport=_transport(host)) as cp:
            return cp.plan(model, routes=routes, policy=policy, settle=settle, retired=retired)

    def apply(on_host: Host) -> list[str]:
        with (reach(model, transport=_transport(on_host)) as cp,
              writing_policy(model, cp, on_host, policy)):
            changes = cp.plan(model, routes=routes, policy=policy, settle=settle, retired=retired)
            return cp.apply(changes) if not changes.empty else []

    # first deploy: the routers join in an earlier step of this same run, so an unknown router
    # is decided at execution time by the approval step (the policy step names no router)
    yield from plan_then_apply(LABEL, plan, apply, failures=FAILURES, done=done,
                               defer=(UnknownRouterError,) if routes else ())


@operation()
def policy_allows_sites(model: SiteModel, coordinating: bool = True) -> Generator[Any, None, None]:
    """The tailnet policy lets every site reach every other (ACLs, autoApprovers, router tag).

    + model: the validated site model
    + coordinating: False on every host but the one that carries the control-plane steps (the deploy
      calls the step on all hosts so pyinfra keeps the steps in this order on all of them)
    """
    yield from _step(model, coordinating, routes=False, policy=True, done="policy already allows the sites")


@operation()
def routes_approved(model: SiteModel, coordinating: bool = True) -> Generator[Any, None, None]:
    """Each site router's advertised site prefixes are approved (others' approvals kept).

    + model: the validated site model
    + coordinating: False on every host but the one that carries the control-plane steps
    """
    yield from _step(model, coordinating, routes=True, policy=False, done="routes already approved")
