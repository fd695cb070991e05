"""HA subnet routers: the LAN's next hop as a VRRP address (keepalived), kept on the tailnet's primary.

Why the VRRP master follows the tailnet's primary router, not the other way round:
peers accept a site's prefixes only from the node the control plane made primary
(only its routes are in their AllowedIPs), so LAN traffic sent through the other
router is dropped at the far end. Headscale (>= 0.29) and Tailscale pick the
primary themselves (probes, oldest router first) and a recovered router does not
reclaim it; keepalived here tracks "no peer is primary for the subnet" (the peers'
PrimaryRoutes in `tailscale status --json`) with a positive weight, so
the VRRP address moves to whichever router the tailnet uses, and it leaves a
router whose tailscaled is not Running (a FAULT, not only a dead box).

Two more things every HA router needs:
- its own LAN stays in table main: with --accept-routes, the site's other routers'
  advertisement of this LAN puts it in Tailscale's table 52, whose rule (5270) comes before
  main's; an owned rule at 5260 looks the site's prefixes up in main first
  (suppress_prefixlength 0: a default route alone does not count) - live now and
  at boot (a oneshot unit, as operations/mss.py does for its rules);
- loose reverse-path filtering (rp_filter=2): during a switch the two routers'
  paths differ for a moment and strict mode would drop the return packets.

A site that goes back to one router (`no_longer_ha`): the HA setup this project made on
the router that stays is taken down (keepalived only when its config carries our marker).
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError, operation

from operations import batch, owned, packages
from operations.facts.addresses import InterfaceOfAddress
from operations.facts.dpkg import DpkgInterrupted
from operations.facts.ha import DebPackageVersion, HaLeftoversFact, PolicyRule, PolicyRules
from operations.facts.sysctl import SysctlValues
from operations.util import warn
from sites.model import Router, Site

PACKAGE = "keepalived"
KEEPALIVED_UNIT = "keepalived.service"
CONF = "/etc/keepalived/keepalived.conf"
CHECK = "/usr/local/sbin/s2s-vrrp-check"
RULES_SCRIPT = "/usr/local/sbin/s2s-own-lan-rules"
RULES_UNIT_NAME = "s2s-own-lan-rules.service"
RULES_UNIT = f"/etc/systemd/system/{RULES_UNIT_NAME}"
RULE_PRIORITY = 5260  # before Tailscale's `lookup 52` (5270), after its fwmark rules (5210-5250)
RP_FILE = "/etc/sysctl.d/99-s2s-ha.conf"
RP_KEYS = ("net.ipv4.conf.all.rp_filter",)
BASE_PRIORITY = 100  # VRRP priority of the first router; each next one 10 less (a stable tie-break)
PRIMARY_WEIGHT = 50  # added while this router is the tailnet's primary: more than any base gap


def rule_spec(prefix: str) -> str:
    """The own-LAN rule's selector and lookup, as `ip rule show` prints them after the priority."""
    return f"from all to {prefix} lookup main suppress_prefixlength 0"


def is_own_lan_rule(rule: PolicyRule) -> bool:
    """A rule of exactly the form the deploy adds (`rule_spec` at RULE_PRIORITY); any other is not ours."""
    return (
        rule.priority == RULE_PRIORITY
        and rule.src == "all"
        and rule.dst is not None
        and rule.table == "main"
        and rule.suppress_prefixlength == 0
        and rule.fwmark is None
        and rule.action is None
    )


def own_lan_prefixes(rules: list[PolicyRule] | tuple[PolicyRule, ...]) -> list[str]:
    """The prefixes of the deploy's own-LAN rules among the live ones."""
    return [r.dst for r in rules if is_own_lan_rule(r) and r.dst is not None]


def rules_deleted(
    rules: list[PolicyRule] | tuple[PolicyRule, ...], keep: tuple[str, ...] = (), family: int = 4
) -> list[str]:
    """Commands deleting the live own-LAN rules of one family (but those for `keep`): the HA
    teardown and the removal."""
    return [
        f"ip -{family} rule del priority {RULE_PRIORITY} {rule_spec(shlex.quote(prefix))}"
        for prefix in own_lan_prefixes(rules)
        if prefix not in keep and _family(prefix) == family
    ]


def keepalived_stopped() -> list[str]:
    """The VRRP address leaves this host first (the HA teardown and the removal)."""
    return [f"systemctl stop {KEEPALIVED_UNIT}", f"systemctl disable {KEEPALIVED_UNIT}"]


