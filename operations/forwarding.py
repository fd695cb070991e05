"""IPv4/IPv6 forwarding, persisted in a sysctl.d file this project owns.

server.sysctl(persist=True) appends to a shared file and leaves a
conflicting line in place; owning a whole file and reporting conflicts in
the others is the only way a re-run can tell "already right".

Forwarding on makes Linux ignore router advertisements on interfaces at accept_ra=1. A
dual-stack site's router whose LAN address came from the LAN's advertisements (SLAAC) would
keep it only until its lifetime ran out or the next boot, and with it the on-link route that
delivers the other sites' IPv6 traffic to the LAN; the same file sets that interface's
accept_ra to 2 (take advertisements even when forwarding), keeping what the router had before.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import operation

from operations import batch, owned
from operations.facts import FORWARDING_KEYS, ForwardingState, SysctlFileSettings, SysctlLine
from operations.facts.addresses import InterfaceOfAddress
from operations.facts.sysctl import AcceptRa, accept_ra_key
from operations.util import warn

SYSCTL_FILE = "/etc/sysctl.d/99-s2s-forwarding.conf"


def sysctl_file_content(ipv6: bool = True, keep_ra_on: str | None = None) -> str:
    """The owned file; `keep_ra_on`: the LAN interface whose SLAAC must survive forwarding."""
    lines = ["# Managed by s2s (operations/forwarding.py): a Tailscale subnet router forwards.",
             "net.ipv4.ip_forward = 1"]
    if ipv6:
        lines.append("net.ipv6.conf.all.forwarding = 1")
        if keep_ra_on:
            lines += [f"# {keep_ra_on} takes its IPv6 address from the LAN's advertisements: keep taking them",
                      f"{accept_ra_key(keep_ra_on)} = 2"]
    return "\n".join(lines) + "\n"


def slaac_interface(interface: str | None, accept_ra: dict[str, str]) -> str | None:
    """The LAN interface when the kernel takes its advertisements (accept_ra 1, or 2 already),
    else None: 0 is an interface configured otherwise (static, networkd, NetworkManager)."""
    return interface if interface and accept_ra.get(interface) in ("1", "2") else None


def _effective_name(path: str) -> str:
    # Debian's procps links /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf
    return "99-sysctl.conf" if path == "/etc/sysctl.conf" else path.rsplit("/", 1)[-1]


def conflicts(settings: list[SysctlLine], ours: str, keys: tuple[str, ...]) -> list[str]:
    """One message per line elsewhere that sets a forwarding key to something other than 1."""
    out = []
    own_name = _effective_name(ours)
    for s in settings:
        if s.path == ours or s.key not in keys or s.value.strip() == "1":
            continue
        wins = _effective_name(s.path) > own_name
        out.append(
            f"{s.path} sets {s.key} = {s.value}"
            + (f" and is applied after {ours}, so it wins at boot" if wins else f" (overridden by {ours})")
        )
    return out


def enable_facts(ipv6: bool = True, path: str = SYSCTL_FILE, lan_address: str | None = None) -> dict[str, batch.Fact]:
    """What `enable` decides from (read in one batch)."""
    keys = FORWARDING_KEYS if ipv6 else FORWARDING_KEYS[:1]
    facts: dict[str, batch.Fact] = {"settings": (SysctlFileSettings, {"keys": list(keys)}),
                                    "file": (owned.OwnedFile, {"path": path}), "live": (ForwardingState, {})}
    if ipv6 and lan_address:
        facts["lan"] = (InterfaceOfAddress, {"address": lan_address})
        facts["accept_ra"] = (AcceptRa, {})
    return facts


@operation()
def enable(ipv6: bool = True, path: str = SYSCTL_FILE, lan_address: str | None = None) -> Generator[Any, None, None]:
    """
    Turn on IPv4 (and IPv6) forwarding now and at boot; warn about conflicting sysctl lines elsewhere.

    + ipv6: also net.ipv6.conf.all.forwarding
    + path: the owned sysctl.d file
    + lan_address: a dual-stack site's router's LAN address: its interface keeps taking the LAN's
      advertisements (accept_ra 2) where it takes them now (SLAAC)
    """
    keys = FORWARDING_KEYS if ipv6 else FORWARDING_KEYS[:1]
    facts = batch.read(**enable_facts(ipv6, path, lan_address))
    settings, current, live = facts["settings"], facts["file"], facts["live"]
    for message in conflicts(settings, path, keys):
        warn(message)

    accept_ra = facts.get("accept_ra") or {}
    keep_ra_on = slaac_interface(facts.get("lan"), accept_ra)
    file_cmds = list(owned.put(path, sysctl_file_content(ipv6, keep_ra_on), mode="644", current=current))
    # A key the kernel lacks (IPv6 disabled) is not "off": sysctl -e skips it.
    live_off = [k for k in keys if k in live and live[k] != "1"]
    if keep_ra_on and accept_ra.get(keep_ra_on) != "2":
        live_off.append(accept_ra_key(keep_ra_on))
    yield from file_cmds
    if file_cmds or live_off:
        yield f"sysctl -e -p {path}"
    elif not file_cmds:
        host.noop("forwarding is on and persisted")
