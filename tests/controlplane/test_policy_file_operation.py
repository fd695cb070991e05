"""The file-mode pyinfra operation, run by the real pyinfra CLI on @local against a temp file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import hujson, policy

HAND = '// hand\n{\n  "acls": [\n    {"action": "accept", "src": ["*"], "dst": ["*:*"]}, // all\n  ],\n}\n'

DEPLOY = """
from steps.policy_file import headscale_policy_file
from controlplane.policy import PolicySpec
headscale_policy_file(
    name="headscale policy",
    path={path!r},
    spec=PolicySpec(sites=(("a", ("192.0.2.0/24",)), ("b", ("172.16.100.0/24",)))),
    check_command={check!r},
    reload_command={reload!r},
)
"""


def pyinfra(tmp: Path, target: Path, check: str = "grep -q BEGIN {file}") -> subprocess.CompletedProcess:
    marker = tmp / "reloaded"
    deploy = tmp / "deploy_policy.py"
    deploy.write_text(DEPLOY.format(path=str(target), check=check, reload=f"echo x >> {marker}"))
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", "@local", str(deploy)], cwd=Path.cwd(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_merges_checks_reloads_then_is_idempotent(tmp_path):
    target = tmp_path / "policy.hujson"
    target.write_text(HAND)
    res = pyinfra(tmp_path, target)
    assert res.returncode == 0, res.stdout + res.stderr
    text = target.read_text()
    assert text.startswith("// hand\n") and '{"action": "accept", "src": ["*"], "dst": ["*:*"]}, // all' in text
    assert "192.0.2.0/24" in policy.managed(text)["acls"][0]
    hujson.loads(text)
    assert (tmp_path / "reloaded").read_text() == "x\n"
    again = pyinfra(tmp_path, target)
    assert again.returncode == 0
    assert target.read_text() == text and (tmp_path / "reloaded").read_text() == "x\n"  # no change, no reload


@pytest.mark.integration
def test_rejected_policy_leaves_old_file(tmp_path):
    target = tmp_path / "policy.hujson"
    target.write_text(HAND)
    res = pyinfra(tmp_path, target, check="false")
    assert res.returncode != 0
    assert target.read_text() == HAND
    assert not (tmp_path / "policy.hujson.s2s-new").exists() and not (tmp_path / "reloaded").exists()


@pytest.mark.integration
def test_real_headscale_checks_the_staged_file(headscale_lab, tmp_path):
    """`headscale policy check -f` of the real v0.29.0 server accepts what the merge writes."""
    check = f"{headscale_lab.headscale} -c {headscale_lab.config} policy check -f {{file}}"
    target = tmp_path / "policy.hujson"
    target.write_text(HAND)
    res = pyinfra(tmp_path, target, check=check)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BEGIN s2s-controlplane acls" in target.read_text()
    target.write_text(HAND.replace('"*:*"', '"no-port"'))  # a policy Headscale rejects
    before = target.read_text()
    res = pyinfra(tmp_path, target, check=check)
    assert res.returncode != 0 and target.read_text() == before