def check_script() -> str:
    """keepalived's checks. `primary` reads the *peers'* PrimaryRoutes: Headscale 0.29 keeps them
    current, while a node's own Self.PrimaryRoutes was seen missing on the lab's primary after the
    other router's tailscaled restarted. No peer primary for the prefix = this router is (or nobody is yet)."""
    return r"""#!/bin/sh
# Managed by s2s (operations/ha.py): keepalived's view of tailscaled on this router.
#   s2s-vrrp-check running         tailscaled is up and logged in (BackendState Running)
#   s2s-vrrp-check primary PREFIX  ... and no peer is the tailnet's primary router for PREFIX
status=$(tailscale status --json 2>/dev/null | tr -d ' \t\n')
case "$status" in *'"BackendState":"Running"'*) ;; *) exit 1 ;; esac
[ "${1:-running}" = running ] && exit 0
case "$status" in *'"Peer":'*) peers=${status#*'"Peer":'} ;; *) peers= ;; esac
printf '%s' "$peers" | grep -o '"PrimaryRoutes":\[[^]]*\]' | grep -qF "\"$2\"" && exit 1
exit 0
"""


def keepalived_conf(site: Site, router: Router, interface: str) -> str:
    """One VRRP instance on the LAN interface holding the site's vip, tracking tailscaled."""
    assert site.vip is not None
    index = site.routers.index(router)
    name = f"s2s_{site.name}".replace("-", "_")
    return f"""# Managed by s2s (operations/ha.py): the LAN next hop {site.vip} of site {site.name}.
# Edit the site file, not this file: the deploy rewrites it.
global_defs {{
    router_id s2s-{site.name}-{index}
    enable_script_security
    script_user root
}}

# tailscaled not Running: FAULT (the address leaves this router)
vrrp_script {name}_running {{
    script "{CHECK} running"
    interval 2
    timeout 2
    fall 2
    rise 1
}}

# the tailnet's primary for the site's subnet gets the address (peers accept the prefix only from it);
# fall 3: a primary seen for a moment on another router (a reconnect) is not a reason to move
vrrp_script {name}_primary {{
    script "{CHECK} primary {site.subnet}"
    interval 1
    timeout 1
    fall 3
    rise 1
    weight {PRIMARY_WEIGHT}
}}

{_vrrp_instance(name, name, site, index, interface, f"{site.vip}/{site.subnet.prefixlen} dev {interface}",
                _ra_notify(site))}
{_ipv6_instance(site, router, interface, name)}"""


def _vrrp_instance(name: str, checks: str, site: Site, index: int, interface: str, address: str,
                   tail: str = "") -> str:
    """One VRRP instance: every router starts BACKUP, the base priority falls with the router's
    place in the site file, and the two checks `checks`_running and `checks`_primary (tailscaled
    running, the tailnet's primary) move it."""
    return f"""vrrp_instance {name} {{
    state BACKUP
    interface {interface}
    virtual_router_id {site.vrid}
    priority {BASE_PRIORITY - 10 * index}
    advert_int 1
    virtual_ipaddress {{
        {address}
    }}
    track_script {{
        {checks}_running
        {checks}_primary
    }}
{tail}}}"""


def _ipv6_instance(site: Site, router: Router, interface: str, name: str) -> str:
    """A dual-stack HA site's IPv6 next hop: a second instance (VRRP carries one family per
    instance; keepalived runs IPv6 ones as VRRPv3) whose only address is the link-local `vip6`,
    as VRRPv3 wants its first address to be. The same vrid (the two families' adverts never meet),
    the same base priority and the same two checks as the IPv4 instance, so the same router wins
    both: the tailnet's primary. noprefixroute: the LAN's fe80::/64 route stays the kernel's."""
    if site.vip6 is None:
        return ""
    index = site.routers.index(router)
    address = f"{site.vip6}/64 dev {interface} noprefixroute"
    return f"""
# the static hosts' IPv6 next hop {site.vip6} (docs/static-hosts.md), on the same router as {site.vip}
{_vrrp_instance(f"{name}_6", name, site, index, interface, address)}
"""


def _ra_notify(site: Site) -> str:
    """On a dual-stack site the VRRP master alone sends the LAN's router advertisements
    (operations.radvd): keepalived starts radvd on becoming master and stops it otherwise."""
    if site.subnet6 is None:
        return ""
    start, stop = '"/bin/systemctl start radvd.service"', '"/bin/systemctl stop radvd.service"'
    return (
        f"    # the VRRP master alone advertises the IPv6 routes (operations/radvd.py)\n"
        f"    notify_master {start}\n    notify_backup {stop}\n    notify_fault {stop}\n"
        f"    notify_stop {stop}\n"
    )


