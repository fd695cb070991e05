"""TCP MSS clamp to path MTU on tailscale0, both directions, live and at boot.

tailscaled never clamps on a subnet router, and pyinfra's iptables.rule
cannot express this rule idempotently, hence an own fact (MssClampRules)
and operation.

Persistence is a oneshot systemd unit running an owned script that adds
exactly these rules when missing (iptables -C || -A). Not
iptables-persistent: it saves and restores whole tables, so it would
snapshot and replay tailscaled's own ts-* chains, and Debian makes it
conflict with ufw. Not an nftables file: Debian's nftables.conf starts with
`flush ruleset` (it would wipe tailscaled's rules on reload) and mixing a
native nft table with iptables-nft's tables is what makes iptables-save
print "table is incompatible".
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra.api import operation

from operations import batch, owned
from operations.facts import MssClampRules

SCRIPT = "/usr/local/sbin/s2s-mss-clamp"
UNIT_NAME = "s2s-mss-clamp.service"
UNIT = f"/etc/systemd/system/{UNIT_NAME}"
RULE = "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"
COMMANDS = {4: "iptables", 6: "ip6tables"}


def rule_args(interface: str, direction: str) -> str:
    """The FORWARD rule after `-t mangle -A|-C FORWARD` (direction: 'in' -> -i, 'out' -> -o)."""
    flag = "-i" if direction == "in" else "-o"
    return f"{flag} {shlex.quote(interface)} {RULE}"


def script_content(interface: str, versions: tuple[int, ...]) -> str:
    """The boot-time script: add each missing rule, leave present ones alone."""
    lines = [
        "#!/bin/sh",
        f"# Managed by s2s (operations/mss.py): clamp TCP MSS to path MTU on {interface} in both directions.",
        "set -e",
    ]
    for v in versions:
        cmd = COMMANDS[v]
        for direction in ("out", "in"):
            args = rule_args(interface, direction)
            lines.append(f"{cmd} -t mangle -C FORWARD {args} 2>/dev/null || {cmd} -t mangle -A FORWARD {args}")
    return "\n".join(lines) + "\n"


def unit_content() -> str:
    return f"""# Managed by s2s (operations/mss.py)
[Unit]
Description=Clamp TCP MSS to path MTU on the Tailscale interface (s2s)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=systemd-modules-load.service local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def clamp_facts(interface: str = "tailscale0", versions: tuple[int, ...] = (4, 6)) -> dict[str, batch.Fact]:
    """What `clamp` decides from (read in one batch)."""
    return {
        **{f"rules{v}": (MssClampRules, {"interface": interface, "version": v}) for v in versions},
        "script": (owned.OwnedFile, {"path": SCRIPT}),
        "unit_file": (owned.OwnedFile, {"path": UNIT}),
        "unit": (owned.UnitState, {"unit": UNIT_NAME}),
    }


@operation()
def clamp(
    interface: str = "tailscale0", versions: tuple[int, ...] = (4, 6), persist: bool = True
) -> Generator[Any, None, None]:
    """
    Add the mangle FORWARD TCPMSS --clamp-mss-to-pmtu rules for -o and -i INTERFACE when missing.

    + interface: the Tailscale TUN interface
    + versions: IP versions (4: iptables, 6: ip6tables)
    + persist: install and enable the boot-time unit (s2s-mss-clamp.service)
    """
    versions = tuple(versions)
    facts = batch.read(**clamp_facts(interface, versions))
    states = [facts[f"rules{v}"] for v in versions]
    script_now, unit_file_now, unit_now = facts["script"], facts["unit_file"], facts["unit"]
    for v, state in zip(versions, states, strict=True):
        have = {"out": bool(state and state.outbound), "in": bool(state and state.inbound)}
        for direction in ("out", "in"):
            if not have[direction]:
                yield f"{COMMANDS[v]} -t mangle -A FORWARD {rule_args(interface, direction)}"
    if not persist:
        return
    file_cmds = list(owned.put(SCRIPT, script_content(interface, versions), mode="755", current=script_now))
    file_cmds += list(owned.put(UNIT, unit_content(), mode="644", current=unit_file_now))
    yield from file_cmds
    if file_cmds:
        yield "systemctl daemon-reload"
    # Starting the unit is harmless after the live rules: its script only adds missing ones.
    yield from owned.unit_running(UNIT_NAME, status=unit_now)
