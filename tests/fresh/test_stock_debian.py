"""The README's two commands on a new machine: a stock Debian 12 or 13 with only git and python3.

For each tested release (stock_debian.RELEASES: bookworm and trixie), a pristine debootstrap root
(minbase + git, ca-certificates, python3) gets a clone of
this repository, and the README's test command runs there as root, in a root shell with
no sudo installed: `./scripts/test -m "not integration"` (the tests that need no
containers or network namespaces). It must install everything it needs itself (Debian
packages, the .venv with the hash-checked lock on the release's own Python, a Go toolchain
>= 1.26.4 via the release's golang-go, or bookworm-backports' on Debian 12, and GOTOOLCHAIN)
and pass. Then the same command through sudo, and a
second set-up that must install nothing. Tests the committed HEAD (what a clone gets).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.fresh import stock_debian

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 900  # seconds for the whole cold run inside the chroot (measured: see README Figures)


def _require_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, mounts)")
    for tool in ("debootstrap", "unshare", "chroot", "tar", "git"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def _setup_times(output: str) -> str:
    """The set-up's own timing lines (apt, venv+pip, go), for the log."""
    return "\n".join(line for line in output.splitlines() if line.startswith("== ") and " in " in line)


@pytest.mark.parametrize("suite", sorted(stock_debian.RELEASES))
def test_readme_test_command_passes_on_stock_debian(suite: str) -> None:
    _require_tools()
    version, python = stock_debian.RELEASES[suite]
    start = time.monotonic()
    tar = stock_debian.pristine_tarball(suite)  # cached after the first build
    cache = tar.parent / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{suite}-", dir=cache))
    try:
        stock_debian.unpack(tar, root / "fs")
        root = root / "fs"
        stock_debian.prepare(root)
        checkout = stock_debian.clone(root)
        prepared = time.monotonic() - start

        t0 = time.monotonic()
        rc, out = stock_debian.run_in(
            root, f'cd {checkout} && ./scripts/test -m "not integration" -q -p no:cacheprovider', timeout=RUN_TIMEOUT
        )
        cold = time.monotonic() - t0
        print(f"Debian {version}: stock root ready in {prepared:.0f} s; ./scripts/test from stock in {cold:.0f} s")
        print(_setup_times(out))
        tail = "\n".join(out.splitlines()[-40:])
        assert rc == 0, f"./scripts/test exited {rc} on a stock Debian {version}:\n{tail}"
        summary = out.strip().splitlines()[-1]
        print(f"inside: {summary}")
        assert re.search(r"\b[1-9]\d* passed\b", summary) and not re.search(r"failed|error", summary), summary
        # the venv is the release's own Python, and the Go came by the release's route
        rc, pyver = stock_debian.run_in(
            root, f"{checkout}/.venv/bin/python -c 'import sys; print(sys.version)'", timeout=60
        )
        assert rc == 0 and pyver.startswith(python + "."), pyver
        route = "bookworm-backports" if suite == "bookworm" else suite
        assert re.search(rf"^== apt: installing golang-go \S+ from {route}$", out, re.M), _setup_times(out)

        # a warm set-up installs nothing, and the same command works through sudo
        rc, out = stock_debian.run_in(
            root,
            f"cd {checkout} && ./scripts/setup && apt-get install -y -qq sudo >/dev/null"
            f" && sudo ./scripts/test tests/unit -m \"not integration\" -q -p no:cacheprovider",
            timeout=300,
        )
        assert rc == 0, "\n".join(out.splitlines()[-30:])
        assert not re.search(r"^== (apt|pip|venv|go)", out, re.M), f"warm set-up did something:\n{out}"
        assert re.search(r"\b[1-9]\d* passed\b", out.strip().splitlines()[-1]), out[-2000:]
    finally:
        stock_debian.remove(root.parent if root.name == "fs" else root)
