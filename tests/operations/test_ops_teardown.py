"""The removed-router operation and the project-units fact, fed canned output (pyinfra's test style)."""

from __future__ import annotations

import json

import pytest
from ops_harness import MISSING, FakeHost, data, run_op, texts
from pyinfra.api.exceptions import FactProcessError

from operations import facts, gro, ha, mss, teardown
from operations.facts.ha import ManagedByUs, PolicyRules
from operations.facts.systemd import ProjectUnits, ProjectUnitState, parse_project_units
from operations.forwarding import SYSCTL_FILE


def mss_key(version: int):
    return (
        facts.MssClampRules,
        tuple(sorted((k, repr(v)) for k, v in {"interface": "tailscale0", "version": version}.items())),
    )


def deployed_router() -> FakeHost:
    """A router as the deploy leaves it (the units' output captured on the lab's c-router)."""
    return FakeHost(
        outputs={
            facts.TailscaleStatus: data("ts-status-running.derived.json"),
            ProjectUnitState: data("s2s-units-router.txt"),
            mss_key(4): data("iptables-save-mangle-clamp-both.txt"),
            mss_key(6): data("ip6tables-save-mangle-out-only.txt"),
            ManagedByUs: "",
            PolicyRules: data("ip-j-4-rule-tailscale.json"),
        },
        files={
            SYSCTL_FILE: b"x",
            mss.SCRIPT: b"x",
            mss.UNIT: b"x",
            gro.UNIT: b"x",
            "/etc/sysctl.d/99-someone-else.conf": b"keep",
        },
    )


def clean_router() -> FakeHost:
    return FakeHost(
        outputs={
            facts.TailscaleStatus: data("ts-status-needslogin.json"),
            ProjectUnitState: "--s2s-unit-files--\n",
            mss_key(4): data("iptables-save-mangle-empty.txt"),
            mss_key(6): data("iptables-save-mangle-empty.txt"),
            ManagedByUs: "",
            PolicyRules: data("ip-j-4-rule-tailscale.json"),
        }
    )


def test_units_fact_parses_the_lab_routers_output():
    got = parse_project_units(data("s2s-units-router.txt"))
    assert got == ProjectUnits(
        active=("s2s-mss-clamp.service", "s2s-udp-gro@eth1.service"),
        enabled=("s2s-mss-clamp.service", "s2s-udp-gro@eth1.service"),
    )
    # stopped units are loaded but not active; nothing enabled
    assert parse_project_units("s2s-x.service loaded inactive dead X\n--s2s-unit-files--\n") == ProjectUnits()
    assert "'s2s-*'" in ProjectUnitState().command()


@pytest.mark.parametrize(
    "bad",
    [
        "no separator here\n",
        "other.service loaded active running X\n--s2s-unit-files--\n",
        "--s2s-unit-files--\n/etc/systemd/system/s2s-x.service\n",
    ],
)
def test_units_fact_refuses_what_it_does_not_know(bad):
    with pytest.raises(FactProcessError):
        FakeHost(outputs={ProjectUnitState: bad}).get_fact(ProjectUnitState)


def test_removal_logs_out_stops_disables_and_deletes_only_the_projects_things():
    cmds = texts(run_op(teardown.removed, deployed_router()))
    assert cmds[0] == "tailscale logout"
    assert cmds[1:5] == [
        "systemctl stop s2s-mss-clamp.service",
        "systemctl stop s2s-udp-gro@eth1.service",
        "systemctl disable s2s-mss-clamp.service",
        "systemctl disable s2s-udp-gro@eth1.service",
    ]
    assert [c for c in cmds if " -D FORWARD " in c] == [
        "iptables -t mangle -D FORWARD -o tailscale0 " + mss.RULE,
        "iptables -t mangle -D FORWARD -i tailscale0 " + mss.RULE,
        "ip6tables -t mangle -D FORWARD -o tailscale0 " + mss.RULE,  # only the rule that is there
    ]
    rm = [c for c in cmds if c.startswith("rm ")]
    assert rm == [f"rm -f {SYSCTL_FILE} {mss.SCRIPT} {mss.UNIT} {gro.UNIT}"]
    assert "someone-else" not in " ".join(cmds)
    assert not any("apt" in c or "keyring" in c or "purge" in c for c in cmds)  # Tailscale stays installed
    assert cmds[-1] == "systemctl daemon-reload"


