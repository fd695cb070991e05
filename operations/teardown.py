"""Undo on a removed subnet router what the router deploy did there (the removal run, `--data prune=true`).

What is removed, and why exactly that (docs/removal.md):
- the node's tailnet login (`tailscale logout`): the router stops advertising the site's
  routes and the control server expires its key;
- every file and unit the router deploy owns and marks "Managed by s2s" (radvd.conf included, radvd
  stopped first): the forwarding
  sysctl.d file, the MSS clamp script and unit (and its live rules), the UDP GRO unit
  template and its instances (stopped, disabled, daemon-reload); on an HA router also the
  VRRP check script, the own-LAN rules script and unit, the rp_filter sysctl.d file, and
  keepalived's config when it carries the project's marker (keepalived stopped and
  disabled first, its package kept) and the live own-LAN policy rules at priority 5260
  (only rules of the exact form the deploy adds: `to PREFIX lookup main suppress_prefixlength 0`);
kept: the Tailscale installation (package, its apt source and keyring, the drop-in that
keeps tailscaled off Tailscale's log servers): a logged-out tailscaled routes nothing, the
package may serve other uses of the host, and removing its source or that drop-in would
leave an installed daemon without updates or make it upload logs. Live values the deploy
turned on (IP forwarding, UDP GRO on the NIC) stay until reboot: the previous values are
not known, and forcing them off could break something else on the host.
Each item is decided from facts, so a second removal run changes nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator, Iterable
from typing import Any

from pyinfra import host, logger
from pyinfra.api import OperationError, operation
from pyinfra.api.util import format_text

from operations import batch, gro, ha, mss, owned, radvd
from operations.facts import MssClampRules, TailscaleStatus
from operations.facts.ha import ManagedByUs, PolicyRules
from operations.facts.systemd import ProjectUnitState
from operations.forwarding import SYSCTL_FILE
from operations.util import warn
from pyinfra_internals import run_id

OWNED_FILES = (SYSCTL_FILE, mss.SCRIPT, mss.UNIT, gro.UNIT, ha.CHECK, ha.RULES_SCRIPT, ha.RULES_UNIT, ha.RP_FILE)
UNIT_PREFIX = "s2s-"


def removal_facts(interface: str = "tailscale0") -> dict[str, batch.Fact]:
    """What `removed` decides from (read in one command); owned files are keyed by their path."""
    return {
        "status": (TailscaleStatus, {}),
        "units": (ProjectUnitState, {"prefix": UNIT_PREFIX}),
        **{path: (owned.OwnedFile, {"path": path}) for path in OWNED_FILES},
        **{f"clamp{v}": (MssClampRules, {"interface": interface, "version": v}) for v in (4, 6)},
        "keepalived_ours": (ManagedByUs, {"path": ha.CONF}),
        "rules": (PolicyRules, {}),
        "radvd_ours": (ManagedByUs, {"path": radvd.CONF}),
        "rules6": (PolicyRules, {"family": 6}),
    }


def teardown_commands(facts: dict[str, Any], interface: str, logout: bool) -> list[str]:
    """What takes the site-to-site setup off a host, in order, from its facts (`removal_facts`):
    the tailnet left and the VRRP address and IPv6 routes withdrawn first, then units, the MSS
    clamp, the HA rules and the owned files."""
    status, units = facts["status"], facts["units"]
    files = {path: facts[path] for path in OWNED_FILES}
    clamps = {v: facts[f"clamp{v}"] for v in (4, 6)}
    keepalived_ours, rules = facts["keepalived_ours"], facts["rules"]
    radvd_ours, rules6 = facts["radvd_ours"], facts["rules6"]
    commands: list[str] = []
    if logout and status is not None and status.logged_in:
        commands.append("tailscale logout")
    if keepalived_ours:  # the VRRP address leaves this host before anything else goes
        commands += ha.keepalived_stopped()
    if radvd_ours:  # radvd's final advertisement on stop withdraws the LAN's IPv6 routes
        commands.append(f"systemctl stop {radvd.UNIT}")
    for unit in units.active:
        commands.append(f"systemctl stop {shlex.quote(unit)}")
    for unit in units.enabled:
        commands.append(f"systemctl disable {shlex.quote(unit)}")
    for version, clamp in clamps.items():
        for direction, present in (("out", clamp and clamp.outbound), ("in", clamp and clamp.inbound)):
            if present:
                commands.append(f"{mss.COMMANDS[version]} -t mangle -D FORWARD {mss.rule_args(interface, direction)}")
    commands += ha.rules_deleted(rules)  # live until reboot otherwise; the unit that re-adds them goes below
    commands += ha.rules_deleted(rules6, family=6)  # a dual-stack site's
    gone = (
        [path for path, state in files.items() if state is not None]
        + ([ha.CONF] if keepalived_ours else [])
        + ([radvd.CONF] if radvd_ours else [])
    )
    if gone:
        commands.append("rm -f " + " ".join(shlex.quote(p) for p in gone))
    if units.enabled or any(p.startswith("/etc/systemd/") for p in gone):
        commands.append("systemctl daemon-reload")
    return commands


@operation()
def removed(
    interface: str = "tailscale0", logout: bool = True, declared_addresses: Iterable[str] | None = ()
) -> Generator[Any, None, None]:
    """
    Take this host out of the site-to-site setup: log out of the tailnet, remove the project's files and units.

    + interface: the Tailscale interface the MSS clamp rules name
    + logout: run `tailscale logout` when the node is logged in
    + declared_addresses: tailnet addresses of the routers the site file still declares; a host
      that is one of them (a router whose ssh target was renamed) is left untouched; None: they
      could not be read, so nothing is touched
    """
    if declared_addresses is None:
        raise OperationError(
            "cannot read the declared routers' tailnet addresses from the control plane, "
            "so cannot tell this host is not one of them (renamed): not touched"
        )
    facts = batch.read(**removal_facts(interface))
    status = facts["status"]
    same = sorted(set(status.tailscale_ips if status else ()) & set(declared_addresses))
    if same:  # a stale record entry, not a removed router: nothing to undo (the record drops it)
        warn(
            f"this host is the tailnet node {', '.join(same)} of a router the site file still declares "
            "(its ssh target renamed?): left untouched"
        )
        host.noop("a declared router under an old name: nothing removed")
        return
    commands = teardown_commands(facts, interface, logout)
    if not commands:
        host.noop("nothing of the site-to-site setup is left on this host")
        return
    _show(commands)
    yield from commands


_shown: set[tuple[int, str]] = set()


def _show(commands: list[str]) -> None:
    """Print the removal's commands once per host and run, so `--dry` previews exactly what goes."""
    key = (run_id(), str(host.name))
    if key in _shown:
        return
    _shown.add(key)
    host.log(f"Will {format_text('remove the site-to-site setup', bold=True)}:", logger.info)
    for command in commands:
        logger.info("  %s", format_text(command, "red"))