def rules_script(prefixes: list[str]) -> str:
    lines = [
        "#!/bin/sh",
        "# Managed by s2s (operations/ha.py): this site's own prefixes are looked up in table main",
        "# before Tailscale's table 52, where the site's other routers' advertisement of them would land.",
        "set -e",
    ]
    for prefix in prefixes:
        sel, ip = f"priority {RULE_PRIORITY} to {prefix}", f"ip -{_family(prefix)}"
        lines.append(f"{ip} rule show {sel} | grep -q . || {ip} rule add {sel} lookup main suppress_prefixlength 0")
    return "\n".join(lines) + "\n"


def rules_unit() -> str:
    return f"""# Managed by s2s (operations/ha.py)
[Unit]
Description=Keep this site's own LAN out of Tailscale's table 52 (s2s HA router)
DefaultDependencies=no
Before=network-pre.target tailscaled.service shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={RULES_SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def rp_file() -> str:
    return (
        "# Managed by s2s (operations/ha.py): loose reverse-path filtering on an HA subnet router\n"
        "# (while the VRRP master and the tailnet's primary differ, replies arrive on the other path).\n"
        "net.ipv4.conf.all.rp_filter = 2\n"
    )


def _family(prefix: str) -> int:
    return 6 if ":" in prefix else 4


def rule_changes(rules: list[PolicyRule], prefixes: list[str], family: int = 4) -> tuple[list[str], list[str]]:
    """(prefixes whose rule is missing, commands deleting our rules for prefixes no longer wanted),
    among the rules of one family (`ip -j -4` or `ip -j -6 rule show`)."""
    have = set(own_lan_prefixes(rules))
    missing = [p for p in prefixes if _family(p) == family and p not in have]
    return missing, rules_deleted(rules, keep=tuple(prefixes), family=family)


def protect_facts() -> dict[str, batch.Fact]:
    """What `own_lan_first` and `loose_rp_filter` decide from."""
    return {
        "rules": (PolicyRules, {}),
        "rules6": (PolicyRules, {"family": 6}),
        "rules_script": (owned.OwnedFile, {"path": RULES_SCRIPT}),
        "rules_unit_file": (owned.OwnedFile, {"path": RULES_UNIT}),
        "rules_unit": (owned.UnitState, {"unit": RULES_UNIT_NAME}),
        "rp_live": (SysctlValues, {"keys": list(RP_KEYS)}),
        "rp_file": (owned.OwnedFile, {"path": RP_FILE}),
    }


@operation()
def own_lan_first(prefixes: list[str]) -> Generator[Any, None, None]:
    """
    Policy rules (priority 5260) sending this site's own prefixes to table main before table 52.

    + prefixes: the site's advertised prefixes (its LAN and extra routes, both families)
    """
    facts = batch.read(**protect_facts())
    rules, rules6, script_now = facts["rules"], facts["rules6"], facts["rules_script"]
    unit_file_now, unit_now = facts["rules_unit_file"], facts["rules_unit"]
    changes = [(4, *rule_changes(rules, prefixes, 4)), (6, *rule_changes(rules6, prefixes, 6))]
    # files first: pyinfra's --dry stops at an operation's first command, so its diff is what shows
    file_cmds = list(owned.put(RULES_SCRIPT, rules_script(prefixes), mode="755", current=script_now))
    file_cmds += list(owned.put(RULES_UNIT, rules_unit(), mode="644", current=unit_file_now))
    yield from file_cmds
    for _, _, deletions in changes:
        yield from deletions
    for family, missing, _ in changes:
        for prefix in missing:
            yield (
                f"ip -{family} rule add priority {RULE_PRIORITY} to {shlex.quote(prefix)} "
                "lookup main suppress_prefixlength 0"
            )
    if file_cmds:
        yield "systemctl daemon-reload"
    yield from owned.unit_running(RULES_UNIT_NAME, status=unit_now)


@operation()
def loose_rp_filter() -> Generator[Any, None, None]:
    """net.ipv4.conf.all.rp_filter = 2 now and at boot (an owned sysctl.d file)."""
    facts = batch.read(**protect_facts())
    live, current = facts["rp_live"], facts["rp_file"]
    file_cmds = list(owned.put(RP_FILE, rp_file(), mode="644", current=current))
    yield from file_cmds
    if file_cmds or any(live.get(k) != "2" for k in RP_KEYS):
        yield f"sysctl -p {RP_FILE}"


def vrrp_facts(router: Router) -> dict[str, batch.Fact]:
    """What `vrrp` decides from."""
    return {
        "version": (DebPackageVersion, {"package": PACKAGE}),
        "interface": (InterfaceOfAddress, {"address": str(router.address)}),
        "check": (owned.OwnedFile, {"path": CHECK}),
        "conf": (owned.OwnedFile, {"path": CONF}),
        "unit": (owned.UnitState, {"unit": KEEPALIVED_UNIT}),
        "dpkg": (DpkgInterrupted, {}),
    }


@operation()
def vrrp(site: Site, router: Router) -> Generator[Any, None, None]:
    """
    keepalived installed (Debian's package), configured with the site's VRRP instance, running.

    + site: an HA site (site.vip set)
    + router: this host's entry of site.routers
    """
    if site.vip is None:
        raise OperationError(f"site {site.name} has no vip: VRRP is for HA sites only")
    facts = batch.read(**vrrp_facts(router))
    version, interface, check_now = facts["version"], facts["interface"], facts["check"]
    conf_now, unit_now = facts["conf"], facts["unit"]
    if interface is None:
        raise OperationError(
            f"no interface on {host.name} holds the router address {router.address} "
            "(check the site file's routers[].address); nothing changed"
        )
    # the config first (pyinfra's --dry shows an operation's first diff only); the package owns
    # no keepalived.conf (only a .sample), so writing it before the install clobbers nothing
    conf_cmds = list(owned.put(CONF, keepalived_conf(site, router, interface), mode="644", current=conf_now))
    yield from conf_cmds
    yield from owned.put(CHECK, check_script(), mode="755", current=check_now)
    if version is None:
        yield from packages.apt_install_recovering([PACKAGE], facts["dpkg"], host.name)
    if conf_cmds and unit_now.active:
        yield f"systemctl reload {KEEPALIVED_UNIT}"
    yield from owned.unit_running(KEEPALIVED_UNIT, status=unit_now)


LEFTOVER_FILES = (CHECK, RULES_SCRIPT, RULES_UNIT, RP_FILE)


def leftover_facts() -> dict[str, batch.Fact]:
    """What `no_longer_ha` decides from: one cheap read (every single-router site's router pays it)."""
    return {"leftovers": (HaLeftoversFact, {"paths": list(LEFTOVER_FILES), "conf": CONF, "priority": RULE_PRIORITY})}


@operation()
def no_longer_ha(
    prune: bool = False, other_router_removed_now: bool = False, prune_command: str = "--data prune=true"
) -> Generator[Any, None, None]:
    """
    On a router of a site that is not HA (any more): the project's HA setup taken down, in a removal run.

    + prune: this is the removal run (`--data prune=true`); otherwise a leftover is only reported:
      LAN clients still use the VRRP address as their next hop until their lease renews with the
      router's own address (ISC dhclient only at a full bind), so it goes when the user says so
    + other_router_removed_now: the site's other router is removed in this same run: its clients' leases
      still name the VRRP address, so the setup stays until a later removal run
    + prune_command: the command that runs the removal, for the warning

    keepalived stopped and disabled and its config removed when the config carries the project's
    marker (the package stays), the own-LAN rules unit disabled and its live rules deleted, both
    families (only rules of the form the deploy adds), the VRRP check script and the rp_filter file removed (the
    live rp_filter value stays until reboot: the previous one is not known). Nothing to do: no command.
    """
    left = batch.read(**leftover_facts())["leftovers"]
    if not left.any:
        host.noop("no HA setup of ours on this router")
        return
    if not prune or other_router_removed_now:
        warn(
            "this router keeps the HA setup (VRRP address, own-LAN rules) from when its site had several "
            "routers: LAN clients use the VRRP address until their lease renews with this router's own address "
            "(Kea's valid-lifetime at the latest); after that, take it down with "
            f"`{prune_command}`" + (" (again: not in the run that removes the other router)" if prune else "")
        )
        host.noop("HA leftovers kept until a later removal run" if prune else "HA leftovers kept until the removal run")
        return
    if left.keepalived_ours:  # the VRRP address leaves first: the LAN's next hop is this router's own address now
        yield from keepalived_stopped()
    if RULES_UNIT in left.files:
        yield f"systemctl disable --now {RULES_UNIT_NAME}"
    yield from rules_deleted(left.rules)
    yield from rules_deleted(left.rules, family=6)  # a dual-stack site's
    gone = [*left.files, *([CONF] if left.keepalived_ours else [])]
    if gone:
        yield "rm -f " + " ".join(shlex.quote(p) for p in gone)
    if any(p.startswith("/etc/systemd/") for p in gone):
        yield "systemctl daemon-reload"
