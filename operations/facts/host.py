"""Facts about the host around the router: firewall front ends and the default route."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed


@dataclass(frozen=True)
class ActiveFirewalls:
    """Which firewall front ends would filter forwarded traffic."""

    ufw: bool
    firewalld: bool

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(n for n in ("ufw", "firewalld") if getattr(self, n))


def parse_firewall_frontends(text: str) -> ActiveFirewalls:
    """Parse `ufw=<ENABLED value>` and `firewalld=<systemctl is-active>` lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in ("ufw", "firewalld"):
            raise ParseError(f"unexpected line: {line!r}")
        values[key] = value.strip().strip("\"'").lower()
    if set(values) != {"ufw", "firewalld"}:
        raise ParseError("missing ufw= or firewalld= line")
    return ActiveFirewalls(ufw=values["ufw"] == "yes", firewalld=values["firewalld"] == "active")


def parse_default_route_interface(text: str) -> str | None:
    """First `dev X` of `ip -4 route show default` (the kernel lists the preferred route first)."""
    for line in text.splitlines():
        bits = line.split()
        if not bits:
            continue
        if bits[0] not in ("default", "nexthop"):  # nexthop: multipath continuation
            raise ParseError(f"not a default route: {line!r}")
        if "dev" in bits:
            i = bits.index("dev")
            if i + 1 < len(bits):
                return bits[i + 1]
        if bits[0] == "nexthop":
            raise ParseError(f"nexthop without dev: {line!r}")
    return None


class FirewallFrontends(FactBase[ActiveFirewalls]):
    """Whether ufw (ENABLED=yes in ufw.conf) or firewalld (unit active) would filter forwarding."""

    @staticmethod
    def default() -> ActiveFirewalls:
        return ActiveFirewalls(ufw=False, firewalld=False)

    def command(self) -> str:
        return (
            "printf 'ufw=%s\\nfirewalld=%s\\n' "
            "\"$(sed -n 's/^ENABLED=//p' /etc/ufw/ufw.conf 2>/dev/null | tail -n1)\" "
            # systemctl is slow to say a unit does not exist: ask only where firewalld is installed
            "\"$(if command -v firewall-cmd >/dev/null 2>&1; then systemctl is-active firewalld 2>/dev/null; fi)\""
        )

    @parsed
    def process(self, output: list[str]) -> ActiveFirewalls:
        return parse_firewall_frontends("\n".join(output))


class DefaultRouteInterface(FactBase[str | None]):
    """Interface of the preferred IPv4 default route (the WAN side GRO advice is about)."""

    def requires_command(self) -> str:
        return "ip"

    def command(self) -> str:
        return "ip -4 route show default"

    @parsed
    def process(self, output: list[str]) -> str | None:
        return parse_default_route_interface("\n".join(output))
