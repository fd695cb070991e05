"""Pure parsers for what subnet-router facts read, with typed results.

Kept free of pyinfra so every parser is tested on canned output captured
from the real programs (tests/operations/data). Each parser raises
ParseError on output it does not understand; the facts turn that into
pyinfra's FactProcessError so one bad host fails alone.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from netaddr import AddrFormatError, IPNetwork


class ParseError(ValueError):
    """Output did not look like what the command prints."""


# --------------------------------------------------------------------------
# tailscale debug prefs / tailscale status --json

NETFILTER_MODES = {0: "off", 1: "nodivert", 2: "on"}


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
class TailscalePrefs:
    """The live prefs of tailscaled (`tailscale debug prefs`) that this project manages."""

    control_url: str
    route_all: bool  # --accept-routes
    want_running: bool
    logged_out: bool
    advertise_routes: tuple[str, ...]
    advertise_tags: tuple[str, ...]
    no_snat: bool  # --snat-subnet-routes=false
    netfilter_mode: str
    hostname: str = ""
    shields_up: bool = False
    corp_dns: bool = True  # --accept-dns


def _get(obj: dict, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in obj:
        if default is ...:
            raise ParseError(f"missing key {key}")
        return default
    value = obj[key]
    if value is None and default is not ...:
        return default
    if not isinstance(value, kind):
        raise ParseError(f"{key} has type {type(value).__name__}")
    return value


def _json_object(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"not JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(data, dict):
        raise ParseError("JSON is not an object")
    return data


def parse_tailscale_prefs(text: str) -> TailscalePrefs:
    """Parse `tailscale debug prefs` (a JSON object of ipn.Prefs)."""
    data = _json_object(text)
    mode = _get(data, "NetfilterMode", int, 2)
    return TailscalePrefs(
        control_url=_get(data, "ControlURL", str),
        route_all=_get(data, "RouteAll", bool),
        want_running=_get(data, "WantRunning", bool),
        logged_out=_get(data, "LoggedOut", bool, False),
        advertise_routes=normalise_prefixes(_get(data, "AdvertiseRoutes", list, [])),
        advertise_tags=normalise_tags(_get(data, "AdvertiseTags", list, [])),
        no_snat=_get(data, "NoSNAT", bool),
        netfilter_mode=NETFILTER_MODES.get(mode, str(mode)),
        hostname=_get(data, "Hostname", str, ""),
        shields_up=_get(data, "ShieldsUp", bool, False),
        corp_dns=_get(data, "CorpDNS", bool, True),
    )


@dataclass(frozen=True)
class TailscaleStatus:
    """What `tailscale status --json` says about this node."""

    backend_state: str  # NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running
    online: bool
    primary_routes: tuple[str, ...]
    tailscale_ips: tuple[str, ...]
    version: str
    health: tuple[str, ...] = ()

    @property
    def joined(self) -> bool:
        """Logged in to a control server (possibly still waiting for approval)."""
        return self.backend_state in ("Running", "Starting", "NeedsMachineAuth")


def parse_tailscale_status(text: str) -> TailscaleStatus:
    data = _json_object(text)
    me = _get(data, "Self", dict, {})
    return TailscaleStatus(
        backend_state=_get(data, "BackendState", str),
        online=_get(me, "Online", bool, False),
        primary_routes=normalise_prefixes(_get(me, "PrimaryRoutes", list, [])),
        tailscale_ips=tuple(_get(data, "TailscaleIPs", list, [])),
        version=_get(data, "Version", str, ""),
        health=tuple(_get(data, "Health", list, [])),
    )


# --------------------------------------------------------------------------
# iptables-save

@dataclass(frozen=True)
class IptablesRule:
    """One `-A CHAIN ...` line, split into options (name -> args) and negated option names."""

    chain: str
    options: tuple[tuple[str, tuple[str, ...]], ...]
    negated: frozenset[str] = frozenset()
    text: str = ""

    def get(self, *names: str) -> tuple[str, ...] | None:
        for name, args in self.options:
            if name in names:
                return args
        return None


@dataclass(frozen=True)
class IptablesTable:
    name: str
    policies: dict[str, str] = field(default_factory=dict)
    rules: tuple[IptablesRule, ...] = ()


# Options that take exactly this many arguments; others take args up to the next option.
_ARITY = {"--tcp-flags": 2, "--clamp-mss-to-pmtu": 0, "-c": 2, "--set-counters": 2}
_LONG = {
    "-i": "--in-interface", "-o": "--out-interface", "-p": "--protocol", "-j": "--jump",
    "-m": "--match", "-s": "--source", "-d": "--destination", "-g": "--goto", "-f": "--fragment",
}


def parse_iptables_rule(line: str) -> IptablesRule:
    """Split an `-A CHAIN ...` line; long option names are canonical (-i -> --in-interface)."""
    try:
        tokens = shlex.split(line)
    except ValueError as e:
        raise ParseError(f"bad quoting in rule: {line!r}") from e
    if tokens and re.fullmatch(r"\[\d+:\d+\]", tokens[0]):  # iptables-save -c counters
        tokens = tokens[1:]
    if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
        raise ParseError(f"not a rule: {line!r}")
    chain, rest = tokens[1], tokens[2:]
    options: list[tuple[str, tuple[str, ...]]] = []
    negated: set[str] = set()
    negate_next = False
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "!":
            negate_next = True
            i += 1
            continue
        if not tok.startswith("-"):
            raise ParseError(f"unexpected {tok!r} in rule: {line!r}")
        name = _LONG.get(tok, tok)
        i += 1
        args: list[str] = []
        if name in _ARITY:
            args = rest[i:i + _ARITY[name]]
            i += _ARITY[name]
        else:
            while i < len(rest) and rest[i] != "!" and not (rest[i].startswith("-") and len(rest[i]) > 1 and not rest[i][1].isdigit()):
                args.append(rest[i])
                i += 1
        if negate_next:
            negated.add(name)
            negate_next = False
        options.append((name, tuple(args)))
    return IptablesRule(chain=chain, options=tuple(options), negated=frozenset(negated), text=line)


def parse_iptables_save(text: str) -> dict[str, IptablesTable]:
    """Parse iptables-save / ip6tables-save output (legacy or nft) into tables by name."""
    tables: dict[str, IptablesTable] = {}
    current: str | None = None
    policies: dict[str, str] = {}
    rules: list[IptablesRule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if "incompatible" in line:
                # iptables-nft cannot show a table that native nft rules were added to
                raise ParseError(line.lstrip("# "))
            continue
        if line.startswith("*"):
            if current is not None:
                raise ParseError(f"table {current} has no COMMIT")
            current, policies, rules = line[1:], {}, []
        elif current is None:
            raise ParseError(f"line outside a table: {line!r}")
        elif line.startswith(":"):
            bits = line[1:].split()
            if len(bits) < 2:
                raise ParseError(f"bad chain line: {line!r}")
            policies[bits[0]] = bits[1]
        elif line == "COMMIT":
            tables[current] = IptablesTable(current, dict(policies), tuple(rules))
            current = None
        else:
            rules.append(parse_iptables_rule(line))
    if current is not None:
        raise ParseError(f"table {current} has no COMMIT (truncated output?)")
    return tables


@dataclass(frozen=True)
class MssClamp:
    """Whether the TCPMSS clamp-to-PMTU rule exists for traffic into/out of an interface."""

    interface: str
    inbound: bool  # -i IF
    outbound: bool  # -o IF

    @property
    def complete(self) -> bool:
        return self.inbound and self.outbound


_MSS_ALLOWED = {"--in-interface", "--out-interface", "--protocol", "--match", "--tcp-flags",
                "--jump", "--clamp-mss-to-pmtu", "--comment", "-c", "--set-counters"}


def is_mss_clamp(rule: IptablesRule, interface: str, direction: str) -> bool:
    """True when `rule` is exactly the FORWARD clamp for `interface` (direction 'in' or 'out').

    Flags are compared as sets (iptables-nft may reorder SYN,RST); any extra
    or negated match makes the rule narrower, so it does not count.
    """
    if rule.chain != "FORWARD" or rule.negated:
        return False
    if any(name not in _MSS_ALLOWED for name, _ in rule.options):
        return False
    if rule.get("--jump") != ("TCPMSS",) or rule.get("--clamp-mss-to-pmtu") != ():
        return False
    if (rule.get("--protocol") or ("",))[0].lower() not in ("tcp", "6"):
        return False
    flags = rule.get("--tcp-flags")
    if not flags or len(flags) != 2:
        return False
    mask, comp = ({f.upper() for f in part.split(",")} for part in flags)
    if mask != {"SYN", "RST"} or comp != {"SYN"}:
        return False
    mine, other = ("--in-interface", "--out-interface") if direction == "in" else (
        "--out-interface", "--in-interface")
    return rule.get(mine) == (interface,) and rule.get(other) is None


def mss_clamp_state(tables: dict[str, IptablesTable], interface: str) -> MssClamp:
    mangle = tables.get("mangle", IptablesTable("mangle"))
    return MssClamp(
        interface=interface,
        inbound=any(is_mss_clamp(r, interface, "in") for r in mangle.rules),
        outbound=any(is_mss_clamp(r, interface, "out") for r in mangle.rules),
    )


@dataclass(frozen=True)
class ForwardFilter:
    """The filter table's FORWARD chain: policy and whether tailscaled's ts-forward is hooked."""

    policy: str
    ts_forward: bool
    rules: int

    @property
    def blocks(self) -> bool:
        return self.policy in ("DROP", "REJECT")


def forward_filter(tables: dict[str, IptablesTable]) -> ForwardFilter:
    table = tables.get("filter", IptablesTable("filter"))
    fwd = [r for r in table.rules if r.chain == "FORWARD"]
    return ForwardFilter(
        policy=table.policies.get("FORWARD", "ACCEPT"),
        ts_forward=any(r.get("--jump") == ("ts-forward",) for r in fwd),
        rules=len(fwd),
    )


# --------------------------------------------------------------------------
# sysctl

FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def sysctl_key(key: str) -> str:
    """sysctl accepts net/ipv4/ip_forward too; compare keys in dotted form."""
    return key.strip().replace("/", ".")


@dataclass(frozen=True)
class SysctlSetting:
    path: str
    key: str
    value: str


def parse_sysctl_values(text: str) -> dict[str, str]:
    """Parse `sysctl KEY...` lines (`key = value`)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise ParseError(f"not a sysctl line: {line!r}")
        key, value = line.split("=", 1)
        values[sysctl_key(key)] = value.strip()
    return values


