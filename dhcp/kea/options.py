"""Pure edits of a Kea DHCPv4 config (as config-get returns it) for options 121 and 249.

Why pure functions: the push must decide "change or not" from what Kea reports,
and that decision is the part worth unit-testing from canned config-get JSON.

Ownership: options this project writes carry
`"user-context": {"managed-by": MANAGED_BY}`; user-context survives config-get /
config-set / config-write round trips, so a later push (or a person reading the
config) can tell them from hand-made ones.

Form: `{"code", "space": "dhcp4", "csv-format": false, "data": HEX}` with no
option-def, the one form every Kea version accepts (2.2 has no definition for
121; >= 2.5.5 rejects one). No `always-send`: Kea then sends 121/249 only to
clients that ask for them in their parameter request list, which every client
that can use them does (dhclient, systemd-networkd, NetworkManager ask for 121,
Windows for 249); clients that do not ask would ignore them anyway, and leaving
them out keeps replies small.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator
from typing import Any

from netaddr import AddrFormatError, IPNetwork

from sites.model import DhcpSettings

MANAGED_BY = "s2s-routes"
KEPT_KEY = "kept-routes"  # user-context: the user's routes a managed entry carries on (dhcp/kea/keep.py)
ROUTE_CODES = DhcpSettings(option_249=True).route_codes  # every code this project may manage
SPACE = "dhcp4"
# Names some Kea versions give these codes (121 is defined from 2.5.5 on).
_NAMES = {"classless-static-route": 121}


class KeaConfigError(ValueError):
    """The running config cannot take the change (no such subnet, ambiguous id ...)."""


# -- finding the subnet ------------------------------------------------------------------
def iter_subnets(config: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every subnet4 with the name of its shared network (None for top-level ones)."""
    dhcp4 = dhcp4_of(config)
    for subnet in dhcp4.get("subnet4") or []:
        yield subnet, None
    for network in dhcp4.get("shared-networks") or []:
        for subnet in network.get("subnet4") or []:
            yield subnet, network.get("name")


def dhcp4_of(config: dict[str, Any]) -> dict[str, Any]:
    """The Dhcp4 map of a config-get answer (with or without its "hash")."""
    dhcp4 = config.get("Dhcp4")
    if not isinstance(dhcp4, dict):
        raise KeaConfigError("the config has no Dhcp4 map (is this a DHCPv4 server?)")
    return dhcp4


def _prefix(subnet: dict[str, Any]) -> IPNetwork | None:
    try:
        return IPNetwork(str(subnet.get("subnet", "")))
    except (AddrFormatError, ValueError, TypeError):
        return None


class SubnetIndex:
    """All subnet4 maps of a config indexed by id and prefix, built once: a push over many
    sites on one server then finds each in constant time instead of rescanning."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.subnets = list(iter_subnets(config))
        self.network_of: dict[int, dict[str, Any]] = {  # id(subnet) -> its shared network
            id(subnet): network for network in dhcp4_of(config).get("shared-networks") or []
            for subnet in network.get("subnet4") or []}
        self.by_id: dict[Any, dict[str, Any]] = {}
        self.by_prefix: dict[IPNetwork, list[dict[str, Any]]] = {}
        for subnet, _ in self.subnets:
            self.by_id.setdefault(subnet.get("id"), subnet)
            prefix = _prefix(subnet)
            if prefix is not None:
                self.by_prefix.setdefault(prefix, []).append(subnet)

    def find(self, prefix: IPNetwork | str, subnet_id: int | None = None) -> dict[str, Any]:
        """The subnet4 map (a reference into the config) for a site: by id when the site file
        gives one, else the one whose prefix equals the site's subnet."""
        prefix = IPNetwork(str(prefix))
        if subnet_id is not None:
            subnet = self.by_id.get(subnet_id)
            if subnet is None:
                raise KeaConfigError(f"no subnet4 with id {subnet_id} (has: "
                                     f"{_listing(self.subnets)})")
            if _prefix(subnet) != prefix:
                raise KeaConfigError(f"subnet4 id {subnet_id} is {subnet.get('subnet')}, "
                                     f"not the site's subnet {prefix}")
            return subnet
        found = self.by_prefix.get(prefix, [])
        if not found:
            raise KeaConfigError(f"no subnet4 for {prefix} (has: {_listing(self.subnets)})")
        if len(found) > 1:
            ids = ", ".join(str(s.get("id")) for s in found)
            raise KeaConfigError(f"{len(found)} subnet4 entries for {prefix} (ids {ids}): "
                                 "set kea.subnet_id in the site file")
        return found[0]


def _listing(subnets: list[tuple[dict[str, Any], str | None]]) -> str:
    if not subnets:
        return "none"
    shown = ", ".join(f"{s.get('subnet')} id {s.get('id')}" for s, _ in subnets[:10])
    return shown + (f", ... {len(subnets) - 10} more" if len(subnets) > 10 else "")


