"""What dpkg's own records say about an install that did not finish (killed, power lost).

apt refuses to work after an interrupted dpkg ("dpkg was interrupted, you must manually run
'dpkg --configure -a'"): a deploy SIGKILLed while apt installs Tailscale, or a router that
loses power then, leaves dpkg's journal (/var/lib/dpkg/updates) and packages half-way
(unpacked, half-configured). A live apt or dpkg holding dpkg's lock leaves the same traces
while it works, so the fact also says who holds the lock: the operation recovers only when
no one does (operations/packages.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed

# the Status: field's last word for a package dpkg left half-way
UNFINISHED = ("half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending")
STATUS, UPDATES = "/var/lib/dpkg/status", "/var/lib/dpkg/updates"
LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")


@dataclass(frozen=True)
class DpkgState:
    """dpkg's journal, the packages it left half-way, and the pid holding its lock (if any)."""

    journal: int = 0  # entries in /var/lib/dpkg/updates: dpkg stopped mid-write
    unfinished: tuple[tuple[str, str], ...] = ()  # (package, state)
    locked_by: int | None = None  # a live apt/dpkg (its pid) holds dpkg's lock

    @property
    def interrupted(self) -> bool:
        return bool(self.journal or self.unfinished)

    def describe(self) -> str:
        """How dpkg was left, for a line: 'tailscale half-configured; journal of 2 entries'."""
        bits = [f"{name} {state}" for name, state in self.unfinished]
        if self.journal:
            bits.append(f"journal of {self.journal} entries")
        return ", ".join(bits) or "clean"


def parse_dpkg_state(text: str) -> DpkgState:
    """Lines `journal N`, `locked PID`, `pkg STATE NAME` (only packages not installed fully)."""
    journal, locked, unfinished = 0, None, []
    for line in text.splitlines():
        bits = line.split()
        if not bits:
            continue
        if bits[0] == "journal" and len(bits) == 2 and bits[1].isdigit():
            journal = int(bits[1])
        elif bits[0] == "locked" and len(bits) == 2 and bits[1].isdigit():
            locked = locked or int(bits[1])
        elif bits[0] == "pkg" and len(bits) == 3:
            if bits[1] in UNFINISHED:
                unfinished.append((bits[2].split(":")[0], bits[1]))
        else:
            raise ParseError(f"unexpected line: {line!r}")
    return DpkgState(journal, tuple(unfinished), locked)


def dpkg_state_command(status: str = STATUS, updates: str = UPDATES, locks: tuple[str, ...] = LOCKS) -> str:
    """The fact's shell: reads dpkg's files only (awk over the status file is a few ms where
    dpkg-query takes tens: the fact is in every router's batched read, no-op runs included)."""
    return (
        f"echo journal $(ls -A {updates} 2>/dev/null | wc -l); "
        # /proc/locks: 'N: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END' (waiters: '->')
        f"for f in {' '.join(locks)}; do i=$(stat -c %i \"$f\" 2>/dev/null) || continue; "
        "awk -v i=\"$i\" '$2 != \"->\" && $6 ~ (\":\" i \"$\") {print \"locked\", $5}' /proc/locks; "
        "done; "
        # 'Status: WANT FLAG STATE' after its 'Package:' line
        "awk '/^Package:/ {p = $2} /^Status:/ && $4 !~ /^(installed|config-files|not-installed)$/ "
        f"{{print \"pkg\", $4, p}}' {status} 2>/dev/null; true"
    )


class DpkgInterrupted(FactBase[DpkgState]):
    """dpkg's journal size, its half-way packages and its lock holder; reads only (/proc/locks:
    a lock is never taken to see whether it is free). No dpkg: no files, the default."""

    @staticmethod
    def default() -> DpkgState:
        return DpkgState()

    def command(self) -> str:
        return dpkg_state_command()

    @parsed
    def process(self, output: list[str]) -> DpkgState:
        return parse_dpkg_state("\n".join(output))
