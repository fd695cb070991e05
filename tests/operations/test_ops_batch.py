"""A batch runs several facts' commands in one shell and gives each fact its own output."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from pyinfra.api.exceptions import FactProcessError

from operations import owned
from operations.batch import MARKER, Batch
from operations.facts import TailscalePrefs


def run_batch(specs):
    fact = Batch()
    command = fact.command(specs=specs)
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout  # no tailscale on this PATH
    return fact.process(out.splitlines())


def test_each_fact_gets_its_own_output_and_missing_ones_their_default(tmp_path):
    present = tmp_path / "present.conf"
    present.write_text("x\n")
    present.chmod(0o640)
    results = run_batch((
        (owned.OwnedFile, (("path", str(present)),)),
        (owned.OwnedFile, (("path", str(tmp_path / "absent.conf")),)),
        (TailscalePrefs, (("socket", None),)),  # requires `tailscale`: absent, so its default
    ))
    assert results[0] == owned.FileState("640", "root:root", hashlib.sha256(b"x\n").hexdigest())
    assert results[1] is None
    assert results[2] is None


def test_output_that_lost_a_marker_is_an_error():
    fact = Batch()
    fact.command(specs=((owned.OwnedFile, (("path", "/a"),)), (owned.OwnedFile, (("path", "/b"),))))
    with pytest.raises(FactProcessError):
        fact.process(["644 root:root", "abc  /a", f"{MARKER} 0"])


def test_output_without_a_final_newline_is_kept_apart_from_the_marker():
    fact = Batch()
    fact.command(specs=((owned.UnitState, (("unit", "x.service"),)), (owned.OwnedFile, (("path", "/a"),))))
    results = fact.process(["ActiveState=active", f"UnitFileState=enabled{MARKER} 0", f"{MARKER} 0"])
    assert results == [owned.UnitStatus(True, True), None]


def test_a_fact_that_cannot_parse_its_output_is_named():
    fact = Batch()
    fact.command(specs=((owned.OwnedFile, (("path", "/a"),)), (TailscalePrefs, (("socket", None),))))
    with pytest.raises(FactProcessError, match=r"^fact TailscalePrefs\(socket=None\): .*not JSON"):
        fact.process([f"{MARKER} 0", "tailscaled is not running", f"{MARKER} 0"])


class _Failing(owned.OwnedFile):
    """A fact whose command fails (a broken command, a permission error) instead of finding nothing."""

    def command(self, path: str) -> str:
        return f"cat {path}"


def test_a_fact_whose_command_fails_is_an_error_naming_it_never_absent(tmp_path):
    with pytest.raises(FactProcessError, match=r"^fact _Failing\(path='/nonexistent/x'\) failed: .*exited 1"):
        run_batch(((owned.OwnedFile, (("path", str(tmp_path / "absent")),)),
                   (_Failing, (("path", "/nonexistent/x"),))))


def test_each_fact_keeps_its_own_exit_status():
    fact = Batch()
    fact.command(specs=((owned.OwnedFile, (("path", "/a"),)), (owned.OwnedFile, (("path", "/b"),))))
    with pytest.raises(FactProcessError, match=r"path='/b'.*exited 2"):
        fact.process([f"{MARKER} 0", f"{MARKER} 2"])
