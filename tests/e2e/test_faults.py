"""Faults injected for real on one lab: each ends in one line per failure (no traceback), and the
next clean run converges, plans zero changes, keeps the user's own state (their Kea option and
reservation, their policy entry and comment), and the sites' clients reach each other again.

One lab boot for every fault (tests/e2e/labs.py); the tests build on each other in order: the
first deploy itself is the first fault (SIGKILLed at several points), the user's policy edit is
made once it has converged, and the change runs that follow each carry one more fault.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import failpoint
from lab import drive
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

SURVIVED: list[str] = []  # the faults injected and survived, for the module's last test to report
HAND_ADDED: list[bool] = []  # the user's policy entry is in (after the first deploy converged)
GATEWAYS = {"a-gw": "192.0.2", "b-gw": "172.16.100"}  # the sites' Kea hosts, their /24s
KEA_CONF = "/etc/kea/kea-dhcp4.conf"
KEA_SOCKET = "/run/kea/kea4-ctrl-socket"  # kea-dhcp4's control socket, which the CA forwards to
USER_OPTION = {"name": "domain-name-servers", "data": "{net}.53"}  # the user's own, in their subnet
USER_RESERVATION = {"hw-address": "02:00:00:00:00:99", "ip-address": "{net}.50",
                    "hostname": "printer"}
HAND_COMMENT = "// hand: the ops printer, kept by every deploy"
HAND_ENTRY = '"hosts": {"ops-printer": "192.0.2.50"},'
WAITING = "waiting for another deploy's policy write"  # what a deploy says at a taken policy lock
ROUTERS = ("a-router", "b-router")
USER_PREFS: list[bool] = []  # the user's own tailscale pref is set (after the first deploy converged)
USER_PREF = ("--exit-node-allow-lan-access=true", "ExitNodeAllowLANAccess")  # not one the project owns
# a-router's tailscaled start hangs: the package's postinst (`systemctl restart tailscaled`) then
# hangs, with tailscale half-configured, until the suite cuts dpkg off
HANG_DROPIN = "/etc/systemd/system/tailscaled.service.d/zz-fault-hang.conf"
EXTRA = ["198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24"]  # the change runs add these to site b
A_EXTRA = "198.18.9.0/24"  # and one to site a

ADD_USER_KEA = """
import json, sys
path, option, reservation = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
conf = json.load(open(path))
subnet = conf["Dhcp4"]["subnet4"][0]
subnet.setdefault("option-data", []).append(option)
subnet.setdefault("reservations", []).append(reservation)
json.dump(conf, open(path, "w"), indent=2)
"""


def _user(template: dict, net: str) -> dict:
    return {k: v.format(net=net) for k, v in template.items()}


@pytest.fixture(scope="module")
def sites() -> Iterator[Path]:
    """A fresh lab, nothing deployed yet; each site's Kea already holds the user's own option and
    reservation (the project must keep them)."""
    from lab.topology import DEFAULT_PATH

    with booted(DEFAULT_PATH) as info:
        for gw, net in GATEWAYS.items():
            option, reservation = _user(USER_OPTION, net), _user(USER_RESERVATION, net)
            drive.in_host(gw, "python3", "-c", ADD_USER_KEA, KEA_CONF, json.dumps(option),
                          json.dumps(reservation))
            drive.in_host(gw, "systemctl", "restart", "kea-dhcp4-server")
        yield info.sites_file


def red_lines(output: str, label: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(rf"\]\s+{label}: ", line)]


def policy_text() -> str:
    return drive.in_host("control", "headscale", "policy", "get").stdout


def add_hand_policy_entry() -> None:
    """The user's own entry and comment in the live policy (as `headscale policy set` would)."""
    text = policy_text()
    assert '"hosts"' not in text, text
    edited = text.replace("{", "{\n  " + HAND_COMMENT + "\n  " + HAND_ENTRY, 1)
    blob = base64.b64encode(edited.encode()).decode()
    drive.in_host("control", "sh", "-c", f"echo {blob} | base64 -d > /tmp/hand.hujson")
    drive.in_host("control", "headscale", "policy", "set", "-f", "/tmp/hand.hujson")
    HAND_ADDED.append(True)
    intact()


