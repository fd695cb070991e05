"""pyinfra facts for subnet routers, one module per subject with its parser and result types.

Each fact runs one read-only command. A fact whose program is missing returns
its default (None or empty), never fails; output it cannot parse raises
FactProcessError, which pyinfra turns into a failure of that host only.
"""

from operations.facts._parsing import ParseError
from operations.facts.ethtool import UdpGro, UdpGroForwarding
from operations.facts.host import ActiveFirewalls, DefaultRouteInterface, FirewallFrontends
from operations.facts.iptables import ForwardChain, ForwardFilter, MssClamp, MssClampRules
from operations.facts.sysctl import (
    FORWARDING_KEYS,
    AcceptRa,
    ForwardingState,
    SysctlFileSettings,
    SysctlLine,
    accept_ra_key,
)
from operations.facts.tailscale import LivePrefs, NodeStatus, TailscalePrefs, TailscaleStatus

__all__ = ["ParseError", "UdpGro", "UdpGroForwarding", "ActiveFirewalls", "DefaultRouteInterface",
           "FirewallFrontends", "ForwardChain", "ForwardFilter", "MssClamp", "MssClampRules", "FORWARDING_KEYS",
           "ForwardingState", "SysctlFileSettings", "SysctlLine",
           "AcceptRa", "accept_ra_key", "LivePrefs", "NodeStatus", "TailscalePrefs",
           "TailscaleStatus"]
