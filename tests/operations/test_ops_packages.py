"""apt and dpkg under faults: the DpkgInterrupted fact's parser on dpkg's own output shapes, and
the one-line wrapper run for real by sh (a command that fails as apt does)."""

from __future__ import annotations

import subprocess

import pytest

from operations.facts._parsing import ParseError
from operations.facts.dpkg import DpkgState, parse_dpkg_state
from operations.packages import apt_update, dpkg_recover, quiet


def test_parse_a_clean_dpkg():
    assert parse_dpkg_state("journal 0\n") == DpkgState()
    assert not DpkgState().interrupted


def test_parse_a_dpkg_killed_half_way():
    state = parse_dpkg_state("journal 3\npkg iF  tailscale\npkg iU  iptables:amd64\npkg iFR broken\n")
    assert state.interrupted and state.locked_by is None
    assert state.unfinished == (("tailscale", "half-configured"), ("iptables", "unpacked"),
                                ("broken", "half-configured"))
    assert state.describe() == ("tailscale half-configured, iptables unpacked, broken half-configured, "
                                "journal of 3 entries")


def test_parse_a_live_lock_holder_and_ignore_removed_packages():
    state = parse_dpkg_state("journal 1\nlocked 4242\nlocked 4243\npkg rc  gone\n")
    assert state.locked_by == 4242 and state.journal == 1 and state.unfinished == ()


def test_parse_refuses_output_it_does_not_know():
    with pytest.raises(ParseError):
        parse_dpkg_state("dpkg: error: something\n")


@pytest.mark.parametrize("state", [DpkgState(), DpkgState(journal=1, locked_by=7), None])
def test_no_recovery_when_dpkg_is_clean_or_busy(state):
    assert dpkg_recover(state, "a-router") == []


def run_sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def test_a_failing_apt_command_is_one_line_with_apts_errors():
    failing = ("sh -c \"echo 'Reading package lists...'; echo 'Err:1 http://mirror bookworm InRelease'; "
               "echo 'E: Failed to fetch http://mirror/InRelease  Could not connect' >&2; "
               "echo 'E: Some index files failed to download.' >&2; exit 100\"")
    result = run_sh(quiet(failing, "apt-get update", "a-router"))
    assert result.returncode == 100 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("apt: apt-get update failed on a-router (exit 100): "
                               "E: Failed to fetch http://mirror/InRelease Could not connect / "
                               "E: Some index files failed to download.; ")
    # this machine's own dpkg is read for the state left (read only); either text is one of these
    assert lines[0].endswith(("the next run tries again", "(dpkg --configure -a)"))


def test_a_succeeding_apt_command_prints_nothing():
    result = run_sh(quiet("echo lots of progress; echo more >&2", "apt-get install x", "a-router"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_failure_without_error_lines_shows_apts_last_line():
    result = run_sh(quiet("sh -c 'echo first; echo Killed; exit 137'", "apt-get install x", "a-router"))
    assert result.returncode == 137
    assert "(exit 137): Killed; " in result.stderr


def test_apt_update_fails_on_any_index_it_cannot_fetch():
    assert "update --error-on=any" in apt_update("a-router")
