"""HA router operations (operations/ha.py) from canned output, and the VRRP check script run for real."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork
from ops_harness import FakeHost, data, run_op, texts
from pyinfra.api import OperationError

from operations import ha
from operations.facts._parsing import ParseError
from operations.facts.addresses import InterfaceOfAddress, interface_of, parse_ip_addr_json
from operations.facts.ha import (
    DebPackageVersion,
    HaLeftoversFact,
    PolicyRule,
    PolicyRules,
    parse_dpkg_status,
    parse_ha_leftovers,
    parse_ip_rules,
)
from operations.facts.sysctl import SysctlValues
from sites.model import Router, Site

R1 = Router(IPAddress("192.0.2.2"), "a-router")
R2 = Router(IPAddress("192.0.2.4"), "a-router2")
SITE = Site(
    "a",
    IPNetwork("192.0.2.0/24"),
    routers=(R1, R2),
    next_hop=IPAddress("192.0.2.3"),
    gateway=IPAddress("192.0.2.1"),
    vip=IPAddress("192.0.2.3"),
    vrid=7,
)
INSTALLED = "install ok installed\t1:2.2.7-1+b2\n"


# ---------------------------------------------------------------- parsers


def test_parsers_on_real_output():
    addresses = parse_ip_addr_json(data("ip-j-4-addr-ha-router.json"))  # iproute2 6.1 (Debian 12)
    assert addresses == {"lo": ["127.0.0.1"], "eth1": ["198.51.100.2"], "eth0": ["192.0.2.2", "192.0.2.3"]}
    assert interface_of(addresses, "192.0.2.2") == "eth0"
    assert interface_of(addresses, "198.51.100.2") == "eth1"
    assert interface_of(addresses, "192.0.2.9") is None
    rules = parse_ip_rules(data("ip-j-4-rule-tailscale.json"))  # iproute2 6.1 (Debian 12)
    assert [r.priority for r in rules] == [0, 5210, 5230, 5250, 5270, 32766, 32767]
    assert rules[4] == PolicyRule(5270, table="52")
    assert rules[1] == PolicyRule(5210, fwmark="0x80000/0xff0000", table="main")
    assert rules[3].action == "unreachable" and rules[3].table is None
    assert parse_dpkg_status(INSTALLED) == "1:2.2.7-1+b2"
    assert parse_dpkg_status("deinstall ok config-files\t1:2.2.7-1+b2\n") is None
    assert parse_dpkg_status("") is None


@pytest.mark.parametrize(
    "parser,text",
    [
        (parse_ip_addr_json, "garbage line"),
        (parse_ip_addr_json, '{"ifname": "x"}'),
        (parse_ip_rules, "5270:\tfrom all lookup 52"),
        (parse_ip_rules, '[{"src": "all"}]'),
        (parse_dpkg_status, "install ok installed"),
    ],
)
def test_parsers_refuse_what_they_do_not_know(parser, text):
    with pytest.raises(ParseError):
        parser(text)


# ---------------------------------------------------------------- own_lan_first + loose_rp_filter


def with_rules(*extra: dict) -> str:
    """Tailscale's rules (real `ip -j rule` output) plus `extra` rules, in priority order."""
    rules = json.loads(data("ip-j-4-rule-tailscale.json")) + list(extra)
    return json.dumps(sorted(rules, key=lambda r: r["priority"]))


def own_lan(dst: str, length: int | None = 24) -> dict:
    """An own-LAN rule as `ip -j rule` shows it (a /32 has no dstlen)."""
    return {
        "priority": 5260,
        "src": "all",
        "dst": dst,
        **({"dstlen": length} if length else {}),
        "table": "main",
        "suppress_prefixlen": 0,
    }


def protect_host(rules: str | None = None) -> FakeHost:
    return FakeHost(
        outputs={
            PolicyRules: rules if rules is not None else data("ip-j-4-rule-tailscale.json"),
            SysctlValues: data("sysctl-rp-filter-strict.txt"),
        }
    )


