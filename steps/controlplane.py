"""The control-plane steps of the deploy: the tailnet policy, then route approvals.

Both talk to one control server (not to the host pyinfra runs them on), so the
deploy plans and runs them on one host only (steps.inputs.is_coordinator). Deciding reads only; writing happens at
execution time through controlplane.apply, which re-reads and keeps its
guarantees (validate first, never overwrite a concurrent policy edit).
The policy comes before the routers join (autoApprovers and tagOwners must be
in place for the tagged routers), approvals after they joined.
"""

from __future__ import annotations

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, OperationError, operation
from pyinfra.api.host import Host
from pyinfra.api.state import State

from controlplane import ChangeSet, ControlPlaneError, PolicyError, UnknownRouterError, reach
from sites.model import SecretError, SiteModel
from steps.inputs import host_name, ssh_transport

FAILURES = (ControlPlaneError, PolicyError, SecretError)


def _transport(on_host: Host, model: SiteModel):  # noqa: ANN202 - paramiko.Transport | None
    """pyinfra's own SSH connection when this host is the one the control server's API is reached
    through ([tailnet] ssh), so the deploy opens no second connection to it."""
    tailnet = model.tailnet
    if tailnet is None or not tailnet.ssh or host_name(tailnet.ssh) != on_host.name:
        return None
    return ssh_transport(on_host)


def _plan(model: SiteModel, *, routes: bool, policy: bool) -> ChangeSet:
    with reach(model, transport=_transport(host, model)) as cp:
        return cp.plan(model, routes=routes, policy=policy)


def _apply(state: State, host: Host, model: SiteModel, routes: bool, policy: bool) -> bool:
    """Execution time: plan again against the live server and apply what is still needed.

    Returns False (pyinfra's failed command) with a one-line reason, no traceback.
    """
    try:
        with reach(model, transport=_transport(host, model)) as cp:
            changes = cp.plan(model, routes=routes, policy=policy)
            done = cp.apply(changes) if not changes.empty else []
    except FAILURES as exc:
        host.log_styled(f"control plane: {' '.join(str(exc).split())}", fg="red", log_func=logger.error)
        return False
    for line in done or ["already as planned"]:
        host.log(f"control plane: {line}")
    return True


def _show(changes: ChangeSet) -> None:
    if state.config.DIFF:
        for line in changes.render().splitlines():
            logger.info("  %s", line)


def _step(model: SiteModel, here: bool, *, routes: bool, policy: bool, done: str):
    """Plan one control-plane step on the coordinating host; yield its apply only if needed."""
    if not here:
        host.noop("control plane: planned on another host")
        return
    if model.tailnet is None:
        host.noop("control plane: no [tailnet] table")
        return
    try:
        changes = _plan(model, routes=routes, policy=policy)
    except UnknownRouterError as exc:
        if not routes:
            raise OperationError(f"control plane: {' '.join(str(exc).split())}") from None
        # first deploy: the routers join in an earlier step of this same run
        host.log(f"control plane: {exc}; approving after the join step", logger.info)
        yield FunctionCommand(_apply, (model, routes, policy), {})
        return
    except FAILURES as exc:
        raise OperationError(f"control plane: {' '.join(str(exc).split())}") from None
    if changes.empty:
        host.noop(f"control plane: {done}")
        return
    _show(changes)
    yield FunctionCommand(_apply, (model, routes, policy), {})


@operation()
def policy_allows_sites(model: SiteModel, here: bool = True):
    """The tailnet policy lets every site reach every other (ACLs, autoApprovers, router tag).

    + model: the validated site model
    + here: False on every host but the one that carries the control-plane steps (the deploy
      calls the step on all hosts so pyinfra keeps the steps in this order on all of them)
    """
    yield from _step(model, here, routes=False, policy=True, done="policy already allows the sites")


@operation()
def routes_approved(model: SiteModel, here: bool = True):
    """Each site router's advertised site prefixes are approved (others' approvals kept).

    + model: the validated site model
    + here: False on every host but the one that carries the control-plane steps
    """
    yield from _step(model, here, routes=True, policy=False, done="routes already approved")
