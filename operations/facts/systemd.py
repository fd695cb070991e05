"""Which systemd units of this project (`s2s-*`) a host has: loaded (active or not) and enabled.

Template instances such as s2s-udp-gro@eth0.service are named by the interface
the deploy found then, so the removal cannot list them from the site file; it
asks systemd and the unit directory instead.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed

UNIT_DIR = "/etc/systemd/system"
SEPARATOR = "--s2s-unit-files--"


@dataclass(frozen=True)
class ProjectUnits:
    """Units matching the pattern: the active ones, and the enabled ones (a .wants/ link of ours)."""

    active: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()


def parse_project_units(text: str, prefix: str = "s2s-") -> ProjectUnits:
    """`systemctl list-units --plain --no-legend` lines, the separator, then `*.wants/` link paths."""
    head, sep, tail = text.partition(SEPARATOR)
    if not sep:
        raise ParseError("no unit-file section (separator missing)")
    active = []
    for line in head.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4 or not fields[0].startswith(prefix):
            raise ParseError(f"unexpected list-units line: {line!r}")
        if fields[2] in ("active", "activating", "reloading"):
            active.append(fields[0])
    enabled = []
    for line in tail.splitlines():
        path = line.strip()
        if not path:
            continue
        name = path.rsplit("/", 1)[-1]
        if ".wants/" not in path or not name.startswith(prefix):
            raise ParseError(f"unexpected unit link: {path!r}")
        enabled.append(name)
    return ProjectUnits(tuple(sorted(set(active))), tuple(sorted(set(enabled))))


class ProjectUnitState(FactBase[ProjectUnits]):
    """Active and enabled units named PREFIX* (instances of templates included), in one command."""

    def requires_command(self, *args: object, **kwargs: object) -> str:
        return "systemctl"

    def command(self, prefix: str = "s2s-") -> str:
        self.prefix = prefix
        pattern = shlex.quote(prefix + "*")
        return (f"systemctl list-units --all --plain --no-legend --no-pager {pattern}; echo {SEPARATOR}; "
                f"find {UNIT_DIR} -path '*.wants/*' -name {pattern} 2>/dev/null || true")

    @staticmethod
    def default() -> ProjectUnits:
        return ProjectUnits()

    @parsed
    def process(self, output: list[str]) -> ProjectUnits:
        return parse_project_units("\n".join(output), getattr(self, "prefix", "s2s-"))
