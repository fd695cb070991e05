"""Helpers shared by the Vagrant lab tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import need

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "vagrant.md"
# The variables a user's shell may carry that would change what the documented commands do.
VAGRANT_VARS = re.compile(r"^(VAGRANT_|S2S_VAGRANT_|S2S_LIBVIRT_|S2S_HEADSCALE_BINARY$)")


def require(ok: object, why: str) -> None:
    """Skip (saying why) unless `ok`; tests/conftest.py makes that a failure under CI."""
    need(None if ok else why)


def documented_block(marker: str) -> str:
    """The ```sh block that follows `<!-- MARKER ... -->` in docs/vagrant.md, as a user would copy it."""
    text = DOCS.read_text()
    found = re.search(rf"<!-- {re.escape(marker)}\b[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    assert found, f"docs/vagrant.md has no ```sh block after <!-- {marker} -->"
    return found.group(1)


def lab_env(state: Path) -> dict[str, str]:
    """This process's environment without the Vagrant lab's variables, the lab's state in `state`.

    S2S_LAB_PREFIX (the namespace's name) is kept: it is the developer's or CI's own."""
    env = {k: v for k, v in os.environ.items() if not VAGRANT_VARS.match(k)}
    env.update(S2S_VAGRANT_STATE=str(state), VAGRANT_DOTFILE_PATH=str(state / "dotvagrant"))
    return env


def wrapper(env: dict[str, str], *args: str, timeout: float = 600, check: bool = True) -> None:
    """`python -m lab.vagrant ARGS` (stdout dropped, stderr kept for the assertion)."""
    proc = subprocess.run([sys.executable, "-m", "lab.vagrant", *args], cwd=REPO, env=env, timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert not check or proc.returncode == 0, f"python -m lab.vagrant {' '.join(args)}: {proc.stderr[-3000:]}"


def assert_nothing_left(state: Path) -> None:
    """After `down`: no namespace, no libvirtd, no qemu of this lab, no VM disk in the private pool."""
    from lab import vagrant_libvirt

    assert not vagrant_libvirt.netns_exists()
    assert not vagrant_libvirt.running()
    guests = subprocess.run(["pgrep", "-f", f"guest={vagrant_libvirt.LAB_PREFIX}-"], capture_output=True, text=True)
    assert guests.stdout == ""
    disks = sorted(p.name for p in (vagrant_libvirt.state_root() / "lib" / "images").glob(
        f"{vagrant_libvirt.LAB_PREFIX}-*"))
    assert disks == []  # the box's volume (its own name) stays: the next `up` need not upload it again
    assert list((state / "dotvagrant").glob("machines/*/libvirt/id")) == []  # Vagrant knows no machine either
