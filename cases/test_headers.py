"""H — the headers of what srl2 sends (CONFORMANCE H1-H6).

Each case sends frames from hs-1 into rt-1's bridge, captures what rt-1
sends on the underlay (armed before sending) and compares the bytes with the
packet the srl2 patch and RFC 8986 call for (testbed.packets.srv6_packet),
field by field, masking only what the case says it does not check."""
from __future__ import annotations

import pytest

from testbed.packets import assert_packet, scapy, send_frames, srv6_packet

P2P = "topologies/p2p.yaml"
FIRST_SID = "fcff:2::d20"  # rt-1's srl2-0 segs
RT1_UNDERLAY = "fcf0:0:1:2::1"  # the source the kernel selects towards fcff:2::/32


def marked(tag: bytes) -> bytes:
    """A payload that identifies the test frame among the lab's own traffic."""
    return b"srl2-testbed:" + tag


@pytest.mark.conformance("H1", "H3", "H4", "H5", "H6")
@pytest.mark.needs("srl2", "End.DT2U")
def test_outer_headers_of_a_frame_carrying_ipv6_hop_limit_1(lab, capture):
    """A bridged frame carrying IPv6 with hop limit 1, traffic class 0xb8 and
    flow label 0x12345 becomes: IPv6 (version 6, next header 43, payload
    length = SRH + frame, DA = the SID, SA = the source selected for the
    route, hop limit 64 and traffic class 0 from the device, not from the
    frame: H5, RFC 2473 6.3) + SRH (type 4, hdrlen 2, SL = last entry = 0,
    flags 0, tag 0, next header 143: H3) + the frame byte for byte (H4).
    Flow label: seg6_flowlabel 0 (the default) copies the inner IPv6 flow
    label (H6)."""
    sc = scapy()
    lab_ = lab(P2P)
    frame = bytes(sc.Ether(src="02:00:00:00:01:01", dst="02:00:00:00:02:02") /
                  sc.IPv6(src="cafe::1", dst="cafe::2", hlim=1, tc=0xB8, fl=0x12345) /
                  sc.UDP(sport=4000, dport=4001) / marked(b"H1"))
    underlay = capture(lab_, "rt-1", "veth-rt2")
    send_frames(lab_.node("hs-1"), "veth0", [frame])
    sent = underlay.wait_for(lambda f: f.outgoing and marked(b"H1") in f.data)
    assert len(sent) == 1, "rt-1 sent no (or more than one) SRv6 packet for the frame"
    expected = srv6_packet(frame, [FIRST_SID], RT1_UNDERLAY, hlim=64, tc=0, fl=0x12345)
    expected[sc.Ether].src = lab_.mac("rt-1", "veth-rt2")
    expected[sc.Ether].dst = lab_.mac("rt-2", "veth-rt1")
    assert_packet(expected, sent[0].data)
