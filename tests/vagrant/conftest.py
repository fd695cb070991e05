"""Fixtures for the Vagrant lab tests: real vagrant/ruby, run with no network at all.

Every vagrant/ruby process runs under `unshare --net` (an empty network
namespace), so nothing can be downloaded even by accident; its state and the
lab's generated secrets go to a temp dir, never into the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vagrant.support import REPO, require

# The full layout (7 VMs) end to end is on demand (./scripts/test-vagrant --full): under qemu/TCG
# it takes far longer than CI allows. Said at the end of every run that loads tests/vagrant, never
# as a skip. The lean layout's end-to-end test (test_lean_e2e.py) is always collected.
FULL_REASON = ("tests/vagrant/test_full_e2e.py not collected: it boots the 7-VM layout (qemu/TCG here, "
               "tens of minutes); run it with ./scripts/test-vagrant --full or S2S_VAGRANT_FULL=1")
collect_ignore = [] if os.environ.get("S2S_VAGRANT_FULL") == "1" else ["test_full_e2e.py"]


def pytest_terminal_summary(terminalreporter) -> None:
    """Said at the end of every run that loads tests/vagrant (a header hook would only work at the root)."""
    if collect_ignore:
        terminalreporter.write_line(FULL_REASON)


@pytest.fixture(scope="session")
def offline() -> list[str]:
    """Command prefix that runs a program with no network (needs root / CAP_SYS_ADMIN)."""
    unshare = shutil.which("unshare")
    require(unshare is not None, "unshare (util-linux) not installed")
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, text=True)
    require(probe.returncode == 0, f"unshare --net not permitted here: {probe.stderr.strip()}")
    return [unshare, "--net"]


@pytest.fixture(scope="session")
def vagrant_exe() -> str:
    exe = shutil.which("vagrant")
    require(exe is not None, "vagrant not installed (apt-get install vagrant)")
    return exe


@pytest.fixture(scope="session")
def ruby_exe() -> str:
    exe = shutil.which("ruby")
    require(exe is not None, "ruby not installed (comes with Debian's vagrant)")
    return exe


@pytest.fixture
def vagrant_env(tmp_path: Path) -> dict[str, str]:
    """Environment for vagrant: no update checks, state and secrets in tmp_path."""
    env = dict(os.environ)
    env.update(
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
        VAGRANT_DOTFILE_PATH=str(tmp_path / "dotvagrant"),
        S2S_VAGRANT_STATE=str(tmp_path / "state"),
    )
    env.pop("VAGRANT_CWD", None)
    return env


# Loads the Vagrantfile outside Vagrant (Vagrant.configure stubbed out) to reach S2SLab's helpers.
RUBY_LOADER = 'module Vagrant; def self.configure(*) end; end; load ARGV.shift; require "json"; '


@pytest.fixture
def vagrantfile_eval(ruby_exe: str, offline: list[str], vagrant_env: dict[str, str]):
    """Evaluate a Ruby expression against the Vagrantfile's S2SLab module; returns its JSON value."""

    def run(expr: str, vagrantfile: Path = REPO / "Vagrantfile") -> object:
        proc = subprocess.run(
            [*offline, ruby_exe, "-e", RUBY_LOADER + f"puts JSON.dump({expr})", str(vagrantfile)],
            capture_output=True, text=True, env=vagrant_env, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run