def parse_sysctl_grep(text: str) -> list[SysctlSetting]:
    """Parse `grep -H` over sysctl files: `path:key = value` (comments already excluded)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^([^:]+):\s*-?([\w./-]+)\s*=\s*(.*?)\s*$", line)
        if not m:
            raise ParseError(f"not a sysctl file line: {line!r}")
        out.append(SysctlSetting(m.group(1), sysctl_key(m.group(2)), m.group(3)))
    return out


def sysctl_d_order(path: str) -> tuple[str, str]:
    """Order systemd-sysctl applies files in: by file name; later ones win."""
    name = path.rsplit("/", 1)[-1]
    return (name, path)


# --------------------------------------------------------------------------
# ethtool -k

@dataclass(frozen=True)
class Feature:
    enabled: bool
    fixed: bool


_FEATURE = re.compile(r"^\s*([A-Za-z0-9_-]+):\s+(on|off)(?:\s+\[(fixed|requested (?:on|off))\])?\s*$")


def parse_ethtool_features(text: str) -> dict[str, Feature]:
    """Parse `ethtool -k IF` (first line `Features for IF:`)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Features for "):
        raise ParseError("missing 'Features for' header")
    features = {}
    for line in lines[1:]:
        m = _FEATURE.match(line)
        if not m:
            raise ParseError(f"not a feature line: {line!r}")
        features[m.group(1)] = Feature(m.group(2) == "on", m.group(3) == "fixed")
    return features


