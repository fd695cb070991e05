"""Which Headscale releases take grants, from the version they report."""

from __future__ import annotations

import pytest

from controlplane.version import headscale_has_grants
from steps.policy_file import HeadscaleVersion


@pytest.mark.parametrize("version, grants", [
    ("v0.29.0", True), ("0.29.2", True), ("v0.29.0-beta.1", True), ("v0.30.0", True), ("v1.0.0", True),
    ("v0.28.0", False), ("0.27.1", False), ("v0.26.0", False),
    ("dev", None), ("", None), ("(devel)", None),
])
def test_grants_from_the_version(version, grants):
    assert headscale_has_grants(version) is grants


def test_the_cli_fact_reads_headscale_version_json():
    out = ['{"version": "v0.29.0", "commit": "abc", "buildTime": "x", "go": {"version": "go1.26"},',
           '"dirty": false}']
    assert HeadscaleVersion().process(out) == "v0.29.0"
    assert HeadscaleVersion().process(["headscale version v0.28.0"]) == ""
    assert HeadscaleVersion().command("headscale version -o json").endswith("|| true")
