"""The DHCP step of the deploy: option 121/249 into a Kea server reached over pyinfra's own SSH connection.

Kea's Control Agent listens on the Kea host's loopback (Debian's default), so
the operation forwards a local port through the SSH transport pyinfra already
holds for that host. The push offers a plan (config-get only: dhcp.push.ServerPlan)
and an apply that reads again and changes, the same code as `python -m dhcp push`,
so both paths keep its guarantees (config-test, no concurrent edit, config-write,
read-back); steps.planned turns each server's pair into the operation, as for the
control plane.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import ExitStack
from functools import partial
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import operation
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.facts.files import File
from pyinfra.operations import files

from dhcp.kea.connect import tunnelled_factory
from dhcp.kea.transport import KeaError
from dhcp.plan import SitePlan
from dhcp.push import PushFailed, ServerPlan, ServerPush, group_by_server
from pyinfra_internals import ssh_transport
from sites.model import KeaEndpoint, SecretError, SiteModel, SshTarget
from steps import readahead
from steps.inputs import is_coordinator, kea_here
from steps.planned import plan_then_apply

DEBIAN_CONFIG = "/etc/kea/kea-dhcp4.conf"
DEBIAN_KEA_GROUP = "_kea"
WRITABLE_MODE = "664"  # root keeps ownership; Kea's group may rewrite it in place (config-write)
FAILURES = (PushFailed, KeaError, SecretError)
LABEL = "kea"
READ_FILE, READ_PLANS = "kea file", "kea plans"


def _servers(on_host: Host, plans: list[SitePlan], inventory: Inventory) -> list[tuple[KeaEndpoint, list[SitePlan]]]:
    """The Kea servers this host pushes, each with its sites' plans: the servers reached
    through this host's SSH, and on the coordinating host those reached directly by URL
    (an HA partner is pushed from its own host)."""
    coordinator = is_coordinator(inventory, on_host)
    return [
        (endpoint, grouped)
        for endpoint, grouped in group_by_server({p.site.name: p for p in plans})
        if kea_here(endpoint, on_host, coordinator)
    ]


def _connect(
    on_host: Host, model: SiteModel, endpoint: KeaEndpoint, plans: list[SitePlan], stack: ExitStack
) -> ServerPush:
    """The push of one server, through this host's own SSH connection when the server's
    `kea.ssh` is this host, directly for a server reachable by URL."""
    codes = model.dhcp.route_codes
    transports = {endpoint.ssh: ssh_transport(on_host)} if endpoint.ssh else None
    push = ServerPush(endpoint, plans, codes, dhcp=model.dhcp)
    push.transport = tunnelled_factory(model.ssh, stack, transports)(endpoint)
    return push


def _prepare(push: ServerPush, model: SiteModel, stack: ExitStack) -> None:
    """config-get on this server and on its sites' HA partners (read only, through their own
    SSH or URL): a partner's user routes are kept here too, so both end with the same option
    data, and a partner that differs now is reported."""
    push.read()
    partner_routes: dict[str, list] = {}
    factory = tunnelled_factory(model.ssh, stack)
    for plan in push.plans:
        for endpoint in plan.site.kea:
            if endpoint == push.endpoint:
                continue
            partner = ServerPush(endpoint, [plan], push.codes, dhcp=push.dhcp)
            partner.transport = factory(endpoint)
            partner.read()
            partner_routes.setdefault(plan.site.name, []).extend(partner.served_routes(plan))
            if partner.route_data(plan) != push.route_data(plan):
                push.say(
                    f"site {plan.site.name}: {push.where} differs from its HA partner "
                    f"{partner.where} (option 121/249 data); the push brings both to the same"
                )
    push.prepare(partner_routes)


def _plan(on_host: Host, model: SiteModel, endpoint: KeaEndpoint, plans: list[SitePlan]) -> ServerPlan:
    """config-get only (HA partners too): what the push would change on this server."""
    with ExitStack() as stack:
        push = _connect(on_host, model, endpoint, plans, stack)
        _prepare(push, model, stack)
        return push.plan()


def _not_ready(model: SiteModel, plan: SitePlan, run: State) -> str | None:
    """Why this site's routes must not be handed out now, if so: every router of the site (an HA
    site needs one) or the host carrying the route approvals failed earlier in this run.

    The routes point the site's clients at its router for the other sites and the tailnet: through
    a router that is not on the tailnet (or whose routes are not approved), that traffic is
    dropped there instead of taking the LAN's default route; the site's Kea is left as it was and
    the next clean run pushes.
    """
    failed = {h.name for h in run.failed_hosts}
    routers = [SshTarget.parse(r.ssh).name for r in plan.site.routers]
    if routers and all(name in failed for name in routers):
        return f"router {', '.join(routers)} failed earlier in this run (not known to be on the tailnet)"
    approver = next((h.name for h in run.inventory if is_coordinator(run.inventory, h)), None)
    if approver in failed and model.tailnet is not None:
        return f"the control-plane steps on {approver} failed earlier in this run (routes not approved)"
    return None


def _apply(on_host: Host, model: SiteModel, endpoint: KeaEndpoint, plans: list[SitePlan]) -> list[str]:
    """Execution time: the full push against the live config (read again, config-test, set,
    write, verify); what it said. A site whose routers failed this run is held back (_not_ready)."""
    ready = []
    for plan in plans:
        why = _not_ready(model, plan, on_host.state)
        if why is None:
            ready.append(plan)
            continue
        on_host.log_styled(
            f"{LABEL}: site {plan.site.name}: routes not pushed to {endpoint.url}: "
            f"{why}; Kea left as it was, the next clean run pushes them",
            fg="yellow",
            log_func=logger.warning,
        )
    if not ready:
        return ["nothing pushed"]
    plans = ready
    with ExitStack() as stack:
        push = _connect(on_host, model, endpoint, plans, stack)
        _prepare(push, model, stack)
        push.apply()
        return push.said


def read_ahead(model: SiteModel, plans: list[SitePlan], host_plans: list[SitePlan], path: str = DEBIAN_CONFIG) -> None:
    """While pyinfra loads deploy.py: the Kea config file's state and each server's plan
    (config-get), for config_writable and routes_pushed to decide from on a run that changes
    nothing before them (steps.readahead). A failure is left for the steps to report."""
    if host_plans:
        readahead.remember(READ_FILE, host.name, (path, host.get_fact(File, path=path)))
    planned = {}
    for endpoint, grouped in _servers(host, plans, state.inventory) if plans else ():
        try:
            planned[endpoint] = (grouped, _plan(host, model, endpoint, grouped))
        except FAILURES:
            continue
    readahead.remember(READ_PLANS, host.name, planned)


def _recalled_plan(endpoint: KeaEndpoint, grouped: list[SitePlan]) -> ServerPlan | None:
    """This server's plan read at load, if still valid and for the same sites' plans."""
    known = (readahead.recall(READ_PLANS, host.name) or {}).get(endpoint)
    return known[1] if known and known[0] == grouped else None


@operation()
def config_writable(
    plans: list[SitePlan], path: str = DEBIAN_CONFIG, group: str = DEBIAN_KEA_GROUP
) -> Generator[Any, None, None]:
    """Kea may persist its config (config-write): Debian's packaged file is root's and kea-dhcp4 runs as _kea.

    Checked on Debian's 2.2 (bookworm), 2.6.3 (trixie) and 3.0.4 (sid) layouts
    (tests/kea/test_kea_versions.py): every one ships /etc/kea/kea-dhcp4.conf
    root:root 0644, and config-write rewrites the file in place, so the group
    and mode of the file are all it takes (2.6.3/3.0 also refuse to write
    anywhere but the config file's own directory, which this keeps).

    + plans: this host's sites' plans; nothing to do on a host without any
    + path: kea-dhcp4's config file
    + group: the group kea-dhcp4 runs as
    """
    if not plans:
        host.noop("kea: no Kea server of the sites on this host")
        return
    recalled = readahead.recall(READ_FILE, host.name)
    info = recalled[1] if recalled and recalled[0] == path else host.get_fact(File, path=path)
    if not info:
        host.noop(f"kea: {path} not found; leaving Kea's file layout alone")
        return
    if info.get("group") == group and info.get("mode") == int(WRITABLE_MODE):
        host.noop(f"file {path} already exists")  # as files.file says: no second read of the same fact
        return
    yield from files.file._inner(path=path, group=group, mode=WRITABLE_MODE)


@operation()
def routes_pushed(model: SiteModel, plans: list[SitePlan]) -> Generator[Any, None, None]:
    """Kea on this host hands out the planned option 121/249 for each of its sites.

    + model: the validated site model
    + plans: the plans (push_needed only) of the sites whose Kea is reached through this host,
      or directly by URL from the host that carries the run-once steps
    """
    if not plans:
        host.noop("kea: no Kea server of the sites on this host")
        return
    for endpoint, grouped in _servers(host, plans, state.inventory):
        names = ", ".join(p.site.name for p in grouped)
        recalled = _recalled_plan(endpoint, grouped)
        plan = (
            (lambda known=recalled: known) if recalled is not None else partial(_plan, host, model, endpoint, grouped)
        )
        yield from plan_then_apply(
            LABEL,
            plan,
            partial(_apply, model=model, endpoint=endpoint, plans=grouped),
            failures=FAILURES,
            done=f"options 121/249 already as planned for {names}",
        )
