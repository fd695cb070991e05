"""The DHCP answer parser and verdict, from a real Kea 2.2 answer captured on the lab (site a)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork

from check.dhcp import DhcpParseError, ProbeResult, judge, parse_options, parse_probe_output, parse_reply, renewal
from dhcp.plan import build_plan
from sites import parse_sites

DATA = Path(__file__).parent / "data"
CAPTURED = (DATA / "probe-kea-2.2-site-a.json").read_text()
# site a's planned option 121/249: 100.64.0.0/10 and 172.16.100.0/24 via 192.0.2.2, default via 192.0.2.1
PLANNED = bytes.fromhex("0a6440c000020218ac1064c000020200c0000201")


def plan_a():
    model = parse_sites(
        Path("sites.toml"),
        {
            "sites": {
                "a": {"subnet": "192.0.2.0/24", "router": "192.0.2.2", "gateway": "192.0.2.1"},
                "b": {"subnet": "172.16.100.0/24", "router": "172.16.100.2", "gateway": "172.16.100.1"},
            }
        },
    )
    return build_plan(model)["a"]


def reply(options: bytes, sname: bytes = b"", file: bytes = b"") -> bytes:
    head = struct.pack(
        "!BBBB4sHH4s4s4s4s16s64s128s",
        2,
        1,
        6,
        0,
        b"abcd",
        0,
        0,
        bytes(4),
        bytes(4),
        bytes(4),
        bytes(4),
        bytes(16),
        sname,
        file,
    )
    return head + bytes.fromhex("63825363") + options + b"\xff"


def test_the_captured_kea_answers_parse():
    result = parse_probe_output(CAPTURED)
    assert result.interface == "eth0"
    assert result.offer.message_type == "OFFER" and result.ack.message_type == "ACK"
    assert result.offer.server == "192.0.2.1"
    assert result.offer.options[121] == result.offer.options[249] == PLANNED
    assert result.ack.options[121] == PLANNED
    assert result.offer.seconds(51) == 3600 and result.offer.seconds(58) == 900
    assert 51 not in result.ack.options  # an INFORM's ACK carries no lease time (RFC 2131)


def test_the_plan_matches_the_captured_bytes():
    assert plan_a().option_data == PLANNED
    verdict = judge(parse_probe_output(CAPTURED), plan_a(), (121, 249))
    assert verdict.ok
    assert "clients renew after 900 s (T1; lease 3600 s)" in verdict.reason


def test_missing_option_121_is_named():
    result = parse_probe_output(CAPTURED)
    offer = result.offer
    stripped = ProbeResult(
        "eth0",
        type(offer)(offer.message_type, offer.server, {k: v for k, v in offer.options.items() if k != 121}),
        None,
    )
    verdict = judge(stripped, plan_a(), (121, 249))
    assert not verdict.ok
    assert verdict.reason == "the OFFER from 192.0.2.1 has no option 121"


def test_wrong_bytes_are_decoded_in_the_reason():
    other = bytes.fromhex("0a6440c0000209") + bytes.fromhex("00c0000201")  # 100.64/10 via .9, no site b
    result = ProbeResult(
        "eth0",
        parse_reply(
            reply(bytes([53, 1, 2, 121, len(other)]) + other + bytes([249, len(PLANNED)]) + PLANNED), "192.0.2.1"
        ),
        None,
    )
    verdict = judge(result, plan_a(), (121, 249))
    assert not verdict.ok
    assert (
        "option 121 in the OFFER from 192.0.2.1 is 100.64.0.0/10 via 192.0.2.9, 0.0.0.0/0 via 192.0.2.1"
        in verdict.reason
    )
    assert "planned 100.64.0.0/10 via 192.0.2.2, 172.16.100.0/24 via 192.0.2.2" in verdict.reason


def test_no_answer_is_broken():
    verdict = judge(ProbeResult("eth0", None, None), plan_a(), (121,))
    assert not verdict.ok and verdict.reason == "no DHCP answer on eth0 to a DISCOVER or an INFORM"


def test_split_options_are_joined_rfc3396():
    long = bytes(range(200)) * 2  # 400 bytes: two instances
    opts = bytes([121, 255]) + long[:255] + bytes([3, 4, 1, 2, 3, 4]) + bytes([121, 145]) + long[255:]
    assert parse_options(opts)[121] == long


def test_overloaded_file_field_is_read():
    file = bytes([58, 4, 0, 0, 1, 0, 255]).ljust(128, b"\0")
    got = parse_reply(reply(bytes([53, 1, 2, 52, 1, 1]), file=file))
    assert got.seconds(58) == 256


def test_renewal_without_t1_is_half_the_lease():
    got = parse_reply(reply(bytes([53, 1, 2, 51, 4, 0, 0, 0x0E, 0x10])))
    assert renewal(got) == "clients renew after 1800 s (no T1 sent: half the 3600 s lease)"


@pytest.mark.parametrize("payload", [b"", b"\x01" + bytes(300), reply(b"")[:236] + b"xxxx"])
def test_not_a_reply(payload):
    with pytest.raises(DhcpParseError):
        parse_reply(payload)


def test_truncated_option():
    with pytest.raises(DhcpParseError):
        parse_options(bytes([121, 20, 1, 2]))


def test_probe_output_without_json():
    with pytest.raises(DhcpParseError):
        parse_probe_output("Traceback ...\nPermissionError")


def test_decoded_routes_match_the_plan():
    from dhcp.rfc3442 import decode

    assert decode(PLANNED) == [
        (IPNetwork("100.64.0.0/10"), IPAddress("192.0.2.2")),
        (IPNetwork("172.16.100.0/24"), IPAddress("192.0.2.2")),
        (IPNetwork("0.0.0.0/0"), IPAddress("192.0.2.1")),
    ]
