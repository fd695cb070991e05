"""The built-in two-site topology as text, for tests that vary one key of it.

`extra` lands inside `[sites.a]`, so a test adds or overrides site a's keys without
restating the rest."""

from __future__ import annotations

_TEMPLATE = """
[wan]
subnet = "192.168.255.0/24"
[control]
address = "192.168.255.10"
headscale_port = 8080
apt_port = 8081
[sites.a]
subnet = "192.0.2.0/24"
gateway = "192.0.2.1"
router = "192.0.2.2"
router_wan = "192.168.255.2"
dhcp_pool = "192.0.2.100 - 192.0.2.199"
{extra}
[sites.b]
subnet = "172.16.100.0/24"
gateway = "172.16.100.1"
router = "172.16.100.2"
router_wan = "192.168.255.3"
dhcp_pool = "172.16.100.100 - 172.16.100.199"
"""


def two_site_topology(extra: str = "") -> str:
    """The topology text, with `extra` lines added to site a."""
    return _TEMPLATE.format(extra=extra)
