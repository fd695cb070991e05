"""The DHCP step of the deploy: option 121/249 into a Kea server reached over pyinfra's own SSH connection.

Kea's Control Agent listens on the Kea host's loopback (Debian's default), so
the operation forwards a local port through the SSH transport pyinfra already
holds for that host. Deciding reads the running config (config-get only);
changing happens at execution time through the same push code as
`python -m dhcp push`, so both paths keep its guarantees (config-test, no
concurrent edit, config-write, read-back).
"""

from __future__ import annotations

import io
from contextlib import ExitStack

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, OperationError, operation
from pyinfra.api.host import Host
from pyinfra.api.state import State
from pyinfra.facts.files import File
from pyinfra.operations import files

from dhcp.kea.connect import tunnelled_factory
from dhcp.kea.options import ROUTE_CODES
from dhcp.kea.transport import KeaError
from dhcp.plan import SitePlan
from dhcp.push import PushFailed, ServerPush, group_by_server
from sites.model import KeaEndpoint, SecretError, SiteModel
from steps import readahead
from steps.inputs import is_coordinator, kea_here, ssh_transport

DEBIAN_CONFIG = "/etc/kea/kea-dhcp4.conf"
DEBIAN_KEA_GROUP = "_kea"
WRITABLE_MODE = "664"  # root keeps ownership; Kea's group may rewrite it in place (config-write)
READ_FILE, READ_PROBES = "kea file", "kea probes"


def _server_pushes(on_host: Host, model: SiteModel, plans: list[SitePlan], stack: ExitStack,
                   inventory) -> list[ServerPush]:  # noqa: ANN001 - pyinfra Inventory
    """One push per Kea server named by `plans` (through this host's SSH connection when the
    server's `kea.ssh` is this host, directly for a server reachable by URL)."""
    codes = ROUTE_CODES if model.dhcp.option_249 else (121,)
    coordinator = is_coordinator(inventory, on_host)
    pushes = []
    for endpoint, grouped in group_by_server({p.site.name: p for p in plans}):
        if not kea_here(endpoint, on_host, coordinator):
            continue  # an HA partner pushed from its own host
        transports = {endpoint.ssh: ssh_transport(on_host)} if endpoint.ssh else None
        push = ServerPush(endpoint, grouped, codes, io.StringIO(), dhcp=model.dhcp)
        push.transport = tunnelled_factory(model.ssh, stack, transports)(endpoint)
        pushes.append(push)
    return pushes


def _prepare(push: ServerPush, model: SiteModel, stack: ExitStack) -> None:
    """config-get on this server and on its sites' HA partners (read only, through their own
    SSH or URL): a partner's user routes are kept here too, so both end with the same option
    data, and a partner that differs now is reported."""
    push.read()
    partner_routes: dict[str, list] = {}
    factory = tunnelled_factory(model.ssh, stack)
    for plan in push.plans:
        for endpoint in plan.site.kea_servers:
            if endpoint == push.endpoint:
                continue
            partner = ServerPush(endpoint, [plan], push.codes, io.StringIO(), dhcp=push.dhcp)
            partner.transport = factory(endpoint)
            partner.read()
            partner_routes.setdefault(plan.site.name, []).extend(partner.served_routes(plan))
            if partner.route_data(plan) != push.route_data(plan):
                push.say(f"site {plan.site.name}: {push.where} differs from its HA partner "
                         f"{partner.where} (option 121/249 data); the push brings both to the same")
    push.prepare(partner_routes)


def _apply(state: State, host: Host, model: SiteModel, plans: list[SitePlan], endpoint: KeaEndpoint) -> bool:
    """Execution time: the full push (config-test, set, write, verify) for this Kea server.

    Returns False (pyinfra's failed command) with Kea's own message, no traceback.
    """
    with ExitStack() as stack:
        try:
            push, = (p for p in _server_pushes(host, model, plans, stack, state.inventory)
                     if p.endpoint == endpoint)
            _prepare(push, model, stack)
            push.apply()
        except (PushFailed, KeaError, SecretError) as exc:
            host.log_styled(f"kea: {exc}", fg="red", log_func=logger.error)
            return False
    for line in push.out.getvalue().splitlines():  # type: ignore[attr-defined]
        host.log(line)
    return True


def _probe(model: SiteModel, plans: list[SitePlan]) -> list[ServerPush]:
    """config-get on every Kea server this host pushes (HA partners too); records what would change."""
    with ExitStack() as stack:
        try:
            probes = _server_pushes(host, model, plans, stack, state.inventory)
            for probe in probes:
                _prepare(probe, model, stack)
                probe.show_dry()
        except (PushFailed, KeaError, SecretError) as exc:
            raise OperationError(f"kea: {exc}") from None
    return probes


def read_ahead(model: SiteModel, plans: list[SitePlan], host_plans: list[SitePlan], path: str = DEBIAN_CONFIG) -> None:
    """While pyinfra loads deploy.py: the Kea config file's state and the config-get probes, for
    config_writable and routes_pushed to decide from on a run that changes nothing before them
    (steps.readahead). A failure here is left for the steps to report."""
    if host_plans:
        readahead.remember(READ_FILE, host.name, (path, host.get_fact(File, path=path)))
    if plans:
        try:
            readahead.remember(READ_PROBES, host.name, (id(plans), _probe(model, plans)))
        except OperationError:
            return


@operation()
def config_writable(plans: list[SitePlan], path: str = DEBIAN_CONFIG, group: str = DEBIAN_KEA_GROUP):
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
def routes_pushed(model: SiteModel, plans: list[SitePlan]):
    """Kea on this host hands out the planned option 121/249 for each of its sites.

    + model: the validated site model
    + plans: the plans (push_needed only) of the sites whose Kea is reached through this host,
      or directly by URL from the host that carries the run-once steps
    """
    if not plans:
        host.noop("kea: no Kea server of the sites on this host")
        return
    recalled = readahead.recall(READ_PROBES, host.name)
    probes = recalled[1] if recalled and recalled[0] == id(plans) else _probe(model, plans)
    for probe in probes:
        if not probe.changes:
            host.noop(f"kea: options 121/249 already as planned for {', '.join(p.site.name for p in probe.plans)}")
            continue
        if state.config.DIFF:
            for change in probe.changes:
                host.log(f"Will change {change.label}")
            for line in probe.out.getvalue().splitlines():  # type: ignore[attr-defined]
                logger.info("  %s", line)
        yield FunctionCommand(_apply, (model, probe.plans, probe.endpoint), {})
