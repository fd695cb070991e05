"""Grants end to end on a fresh lab (real Headscale 0.29): an operator's grants-only policy.

The default `[tailnet] policy_syntax` (auto) writes the project's entries into the operator's
`grants`, adds no `acls` and leaves their text as it was; clients ping across and the check is
all ok. Switching to acls and back moves the block and then plans nothing. Policies in grants
that allow or block the sites: the check's verdict and real traffic (a ping and a TCP
connection) agree every time.
Tests run in order and build on each other (one lab).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from controlplane import ControlPlane, hujson, policy
from lab import drive
from tests.e2e.labs import booted

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OPERATOR = """// The operator's own policy, in grants (no acls anywhere).
{
  "grants": [
    // members may SSH to tagged machines
    {"src": ["autogroup:member"], "dst": ["autogroup:tagged"], "ip": ["tcp:22"]},
  ],
}
"""
OWN_GRANT = '{"src": ["autogroup:member"], "dst": ["autogroup:tagged"], "ip": ["tcp:22"]},'


@pytest.fixture(scope="module")
def lab_sites():
    from lab.topology import DEFAULT_PATH

    with booted(DEFAULT_PATH) as info:
        with cp_of(info.sites_file) as cp:  # the operator's policy, before this project ever ran
            assert cp.write_policy(OPERATOR, cp.read_policy())
        yield info.sites_file


def cp_of(sites: Path) -> AbstractContextManager[ControlPlane]:
    from controlplane import reach
    from sites import load_sites

    return reach(load_sites(sites))


def stored(sites: Path) -> str:
    with cp_of(sites) as cp:
        return cp.read_policy().text


def with_syntax(sites: Path, syntax: str) -> Path:
    """The lab's site file with `[tailnet] policy_syntax` set (beside it: relative paths hold)."""
    out = sites.with_name(f"sites-{syntax}.toml")
    text = sites.read_text()
    setting = f'[tailnet]\npolicy_syntax = "{syntax}"\n'
    out.write_text(re.sub(r"^\[tailnet\]\n", setting, text, count=1, flags=re.M))
    return out


def deploy(sites: Path) -> None:
    result = drive.pyinfra(sites)
    assert result.returncode == 0, drive.why_failed(result)


def run_check(sites: Path) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "check", "--sites", str(sites), "--json"],
                            cwd=REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return result.returncode, json.loads(result.stdout)


def policy_verdicts(sites: Path) -> dict[str, str]:
    _, report = run_check(sites)
    return {r["site"]: r["status"] for r in report["rows"] if r["step"] == "policy"}


def pings(src: str, dst: str) -> bool:
    return drive.ping(src, drive.client_address(dst), count=2, deadline=10).returncode == 0


# A TCP connect to a port nobody listens on: "refused" is the far client's own RST (the packet
# got through), a timeout is the tailnet's filter dropping it.
CONNECT = """import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()
    print("reached")
except ConnectionRefusedError:
    print("reached")
except OSError:
    print("blocked")
"""


def tcp_reaches(src: str, dst: str, port: int = 5999) -> bool:
    out = drive.in_host(src, sys.executable, "-c", CONNECT, drive.client_address(dst), str(port))
    return out.stdout.strip() == "reached"


def traffic_passes(src: str, dst: str) -> bool:
    """Every port as the check means it, by two probes: ICMP (a ping) and TCP to an arbitrary port.
    A ping alone proves little: Tailscale's packet filter lets an ICMP echo through to an address
    when any port of it is open (wgengine/filter: "If any port is open to an IP, allow ICMP")."""
    return pings(src, dst) and tcp_reaches(src, dst)


