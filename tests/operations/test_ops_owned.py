"""Owned files and units: one-command facts parsed from real output shapes, and the ops' decisions."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from ops_harness import FakeHost, contexts, texts
from pyinfra.api.exceptions import FactProcessError

from operations import owned

SHA = hashlib.sha256(b"x\n").hexdigest()


def test_owned_file_fact_parses_stat_and_sha256sum():
    # what `stat -c '%a %U:%G' F && sha256sum F` prints on Debian
    state = owned.OwnedFile().process(["644 root:root", f"{SHA}  /etc/sysctl.d/99-s2s-forwarding.conf"])
    assert state == owned.FileState("644", "root:root", SHA)


def test_owned_file_fact_rejects_garbage():
    with pytest.raises(FactProcessError):
        owned.OwnedFile().process(["stat: cannot stat"])


def test_unit_state_fact_reads_systemctl_show():
    fact = owned.UnitState()
    assert fact.process(["ActiveState=active", "UnitFileState=enabled"]) == owned.UnitStatus(True, True)
    assert fact.process(["ActiveState=inactive", "UnitFileState=disabled"]) == owned.UnitStatus(False, False)
    with pytest.raises(FactProcessError):
        fact.process(["Unit s2s.service could not be found."])


def test_unit_state_on_default_route_without_one_is_inactive_not_an_error():
    """Run for real where there is no IPv4 default route (an empty network namespace, as on the
    closed Vagrant lab's VMs): the template has no instance, so the unit is inactive and disabled."""
    fact = owned.UnitState()
    command = fact.command("s2s-udp-gro@.service", on_default_route=True)
    proc = subprocess.run(["unshare", "--net", "sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert fact.process(proc.stdout.splitlines()) == owned.UnitStatus(False, False)


def put(host: FakeHost, content: str, mode: str = "644") -> list:
    with contexts(host):
        return list(owned.put("/etc/s2s/f", content, mode=mode))


def test_put_uploads_new_file_then_nothing():
    host = FakeHost()
    cmds = put(host, "x\n")
    assert texts(cmds) == [
        "mkdir -p /etc/s2s",
        "upload /etc/s2s/f",
        "chmod 644 /etc/s2s/f",
        "chown root:root /etc/s2s/f",
    ]
    host.apply(cmds)
    assert put(host, "x\n") == []


def test_put_fixes_only_the_mode_when_content_is_right():
    host = FakeHost()
    host.apply(put(host, "x\n"))
    host.modes["/etc/s2s/f"] = 600
    assert texts(put(host, "x\n")) == ["chmod 644 /etc/s2s/f"]


def test_put_replaces_changed_content_without_mkdir():
    host = FakeHost()
    host.apply(put(host, "x\n"))
    assert texts(put(host, "y\n")) == ["upload /etc/s2s/f", "chmod 644 /etc/s2s/f", "chown root:root /etc/s2s/f"]
