"""UDP GRO forwarding on the WAN interface (Tailscale's subnet-router throughput advice).

Persisted as a oneshot template unit s2s-udp-gro@IF.service: minimal Debian
has no networkd-dispatcher, ifupdown hooks only cover ifupdown-managed
interfaces, and udev rules (like device-bound units) never fire inside
containers such as the lab's systemd-nspawn routers, where udev does not run.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import operation

from operations import batch, owned
from operations.facts import DefaultRouteInterface, UdpGro, UdpGroForwarding
from operations.util import warn

UNIT_TEMPLATE = "s2s-udp-gro@.service"
UNIT = f"/etc/systemd/system/{UNIT_TEMPLATE}"


def unit_content() -> str:
    return """# Managed by s2s (operations/gro.py)
[Unit]
Description=UDP GRO forwarding on %i for Tailscale (s2s)
After=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ethtool -K %i rx-udp-gro-forwarding on rx-gro-list off

[Install]
WantedBy=multi-user.target
"""


def ethtool_args(state: UdpGro) -> list[str]:
    """Feature changes still needed (rx-gro-list only when it is changeable)."""
    args = []
    if not state.forwarding:
        args += ["rx-udp-gro-forwarding", "on"]
    if state.gro_list and not state.gro_list_fixed:
        args += ["rx-gro-list", "off"]
    return args


def enable_facts(interface: str | None = None) -> dict[str, batch.Fact]:
    """What `enable` decides from, in one batch: with no interface given, the default route's
    interface is resolved on the router within the same command."""
    unit = {"unit": f"s2s-udp-gro@{interface}.service"} if interface else {"unit": UNIT_TEMPLATE,
                                                                           "on_default_route": True}
    return {"route_interface": (DefaultRouteInterface, {}), "gro": (UdpGroForwarding, {"interface": interface}),
            "unit_file": (owned.OwnedFile, {"path": UNIT}), "unit": (owned.UnitState, unit)}


@operation()
def enable(interface: str | None = None, persist: bool = True) -> Generator[Any, None, None]:
    """
    `ethtool -K IF rx-udp-gro-forwarding on rx-gro-list off`, now and at boot.

    + interface: WAN interface (default: the IPv4 default route's)
    + persist: install and enable s2s-udp-gro@IF.service

    Skips with a warning when the NIC (or kernel) lacks rx-udp-gro-forwarding.
    """
    facts = batch.read(**enable_facts(interface))
    route_interface, state = facts["route_interface"], facts["gro"]
    unit_file_now, unit_now = facts["unit_file"], facts["unit"]
    if interface is None:
        interface = route_interface
        if interface is None:
            warn("no IPv4 default route: cannot tell the WAN interface, UDP GRO forwarding skipped")
            return
    unit = f"s2s-udp-gro@{interface}.service"
    if state is None:
        warn(f"cannot read features of {interface} (no ethtool or no such interface): UDP GRO forwarding skipped")
        return
    if not state.supported:
        warn(f"{interface} does not support rx-udp-gro-forwarding: skipped")
        return
    args = ethtool_args(state)
    if args:
        yield f"ethtool -K {shlex.quote(interface)} " + " ".join(args)
    if not persist:
        if not args:
            host.noop(f"UDP GRO forwarding is on for {interface}")
        return
    file_cmds = list(owned.put(UNIT, unit_content(), mode="644", current=unit_file_now))
    yield from file_cmds
    if file_cmds:
        yield "systemctl daemon-reload"
    yield from owned.unit_running(unit, status=unit_now)