def test_own_lan_rules_fresh_then_converged():
    host = protect_host()
    cmds = run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24", "203.0.113.0/24"])
    t = texts(cmds)
    assert t[1] == f"upload {ha.RULES_SCRIPT}" and f"upload {ha.RULES_UNIT}" in t  # the file first (--dry diff)
    assert t[-5:-3] == [
        "ip -4 rule add priority 5260 to 192.0.2.0/24 lookup main suppress_prefixlength 0",
        "ip -4 rule add priority 5260 to 203.0.113.0/24 lookup main suppress_prefixlength 0",
    ]
    assert t[-2:] == [f"systemctl start {ha.RULES_UNIT_NAME}", f"systemctl enable {ha.RULES_UNIT_NAME}"]
    host.apply(cmds)
    host.outputs[PolicyRules] = with_rules(own_lan("192.0.2.0"), own_lan("203.0.113.0"))
    assert run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24", "203.0.113.0/24"]) == []
    # a prefix the site no longer has is removed; a foreign rule at the same priority is left alone
    host.outputs[PolicyRules] = with_rules(
        own_lan("192.0.2.0"),
        own_lan("203.0.113.0"),
        {"priority": 5260, "src": "10.9.9.9", "table": "100"},
        {"priority": 5260, "src": "all", "dst": "10.8.0.0", "dstlen": 16, "table": "100"},
    )
    t = [c for c in texts(run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24"])) if c.startswith("ip ")]
    assert t == ["ip -4 rule del priority 5260 from all to 203.0.113.0/24 lookup main suppress_prefixlength 0"]
    # a /32 (no dstlen in the JSON) is the same rule as the one the deploy adds for it
    host.outputs[PolicyRules] = with_rules(own_lan("192.0.2.0"), own_lan("198.51.100.7", None))
    t = texts(run_op(ha.own_lan_first, host, prefixes=["192.0.2.0/24", "198.51.100.7/32"]))
    assert not [c for c in t if c.startswith("ip ")]  # (the script is rewritten for the new prefix list)


def test_rules_script_adds_only_missing_rules():
    script = ha.rules_script(["192.0.2.0/24"])
    assert "ip -4 rule show priority 5260 to 192.0.2.0/24 | grep -q . ||" in script
    assert script.startswith("#!/bin/sh\n# Managed by s2s")


def test_loose_rp_filter_fresh_then_converged():
    host = protect_host()
    cmds = run_op(ha.loose_rp_filter, host)
    assert texts(cmds)[-1] == f"sysctl -p {ha.RP_FILE}"
    host.apply(cmds)
    assert b"net.ipv4.conf.all.rp_filter = 2" in host.fs[ha.RP_FILE]
    host.outputs[SysctlValues] = "net.ipv4.conf.all.rp_filter = 2\n"
    assert run_op(ha.loose_rp_filter, host) == []
    host.outputs[SysctlValues] = "net.ipv4.conf.all.rp_filter = 1\n"  # someone set it strict again
    assert texts(run_op(ha.loose_rp_filter, host)) == [f"sysctl -p {ha.RP_FILE}"]


# ---------------------------------------------------------------- vrrp


def vrrp_host(installed: str = INSTALLED) -> FakeHost:
    return FakeHost(outputs={DebPackageVersion: installed, InterfaceOfAddress: data("ip-j-4-addr-ha-router.json")})


def test_vrrp_installs_configures_starts_then_converged():
    host = vrrp_host(installed="")
    cmds = run_op(ha.vrrp, host, site=SITE, router=R1)
    t = texts(cmds)
    assert t[1] == f"upload {ha.CONF}" and f"upload {ha.CHECK}" in t  # the config first (--dry diff)
    assert any("apt-get" in c and "install --no-install-recommends keepalived" in c for c in t), t
    assert t[-2:] == ["systemctl start keepalived.service", "systemctl enable keepalived.service"]
    host.apply(cmds)
    host.outputs[DebPackageVersion] = INSTALLED
    assert run_op(ha.vrrp, host, site=SITE, router=R1) == []
    conf = host.fs[ha.CONF].decode()
    assert "interface eth0" in conf and "virtual_router_id 7" in conf and "priority 100" in conf
    assert "priority 90" in ha.keepalived_conf(SITE, R2, "eth0")
    assert "192.0.2.3/24 dev eth0" in conf and "primary 192.0.2.0/24" in conf and "weight 50" in conf


def test_vrrp_config_change_reloads_the_running_daemon():
    host = vrrp_host()
    host.apply(run_op(ha.vrrp, host, site=SITE, router=R1))
    moved = Site(**{**SITE.__dict__, "vrid": 8})
    t = texts(run_op(ha.vrrp, host, site=moved, router=R1))
    assert t == [
        f"upload {ha.CONF}",
        f"chmod 644 {ha.CONF}",
        f"chown root:root {ha.CONF}",
        "systemctl reload keepalived.service",
    ]


def test_vrrp_without_the_router_address_on_any_interface_changes_nothing():
    host = vrrp_host()
    with pytest.raises(OperationError, match="192.0.2.9"):
        run_op(ha.vrrp, host, site=SITE, router=Router(IPAddress("192.0.2.9"), "x"))


def test_priorities_leave_the_primary_weight_in_charge():
    """Any router that is the tailnet's primary outranks every other router (base gaps < weight)."""
    lowest_primary = ha.BASE_PRIORITY - 10 * (len(SITE.routers) - 1) + ha.PRIMARY_WEIGHT
    assert lowest_primary > ha.BASE_PRIORITY


SITE6 = dataclasses.replace(SITE, subnet6=IPNetwork("2001:db8:a::/64"), vip6=IPAddress("fe80::200:5eff:fe00:207"))


def test_a_dual_stack_site_gets_an_ipv6_instance_beside_the_ipv4_one():
    """The static hosts' IPv6 next hop: a second instance, link-local vip6 only, same vrid, priority
    and checks as the IPv4 one (so the same router wins both); none on an IPv4-only site."""
    text = ha.keepalived_conf(SITE6, R2, "eth0")
    v4, v6 = text.split("vrrp_instance s2s_a {")[1].split("# the static hosts' IPv6 next hop")
    assert "fe80::200:5eff:fe00:207/64 dev eth0 noprefixroute" in v6 and "192.0.2.3/" not in v6
    same = ("virtual_router_id 7", "priority 90", "s2s_a_running", "s2s_a_primary")
    assert all(line in v4 and line in v6 for line in same)
    assert "fe80::" not in v4 and "notify_master" in v4 and "notify_master" not in v6  # radvd stays on the IPv4 one
    assert "vrrp_instance s2s_a_6" not in ha.keepalived_conf(SITE, R2, "eth0")


@pytest.mark.parametrize("site", [SITE, SITE6], ids=["ipv4", "dual-stack"])
def test_keepalived_accepts_the_config(tmp_path, site):
    """keepalived's own config check on the rendered file, with Debian's keepalived from the lab image."""
    from lab.image import image_root

    root = image_root()
    if not (root / "usr/sbin/keepalived").exists():
        pytest.skip(f"the lab image {root} is not built (python -m lab.image)")
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    conf = root / "tmp" / f"s2s-test-{os.getpid()}.conf"
    # the image is shared and read-only to tests: the check script is not in it, /bin/true stands in
    text = ha.keepalived_conf(site, R1, "eth0").replace(ha.CHECK, "/bin/true")
    conf.write_text(text)
    try:
        run = subprocess.run(
            ["chroot", str(root), "keepalived", "--config-test", "-f", f"/tmp/{conf.name}"],
            capture_output=True,
            text=True,
        )
        bad = text.replace("advert_int 1", "advert_int one")
        conf.write_text(bad)
        broken = subprocess.run(
            ["chroot", str(root), "keepalived", "--config-test", "-f", f"/tmp/{conf.name}"],
            capture_output=True,
            text=True,
        )
    finally:
        conf.unlink()
    assert run.returncode == 0, run.stdout + run.stderr
    assert broken.returncode != 0  # the check can fail: it is not a rubber stamp


# ---------------------------------------------------------------- the check script, run for real

STATUS = """{
  "Version": "1.100.0",
  "BackendState": "%s",
  "Self": {
    "HostName": "a-router",
    "Online": true,
    "PrimaryRoutes": [
      %s
    ]
  },
  "Health": [],
  %s
  "User": {}
}"""


def run_check(
    tmp_path: Path, state: str, mine: list[str], other_primary: list[str] | None, *args: str, fail: bool = False
) -> int:
    """The script against a fake `tailscale status --json` (other_primary: the other router's PrimaryRoutes;
    None: no peers at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "tailscale"
    quoted = lambda prefixes: ",\n      ".join(f'"{p}"' for p in prefixes)  # noqa: E731
    peers = (
        ""
        if other_primary is None
        else (
            '"Peer": {"nodekey:1": {"HostName": "b-router", "PrimaryRoutes": '
            '["172.16.100.0/24"]}, "nodekey:2": {"HostName": "a-router2", '
            f'"PrimaryRoutes": [{quoted(other_primary)}]}}}},'
        )
    )
    body = STATUS % (state, quoted(mine), peers)
    fake.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        [ "$*" = "status --json" ] || exit 3
        {'exit 1' if fail else ''}
        cat <<'JSON'
        """)
        + body
        + "\nJSON\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    script = tmp_path / "check"
    script.write_text(ha.check_script())
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    return subprocess.run(["sh", str(script), *args], env=env).returncode


def test_check_script_running(tmp_path):
    assert run_check(tmp_path, "Running", [], [], "running") == 0
    assert run_check(tmp_path, "NeedsLogin", [], [], "running") == 1
    assert run_check(tmp_path, "Running", [], [], "running", fail=True) == 1  # tailscaled down


def test_check_script_primary(tmp_path):
    p = "192.0.2.0/24"
    assert run_check(tmp_path, "Running", [p], [], "primary", p) == 0
    assert run_check(tmp_path, "Running", [], [], "primary", p) == 0  # own Self view stale: no peer is primary
    assert run_check(tmp_path, "Running", [], None, "primary", p) == 0  # no peers at all
    assert run_check(tmp_path, "Running", [], [p], "primary", p) == 1  # the other router is primary
    assert run_check(tmp_path, "Running", [], ["203.0.113.0/24", p], "primary", p) == 1
    assert run_check(tmp_path, "Running", [], ["192.0.2.0/25"], "primary", p) == 0  # another prefix
    assert run_check(tmp_path, "Stopped", [p], [], "primary", p) == 1


# ---------------------------------------------------------------- no_longer_ha (a site back to one router)

LEFTOVERS = (
    f"file {ha.CHECK}\nfile {ha.RULES_SCRIPT}\nfile {ha.RULES_UNIT}\nfile {ha.RP_FILE}\nconf\n"
    "rules " + json.dumps([own_lan("192.0.2.0"), {"priority": 5260, "src": "10.9.9.9", "table": "100"}]) + "\n"
    "rules " + json.dumps([{"priority": 5260, "src": "all", "dst": "2001:db8:a::", "dstlen": 64,
                            "table": "main", "suppress_prefixlen": 0}]) + "\n"
)


def test_leftovers_parsed_and_the_command_is_cheap():
    left = parse_ha_leftovers(LEFTOVERS, 5260)
    assert left.files == (ha.CHECK, ha.RULES_SCRIPT, ha.RULES_UNIT, ha.RP_FILE) and left.keepalived_ours
    assert [(r.src, r.dst, r.table) for r in left.rules] == [
        ("all", "192.0.2.0/24", "main"),
        ("10.9.9.9/32", None, "100"),
        ("all", "2001:db8:a::/64", "main"),
    ]
    assert ha.own_lan_prefixes(left.rules) == ["192.0.2.0/24", "2001:db8:a::/64"]
    assert not parse_ha_leftovers("", 5260).any
    with pytest.raises(ParseError):
        parse_ha_leftovers("something else", 5260)
    command = HaLeftoversFact().command(paths=list(ha.LEFTOVER_FILES), conf=ha.CONF, priority=5260)
    assert "systemctl" not in command and "stat" not in command  # shell tests, one head, one ip rule


def test_a_router_without_ha_leftovers_runs_nothing():
    host = FakeHost(outputs={HaLeftoversFact: ""})
    assert run_op(ha.no_longer_ha, host, prune=True) == []
    assert host.noops == ["no HA setup of ours on this router"]


def test_leftovers_are_only_reported_until_the_removal_run_then_taken_down():
    host = FakeHost(outputs={HaLeftoversFact: LEFTOVERS})
    assert run_op(ha.no_longer_ha, host, prune_command="pyinfra ... --data prune=true") == []
    assert host.noops == ["HA leftovers kept until the removal run"]
    # the removal run that takes the other router out keeps it too (clients' leases name the vip)
    assert run_op(ha.no_longer_ha, host, prune=True, other_router_removed_now=True) == []
    assert host.noops[-1] == "HA leftovers kept until a later removal run"
    t = texts(run_op(ha.no_longer_ha, host, prune=True))
    assert t[:3] == [
        f"systemctl stop {ha.KEEPALIVED_UNIT}",
        f"systemctl disable {ha.KEEPALIVED_UNIT}",
        f"systemctl disable --now {ha.RULES_UNIT_NAME}",
    ]
    assert "ip -4 rule del priority 5260 from all to 192.0.2.0/24 lookup main suppress_prefixlength 0" in t
    assert "ip -6 rule del priority 5260 from all to 2001:db8:a::/64 lookup main suppress_prefixlength 0" in t
    assert not any("10.9.9.9" in c for c in t)  # not a rule of ours
    assert f"rm -f {ha.CHECK} {ha.RULES_SCRIPT} {ha.RULES_UNIT} {ha.RP_FILE} {ha.CONF}" in t
    assert t[-1] == "systemctl daemon-reload"
    # keepalived.conf without our marker is someone else's: not stopped, not removed
    host.outputs[HaLeftoversFact] = f"file {ha.RP_FILE}\n"
    assert texts(run_op(ha.no_longer_ha, host, prune=True)) == [f"rm -f {ha.RP_FILE}"]
