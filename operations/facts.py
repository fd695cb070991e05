"""pyinfra facts for subnet routers: each runs one read-only command and parses it with operations.parse.

A fact whose program is missing returns its default (None or empty), never
fails; output it cannot parse raises FactProcessError, which pyinfra turns
into a failure of that host only (any other exception would abort the run).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from operations import parse

T = TypeVar("T")


def _parsed(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn ParseError (and stray value errors) into FactProcessError for pyinfra."""

    @wraps(fn)
    def wrapper(self: Any, output: list[str]) -> T:
        try:
            return fn(self, output)
        except FactProcessError:
            raise
        except (parse.ParseError, ValueError, KeyError, TypeError) as e:
            raise FactProcessError(f"{type(self).__name__}: cannot parse output: {e}") from e

    return wrapper


def tailscale_cli(socket: str | None) -> str:
    """The tailscale CLI, pointed at a non-default tailscaled socket when given (tests)."""
    return "tailscale" + (f" --socket={shlex.quote(socket)}" if socket else "")


class TailscalePrefs(FactBase[parse.TailscalePrefs | None]):
    """Live tailscaled prefs (`tailscale debug prefs`); None when tailscale is absent or tailscaled is down."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "tailscale"

    def command(self, socket: str | None = None) -> str:
        # A stopped daemon makes the CLI fail: report that as "no prefs" (empty output -> None).
        return f"{tailscale_cli(socket)} debug prefs 2>/dev/null || true"

    @_parsed
    def process(self, output: list[str]) -> parse.TailscalePrefs:
        return parse.parse_tailscale_prefs("\n".join(output))


class TailscaleStatus(FactBase[parse.TailscaleStatus | None]):
    """BackendState, Self.Online and Self.PrimaryRoutes from `tailscale status --json`."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "tailscale"

    def command(self, socket: str | None = None) -> str:
        return f"{tailscale_cli(socket)} status --json 2>/dev/null || true"

    @_parsed
    def process(self, output: list[str]) -> parse.TailscaleStatus:
        return parse.parse_tailscale_status("\n".join(output))


def _iptables_save(version: int) -> str:
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, not {version!r}")
    return "iptables-save" if version == 4 else "ip6tables-save"


class MssClampRules(FactBase[parse.MssClamp | None]):
    """Whether the mangle FORWARD TCPMSS clamp exists for -i and -o INTERFACE (None: no iptables)."""

    def requires_command(self, interface: str = "tailscale0", version: int = 4) -> str:
        return _iptables_save(version)

    def command(self, interface: str = "tailscale0", version: int = 4) -> str:
        self.interface = interface
        return f"{_iptables_save(version)} -t mangle"

    @_parsed
    def process(self, output: list[str]) -> parse.MssClamp:
        return parse.mss_clamp_state(parse.parse_iptables_save("\n".join(output)), self.interface)


class ForwardFilter(FactBase[parse.ForwardFilter | None]):
    """Policy of the filter FORWARD chain and whether tailscaled hooked ts-forward into it."""

    def requires_command(self, version: int = 4) -> str:
        return _iptables_save(version)

    def command(self, version: int = 4) -> str:
        return f"{_iptables_save(version)} -t filter"

    @_parsed
    def process(self, output: list[str]) -> parse.ForwardFilter:
        return parse.forward_filter(parse.parse_iptables_save("\n".join(output)))


SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


class SysctlFileSettings(FactBase[list]):
    """Every line in sysctl files that sets one of KEYS, as parse.SysctlSetting (path, key, value)."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, keys: tuple[str, ...] | list[str] = parse.FORWARDING_KEYS) -> str:
        alternatives = "|".join(k.replace(".", "[./]") for k in keys)
        files = " ".join(["/etc/sysctl.conf", *(f"{d}/*.conf" for d in SYSCTL_DIRS)])
        return f"grep -HsE '^[[:space:]]*-?({alternatives})[[:space:]]*=' {files} || true"

    @_parsed
    def process(self, output: list[str]) -> list[parse.SysctlSetting]:
        return parse.parse_sysctl_grep("\n".join(output))


class ForwardingState(FactBase[dict]):
    """Live values of the forwarding sysctls (missing keys, e.g. IPv6 disabled, are left out)."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "sysctl -e " + " ".join(parse.FORWARDING_KEYS)

    @_parsed
    def process(self, output: list[str]) -> dict[str, str]:
        return parse.parse_sysctl_values("\n".join(output))


class UdpGroForwarding(FactBase[parse.UdpGro | None]):
    """UDP GRO forwarding features of INTERFACE from `ethtool -k`; None: no ethtool or no such interface."""

    def requires_command(self, interface: str) -> str:
        return "ethtool"

    def command(self, interface: str) -> str:
        self.interface = interface
        q = shlex.quote(interface)
        return f"if [ -e /sys/class/net/{q} ]; then ethtool -k {q}; fi"

    @_parsed
    def process(self, output: list[str]) -> parse.UdpGro:
        return parse.udp_gro_state(self.interface, parse.parse_ethtool_features("\n".join(output)))


class FirewallFrontends(FactBase[parse.FirewallFrontends]):
    """Whether ufw (ENABLED=yes in ufw.conf) or firewalld (unit active) would filter forwarding."""

    @staticmethod
    def default() -> parse.FirewallFrontends:
        return parse.FirewallFrontends(ufw=False, firewalld=False)

    def command(self) -> str:
        return (
            "printf 'ufw=%s\\nfirewalld=%s\\n' "
            "\"$(sed -n 's/^ENABLED=//p' /etc/ufw/ufw.conf 2>/dev/null | tail -n1)\" "
            "\"$(systemctl is-active firewalld 2>/dev/null || true)\""
        )

    @_parsed
    def process(self, output: list[str]) -> parse.FirewallFrontends:
        return parse.parse_firewall_frontends("\n".join(output))


class DefaultRouteInterface(FactBase[str | None]):
    """Interface of the preferred IPv4 default route (the WAN side GRO advice is about)."""

    def requires_command(self) -> str:
        return "ip"

    def command(self) -> str:
        return "ip -4 route show default"

    @_parsed
    def process(self, output: list[str]) -> str | None:
        return parse.parse_default_route_interface("\n".join(output))
