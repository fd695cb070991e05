"""Facts about the forwarding sysctls: their live values and every file line that sets them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed

FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def sysctl_key(key: str) -> str:
    """sysctl accepts net/ipv4/ip_forward too; compare keys in dotted form."""
    return key.strip().replace("/", ".")


@dataclass(frozen=True)
class SysctlLine:
    """One line of a sysctl file that sets a key."""

    path: str
    key: str
    value: str


def parse_sysctl_values(text: str) -> dict[str, str]:
    """Parse `sysctl KEY...` lines (`key = value`)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise ParseError(f"not a sysctl line: {line!r}")
        key, value = line.split("=", 1)
        values[sysctl_key(key)] = value.strip()
    return values


def parse_sysctl_grep(text: str) -> list[SysctlLine]:
    """Parse `grep -H` over sysctl files: `path:key = value` (comments already excluded)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^([^:]+):\s*-?([\w./-]+)\s*=\s*(.*?)\s*$", line)
        if not m:
            raise ParseError(f"not a sysctl file line: {line!r}")
        out.append(SysctlLine(m.group(1), sysctl_key(m.group(2)), m.group(3)))
    return out


SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


class SysctlFileSettings(FactBase[list]):
    """Every line in sysctl files that sets one of KEYS, as SysctlLine (path, key, value)."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, keys: tuple[str, ...] | list[str] = FORWARDING_KEYS) -> str:
        alternatives = "|".join(k.replace(".", "[./]") for k in keys)
        files = " ".join(["/etc/sysctl.conf", *(f"{d}/*.conf" for d in SYSCTL_DIRS)])
        return f"grep -HsE '^[[:space:]]*-?({alternatives})[[:space:]]*=' {files} || true"

    @parsed
    def process(self, output: list[str]) -> list[SysctlLine]:
        return parse_sysctl_grep("\n".join(output))


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


class ForwardingState(SysctlValues):
    """Live values of the forwarding sysctls (missing keys, e.g. IPv6 disabled, are left out)."""

    def command(self) -> str:  # type: ignore[override]  # a SysctlValues with fixed keys
        return super().command(FORWARDING_KEYS)


def parse_accept_ra(text: str) -> dict[str, str]:
    """`grep -H . /proc/sys/net/ipv6/conf/*/accept_ra` lines -> {interface: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^/proc/sys/net/ipv6/conf/([^/]+)/accept_ra:(\d+)$", line.strip())
        if not m:
            raise ParseError(f"not an accept_ra line: {line!r}")
        out[m.group(1)] = m.group(2)
    return out


def accept_ra_key(interface: str) -> str:
    """The sysctl.d key of one interface's accept_ra; a name with a dot (eth0.100) in slash form."""
    return f"net/ipv6/conf/{interface}/accept_ra" if "." in interface else f"net.ipv6.conf.{interface}.accept_ra"


class AcceptRa(FactBase[dict]):
    """Each interface's net.ipv6.conf.IF.accept_ra (none when the kernel has no IPv6): 1 takes the
    LAN's router advertisements unless forwarding is on, 2 takes them even then, 0 never."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "grep -H . /proc/sys/net/ipv6/conf/*/accept_ra 2>/dev/null || true"

    @parsed
    def process(self, output: list[str]) -> dict[str, str]:
        return parse_accept_ra("\n".join(output))