def test_second_removal_changes_nothing():
    host = clean_router()
    assert run_op(teardown.removed, host) == []
    assert host.noops == ["nothing of the site-to-site setup is left on this host"]


def test_removal_without_tailscale_or_systemctl_installed():
    host = FakeHost(
        outputs={
            facts.TailscaleStatus: MISSING,
            ProjectUnitState: MISSING,
            mss_key(4): MISSING,
            mss_key(6): MISSING,
            ManagedByUs: "",
            PolicyRules: MISSING,
        },
        files={SYSCTL_FILE: b"x"},
    )
    assert texts(run_op(teardown.removed, host)) == [f"rm -f {SYSCTL_FILE}"]


def test_logout_can_be_left_out():
    assert "tailscale logout" not in texts(run_op(teardown.removed, deployed_router(), logout=False))


def test_a_host_that_is_a_declared_routers_node_is_not_touched():
    """The same machine under a new ssh target: its tailnet address is a declared router's."""
    from pyinfra.api import OperationError

    renamed = deployed_router()
    assert run_op(teardown.removed, renamed, declared_addresses=["100.64.0.2", "100.64.0.1"]) == []
    assert renamed.noops == ["a declared router under an old name: nothing removed"]
    assert any("100.64.0.1 of a router the site file still declares" in line for line in renamed.logs)
    with pytest.raises(OperationError, match="cannot read the declared routers"):
        run_op(teardown.removed, deployed_router(), declared_addresses=None)
    assert (
        texts(run_op(teardown.removed, deployed_router(), declared_addresses=["100.64.0.2"]))[0] == "tailscale logout"
    )


def test_removal_of_an_ha_router_stops_keepalived_and_deletes_the_ha_files():
    host = deployed_router()
    for path in (ha.CHECK, ha.RULES_SCRIPT, ha.RULES_UNIT, ha.RP_FILE):
        host.fs[path] = b"x"
    host.outputs[ManagedByUs] = "# Managed by s2s (operations/ha.py): the LAN next hop 192.0.2.3 of site a.\n"
    cmds = texts(run_op(teardown.removed, host))
    assert cmds[1:3] == ["systemctl stop keepalived.service", "systemctl disable keepalived.service"]
    rm = next(c for c in cmds if c.startswith("rm -f "))
    for path in (ha.CHECK, ha.RULES_SCRIPT, ha.RULES_UNIT, ha.RP_FILE, ha.CONF):
        assert path in rm


def test_removal_leaves_a_keepalived_config_that_is_not_ours():
    host = deployed_router()
    host.outputs[ManagedByUs] = "! Configuration File for keepalived (the admin's)\n"
    cmds = texts(run_op(teardown.removed, host))
    assert not any("keepalived" in c for c in cmds)


OWN_LAN = {"priority": 5260, "src": "all", "dst": "192.0.2.0", "dstlen": 24, "table": "main", "suppress_prefixlen": 0}
FOREIGN = {"priority": 5260, "src": "10.9.9.9", "table": "100"}


def ha_rules(*extra: dict) -> str:
    """`ip -j -4 rule show` on an HA router: Tailscale's rules plus `extra` (own-LAN, foreign)."""
    return json.dumps(sorted(json.loads(data("ip-j-4-rule-tailscale.json")) + list(extra), key=lambda r: r["priority"]))


def test_removal_of_an_ha_router_deletes_only_the_live_own_lan_rules():
    host = deployed_router()
    host.outputs[PolicyRules] = ha_rules(OWN_LAN, FOREIGN)
    cmds = texts(run_op(teardown.removed, host))
    assert [c for c in cmds if c.startswith("ip -4 rule")] == [
        "ip -4 rule del priority 5260 from all to 192.0.2.0/24 lookup main suppress_prefixlength 0"
    ]
    assert "10.9.9.9" not in " ".join(cmds)  # someone else's rule at the same priority stays
    # once they are gone (the foreign rule still there) a re-run deletes nothing
    done = clean_router()
    done.outputs[PolicyRules] = ha_rules(FOREIGN)
    assert run_op(teardown.removed, done) == []