def test_default_deploy_writes_grants_beside_the_operators_and_no_acls(lab_sites):
    deploy(lab_sites)
    text = stored(lab_sites)
    assert "acls" not in hujson.loads(text)
    assert set(policy.managed(text)) == {"tagOwners", "autoApprovers", "grants"}
    for line in OPERATOR.splitlines():  # the operator's text, byte for byte
        assert line in text.splitlines(), line
    grants = hujson.loads(text)["grants"]
    assert grants[0] == json.loads(OWN_GRANT.rstrip(","))
    assert all(g["ip"] == ["*"] for g in grants[1:]) and len(grants) == 4  # a, b, the tailnet


def test_clients_ping_across_and_the_check_is_all_ok(lab_sites):
    drive.lab("renew", "a-client", "b-client")
    there = drive.ping("a-client", drive.client_address("b-client"), deadline=60)
    assert there.returncode == 0, there.stdout
    assert drive.ping("b-client", drive.client_address("a-client")).returncode == 0
    deadline = time.monotonic() + 60
    while True:  # netmaps, primary routes and online flags take a moment after a deploy
        rc, report = run_check(lab_sites)
        if rc == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert rc == 0, [r for r in report["rows"] if r["status"] != "ok"]
    assert {r["status"] for r in report["rows"]} == {"ok"}


def test_switch_to_acls_and_back_moves_the_block_then_plans_nothing(lab_sites):
    first = stored(lab_sites)
    acls = with_syntax(lab_sites, "acls")
    deploy(acls)
    text = stored(lab_sites)
    blocks = policy.managed(text)
    assert "acls" in blocks and "grants" not in blocks
    assert hujson.loads(text)["grants"] == [json.loads(OWN_GRANT.rstrip(","))]  # the operator's
    assert drive.planned_changes(acls) == {}
    deploy(lab_sites)  # the default again: back into the operator's grants
    assert stored(lab_sites) == first
    assert drive.planned_changes(lab_sites) == {}


def _our_grants_replaced(text: str, grants: list[dict]) -> str:
    """The policy with the project's grants block swapped for `grants` (the rest as it is)."""
    block = re.compile(r"^[ \t]*// BEGIN s2s-controlplane grants.*?// END s2s-controlplane grants\n",
                       re.M | re.S)
    assert block.search(text), text
    return block.sub("".join(f"    {json.dumps(g)},\n" for g in grants), text, count=1)


@pytest.mark.parametrize("grants, allowed", [
    ([], False),  # the operator's SSH grant alone
    ([{"src": ["*"], "dst": ["*"], "ip": ["*"]}], True),
    ([{"src": ["100.64.0.0/10"], "dst": ["100.64.0.0/10"], "ip": ["*"]}], False),
    ([{"src": ["*"], "dst": ["*"], "ip": ["tcp:443"]}], False),  # one port: pings pass, TCP not
    ([{"src": ["192.0.2.0/24", "172.16.100.0/24", "100.64.0.0/10"],
       "dst": ["192.0.2.0/24", "172.16.100.0/24", "100.64.0.0/10"], "ip": ["*"]}], True),
], ids=["own-grant-only", "star", "tailnet-range-only", "one-port", "cidrs"])
def test_the_checks_verdict_matches_real_traffic(lab_sites, grants, allowed):
    deployed = stored(lab_sites)
    with cp_of(lab_sites) as cp:
        base = cp.read_policy()
        assert cp.write_policy(_our_grants_replaced(base.text, grants), base)
    try:
        verdicts = policy_verdicts(lab_sites)
        assert set(verdicts.values()) == {"ok" if allowed else "broken"}, verdicts
        deadline = time.monotonic() + 30
        while True:  # the new filter reaches both routers within seconds
            there = traffic_passes("a-client", "b-client")
            back = traffic_passes("b-client", "a-client")
            if there is allowed and back is allowed or time.monotonic() > deadline:
                break
        assert (there, back) == (allowed, allowed)
        assert traffic_passes("a-client", "b-client") is allowed  # and it stays so
    finally:
        with cp_of(lab_sites) as cp:
            assert cp.write_policy(deployed, cp.read_policy())
    assert drive.planned_changes(lab_sites) == {}
