"""apt and dpkg under faults: the DpkgInterrupted fact's parser on dpkg's own output shapes, and
the one-line wrapper run for real by sh (a command that fails as apt does)."""

from __future__ import annotations

import subprocess

import pytest

from operations.facts._parsing import ParseError
from operations.facts.dpkg import DpkgState, dpkg_state_command, parse_dpkg_state
from operations.packages import apt_update, dpkg_recover, quiet


def test_parse_a_clean_dpkg():
    assert parse_dpkg_state("journal 0\n") == DpkgState()
    assert not DpkgState().interrupted


def test_parse_a_dpkg_killed_half_way():
    state = parse_dpkg_state("journal 3\npkg half-configured tailscale\npkg unpacked iptables:amd64\n"
                             "pkg half-configured broken\n")
    assert state.interrupted and state.locked_by is None
    assert state.unfinished == (("tailscale", "half-configured"), ("iptables", "unpacked"),
                                ("broken", "half-configured"))
    assert state.describe() == ("tailscale half-configured, iptables unpacked, broken half-configured, "
                                "journal of 3 entries")


def test_parse_a_live_lock_holder_and_ignore_removed_packages():
    state = parse_dpkg_state("journal 1\nlocked 4242\nlocked 4243\npkg config-files gone\n")
    assert state.locked_by == 4242 and state.journal == 1 and state.unfinished == ()


def test_parse_refuses_output_it_does_not_know():
    with pytest.raises(ParseError):
        parse_dpkg_state("dpkg: error: something\n")


def test_the_fact_reads_dpkgs_own_files(tmp_path):
    """The fact's shell run for real on a status file and journal as a killed dpkg leaves them,
    and on a lock held by a live process."""
    import fcntl

    status, updates, lock = tmp_path / "status", tmp_path / "updates", tmp_path / "lock-frontend"
    status.write_text("Package: tailscale\nStatus: install ok half-configured\nVersion: 1.100.0\n\n"
                      "Package: iptables\nStatus: install ok installed\n\n"
                      "Package: gone\nStatus: deinstall ok config-files\n\n"
                      "Package: iproute2\nStatus: install ok unpacked\n")
    updates.mkdir()
    (updates / "0000").write_text("")
    lock.touch()
    command = dpkg_state_command(str(status), str(updates), (str(lock),))
    read = parse_dpkg_state(run_sh(command).stdout)
    assert read == DpkgState(1, (("tailscale", "half-configured"), ("iproute2", "unpacked")), None)
    holder = subprocess.Popen(["python3", "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
                               str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert parse_dpkg_state(run_sh(command).stdout).locked_by == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert fcntl  # the lock is dpkg's kind: fcntl (POSIX) record locks, as /proc/locks lists them


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