def intact() -> None:
    """The user's own Kea option and reservation (in the file Kea restarts from) and their policy
    entry and comment: each there exactly once."""
    for gw, net in GATEWAYS.items():
        conf = json.loads(drive.in_host(gw, "cat", KEA_CONF).stdout)
        subnet = next(s for s in conf["Dhcp4"]["subnet4"] if s["subnet"].startswith(net))
        options = [o for o in subnet.get("option-data", []) if o.get("name") == USER_OPTION["name"]
                   or o.get("code") == 6]
        assert len(options) == 1 and options[0]["data"] == f"{net}.53", (gw, subnet)
        reservations = [r for r in subnet.get("reservations", []) if r.get("hostname") == "printer"]
        assert len(reservations) == 1 and reservations[0]["ip-address"] == f"{net}.50", (gw, subnet)
    if HAND_ADDED:  # from the first fault's end on
        text = policy_text()
        assert text.count(HAND_COMMENT) == 1 and text.count(HAND_ENTRY) == 1, text
    if USER_PREFS:
        for router in ROUTERS:
            prefs = json.loads(drive.in_host(router, "tailscale", "debug", "prefs").stdout)
            assert prefs.get(USER_PREF[1]) is True, (router, prefs)


def add_user_prefs() -> None:
    """The user's own tailscale pref on both routers (`tailscale set`, a pref this project does
    not own): every deploy after keeps it, a cut-off `tailscale set` included."""
    for router in ROUTERS:
        drive.in_host(router, "tailscale", "set", USER_PREF[0])
    USER_PREFS.append(True)
    intact()


def pids(host: str, pattern: str) -> list[str]:
    """The pids of the lab host's processes whose command line matches `pattern` (pgrep -f)."""
    return drive.in_host(host, "pgrep", "-f", pattern, check=False).stdout.split()


def wait_pids(host: str, pattern: str, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while not (found := pids(host, pattern)):
        assert time.monotonic() < deadline, f"{host}: no process matching {pattern!r}"
        time.sleep(0.2)
    return found


def cut_off(host: str, pattern: str) -> None:
    """SIGKILL the lab host's processes matching `pattern`, by pid (as a power cut would end them)."""
    found = pids(host, pattern)
    if found:
        drive.in_host(host, "kill", "-9", *found, check=False)


def dpkg_left(host: str) -> str:
    """The router's dpkg as the deploy's own DpkgInterrupted fact reads it ('clean' or what is
    half-way)."""
    from operations.facts.dpkg import DpkgInterrupted, parse_dpkg_state

    out = drive.in_host(host, "sh", "-c", DpkgInterrupted().command()).stdout
    return parse_dpkg_state(out).describe()


def converges(sites: Path, renew: bool = False) -> None:
    """A clean run converges, a further run plans zero changes, the user's state is intact, the
    clients reach each other."""
    clean = drive.pyinfra(sites)
    assert clean.returncode == 0, drive.why_failed(clean)
    assert drive.planned_changes(sites) == {}
    intact()
    if renew:
        drive.lab("renew", "a-client", "b-client")  # the clients take new routes at their next bind
    there = drive.ping("a-client", drive.client_address("b-client"), deadline=60)
    assert there.returncode == 0, there.stdout
    back = drive.ping("b-client", drive.client_address("a-client"), deadline=30)
    assert back.returncode == 0, back.stdout


@contextmanager
def fault(name: str, inject: tuple[str, ...] = (), undo: tuple[str, ...] = ()) -> Iterator[None]:
    if inject:
        drive.in_host(*inject)
    try:
        yield
    finally:
        if undo:
            drive.in_host(*undo)
    SURVIVED.append(name)


def assert_one_line(result: subprocess.CompletedProcess, label: str, must: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "Traceback" not in out and "greenlet" not in out, out[-4000:]
    lines = red_lines(out, label)
    assert len(lines) == 1, lines or out[-3000:]
    assert must in lines[0], lines[0]
    return lines[0]


def kea_files() -> dict[str, str]:
    return {gw: drive.in_host(gw, "cat", KEA_CONF).stdout for gw in GATEWAYS}


def checked_under_fault(sites: Path, unknown: dict[tuple[str, str], str]) -> dict:
    """`python -m check` while the fault lasts: finishes in bounded time, changes no Kea file,
    exits 1, and reports each of `unknown` (site, step) as unknown with a reason containing the
    given text, never ok."""
    kea_before = kea_files()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "check", "--sites", str(sites), "--json"],
                            cwd=drive.REPO, capture_output=True, text=True, timeout=180)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert took < 90, took
    report = json.loads(result.stdout)
    rows = {(r["site"], r["step"]): r for r in report["rows"]}
    for key, reason in unknown.items():
        assert rows[key]["status"] == "unknown", rows[key]
        assert reason in json.dumps(rows[key]), rows[key]
    assert kea_files() == kea_before
    return report