@dataclass(frozen=True)
class UdpGro:
    """The two features Tailscale's throughput advice sets on the WAN interface."""

    interface: str
    supported: bool  # rx-udp-gro-forwarding exists and is changeable
    forwarding: bool  # rx-udp-gro-forwarding on
    gro_list: bool  # rx-gro-list on (should be off)
    gro_list_fixed: bool

    @property
    def wanted(self) -> bool:
        return self.forwarding and not self.gro_list


def udp_gro_state(interface: str, features: dict[str, Feature]) -> UdpGro:
    fwd = features.get("rx-udp-gro-forwarding")
    lst = features.get("rx-gro-list", Feature(False, True))
    return UdpGro(
        interface=interface,
        supported=fwd is not None and not (fwd.fixed and not fwd.enabled),
        forwarding=bool(fwd and fwd.enabled),
        gro_list=lst.enabled,
        gro_list_fixed=lst.fixed,
    )


# --------------------------------------------------------------------------
# firewall front ends, default route

@dataclass(frozen=True)
class FirewallFrontends:
    ufw: bool
    firewalld: bool

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(n for n in ("ufw", "firewalld") if getattr(self, n))


def parse_firewall_frontends(text: str) -> FirewallFrontends:
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
    return FirewallFrontends(ufw=values["ufw"] == "yes", firewalld=values["firewalld"] == "active")


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
