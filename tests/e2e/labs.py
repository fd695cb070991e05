"""The lab each end-to-end module boots: one way to bring it up on a topology and take it down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab import api, drive
from lab.prereq import missing_prerequisites
from lab.topology import TOPOLOGY_ENV
from tests.support import need


def generated_topology(path: Path, *generator_args: str) -> Path:
    """Write `python -m lab topology ARGS` (the generator users run) to `path`."""
    out = subprocess.run([sys.executable, "-m", "lab", "topology", *generator_args], cwd=drive.REPO,
                         capture_output=True, text=True, check=True).stdout
    path.write_text(out)
    return path


@contextmanager
def booted(topology: Path, *, export: bool = True) -> Iterator[api.LabInfo]:
    """A fresh lab on `topology` (any lab of this checkout goes down first), down again after.

    Skips, saying why, where the lab cannot run (CI turns that into a failure). `export`
    sets S2S_LAB_TOPOLOGY meanwhile, so `python -m lab renew|exec` children act on this
    topology; without it they must find the running lab on their own.
    """
    missing = missing_prerequisites()
    need(f"the lab cannot run here: missing {', '.join(missing)}" if missing else None)
    old = os.environ.get(TOPOLOGY_ENV)
    if export:
        os.environ[TOPOLOGY_ENV] = str(topology)
    try:
        api.down()
        yield api.ensure_up(topology)
        api.down()
    finally:
        if old is None:
            os.environ.pop(TOPOLOGY_ENV, None)
        else:
            os.environ[TOPOLOGY_ENV] = old


@contextmanager
def booted_site_file(topology: Path, where: Path) -> Iterator[Path]:
    """`booted`, yielding a copy of the lab's site file in `where`, for a test to edit."""
    with booted(topology) as info:
        sites = where / "sites.toml"
        sites.write_text(info.sites_file.read_text())
        yield sites


@contextmanager
def deployed(topology: Path) -> Iterator[api.LabInfo]:
    """`booted`, then one deploy of the lab's site file, which must succeed (down again after)."""
    with booted(topology) as info:
        result = drive.pyinfra(info.sites_file)
        assert result.returncode == 0, drive.why_failed(result)
        yield info