def with_extra(sites: Path, count: int, on_a: bool = False) -> None:
    """Site b advertises the first `count` EXTRA prefixes too (a change run: the policy, b's join
    and site a's Kea options change); `on_a`: site a one more (a's join and b's Kea too)."""
    text = re.sub(r'\nroutes = \[[^\]]*\]\n', "\n", sites.read_text())
    if count:
        listed = ", ".join(f'"{p}"' for p in EXTRA[:count])
        text = text.replace('ssh = "b-router"\n', f'ssh = "b-router"\nroutes = [{listed}]\n', 1)
    if on_a:
        text = text.replace('ssh = "a-router"\n', f'ssh = "a-router"\nroutes = ["{A_EXTRA}"]\n', 1)
    assert text.count("routes = [") == bool(count) + on_a, text
    sites.write_text(text)


class Deploy:
    """A deploy run in the background, its output in files (read while it runs)."""

    def __init__(self, sites: Path, *, failpoints: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="s2s-fault-"))
        env = dict(os.environ, SITES=str(sites), PYTHONUNBUFFERED="1")
        if failpoints:
            env.update({failpoint.ENV: ",".join(failpoints), failpoint.DIR_ENV: str(self.dir)})
        self.out = (self.dir / "out").open("w")
        cmd = [drive.PYINFRA, "-y", "inventory.py", "deploy.py"]
        self.proc = subprocess.Popen(cmd, cwd=drive.REPO, env=env, stdout=self.out,
                                     stderr=subprocess.STDOUT)

    def output(self) -> str:
        return (self.dir / "out").read_text()

    def wait_for(self, what: str, reached: Callable[[], bool], timeout: float = 400) -> None:
        deadline = time.monotonic() + timeout
        while not reached():
            assert self.proc.poll() is None, f"ended before {what}:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"{what} not reached:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def at_operation(self, name: str) -> None:
        """Wait until pyinfra starts the operation `name` (its own progress line)."""
        started = re.compile(rf"Starting operation: .*{re.escape(name)}")
        self.wait_for(f"operation {name!r}", lambda: started.search(self.output()) is not None)

    def at_failpoint(self, name: str) -> None:
        reached = self.dir / f"{failpoint.file_name(name)}.reached"
        self.wait_for(f"failpoint {name}", reached.exists)

    def let_go(self, name: str) -> None:
        (self.dir / f"{failpoint.file_name(name)}.go").touch()

    def go_on(self, name: str) -> subprocess.CompletedProcess:
        self.let_go(name)
        return self.finish()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 600) -> subprocess.CompletedProcess:
        self.proc.wait(timeout=timeout)
        out = self.output()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, "")


