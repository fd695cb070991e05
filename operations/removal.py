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
from collections.abc import Iterable

from pyinfra import host, logger, state
from pyinfra.api import OperationError, operation
from pyinfra.api.util import format_text

from operations import batch, gro, ha, mss, owned, radvd
from operations.facts import MssClampRules, TailscaleStatus
from operations.facts.ha import ManagedByUs, PolicyRules
from operations.facts.systemd import ProjectUnitState
from operations.forwarding import SYSCTL_FILE
from operations.util import warn

OWNED_FILES = (SYSCTL_FILE, mss.SCRIPT, mss.UNIT, gro.UNIT, ha.CHECK, ha.RULES_SCRIPT, ha.RULES_UNIT, ha.RP_FILE)
UNIT_PREFIX = "s2s-"


def removal_facts(interface: str = "tailscale0") -> list[batch.Fact]:
    """What `removed` decides from (read in one command)."""
    return [(TailscaleStatus, {}), (ProjectUnitState, {"prefix": UNIT_PREFIX}),
            *[(owned.OwnedFile, {"path": path}) for path in OWNED_FILES],
            *[(MssClampRules, {"interface": interface, "version": v}) for v in (4, 6)],
            (ManagedByUs, {"path": ha.CONF}), (PolicyRules, {}),
            (ManagedByUs, {"path": radvd.CONF}),
            (PolicyRules, {"family": 6})]


@operation()
def removed(interface: str = "tailscale0", logout: bool = True, declared_addresses: Iterable[str] | None = ()):
    """
    Take this host out of the site-to-site setup: log out of the tailnet, remove the project's files and units.

    + interface: the Tailscale interface the MSS clamp rules name
    + logout: run `tailscale logout` when the node is logged in
    + declared_addresses: tailnet addresses of the routers the site file still declares; a host
      that is one of them (a router whose ssh target was renamed) is left untouched; None: they
      could not be read, so nothing is touched
    """
    if declared_addresses is None:
        raise OperationError("cannot read the declared routers' tailnet addresses from the control plane, "
                             "so cannot tell this host is not one of them (renamed): not touched")
    status, units, *rest = batch.read(*removal_facts(interface))
    same = sorted(set(status.tailscale_ips if status else ()) & set(declared_addresses))
    if same:  # a stale record entry, not a removed router: nothing to undo (the record drops it)
        warn(f"this host is the tailnet node {', '.join(same)} of a router the site file still declares "
             "(its ssh target renamed?): left untouched")
        host.noop("a declared router under an old name: nothing removed")
        return
    files = dict(zip(OWNED_FILES, rest[: len(OWNED_FILES)]))
    clamps = dict(zip((4, 6), rest[len(OWNED_FILES):len(OWNED_FILES) + 2]))
    keepalived_ours, rules, radvd_ours, rules6 = rest[len(OWNED_FILES) + 2:]
    commands: list[str] = []
    if logout and status is not None and status.logged_in:
        commands.append("tailscale logout")
    if keepalived_ours:  # the VRRP address leaves this host before anything else goes
        commands += [f"systemctl stop {ha.KEEPALIVED_UNIT}", f"systemctl disable {ha.KEEPALIVED_UNIT}"]
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
    for prefix in ha.own_lan_prefixes(rules):  # live until reboot otherwise; the unit that re-adds them goes below
        commands.append(f"ip -4 rule del priority {ha.RULE_PRIORITY} {ha.rule_spec(shlex.quote(prefix))}")
    for prefix in (p for p in ha.own_lan_prefixes(rules6) if ":" in p):  # a dual-stack site's
        spec = ha.rule_spec(shlex.quote(prefix))
        commands.append(f"ip -6 rule del priority {ha.RULE_PRIORITY} {spec}")
    gone = [path for path, state in files.items() if state is not None] \
        + ([ha.CONF] if keepalived_ours else []) + ([radvd.CONF] if radvd_ours else [])
    if gone:
        commands.append("rm -f " + " ".join(shlex.quote(p) for p in gone))
    if units.enabled or any(p.startswith("/etc/systemd/") for p in gone):
        commands.append("systemctl daemon-reload")
    if not commands:
        host.noop("nothing of the site-to-site setup is left on this host")
        return
    _show(commands)
    yield from commands


_shown: set[tuple[int, str]] = set()


def _show(commands: list[str]) -> None:
    """Print the removal's commands once per host and run, so `--dry` previews exactly what goes."""
    key = (id(state._get_module()), str(host.name))
    if key in _shown:
        return
    _shown.add(key)
    host.log(f"Will {format_text('remove the site-to-site setup', bold=True)}:", logger.info)
    for command in commands:
        logger.info("  %s", format_text(command, "red"))
