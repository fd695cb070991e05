"""DHCP answers from a site's LAN, parsed and judged against the route plan.

The exchange itself runs on a LAN host (check/dhcp_probe_remote.py, over SSH);
this side only reads the raw BOOTP payloads it returns, so the parser and the
verdict are tested on canned answers from a real Kea.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dhcp.plan import SitePlan
from dhcp.rfc3442 import RouteEncodingError, decode

PROBE_SCRIPT = Path(__file__).with_name("dhcp_probe_remote.py")
COOKIE = bytes.fromhex("63825363")
MESSAGE_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
OPT_LEASE, OPT_T1, OPT_T2, OPT_TYPE, OPT_OVERLOAD = 51, 58, 59, 53, 52


class DhcpParseError(ValueError):
    """Bytes that are not a DHCP reply."""


@dataclass(frozen=True)
class DhcpReply:
    """One server answer: its type, who sent it and its options (repeated instances joined, RFC 3396)."""

    message_type: str
    server: str
    options: dict[int, bytes] = field(default_factory=dict)

    def seconds(self, code: int) -> int | None:
        value = self.options.get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None


def parse_options(data: bytes) -> dict[int, bytes]:
    """Options after the magic cookie; instances of one code are concatenated (RFC 3396)."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise DhcpParseError(f"option {code} at byte {i} runs past the end of the packet")
        length = data[i + 1]
        options[code] = options.get(code, b"") + data[i + 2:i + 2 + length]
        i += 2 + length
    return options


def parse_reply(payload: bytes, server: str = "") -> DhcpReply:
    """A BOOTP reply (op 2) with the DHCP cookie; options from the file/sname fields when overloaded."""
    if len(payload) < 240 or payload[0] != 2:
        raise DhcpParseError("not a BOOTP reply")
    if payload[236:240] != COOKIE:
        raise DhcpParseError("no DHCP magic cookie")
    options = parse_options(payload[240:])
    overload = options.get(OPT_OVERLOAD, b"\0")[0]
    for flag, (start, end) in ((1, (108, 236)), (2, (44, 108))):  # file, then sname (RFC 3396 order)
        if overload & flag:
            for code, value in parse_options(payload[start:end]).items():
                options[code] = options.get(code, b"") + value
    kind = options.get(OPT_TYPE, b"\0")[0]
    return DhcpReply(MESSAGE_TYPES.get(kind, f"type {kind}"), server, options)


@dataclass(frozen=True)
class ProbeResult:
    """What the LAN host heard: the answer to the DISCOVER (OFFER) and to the INFORM (ACK)."""

    interface: str
    offer: DhcpReply | None
    ack: DhcpReply | None

    @property
    def replies(self) -> list[DhcpReply]:
        return [r for r in (self.ack, self.offer) if r is not None]


def parse_probe_output(text: str) -> ProbeResult:
    """The JSON line the remote probe prints."""
    try:
        data = json.loads(text.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise DhcpParseError(f"probe printed no JSON: {text.strip()[-200:]!r}") from exc

    def reply(key: str) -> DhcpReply | None:
        got = data.get(key)
        return parse_reply(bytes.fromhex(got["hex"]), got.get("from", "")) if got else None

    return ProbeResult(data.get("interface", ""), reply("discover"), reply("inform"))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    renew: str = ""


def _routes(data: bytes) -> str:
    try:
        return ", ".join(f"{net} via {hop}" for net, hop in decode(data))
    except RouteEncodingError as exc:
        return f"undecodable ({exc})"


def renewal(offer: DhcpReply | None) -> str:
    """When clients come back: T1 if the server sends it, else half the lease (the RFC 2131 default)."""
    if offer is None:
        return "renewal timer unknown (no OFFER)"
    lease, t1 = offer.seconds(OPT_LEASE), offer.seconds(OPT_T1)
    if t1 is not None:
        return f"clients renew after {t1} s (T1; lease {lease} s)"
    if lease is not None:
        return f"clients renew after {lease // 2} s (no T1 sent: half the {lease} s lease)"
    return "no lease time in the OFFER"


def judge(result: ProbeResult, plan: SitePlan, codes: tuple[int, ...]) -> Verdict:
    """Do the answers carry exactly the planned bytes in every code of `codes`?"""
    replies = result.replies
    if not replies:
        return Verdict(False, f"no DHCP answer on {result.interface} to a DISCOVER or an INFORM")
    renew = renewal(result.offer)
    want = plan.option_data
    for reply in replies:
        for code in codes:
            got = reply.options.get(code)
            if got is None:
                return Verdict(False, f"the {reply.message_type} from {reply.server} has no option {code}", renew)
            if got != want:
                return Verdict(False, f"option {code} in the {reply.message_type} from {reply.server} is "
                                      f"{_routes(got)}; planned {_routes(want)}", renew)
    heard = " and ".join(f"{r.message_type} from {r.server}" for r in replies)
    return Verdict(True, f"{'/'.join(map(str, codes))} as planned ({len(want)} bytes) in the {heard}; {renew}", renew)
