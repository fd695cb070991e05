"""Facts about tailscaled: its live prefs (`tailscale debug prefs`) and its state (`tailscale status --json`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from netaddr import AddrFormatError, IPNetwork
from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, get, json_object, parsed

NETFILTER_MODES = {0: "off", 1: "nodivert", 2: "on"}
EXIT_ROUTES = ("0.0.0.0/0", "::/0")  # what --advertise-exit-node adds to AdvertiseRoutes


def normalise_prefixes(prefixes: Any) -> tuple[str, ...]:
    """Canonical, sorted CIDR strings, so 192.0.2.1/24 and 192.0.2.0/24 compare equal."""
    if prefixes is None:
        return ()
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    out = set()
    for p in prefixes:
        try:
            out.add(str(IPNetwork(str(p)).cidr))
        except (AddrFormatError, ValueError, TypeError) as e:
            raise ParseError(f"not a prefix: {p!r}") from e
    return tuple(sorted(out, key=lambda s: (IPNetwork(s).version, IPNetwork(s))))


def normalise_tags(tags: Any) -> tuple[str, ...]:
    """Sorted tags with the `tag:` prefix that the tailscale CLI adds when omitted."""
    if not tags:
        return ()
    return tuple(sorted(t if t.startswith("tag:") else f"tag:{t}" for t in tags))


@dataclass(frozen=True)
class LivePrefs:
    """The prefs of a running tailscaled that the router deploy decides from."""

    control_url: str
    want_running: bool
    logged_out: bool
    advertise_routes: tuple[str, ...]
    advertise_tags: tuple[str, ...]
    route_all: bool  # --accept-routes
    no_snat: bool  # --snat-subnet-routes=false
    no_stateful_filtering: bool  # --stateful-filtering=false
    netfilter_mode: str  # on, nodivert, off
    shields_up: bool = False
    exit_node: str = ""  # ExitNodeID, ExitNodeIP or AutoExitNode; "" = none
    corp_dns: bool = True  # --accept-dns
    hostname: str = ""

    @property
    def subnet_routes(self) -> tuple[str, ...]:
        """Advertised routes without the exit-node pair (--advertise-exit-node is not ours)."""
        return tuple(r for r in self.advertise_routes if r not in EXIT_ROUTES)

    @property
    def advertises_exit_node(self) -> bool:
        return any(r in EXIT_ROUTES for r in self.advertise_routes)


def parse_prefs(text: str) -> LivePrefs:
    """Parse `tailscale debug prefs` (a JSON object of ipn.Prefs)."""
    data = json_object(text)
    mode = get(data, "NetfilterMode", int, 2)
    exit_node = next(
        (v for v in (get(data, k, str, "") for k in ("ExitNodeID", "ExitNodeIP", "AutoExitNode")) if v), ""
    )
    return LivePrefs(
        control_url=get(data, "ControlURL", str),
        want_running=get(data, "WantRunning", bool),
        logged_out=get(data, "LoggedOut", bool, False),
        advertise_routes=normalise_prefixes(get(data, "AdvertiseRoutes", list, [])),
        advertise_tags=normalise_tags(get(data, "AdvertiseTags", list, [])),
        route_all=get(data, "RouteAll", bool),
        no_snat=get(data, "NoSNAT", bool),
        no_stateful_filtering=get(
            data, "NoStatefulFiltering", bool, True
        ),  # absent: a tailscaled from before it existed
        netfilter_mode=NETFILTER_MODES.get(mode, str(mode)),
        shields_up=get(data, "ShieldsUp", bool, False),
        exit_node=exit_node,
        corp_dns=get(data, "CorpDNS", bool, True),
        hostname=get(data, "Hostname", str, ""),
    )


@dataclass(frozen=True)
class NodeStatus:
    """What `tailscale status --json` says about this node."""

    backend_state: str  # NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running
    online: bool
    primary_routes: tuple[str, ...]
    tailscale_ips: tuple[str, ...] = ()  # shown by `python -m check`
    version: str = ""

    @property
    def joined(self) -> bool:
        """Logged in to a control server (possibly still waiting for approval)."""
        return self.backend_state in ("Running", "Starting", "NeedsMachineAuth")

    @property
    def logged_in(self) -> bool:
        """Has a login (running or stopped by `tailscale down`): `up` needs no auth key."""
        return self.backend_state not in ("NoState", "NeedsLogin")


def parse_status(text: str) -> NodeStatus:
    data = json_object(text)
    me = get(data, "Self", dict, {})
    return NodeStatus(
        backend_state=get(data, "BackendState", str),
        online=get(me, "Online", bool, False),
        primary_routes=normalise_prefixes(get(me, "PrimaryRoutes", list, [])),
        tailscale_ips=tuple(get(data, "TailscaleIPs", list, [])),
        version=get(data, "Version", str, ""),
    )


def tailscale_cli(socket: str | None) -> str:
    """The tailscale CLI, pointed at a non-default tailscaled socket when given (tests)."""
    return "tailscale" + (f" --socket={shlex.quote(socket)}" if socket else "")


class TailscalePrefs(FactBase[LivePrefs | None]):
    """Live tailscaled prefs (`tailscale debug prefs`); None when tailscale is absent or tailscaled is down."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "tailscale"

    def command(self, socket: str | None = None) -> str:
        # A stopped daemon makes the CLI fail: report that as "no prefs" (empty output -> None).
        return f"{tailscale_cli(socket)} debug prefs 2>/dev/null || true"

    @parsed
    def process(self, output: list[str]) -> LivePrefs:
        return parse_prefs("\n".join(output))


class TailscaleStatus(FactBase[NodeStatus | None]):
    """BackendState, Self.Online and Self.PrimaryRoutes from `tailscale status --json`."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "tailscale"

    def command(self, socket: str | None = None) -> str:
        # --peers=false: this node only (every field read here is top-level or Self). With peers the
        # output grows with the tailnet: 2,400 lines on a 50-site router, each read by the deploy.
        # The plain form stays as a fallback for a CLI without the flag.
        cli = tailscale_cli(socket)
        return f"{cli} status --json --peers=false 2>/dev/null || {cli} status --json 2>/dev/null || true"

    @parsed
    def process(self, output: list[str]) -> NodeStatus:
        return parse_status("\n".join(output))
