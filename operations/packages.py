"""apt and dpkg commands for the router steps: one line when they fail, a bounded wait for another
apt, and the recovery apt itself asks for after an interrupted dpkg.

Why not pyinfra's apt operations as they are: a failing `apt-get` prints every line of its
output under the host's name (a dozen lines for a mirror that is down), apt gives up at once
when another apt holds its lock (unattended-upgrades, or the remote apt of a deploy that was
killed and still runs), and after a dpkg that was killed half-way (deploy SIGKILLed, power
lost) apt refuses everything until someone runs `dpkg --configure -a`. Here:

- every apt/dpkg command runs quietly; on failure it prints one line to stderr naming the
  command, the host, apt's own error lines and how dpkg was left, and exits with apt's status;
- apt-get waits up to LOCK_WAIT seconds for dpkg's lock (DPkg::Lock::Timeout) and, before
  `apt-get update`, for the package lists' lock (apt has no timeout for that one);
- `dpkg_recover` decides from the DpkgInterrupted fact: dpkg left half-way and no live apt/dpkg
  holding its lock -> `dpkg --configure -a` (a live holder is still working: apt waits for it).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from operations.facts.dpkg import DpkgState

LOCK_WAIT = 120  # s an apt command waits for another apt/dpkg before it fails
LISTS_LOCK = "/var/lib/apt/lists/lock"
DPKG_FORCE = ("--force-confdef", "--force-confold")  # keep the admin's changed conffiles, never ask
APT_GET = (f"DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout={LOCK_WAIT} "
           + " ".join(f"-o Dpkg::Options::={force}" for force in DPKG_FORCE))

# How dpkg was left after a failure, for the line (the same reading as the DpkgInterrupted fact).
_DPKG_LEFT = (
    "left=$(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\\n' 2>/dev/null "
    "| awk '$1 ~ /^.[HUFWt]/ {printf \"%s%s\", s, $2; s=\", \"}'); "
    "if [ -n \"$left\" ] || [ -n \"$(ls -A /var/lib/dpkg/updates 2>/dev/null)\" ]; then "
    "left=\"dpkg left half-way (${left:-its journal}): the next run finishes it (dpkg --configure -a)\"; "
    "else left='no package left half-way: the next run tries again'; fi"
)


def quiet(command: str, what: str, host_name: str) -> str:
    """`command` with its output kept back; on failure one line on stderr:
    `apt: WHAT failed on HOST (exit N): <apt's E: lines>; <how dpkg was left>`."""
    label = shlex.quote(f"apt: {what} failed on {host_name}")
    return (
        f"o=$(mktemp) || exit 1; {{ {command} ; }} >\"$o\" 2>&1; rc=$?; "
        "if [ $rc -eq 0 ]; then rm -f \"$o\"; exit 0; fi; "
        "why=$(grep -E '^(E: |dpkg: error)' \"$o\" | head -n 3 "
        "| awk '{gsub(/[ \\t]+/, \" \"); printf \"%s%s\", s, $0; s=\" / \"}'); "
        "[ -n \"$why\" ] || why=$(grep -v '^ *$' \"$o\" | tail -n 1); rm -f \"$o\"; "
        f"{_DPKG_LEFT}; "
        f"echo {label}\" (exit $rc): $why; $left\" >&2; exit $rc"
    )


def _wait_free(path: str) -> str:
    """Shell: wait (at most LOCK_WAIT s) while a live process holds the fcntl lock on `path`."""
    return (
        f"i=$(stat -c %i {path} 2>/dev/null); n=0; "
        f"while [ -n \"$i\" ] && [ $n -lt {LOCK_WAIT} ] && "
        "awk -v i=\"$i\" '$2 != \"->\" && $6 ~ (\":\" i \"$\") {f=1} END {exit !f}' /proc/locks; "
        "do sleep 1; n=$((n+1)); done"
    )


def apt_update(host_name: str) -> str:
    """`apt-get update` that fails on any index it cannot fetch (a mirror that is down must not
    read as success with old lists), after any other apt's update is done."""
    return quiet(f"{_wait_free(LISTS_LOCK)}; {APT_GET} update --error-on=any", "apt-get update",
                 host_name)


def apt_install(packages: Iterable[str], host_name: str) -> str:
    wanted = " ".join(shlex.quote(p) for p in packages)
    return quiet(f"{APT_GET} install --no-install-recommends {wanted}", f"apt-get install {wanted}",
                 host_name)


def dpkg_recover(dpkg: DpkgState | None, host_name: str) -> list[str]:
    """`dpkg --configure -a` when dpkg was left half-way and no live apt/dpkg holds its lock
    (one that does is still working, and the apt commands wait for it)."""
    if dpkg is None or not dpkg.interrupted or dpkg.locked_by is not None:
        return []
    command = f"DEBIAN_FRONTEND=noninteractive dpkg {' '.join(DPKG_FORCE)} --configure -a"
    return [quiet(command, f"dpkg --configure -a ({dpkg.describe()})", host_name)]


def apt_install_recovering(packages: Iterable[str], dpkg: DpkgState | None, host_name: str) -> list[str]:
    """Install from the lists already there, after `dpkg_recover` (the steps that install one Debian
    package after Tailscale's step: radvd, keepalived)."""
    return [*dpkg_recover(dpkg, host_name), apt_install(packages, host_name)]
