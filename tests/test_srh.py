"""testbed.srv6.srh: the SRH encoder/decoder, against hand-computed bytes."""
from ipaddress import IPv6Address

import pytest

from testbed.srv6.srh import decode_srh, encode_srh, max_mtu_for, mtu_for, srh_len

A = bytes.fromhex("fc00" + "00" * 13 + "0a")
B = bytes.fromhex("fc00" + "00" * 13 + "0b")
C = bytes.fromhex("fc00" + "00" * 13 + "0c")


def test_addresses_are_what_they_say():
    assert IPv6Address(A) == IPv6Address("fc00::a")
    assert IPv6Address(B) == IPv6Address("fc00::b")


def test_one_segment():
    # nexthdr 143, hdrlen 2, type 4, sl 0, last 0, flags 0, tag 0, then fc00::a
    assert encode_srh(["fc00::a"]) == bytes([143, 2, 4, 0, 0, 0, 0, 0]) + A


def test_two_segments_reversed_on_the_wire():
    # visiting a then b: stored [b, a], sl = last = 1, hdrlen = 4
    assert encode_srh(["fc00::a", IPv6Address("fc00::b")]) == bytes([143, 4, 4, 1, 1, 0, 0, 0]) + B + A


def test_three_segments_flags_tag_nexthdr():
    got = encode_srh(["fc00::a", "fc00::b", "fc00::c"], nexthdr=41, flags=0x80, tag=0x1234)
    assert got == bytes([41, 6, 4, 2, 2, 0x80, 0x12, 0x34]) + C + B + A
    assert len(got) == srh_len(3) == 56


def test_decode_roundtrip_and_travel_order():
    wire = bytes([143, 4, 4, 1, 1, 0, 0, 0]) + B + A + b"payload"
    s = decode_srh(wire)
    assert (s.nexthdr, s.hdrlen, s.type, s.segments_left, s.last_entry, s.flags, s.tag) == (143, 4, 4, 1, 1, 0, 0)
    assert s.segments == (IPv6Address("fc00::b"), IPv6Address("fc00::a"))
    assert s.travel_order == [IPv6Address("fc00::a"), IPv6Address("fc00::b")]
    assert s.active_segment == IPv6Address("fc00::a")
    assert s.length == 40 and s.tlvs == b""


def test_decode_keeps_tlv_space():
    wire = bytes([143, 4, 4, 0, 0, 0, 0, 0]) + A + bytes([1, 6]) + b"\0" * 6 + b"\0" * 8
    s = decode_srh(wire)
    assert s.segments == (IPv6Address("fc00::a"),)
    assert s.tlvs == bytes([1, 6]) + b"\0" * 14


@pytest.mark.parametrize("n", [1, 2, 8, 15, 127])
def test_roundtrip(n):
    segs = [IPv6Address(f"fcff:{i + 1:x}::d20") for i in range(n)]
    s = decode_srh(encode_srh(segs))
    assert s.travel_order == segs and s.hdrlen == 2 * n and s.segments_left == n - 1


@pytest.mark.parametrize("wire,msg", [
    (b"", "SRH truncated: 0 bytes"),
    (bytes([143, 2, 4, 0, 0, 0, 0]), "SRH truncated: 7 bytes"),
    (bytes([143, 2, 0, 0, 0, 0, 0, 0]) + A, "routing type 0 is not 4"),
    (bytes([143, 2, 4, 0, 0, 0, 0, 0]) + A[:15], "hdrlen 2 declares 24 bytes, only 23 present"),
    (bytes([143, 2, 4, 1, 1, 0, 0, 0]) + A, "last entry 1 needs 2 segments (32 bytes) but hdrlen 2 holds only 16"),
    (bytes([143, 4, 4, 2, 1, 0, 0, 0]) + A + B, "segments left 2 is beyond the last entry 1"),
    (bytes([143, 1, 4, 0, 0, 0, 0, 0]) + A, "last entry 0 needs 1 segments (16 bytes) but hdrlen 1 holds only 8"),
])
def test_decode_errors(wire, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        decode_srh(wire)


def test_encode_errors():
    with pytest.raises(ValueError, match="at least one segment"):
        encode_srh([])
    with pytest.raises(ValueError, match="128 segments do not fit"):
        encode_srh(["fc00::1"] * 128)
    with pytest.raises(ValueError, match="not an IPv6 address"):
        encode_srh(["10.0.0.1"])
    with pytest.raises(ValueError, match="tag 65536 out of range"):
        encode_srh(["fc00::1"], tag=65536)


def test_mtus():
    assert mtu_for(1) == 1422 and mtu_for(2) == 1406
    assert max_mtu_for(1) == 65535 - 40 - 24 - 14 == 65457
