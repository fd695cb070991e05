"""Facts: commands they run, canned real output through process(), FactProcessError on bad output."""

from __future__ import annotations

import pytest
from ops_harness import MISSING, FakeHost, data
from pyinfra.api.exceptions import FactProcessError

from operations import facts
from operations.facts import sysctl


def fact_value(cls, output, **kwargs):
    return FakeHost(outputs={cls: output}).get_fact(cls, **kwargs)


def test_tailscale_prefs_fact():
    assert "debug prefs" in facts.TailscalePrefs().command()
    assert "--socket=/tmp/x" in facts.TailscalePrefs().command(socket="/tmp/x")
    p = fact_value(facts.TailscalePrefs, data("ts-prefs-joined.json"))
    assert isinstance(p, facts.LivePrefs) and p.no_snat
    # tailscaled down: the command prints nothing (|| true), pyinfra returns the default
    assert fact_value(facts.TailscalePrefs, "") is None
    assert fact_value(facts.TailscalePrefs, MISSING) is None
    with pytest.raises(FactProcessError):
        fact_value(facts.TailscalePrefs, "tailscaled is not running\n")


def test_tailscale_status_fact():
    s = fact_value(facts.TailscaleStatus, data("ts-status-running.derived.json"))
    assert s.backend_state == "Running"
    with pytest.raises(FactProcessError):
        fact_value(facts.TailscaleStatus, '{"Self": {}}')


@pytest.mark.parametrize("has_flag", [True, False])
def test_tailscale_status_reads_this_node_only_and_falls_back(tmp_path, has_flag):
    """The command asks for no peers (its output would grow with the tailnet); a CLI without
    --peers still answers through the plain form."""
    import subprocess

    fake = tmp_path / "tailscale"
    full = data("ts-status-running.derived.json")
    (tmp_path / "status.json").write_text(full)
    refuse = "" if has_flag else '[ "$3" = "--peers=false" ] && { echo "flag provided but not defined" >&2; exit 2; }'
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n{refuse}\ncat {tmp_path}/status.json\n')
    fake.chmod(0o755)
    command = facts.TailscaleStatus().command()
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == (["status --json --peers=false"] if has_flag else ["status --json --peers=false", "status --json"])
    assert fact_value(facts.TailscaleStatus, out) == fact_value(facts.TailscaleStatus, full)


def test_mss_fact_uses_interface_argument():
    assert facts.MssClampRules().command(version=6) == "ip6tables-save -t mangle"
    got = fact_value(
        facts.MssClampRules, data("iptables-save-mangle-clamp-both.txt"), interface="tailscale0", version=4
    )
    assert got.complete
    assert not fact_value(facts.MssClampRules, data("iptables-save-mangle-clamp-both.txt"), interface="ts1").inbound
    with pytest.raises(FactProcessError):
        fact_value(facts.MssClampRules, data("iptables-save-mangle-nft-incompatible.txt"))
    with pytest.raises(ValueError):
        facts.MssClampRules().command(version=5)


def test_other_facts():
    assert fact_value(facts.ForwardFilter, data("iptables-save-filter-drop-ts-forward.txt")).blocks
    gro = fact_value(facts.UdpGroForwarding, data("ethtool-k-veth.txt"), interface="s2s-op-v0")
    assert gro.interface == "s2s-op-v0" and gro.supported and not gro.forwarding
    assert fact_value(facts.UdpGroForwarding, "", interface="nope") is None
    assert fact_value(facts.FirewallFrontends, "ufw=yes\nfirewalld=\n").ufw
    assert fact_value(facts.ForwardingState, "net.ipv4.ip_forward = 1\n") == {"net.ipv4.ip_forward": "1"}
    assert fact_value(facts.SysctlFileSettings, "") == []
    assert fact_value(facts.DefaultRouteInterface, "default via 192.0.2.1 dev eth0\n") == "eth0"
    with pytest.raises(FactProcessError):
        fact_value(facts.UdpGroForwarding, "netlink error: no device matches name\n", interface="x")
    with pytest.raises(FactProcessError):
        fact_value(facts.FirewallFrontends, "nonsense\n")


def test_sysctl_grep_command_matches_both_spellings(tmp_path, monkeypatch):
    """Run the fact's real grep over files written both ways (only in tmp_path)."""
    import subprocess

    (tmp_path / "d").mkdir()
    (tmp_path / "a.conf").write_text("# net.ipv4.ip_forward = 0\nnet/ipv4/ip_forward=0\n")
    (tmp_path / "d" / "b.conf").write_text(" net.ipv6.conf.all.forwarding = 0\nnet.ipv4.conf.all.rp_filter = 1\n")
    monkeypatch.setattr(sysctl, "SYSCTL_DIRS", (str(tmp_path / "d"),))
    cmd = facts.SysctlFileSettings().command().replace("/etc/sysctl.conf", f"{tmp_path}/a.conf")
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    got = facts.SysctlFileSettings().process(out.splitlines())
    assert [(s.key, s.value) for s in got] == [("net.ipv4.ip_forward", "0"), ("net.ipv6.conf.all.forwarding", "0")]
