"""steps.planned: a plan/apply pair as a pyinfra operation, run by the real pyinfra CLI on @local."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DEPLOY = """
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import operation

from steps.planned import plan_then_apply

STATE = Path({state!r})


class Broken(Exception):
    pass


class NotYet(Exception):
    pass


@dataclass
class Plan:
    want: str
    have: str

    @property
    def empty(self):
        return self.want == self.have

    def render(self):
        return f"state: {{self.have!r}} -> {{self.want!r}}"


def plan():
    if {plan_raises!r}:
        raise {plan_raises}("cannot read\\nthe state")
    return Plan("wanted", STATE.read_text())


def apply(host):
    if {apply_raises!r}:
        raise Broken("write refused,\\nstate left as it was")
    STATE.write_text("wanted")
    return ["state written"]


@operation()
def state_wanted():
    yield from plan_then_apply("demo", plan, apply, failures=(Broken,), done="state already wanted",
                               defer=(NotYet,))


state_wanted(name="demo step")
"""


def run(tmp_path: Path, *, plan_raises: str = "", apply_raises: bool = False, dry: bool = False):
    deploy = tmp_path / "deploy_demo.py"
    deploy.write_text(DEPLOY.format(state=str(tmp_path / "state"), plan_raises=plan_raises,
                                    apply_raises=apply_raises))
    argv = [sys.executable, "-m", "pyinfra", *(["--dry", "--diff"] if dry else ["-y"]), "@local", str(deploy)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.write_text("old")
    return path


def test_plan_shows_diff_and_dry_run_changes_nothing(tmp_path, state):
    res = run(tmp_path, dry=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "state: 'old' -> 'wanted'" in res.stdout + res.stderr
    assert state.read_text() == "old"


def test_apply_then_a_second_run_is_a_no_op(tmp_path, state):
    first = run(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert state.read_text() == "wanted" and "demo: state written" in first.stdout + first.stderr
    again = run(tmp_path)
    assert again.returncode == 0 and "[@local] No changes" in again.stdout + again.stderr


def test_apply_failure_is_one_red_line_without_traceback(tmp_path, state):
    res = run(tmp_path, apply_raises=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "demo: write refused, state left as it was" in out and "Traceback" not in out
    assert state.read_text() == "old"


def test_plan_failure_stops_before_any_change(tmp_path, state):
    res = run(tmp_path, plan_raises="Broken", dry=True)  # pyinfra decides (plans) before any change
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "demo: cannot read the state" in out and "Traceback" not in out
    assert state.read_text() == "old"


def test_deferred_plan_is_decided_at_execution_time(tmp_path, state):
    res = run(tmp_path, plan_raises="NotYet")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "deciding at execution time" in out and state.read_text() == "wanted"


def test_plan_failure_at_execution_is_one_line_and_a_failed_host_not_a_traceback(tmp_path, state):
    # pyinfra 3 runs the operation's generator at execution time, in a greenlet per host: an
    # exception raised there printed gevent's traceback and ended the run for every host
    res = run(tmp_path, plan_raises="Broken")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "demo: cannot read the state; nothing was changed by this step" in out
    assert "Traceback" not in out and "greenlet" not in out
    assert state.read_text() == "old"


def test_a_dropped_connection_under_the_plan_is_one_line_too(tmp_path, state):
    res = run(tmp_path, plan_raises="ConnectionResetError")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "demo: cannot read the state" in out and "Traceback" not in out