def test_a_first_deploy_sigkilled_at_several_points_converges(sites):
    """Killed while dpkg configures Tailscale (a-router's dpkg cut off with it: half-configured;
    b-router's apt left running: the next run waits for its lock), with a-router's `tailscale up`
    cut off, and between Kea's config-set and config-write: each next run goes on from what the
    last one left; the last converges and a-router's dpkg is whole again."""
    for router, hang in (("a-router", 600), ("b-router", 30)):
        drive.in_host(router, "sh", "-c", f"mkdir -p {Path(HANG_DROPIN).parent} && printf "
                      f"'[Service]\\nExecStartPre=/bin/sleep {hang}\\n' > {HANG_DROPIN} && systemctl daemon-reload")
    install = Deploy(sites)
    for router in ROUTERS:
        wait_pids(router, "tailscale.postinst", timeout=400)  # dpkg is configuring tailscale
    install.kill()
    cut_off("a-router", "apt-get|dpkg|tailscale.postinst|systemctl restart")
    drive.in_host("a-router", "sh", "-c", f"rm -f {HANG_DROPIN}; systemctl daemon-reload; "
                  "systemctl stop tailscaled")
    drive.in_host("b-router", "sh", "-c", f"rm -f {HANG_DROPIN}; systemctl daemon-reload")
    assert "tailscale" in dpkg_left("a-router")  # half-configured (or unpacked): apt refuses now
    SURVIVED.append("first deploy SIGKILLed while dpkg configures tailscale, a-router's dpkg cut off")

    # b-router's dpkg still runs (its postinst waits out the 30 s start): the next run's apt waits
    # for its lock instead of failing, and does not `dpkg --configure -a` under a live dpkg
    assert pids("b-router", "tailscale.postinst"), "b-router's dpkg ended before the next run"
    join = Deploy(sites, failpoints=(failpoint.TAILSCALE_CLI,))  # a-router's `tailscale up` cut off
    join.at_failpoint(failpoint.TAILSCALE_CLI)  # after the install step on both routers
    assert dpkg_left("b-router") == "clean"
    SURVIVED.append("first deploy SIGKILLed while installing, b-router's dpkg still running at the next run")
    drive.in_host("a-router", "systemctl", "kill", "-s", "SIGSTOP", "tailscaled")
    join.let_go(failpoint.TAILSCALE_CLI)
    wait_pids("a-router", "tailscale up")
    join.kill()
    cut_off("a-router", "tailscale up")
    drive.in_host("a-router", "systemctl", "kill", "-s", "SIGCONT", "tailscaled")
    SURVIVED.append("first deploy SIGKILLed with a-router's tailscale up cut off")

    push = Deploy(sites, failpoints=(failpoint.KEA_AFTER_SET,))
    push.at_failpoint(failpoint.KEA_AFTER_SET)
    push.kill()
    SURVIVED.append("first deploy SIGKILLed between config-set and config-write")
    converges(sites, renew=True)
    for router in ROUTERS:
        assert dpkg_left(router) == "clean"
        status = drive.in_host(router, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "tailscale").stdout
        assert status.strip() == "ii", (router, status)
    add_hand_policy_entry()
    add_user_prefs()
    assert drive.planned_changes(sites) == {}  # the user's own policy entry and pref are not ours to change


def test_a_change_sigkilled_before_the_policy_write_converges(sites):
    with_extra(sites, 1)
    run = Deploy(sites, failpoints=(failpoint.POLICY_BEFORE_PUT,))
    run.at_failpoint(failpoint.POLICY_BEFORE_PUT)
    run.kill()
    SURVIVED.append("change SIGKILLed just before the policy write")
    converges(sites, renew=True)


def test_a_change_with_b_routers_tailscale_set_cut_off_converges(sites):
    """b-router's `tailscale set` (its new routes) started, then the deploy SIGKILLed and the
    command cut off while tailscaled had not answered yet: the next run converges and the user's
    own pref is kept."""
    with_extra(sites, 2)  # b-router only: `tailscale set --advertise-routes=...`
    run = Deploy(sites, failpoints=(failpoint.TAILSCALE_CLI,))
    run.at_failpoint(failpoint.TAILSCALE_CLI)
    drive.in_host("b-router", "systemctl", "kill", "-s", "SIGSTOP", "tailscaled")
    run.let_go(failpoint.TAILSCALE_CLI)
    wait_pids("b-router", "tailscale set")
    run.kill()
    cut_off("b-router", "tailscale set")
    drive.in_host("b-router", "systemctl", "kill", "-s", "SIGCONT", "tailscaled")
    SURVIVED.append("change SIGKILLed with b-router's tailscale set cut off")
    converges(sites, renew=True)


