"""srl2_ref's pure parsers never raise, on random, truncated and malformed input,
and say the right thing on well-formed packets."""
from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srl2_ref import decap, encap
from testbed.srv6.srh import decode_srh, encode_srh

ACTIONS = ["End.DT2U", "End.DX2", "End", "End.X", "bogus"]
FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SRC = IPv6Address("fc00::1").packed
addrs = st.integers(min_value=0, max_value=2**128 - 1).map(IPv6Address)


def outer(dst: bytes, payload: bytes, nh: int = 43, plen=None, hlim=64) -> bytes:
    plen = len(payload) if plen is None else plen
    return bytes([0x60, 0, 0, 0]) + plen.to_bytes(2, "big") + bytes([nh, hlim]) + SRC + dst + payload


@st.composite
def srv6_packets(draw):
    """Well-formed-ish SRv6 packets, then mutated: bytes flipped, truncated, extended."""
    segs = draw(st.lists(addrs, min_size=1, max_size=8))
    frame = draw(st.binary(min_size=0, max_size=80))
    nexthdr = draw(st.sampled_from([143, 143, 59, 41, 4, 6, 17]))
    srh = bytearray(encode_srh(segs, nexthdr=nexthdr))
    srh[3] = draw(st.integers(0, 255)) if draw(st.booleans()) else srh[3]
    pre = b""
    if draw(st.booleans()):  # a destination options or hop-by-hop header in front
        kind = draw(st.sampled_from([0, 60]))
        pre = bytes([kind, 0]) + b"\x01\x04\0\0\0\0"
    first_nh = 43
    if pre:
        pre = bytes([43]) + pre[1:]
        first_nh = 60 if draw(st.booleans()) else 0
    pkt = bytearray(outer(IPv6Address(segs[0]).packed, pre + bytes(srh) + frame, nh=first_nh))
    for _ in range(draw(st.integers(0, 3))):
        if pkt:
            i = draw(st.integers(0, len(pkt) - 1))
            pkt[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(pkt)))
    return bytes(pkt[:cut]) if draw(st.booleans()) else bytes(pkt)


def _check(v: decap.Verdict, pkt: bytes, action: str) -> None:
    assert isinstance(v, decap.Verdict)
    assert not v.reason.startswith("internal error"), v.reason
    if v.ok:
        assert action in ("End.DT2U", "End.DX2", "End", "End.X")
        if action in ("End.DT2U", "End.DX2"):
            assert 40 <= v.start and v.end - v.start >= 14 and v.end <= len(pkt)
        else:
            assert v.packet is not None and len(v.packet) >= 40
    else:
        assert v.reason


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(ACTIONS), st.booleans())
def test_random_bytes_never_raise(pkt, action, check_sl):
    _check(decap.classify(pkt, action, check_sl=check_sl), pkt, action)


@FUZZ
@given(srv6_packets(), st.sampled_from(ACTIONS), st.booleans())
def test_mutated_srv6_never_raise(pkt, action, check_sl):
    _check(decap.classify(pkt, action, check_sl=check_sl), pkt, action)
    try:
        decode_srh(pkt[40:])
    except ValueError as e:
        assert str(e)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([-1, 0, 1]), st.booleans())
def test_encap_helpers_never_raise(frame, mode, copy_hl):
    t = encap.Template([IPv6Address("fcff:2::d20")])
    out = t.outer(frame, IPv6Address("fc00::1"), mode, copy_inner_hoplimit=copy_hl)
    assert out[40:40 + 24] == t.srh and out[64:] == frame
    assert int.from_bytes(out[4:6], "big") == 24 + len(frame)
    assert 0 <= encap.hash_flowlabel(frame) < 2**20


@given(st.lists(addrs, min_size=1, max_size=10), st.binary(min_size=14, max_size=64))
@settings(max_examples=300, deadline=None)
def test_good_packets_accepted(segs, frame):
    srh = encode_srh(segs)
    # at the last node: segments_left 0, DA = last segment
    last = bytearray(srh)
    last[3] = 0
    pkt = outer(IPv6Address(segs[-1]).packed, bytes(last) + frame)
    for action in ("End.DT2U", "End.DX2"):
        v = decap.classify(pkt, action)
        assert v.ok and pkt[v.start:v.end] == frame
    # at the first node (End): SL n-1 -> n-2 and DA = the second SID
    if len(segs) > 1:
        pkt = outer(IPv6Address(segs[0]).packed, srh + frame)
        v = decap.classify(pkt, "End")
        assert v.ok
        assert v.packet[24:40] == IPv6Address(segs[1]).packed and v.packet[43] == len(segs) - 2
        assert v.packet[:24] == pkt[:24] and v.packet[44:] == pkt[44:]


def test_specific_drops_and_icmp_pointers():
    frame = b"\xff" * 12 + b"\x88\xb5" + b"x" * 20
    srh = bytearray(encode_srh(["fcff::1", "fcff::2"]))
    pkt = outer(b"\0" * 16, bytes(srh) + frame)  # SL 1 at a decap SID
    v = decap.classify(pkt, "End.DT2U")
    assert not v.ok and v.icmp == (4, 0, 43)
    assert decap.classify(pkt, "End.DT2U", check_sl=False).ok  # fault no_decap_sl_check
    pkt = outer(b"\0" * 16, encode_srh(["fcff::1"], nexthdr=59) + frame)
    v = decap.classify(pkt, "End.DX2")
    assert not v.ok and v.icmp == (4, 4, 40 + 24)
    pkt = outer(b"\0" * 16, frame, nh=143)  # no SRH at all: accepted (RFC 8986 / Linux)
    v = decap.classify(pkt, "End.DT2U")
    assert v.ok and pkt[v.start:v.end] == frame
    assert not decap.classify(pkt[:-1], "End.DT2U").ok  # payload length beyond the data
    assert not decap.classify(outer(b"\0" * 16, frame[:13], nh=143), "End.DX2").ok  # < 14 bytes
    body = decap.icmp_param_problem(pkt, 0, 43)
    assert body[:8] == bytes([4, 0, 0, 0, 0, 0, 0, 43]) and body[8:] == pkt


@pytest.mark.parametrize("mode,expect", [(-1, 0), (0, 0xABCDE)])
def test_flowlabel_modes(mode, expect):
    frame = b"\xff" * 12 + b"\x86\xdd" + bytes([0x60, 0x0A, 0xBC, 0xDE]) + b"\0" * 36
    assert encap.first_word(frame, mode) & 0xFFFFF == expect


def test_flowlabel_hash_is_per_flow():
    def f(sport):
        return (b"\xff" * 12 + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0])
                + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + sport.to_bytes(2, "big") + b"\0\x35\0\x08\0\0")
    assert encap.hash_flowlabel(f(1000)) == encap.hash_flowlabel(f(1000) + b"pad")
    labels = {encap.hash_flowlabel(f(p)) for p in range(1000, 1032)}
    assert len(labels) > 28
