"""Facts an HA router's VRRP and LAN-protection steps decide from: the keepalived package,
the interface holding the router's LAN address, the IPv4 policy rules and a few sysctls."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from netaddr import IPNetwork
from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, json_list, parsed


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


@dataclass(frozen=True)
class PolicyRule:
    """One policy routing rule, as `ip -j rule` reports it (absent selectors are None)."""

    priority: int
    src: str = "all"  # "all", or a prefix
    dst: str | None = None  # a prefix, e.g. "192.0.2.0/24"
    table: str | None = None  # "main", "52", ...: the rule's lookup
    suppress_prefixlength: int | None = None
    fwmark: str | None = None  # "0x80000/0xff0000"
    action: str | None = None  # "unreachable", "prohibit", ... (rules without a lookup)


def _prefix(address: str | None, length: int | None) -> str | None:
    if address is None or address == "all":
        return address
    full = 128 if ":" in address else 32
    return str(IPNetwork(f"{address}/{length if length is not None else full}"))


def parse_ip_rules(text: str) -> list[PolicyRule]:
    """`ip -j -4 rule show` (or -6) -> PolicyRule per rule."""
    items = json_list(text, "`ip -j rule`")
    if not all(isinstance(i, dict) and "priority" in i for i in items):
        raise ParseError("not `ip -j rule` JSON: expected a list of rules with a priority")
    return [PolicyRule(
        priority=int(i["priority"]),
        src=_prefix(i.get("src", "all"), i.get("srclen")) or "all",
        dst=_prefix(i.get("dst"), i.get("dstlen")),
        table=i.get("table"),
        suppress_prefixlength=i.get("suppress_prefixlen"),
        fwmark=f"{i['fwmark']}/{i.get('fwmask', '0xffffffff')}" if "fwmark" in i else None,
        action=i.get("action"),
    ) for i in items]


class PolicyRules(FactBase[list]):
    """The IPv4 (or IPv6) policy routing rules (Tailscale's 52xx ones and any others)."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, family: int = 4) -> str:
        return f"ip -j -{int(family)} rule show"

    @parsed
    def process(self, output: list[str]) -> list[PolicyRule]:
        return parse_ip_rules("\n".join(output))


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
    rules: tuple[PolicyRule, ...]  # live policy rules at the own-LAN priority, both families

    @property
    def any(self) -> bool:
        return bool(self.files or self.keepalived_ours or self.rules)


def parse_ha_leftovers(text: str, priority: int) -> HaLeftovers:
    """`file PATH` / `conf` / `rules <ip -j rule JSON>` lines (HaLeftoversFact's command) -> HaLeftovers."""
    files, conf, rules = [], False, []
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind == "file" and rest:
            files.append(rest)
        elif kind == "conf":
            conf = True
        elif kind == "rules":
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
                f"printf 'rules '; ip -j -4 rule show priority {int(priority)} 2>/dev/null; echo; "
                f"printf 'rules '; ip -j -6 rule show priority {int(priority)} 2>/dev/null; echo")

    @parsed
    def process(self, output: list[str]) -> HaLeftovers:
        return parse_ha_leftovers("\n".join(output), self.priority)