def test_a_router_stopped_by_hand_comes_back_with_the_users_prefs(sites):
    """`tailscale down` by hand on b-router: the deploy brings it up with a bare `tailscale up`
    (`up --reset` would put the user's own pref back to its default). Not a fault of the tally."""
    drive.in_host("b-router", "tailscale", "down")
    converges(sites)  # intact(): the user's pref is still set on both routers


def test_headscale_stopped_is_one_line_naming_the_site_files_url(sites):
    policy_before = policy_text()
    with fault("headscale stopped", ("control", "systemctl", "stop", "headscale"),
               ("control", "systemctl", "start", "headscale")):
        result = drive.pyinfra(sites)
        line = assert_one_line(result, "control plane",
                               "http://127.0.0.1:8080/api/v1/policy (through SSH host control)")
        assert "cannot reach the control server" in line and "nothing was changed" in line
        assert re.search(r"127\.0\.0\.1:(?!8080)\d+", line) is None  # no tunnel's local port
        assert "control: FAILED, left as it was" in result.stdout + result.stderr
        report = checked_under_fault(sites, {(site, "policy"): "cannot reach the control server"
                                             for site in ("a", "b")}
                                     | {(site, "routes"): "" for site in ("a", "b")})
        assert not any(r["status"] == "ok" for r in report["rows"] if r["step"] == "tailscaled")
    assert policy_text() == policy_before  # neither the deploy nor the check wrote it
    converges(sites)


def test_headscale_hung_longer_than_the_timeout_does_not_hang_the_deploy(sites):
    policy_before = policy_text()
    with fault("headscale SIGSTOPped", ("control", "systemctl", "kill", "-s", "SIGSTOP", "headscale"),
               ("control", "systemctl", "kill", "-s", "SIGCONT", "headscale")):
        started = time.monotonic()
        result = drive.pyinfra(sites, timeout=300)
        took = time.monotonic() - started
        assert_one_line(result, "control plane", "did not answer within 15s")
        assert took < 120, took
        report = checked_under_fault(sites, {(site, "policy"): "did not answer within"
                                             for site in ("a", "b")}
                                     | {(site, "routes"): "" for site in ("a", "b")})
        assert not any(r["status"] == "ok" for r in report["rows"] if r["step"] == "tailscaled")
    assert policy_text() == policy_before
    converges(sites)


def test_kea_control_agent_stopped_is_one_line_and_other_hosts_finish(sites):
    with fault("Kea CA stopped", ("b-gw", "systemctl", "stop", "kea-ctrl-agent"),
               ("b-gw", "systemctl", "start", "kea-ctrl-agent")):
        result = drive.pyinfra(sites)
        line = assert_one_line(result, "kea", "Kea at http://127.0.0.1:8000 via ssh b-gw is unreachable")
        assert "nothing was changed" in line
        out = result.stdout + result.stderr
        assert "b-gw: FAILED, left as it was" in out
        assert "a-gw: FAILED" not in out and "a-router: FAILED" not in out  # the other hosts finished
    converges(sites)


def test_the_package_mirror_down_is_one_line_naming_the_router(sites):
    """b-router's Tailscale source file went missing (the deploy must write it and run apt-get
    update) while the lab's package mirror is stopped: one line from apt, b-router failed with
    nothing half-way, every other host finishes; the mirror back, a clean run converges."""
    drive.in_host("b-router", "rm", "-f", "/etc/apt/sources.list.d/tailscale.sources")
    with fault("package mirror stopped", ("control", "systemctl", "stop", "lab-apt-repo"),
               ("control", "systemctl", "start", "lab-apt-repo")):
        result = drive.pyinfra(sites)
        line = assert_one_line(result, "apt", "apt: apt-get update failed on b-router (exit 100): E: ")
        assert "no package left half-way: the next run tries again" in line
        out = result.stdout + result.stderr
        assert "b-router: FAILED, left partially changed (failed at 'Install Tailscale" in out, out[-3000:]
        assert "a-router: FAILED" not in out and "b-gw: FAILED" not in out, out[-3000:]
    converges(sites)


