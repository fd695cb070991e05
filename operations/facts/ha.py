"""Facts an HA router's VRRP and LAN-protection steps decide from: the keepalived package,
the interface holding the router's LAN address, the IPv4 policy rules and a few sysctls."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed
from operations.facts.sysctl import parse_sysctl_values


def parse_dpkg_status(text: str) -> str | None:
    """`dpkg-query -W -f '${Status}\\t${Version}'` -> the version when installed, else None."""
    line = text.strip()
    if not line:
        return None
    status, sep, version = line.partition("\t")
    if not sep:
        raise ParseError(f"not a status<TAB>version line: {line!r}")
    return version.strip() if status.split()[-1:] == ["installed"] else None


class DebPackageVersion(FactBase[str | None]):
    """The installed version of one Debian package; None when it is not installed."""

    def command(self, package: str) -> str:
        return f"dpkg-query -W -f '${{Status}}\\t${{Version}}\\n' {shlex.quote(package)} 2>/dev/null || true"

    @parsed
    def process(self, output: list[str]) -> str | None:
        return parse_dpkg_status("\n".join(output))


def parse_interface_of(text: str, address: str) -> str | None:
    """`ip -o -4 addr show` -> the interface holding `address` (None: no interface has it)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^\d+:\s+(\S+?)(?:@\S+)?\s+inet\s+([\d.]+)/\d+", line)
        if not m:
            raise ParseError(f"not an `ip -o -4 addr` line: {line!r}")
        if m.group(2) == address:
            return m.group(1)
    return None


class InterfaceOfAddress(FactBase[str | None]):
    """Which interface holds an IPv4 address (the LAN interface VRRP runs on)."""

    def command(self, address: str) -> str:
        self.address = address
        return "ip -o -4 addr show"

    @parsed
    def process(self, output: list[str]) -> str | None:
        return parse_interface_of("\n".join(output), self.address)


@dataclass(frozen=True)
class PolicyRule:
    """One `ip rule` line: its priority and the selector/action text after the colon."""

    priority: int
    spec: str


def parse_ip_rules(text: str) -> list[PolicyRule]:
    """`ip -4 rule show` -> PolicyRule per line (spacing normalised)."""
    rules = []
    for line in text.splitlines():
        if not line.strip():
            continue
        prio, sep, spec = line.partition(":")
        if not sep or not prio.strip().isdigit():
            raise ParseError(f"not an `ip rule` line: {line!r}")
        rules.append(PolicyRule(int(prio), " ".join(spec.split())))
    return rules


class PolicyRules(FactBase[list]):
    """The IPv4 (or IPv6) policy routing rules (Tailscale's 52xx ones and any others)."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, family: int = 4) -> str:
        return f"ip -{int(family)} rule show"

    @parsed
    def process(self, output: list[str]) -> list[PolicyRule]:
        return parse_ip_rules("\n".join(output))


class SysctlValues(FactBase[dict]):
    """Live values of some sysctl keys (a key the kernel lacks is left out)."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self, keys: tuple[str, ...] | list[str]) -> str:
        return "sysctl -e " + " ".join(shlex.quote(k) for k in keys)

    @parsed
    def process(self, output: list[str]) -> dict[str, str]:
        return parse_sysctl_values("\n".join(output))


MANAGED_MARK = "# Managed by s2s"


class ManagedByUs(FactBase[bool]):
    """Whether a file exists and its first line is this project's marker (a file at a shared path,
    like /etc/keepalived/keepalived.conf, is ours only then)."""

    @staticmethod
    def default() -> bool:
        return False

    def command(self, path: str) -> str:
        return f"head -n 1 {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].startswith(MANAGED_MARK)


@dataclass(frozen=True)
class HaLeftovers:
    """What an HA setup left on a router whose site is no longer HA."""

    files: tuple[str, ...]  # the project's HA files present (check script, own-LAN script and unit, rp_filter file)
    keepalived_ours: bool  # keepalived.conf carries the project's marker
    rules: tuple[PolicyRule, ...]  # live policy rules at the own-LAN priority

    @property
    def any(self) -> bool:
        return bool(self.files or self.keepalived_ours or self.rules)


def parse_ha_leftovers(text: str, priority: int) -> HaLeftovers:
    """`file PATH` / `conf` / `rule <ip rule line>` lines (HaLeftoversFact's command) -> HaLeftovers."""
    files, conf, rules = [], False, []
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind == "file" and rest:
            files.append(rest)
        elif kind == "conf":
            conf = True
        elif kind == "rule":
            rules += [r for r in parse_ip_rules(rest) if r.priority == priority]
        elif line.strip():
            raise ParseError(f"not a leftover line: {line!r}")
    return HaLeftovers(tuple(files), conf, tuple(rules))


class HaLeftoversFact(FactBase[HaLeftovers]):
    """HA files, keepalived config and own-LAN rules on a router, in one cheap read (shell tests,
    one `head`, one `ip rule`): a single-router site's no-op run pays for it on every router."""

    @staticmethod
    def default() -> HaLeftovers:
        return HaLeftovers((), False, ())

    def command(self, paths: tuple[str, ...] | list[str], conf: str, priority: int) -> str:
        self.priority = priority
        tests = "; ".join(f"[ -e {shlex.quote(p)} ] && echo file {shlex.quote(p)}" for p in paths)
        return (f"{tests}; head -n 1 {shlex.quote(conf)} 2>/dev/null | grep -q '^{MANAGED_MARK}' && echo conf; "
                f"ip -4 rule show priority {int(priority)} 2>/dev/null | sed 's/^/rule /'; true")

    @parsed
    def process(self, output: list[str]) -> HaLeftovers:
        return parse_ha_leftovers("\n".join(output), self.priority)
