"""testbed.casekit (pure parts): markers, frames, reading SRv6 packets back,
and packet comparisons that fail only the ID a differing field belongs to."""
from __future__ import annotations

from testbed.casekit import (check_packet, fresh_marker, inner_frame_of, l2frame, marker, tag_of)
from testbed.checks import Checks
from testbed.packets import scapy, srv6_packet

SRC = "02:00:00:00:00:01"


def test_markers_end_and_fresh_ones_differ():
    assert marker("H1") == b"srl2-testbed:H1|" and marker(b"x") == b"srl2-testbed:x|"
    assert fresh_marker("L1") != fresh_marker("L1")
    assert tag_of(b"....srl2-testbed:T7#12|rest") == b"T7#12" and tag_of(b"nothing") is None


def test_l2frame_has_its_size_tags_and_marker():
    f = l2frame("ff:ff:ff:ff:ff:ff", marker("x"), src=SRC, size=100, vlans=[(0x8100, 5)])
    assert len(f) == 100 and f[12:18] == bytes.fromhex("8100000588b5") and f[18:33] == marker("x")
    assert len(l2frame("ff:ff:ff:ff:ff:ff", marker("x"), src=SRC)) == 14 + len(marker("x"))


def test_inner_frame_is_found_through_the_decoded_srh():
    frame = l2frame("ff:ff:ff:ff:ff:ff", marker("in"), src=SRC, size=60)
    for segs in (["fc00::a"], ["fc00::a", "fc00::b", "fc00::c"]):
        assert inner_frame_of(bytes(srv6_packet(frame, segs, "fc00::1"))) == frame
    assert inner_frame_of(frame) is None


def test_a_wrong_hop_limit_fails_h5_only():
    sc = scapy()
    frame = bytes(sc.Ether(src=SRC) / sc.IPv6(hlim=1, tc=0xB8) / sc.UDP() / marker("h5"))
    exp = srv6_packet(frame, ["fc00::a"], "fc00::1", hlim=64, tc=0)
    got = sc.Ether(bytes(exp))
    got[sc.IPv6].hlim, got[sc.IPv6].tc = 1, 0xB8
    c = Checks(["H1", "H3", "H4", "H5", "H6"])
    assert not check_packet(c, "the packet", exp, bytes(got), main="H1")
    assert {i: c.verdict(i) for i in ("H1", "H3", "H4", "H5", "H6")} == {
        "H1": "pass", "H3": "pass", "H4": "pass", "H5": "fail", "H6": "pass"}
    assert c.message().splitlines() == [
        "H5 [RFC 2473 §6.3; srl2 patch] outer traffic class of the packet: expected 0, seen 184",
        "H5 [RFC 2473 §6.3; srl2 patch] outer hop limit of the packet: expected 64, seen 1"]


def test_fields_of_ids_the_case_is_not_tagged_with_fail_its_main_id():
    sc = scapy()
    frame = l2frame("ff:ff:ff:ff:ff:ff", marker("src"), src=SRC, size=60)
    exp = srv6_packet(frame, ["fc00::a"], "fc00::1")
    got = bytearray(bytes(exp))
    got[-1] ^= 1  # inner frame: H4
    c = Checks(["H2"])
    assert not check_packet(c, "the packet", exp, bytes(got), main="H2")
    assert [(x.id, x.verdict) for x in c.items] == [("H2", "fail")]
    assert "inner frame" in c.items[0].what or "byte" in c.items[0].what
    assert sc  # scapy bound