def lost_connection(result: subprocess.CompletedProcess, router: str) -> None:
    """The run failed on `router` alone with the one `ssh:` line naming it as the site file does
    (not the lab's ProxyCommand), no traceback."""
    line = assert_one_line(result, "ssh", f"ssh: connection to {router} lost (")
    assert "its remaining steps did not run" in line
    out = result.stdout + result.stderr
    assert "socat" not in out and "ProxyCommandFailure" not in out, out[-3000:]
    assert f"{router}: FAILED" in out, out[-3000:]
    others = [h for h in (*ROUTERS, *GATEWAYS, "control") if h != router]
    assert not any(f"{h}: FAILED" in out for h in others), out[-3000:]


def test_b_routers_sshd_killed_mid_run_is_one_line_and_converges(sites):
    """The SSH server's process of the deploy's session on b-router killed just before b-router's
    `tailscale set` (its connection cut mid-run, the router up)."""
    with_extra(sites, 1)  # b-router only changes
    run = Deploy(sites, failpoints=(failpoint.TAILSCALE_CLI,))
    run.at_failpoint(failpoint.TAILSCALE_CLI)
    with fault("b-router's sshd session killed mid-run"):
        cut_off("b-router", "^sshd: [a-z]")  # the session's processes, not the listener
        result = run.go_on(failpoint.TAILSCALE_CLI)
        lost_connection(result, "b-router")
    converges(sites, renew=True)


def test_a_router_rebooting_mid_deploy_is_one_line_and_converges(sites):
    """a-router reboots (`python -m lab restart`: its kernel state reset too) just before its
    `tailscale set`."""
    with_extra(sites, 1, on_a=True)  # a-router only changes
    run = Deploy(sites, failpoints=(failpoint.TAILSCALE_CLI,))
    run.at_failpoint(failpoint.TAILSCALE_CLI)
    with fault("a-router rebooted mid-deploy"):
        drive.lab("restart", "a-router")
        result = run.go_on(failpoint.TAILSCALE_CLI)
        lost_connection(result, "a-router")
    converges(sites, renew=True)


def test_two_deploys_at_once_with_a_hand_edit_in_between_lose_nothing(sites):
    """Two deploys of one change started together; both plan from the policy before the user's
    edit, which lands while the first holds the policy lock (held here, so the edit is in between
    for certain); both then write in turn: the edit and one copy of our blocks stay."""
    from controlplane.lock import lock_key, policy_lock
    from sites import load_sites

    with_extra(sites, 3)  # a policy change for both to write
    extra_comment = "// hand: added while two deploys ran"
    with policy_lock(lock_key(load_sites(sites)), "the test"):
        runs = [Deploy(sites), Deploy(sites)]
        for run in runs:
            run.wait_for("the policy lock wait", lambda run=run: WAITING in run.output())
        text = policy_text()
        edited = text.replace(HAND_COMMENT, HAND_COMMENT + "\n  " + extra_comment, 1)
        blob = base64.b64encode(edited.encode()).decode()
        drive.in_host("control", "sh", "-c", f"echo {blob} | base64 -d > /tmp/hand2.hujson")
        drive.in_host("control", "headscale", "policy", "set", "-f", "/tmp/hand2.hujson")
    results = [run.finish() for run in runs]
    for result in results:
        assert "Traceback" not in result.stdout, result.stdout[-4000:]
        assert "greenlet" not in result.stdout, result.stdout[-4000:]
    assert 0 in [r.returncode for r in results], [r.stdout[-2000:] for r in results]
    text = policy_text()
    # one copy of the project's rules block, in whichever section policy_syntax = "auto" chose
    # (grants on this lab's Headscale 0.29, whose policy the deploy created)
    blocks = sum(text.count(f"BEGIN s2s-controlplane {section}") for section in ("acls", "grants"))
    assert text.count(extra_comment) == 1 and blocks == 1, text
    assert EXTRA[2] in text
    SURVIVED.append("two deploys at once with a hand edit of the policy in between")
    converges(sites, renew=True)


