"""RFC 3442 vectors (including the RFC's own examples) and strict decoding."""

import pytest
from netaddr import IPAddress, IPNetwork

from dhcp.rfc3442 import RouteEncodingError, decode, encode

# (prefix, router, expected hex): RFC 3442 section 1 and the BRIEF's vectors, every width class
VECTORS = [
    ("0.0.0.0/0", "192.0.2.1", "00c0000201"),
    ("128.0.0.0/1", "10.0.0.1", "01800a000001"),
    ("10.0.0.0/8", "192.0.2.2", "080ac0000202"),
    ("10.128.0.0/9", "192.0.2.2", "090a80c0000202"),
    ("100.64.0.0/10", "192.0.2.2", "0a6440c0000202"),
    ("10.17.0.0/16", "192.0.2.2", "100a11c0000202"),
    ("10.27.128.0/17", "192.0.2.2", "110a1b80c0000202"),
    ("10.229.0.0/24", "192.0.2.2", "180ae500c0000202"),
    ("10.198.122.128/25", "192.0.2.2", "190ac67a80c0000202"),
    ("10.198.122.47/32", "192.0.2.2", "200ac67a2fc0000202"),
]


@pytest.mark.parametrize("prefix,router,expected", VECTORS)
def test_encode_matches_known_vectors(prefix, router, expected):
    assert encode([(prefix, router)]).hex() == expected


@pytest.mark.parametrize("prefix,router,expected", VECTORS)
def test_decode_is_the_inverse(prefix, router, expected):
    assert decode(bytes.fromhex(expected)) == [(IPNetwork(prefix), IPAddress(router))]


def test_rfc_section_1_examples_in_one_option():
    # RFC 3442's own table: subnet number / width -> significant octets
    routes = [("0.0.0.0/0", "1.1.1.1"), ("10.0.0.0/8", "1.1.1.1"), ("10.0.0.0/24", "1.1.1.1"),
              ("10.17.0.0/16", "1.1.1.1"), ("10.27.129.0/24", "1.1.1.1"), ("10.229.0.128/25", "1.1.1.1"),
              ("10.198.122.47/32", "1.1.1.1")]
    data = encode(routes)
    assert data.hex() == (
        "0001010101" "080a01010101" "180a000001010101" "100a1101010101" "180a1b8101010101"
        "190ae5008001010101" "200ac67a2f01010101"
    )
    assert decode(data) == [(IPNetwork(p), IPAddress(r)) for p, r in routes]


def test_round_trip_of_many_routes_with_netaddr_objects():
    routes = [(IPNetwork(f"10.{i}.0.0/16"), IPAddress("192.0.2.2")) for i in range(50)]
    assert decode(encode(routes)) == routes


@pytest.mark.parametrize("prefix,router", [
    ("10.0.0.1/8", "192.0.2.2"),          # host bits set
    ("2001:db8::/32", "192.0.2.2"),       # IPv6 prefix
    ("10.0.0.0/8", "2001:db8::1"),        # IPv6 router
    ("10.0.0.0/33", "192.0.2.2"),         # width over 32
    ("not-a-prefix", "192.0.2.2"),
])
def test_encode_rejects_what_option_121_cannot_carry(prefix, router):
    with pytest.raises(RouteEncodingError):
        encode([(prefix, router)])


@pytest.mark.parametrize("data,problem", [
    ("21000000000000", "over 32"),              # width 33
    ("180ae500c00002", "truncated"),            # router cut short
    ("0a6440c000020218", "truncated"),          # trailing byte
    ("0a6440c0000202ff", "over 32"),            # trailing garbage
    ("08", "truncated"),                        # width with nothing after
    ("080a01c0000202", "truncated"),            # /8 with 2 destination octets misreads as trailing
    ("0a6441c0000202", "host bits"),            # 100.65.0.0/10 has host bits
])
def test_decode_is_strict(data, problem):
    with pytest.raises(RouteEncodingError, match=problem):
        decode(bytes.fromhex(data))


def test_empty_option_decodes_to_no_routes():
    assert decode(b"") == []