# -- the options -------------------------------------------------------------------------
def desired_options(data: bytes, codes: tuple[int, ...] = ROUTE_CODES,
                    kept: list[str] | None = None) -> list[dict[str, Any]]:
    """Option-data entries for 121 (and 249 unless the site file turns it off) carrying the
    same RFC 3442 bytes; `kept` ("prefix - router" texts) records the user's routes taken
    over from the hand-made entries they replace."""
    context: dict[str, Any] = {"managed-by": MANAGED_BY}
    if kept:
        context[KEPT_KEY] = list(kept)
    return [{"code": code, "space": SPACE, "csv-format": False, "data": data.hex().upper(),
             "user-context": copy.deepcopy(context)} for code in codes]


def kept_record(option: dict[str, Any]) -> list[str]:
    context = option.get("user-context")
    return list(context.get(KEPT_KEY) or []) if isinstance(context, dict) else []


def option_code(option: dict[str, Any]) -> int | None:
    code = option.get("code")
    if isinstance(code, int):
        return code
    return _NAMES.get(str(option.get("name", "")))


def is_route_option(option: dict[str, Any]) -> bool:
    return option.get("space", SPACE) == SPACE and option_code(option) in ROUTE_CODES


def is_managed(option: dict[str, Any]) -> bool:
    context = option.get("user-context")
    return isinstance(context, dict) and context.get("managed-by") == MANAGED_BY


def option_bytes(option: dict[str, Any]) -> bytes | None:
    """The option's payload when it is given as hex (Kea accepts "0A6440", "0a:64:40",
    "0a 64 40", "0x0a6440"); None for text (csv-format) data."""
    if option.get("csv-format", False):
        return None
    text = str(option.get("data", "")).strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    text = text.replace(":", "").replace(" ", "")
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def same_option(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Equal as Kea will send it and as we own it: code, bytes, not forced/suppressed,
    and our marker. Kea's own additions (name, upper-case hex, always-send: false) are
    ignored."""
    return (option_code(current) == option_code(desired)
            and current.get("space", SPACE) == SPACE
            and option_bytes(current) is not None
            and option_bytes(current) == option_bytes(desired)
            and bool(current.get("always-send", False)) == bool(desired.get("always-send", False))
            and not current.get("never-send", False)
            and is_managed(current)
            and kept_record(current) == kept_record(desired))


def _ours_to_set(option: dict[str, Any], wanted: set[int | None]) -> bool:
    """Entries the push rewrites: the codes it sets, and its own leftovers (a managed 249
    after option_249 was turned off). Hand-made entries of codes it does not set stay."""
    return is_route_option(option) and (option_code(option) in wanted or is_managed(option))


def options_match(option_data: list[dict[str, Any]], desired: list[dict[str, Any]]) -> bool:
    """True when the subnet already carries exactly the desired 121/249 entries."""
    wanted = {option_code(d) for d in desired}
    present = [o for o in option_data if _ours_to_set(o, wanted)]
    if len(present) != len(desired):
        return False
    return all(any(same_option(o, d) for o in present) for d in desired)


def merge_options(option_data: list[dict[str, Any]],
                  desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A new option-data list: 121/249 replaced by `desired` (in place of the first old one,
    else appended), our own leftovers of other codes dropped, every other entry untouched
    and in its order. Other keys of an old entry's user-context are kept."""
    wanted = {option_code(d): d for d in desired}
    out: list[dict[str, Any]] = []
    placed: set[int] = set()
    for option in option_data:
        code = option_code(option) if _ours_to_set(option, set(wanted)) else None
        if code is None:
            out.append(option)
            continue
        if code in wanted and code not in placed:
            new = copy.deepcopy(wanted[code])
            old_context = option.get("user-context")
            if isinstance(old_context, dict):  # other keys stay; the kept record is the new one
                others = {k: v for k, v in old_context.items() if k != KEPT_KEY}
                new["user-context"] = {**others, **new["user-context"]}
            out.append(new)
            placed.add(code)
    out.extend(copy.deepcopy(d) for c, d in wanted.items() if c not in placed)
    return out


# -- whole-config helpers ----------------------------------------------------------------
def config_for_set(arguments: dict[str, Any]) -> dict[str, Any]:
    """config-get's answer made fit for config-test/config-set: a deep copy without "hash"
    (Kea >= 2.4 adds it and rejects it on the way back)."""
    config = copy.deepcopy(arguments)
    config.pop("hash", None)
    return config


def canonical(arguments: dict[str, Any]) -> str:
    """A stable text of a config (hash removed, keys sorted): equal texts mean nobody changed
    the config in between (Kea 2.2 has no config-hash-get)."""
    return json.dumps(config_for_set(arguments), sort_keys=True, separators=(",", ":"))


def render_option_data(option_data: list[dict[str, Any]]) -> list[str]:
    return json.dumps(option_data, indent=2, sort_keys=True).splitlines(keepends=True)


def option_diff(before: list[dict[str, Any]], after: list[dict[str, Any]], label: str) -> str:
    """Unified diff of one subnet's option-data, for --dry-run."""
    return "".join(difflib.unified_diff(render_option_data(before), render_option_data(after),
                                        fromfile=f"{label} (running)",
                                        tofile=f"{label} (after push)"))