def wait_kea_answers(gw: str, timeout: float = 60) -> None:
    """Until kea-dhcp4 answers on its control socket again (the CA forwards there): `systemctl
    restart` returns before kea-dhcp4 opens it, and a config-write sent meanwhile fails on the CA
    instead (one line too, but not the window this fault is about)."""
    ask = ("import json, socket; s = socket.socket(socket.AF_UNIX); s.settimeout(5); "
           f"s.connect({KEA_SOCKET!r}); s.sendall(b'{{\"command\": \"version-get\"}}'); "
           "print(json.loads(s.recv(65536))['result'])")
    deadline = time.monotonic() + timeout
    while True:
        out = drive.in_host(gw, "python3", "-c", ask, check=False).stdout
        if out.strip() == "0":
            return
        assert time.monotonic() < deadline, f"{gw}: kea-dhcp4 not answering: {out}"
        time.sleep(0.5)


def test_kea_dhcp4_restarted_between_config_set_and_config_write_is_one_line(sites):
    with_extra(sites, 1)  # site a's Kea options change (b's extra prefixes: one fewer)
    run = Deploy(sites, failpoints=(failpoint.KEA_AFTER_SET,))
    run.at_failpoint(failpoint.KEA_AFTER_SET)
    with fault("kea-dhcp4 restarted between config-set and config-write"):
        drive.in_host("a-gw", "systemctl", "restart", "kea-dhcp4-server")
        wait_kea_answers("a-gw")  # restarted and back: config-write then reaches a Kea without them
        result = run.go_on(failpoint.KEA_AFTER_SET)
    line = assert_one_line(result, "kea", "via ssh a-gw")
    assert "does not show the pushed options" in line and "the next run pushes again" in line
    assert "a-gw: FAILED" in result.stdout
    converges(sites, renew=True)


def test_a_router_powered_off_mid_deploy_is_one_line_and_its_sites_routes_wait(sites):
    """a-router loses power before it re-advertises; site a's Kea must not hand out routes through
    it meanwhile (they would blackhole), site b's hosts finish; powered on, a clean run
    converges."""
    with_extra(sites, 2, on_a=True)  # both routers re-advertise, both sites' Kea options change
    # held at the policy write (the deploy's first step, before any router step): the power cut
    # then comes before a-router's own steps for certain
    run = Deploy(sites, failpoints=(failpoint.POLICY_BEFORE_PUT,))
    run.at_failpoint(failpoint.POLICY_BEFORE_PUT)
    with fault("a-router powered off mid-deploy"):
        drive.lab("poweroff", "--hard", "a-router")
        result = run.go_on(failpoint.POLICY_BEFORE_PUT)
        out = result.stdout
        assert result.returncode != 0, out[-4000:]
        assert "Traceback" not in out and "greenlet" not in out, out[-4000:]
        assert "a-router: FAILED" in out, out[-3000:]
        assert "b-router: FAILED" not in out and "b-gw: FAILED" not in out, out[-3000:]
        lost = red_lines(out, "ssh")  # pyinfra's own line named the ProxyCommand
        assert len(lost) == 1 and "ssh: connection to a-router lost (" in lost[0], out[-3000:]
        assert "socat" not in out and "ProxyCommandFailure" not in out, out[-3000:]
        held = [line for line in red_lines(out, "kea") if "routes not pushed" in line]
        assert len(held) == 1 and "site a" in held[0] and "a-router failed" in held[0], out[-3000:]
        report = checked_under_fault(sites, {})
        site_a = {r["step"]: r["status"] for r in report["rows"] if r["site"] == "a"}
        needs_a_router = ("ssh", "tailscaled", "routes", "dhcp", "tunnel")
        assert all(site_a[step] != "ok" for step in needs_a_router), site_a
        drive.lab("poweron", "a-router")
    converges(sites, renew=True)


def test_faults_injected_and_survived(sites):
    print(f"faults injected: {len(SURVIVED)}, survived: {len(SURVIVED)} ({'; '.join(SURVIVED)})")
    assert len(SURVIVED) == 15, SURVIVED
