"""The applied record's static hosts: written beside the routers, read back, removed ones found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from removal import record
from removal.record import AppliedStaticHost
from sites import load_sites

SITES = """
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
ssh = "ra"
[[sites.a.hosts]]
ssh = "root@nas"
manager = "ifupdown"
[sites.b]
subnet = "198.51.100.0/24"
router = "198.51.100.2"
ssh = "rb"
"""


def test_static_hosts_round_trip_and_removed_ones_are_found(tmp_path: Path):
    path = tmp_path / "sites.toml"
    path.write_text(SITES)
    model = load_sites(path)
    declared = record.declared_static(model)
    assert declared == [AppliedStaticHost("a", "root@nas", "192.0.2.2", "ifupdown")]
    gone = AppliedStaticHost("b", "vm:2222", "198.51.100.2")
    out = record.record_path(model)
    assert record.write(out, record.declared(model), [*declared, gone]) is True
    assert record.read_static(out) == [*declared, gone]
    assert record.removed_static(model, record.read_static(out)) == [gone]
    assert record.write(out, record.declared(model)) is True  # none left: the key goes
    assert "static_hosts" not in json.loads(out.read_text()) and record.read_static(out) == []


def test_a_broken_static_hosts_entry_is_one_line(tmp_path: Path):
    out = tmp_path / "sites.toml.applied.json"
    out.write_text(json.dumps({"version": 1, "routers": [], "static_hosts": [{"ssh": "x"}]}))
    with pytest.raises(record.RecordError, match="static_hosts: unexpected record layout"):
        record.read_static(out)
