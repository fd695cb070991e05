"""Facts read from iptables-save / ip6tables-save: the MSS clamp rules and the FORWARD chain."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, parsed


@dataclass(frozen=True)
class IptablesRule:
    """One `-A CHAIN ...` line, split into options (name -> args) and negated option names."""

    chain: str
    options: tuple[tuple[str, tuple[str, ...]], ...]
    negated: frozenset[str] = frozenset()

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
    "-i": "--in-interface",
    "-o": "--out-interface",
    "-p": "--protocol",
    "-j": "--jump",
    "-m": "--match",
    "-s": "--source",
    "-d": "--destination",
    "-g": "--goto",
    "-f": "--fragment",
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
            args = rest[i : i + _ARITY[name]]
            i += _ARITY[name]
        else:
            while (
                i < len(rest)
                and rest[i] != "!"
                and not (rest[i].startswith("-") and len(rest[i]) > 1 and not rest[i][1].isdigit())
            ):
                args.append(rest[i])
                i += 1
        if negate_next:
            negated.add(name)
            negate_next = False
        options.append((name, tuple(args)))
    return IptablesRule(chain=chain, options=tuple(options), negated=frozenset(negated))


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


_MSS_ALLOWED = {
    "--in-interface",
    "--out-interface",
    "--protocol",
    "--match",
    "--tcp-flags",
    "--jump",
    "--clamp-mss-to-pmtu",
    "--comment",
    "-c",
    "--set-counters",
}


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
    mine, other = ("--in-interface", "--out-interface") if direction == "in" else ("--out-interface", "--in-interface")
    return rule.get(mine) == (interface,) and rule.get(other) is None


def mss_clamp_state(tables: dict[str, IptablesTable], interface: str) -> MssClamp:
    mangle = tables.get("mangle", IptablesTable("mangle"))
    return MssClamp(
        interface=interface,
        inbound=any(is_mss_clamp(r, interface, "in") for r in mangle.rules),
        outbound=any(is_mss_clamp(r, interface, "out") for r in mangle.rules),
    )


@dataclass(frozen=True)
class ForwardChain:
    """The filter table's FORWARD chain: policy and whether tailscaled's ts-forward is hooked."""

    policy: str
    ts_forward: bool

    @property
    def blocks(self) -> bool:
        return self.policy in ("DROP", "REJECT")


def forward_chain(tables: dict[str, IptablesTable]) -> ForwardChain:
    table = tables.get("filter", IptablesTable("filter"))
    fwd = [r for r in table.rules if r.chain == "FORWARD"]
    return ForwardChain(
        policy=table.policies.get("FORWARD", "ACCEPT"),
        ts_forward=any(r.get("--jump") == ("ts-forward",) for r in fwd),
    )


def _iptables_save(version: int) -> str:
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, not {version!r}")
    return "iptables-save" if version == 4 else "ip6tables-save"


class MssClampRules(FactBase[MssClamp | None]):
    """Whether the mangle FORWARD TCPMSS clamp exists for -i and -o INTERFACE (None: no iptables)."""

    def requires_command(self, interface: str = "tailscale0", version: int = 4) -> str:
        return _iptables_save(version)

    def command(self, interface: str = "tailscale0", version: int = 4) -> str:
        self.interface = interface
        return f"{_iptables_save(version)} -t mangle"

    @parsed
    def process(self, output: list[str]) -> MssClamp:
        return mss_clamp_state(parse_iptables_save("\n".join(output)), self.interface)


class ForwardFilter(FactBase[ForwardChain | None]):
    """Policy of the filter FORWARD chain and whether tailscaled hooked ts-forward into it."""

    def requires_command(self, version: int = 4) -> str:
        return _iptables_save(version)

    def command(self, version: int = 4) -> str:
        return f"{_iptables_save(version)} -t filter"

    @parsed
    def process(self, output: list[str]) -> ForwardChain:
        return forward_chain(parse_iptables_save("\n".join(output)))
