"""testbed.decode: one line per frame (SRv6 outer, SRH, inner frame) and the
capture filter, on frames built by hand (SRHs by testbed.srv6.srh, inner
frames by scapy)."""
from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest

from testbed.decode import Filter, FilterError, decode
from testbed.packets import scapy
from testbed.srv6.srh import encode_srh

sc = scapy()
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr  # noqa: E402

OUTER_SRC, OUTER_DST = "02:00:00:00:01:01", "02:00:00:00:02:01"
H1, H2 = "0a:00:00:00:00:01", "0a:00:00:00:00:02"


def eth(dst: str, src: str, ethertype: int) -> bytes:
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + struct.pack("!H", ethertype)


def ipv6(src: str, dst: str, nh: int, payload: bytes, hlim: int = 64, fl: int = 0) -> bytes:
    return (struct.pack("!IHBB", (6 << 28) | fl, len(payload), nh, hlim)
            + IPv6Address(src).packed + IPv6Address(dst).packed + payload)


def srv6(inner: bytes, segs: list[str], sl: int | None = None, src: str = "fcf0:0:1:2::1") -> bytes:
    """An srl2 packet on the wire: outer Ethernet, IPv6 to the active SID, SRH, the frame."""
    srh = bytearray(encode_srh(segs))
    if sl is not None:
        srh[3] = sl
    active = segs[len(segs) - 1 - srh[3]]
    return eth(OUTER_DST, OUTER_SRC, 0x86DD) + ipv6(src, active, 43, bytes(srh) + inner, hlim=63, fl=0x12345)


def ping4(vlan: int | None = None) -> bytes:
    e = sc.Ether(src=H1, dst=H2)
    if vlan is not None:
        e = e / sc.Dot1Q(vlan=vlan, prio=3)
    return bytes(e / sc.IP(src="10.0.0.1", dst="10.0.0.2", id=7, flags="DF")
                 / sc.ICMP(type=8, id=3, seq=1) / (b"x" * 56))


def test_srv6_packet_shows_outer_srh_and_inner_icmp():
    line = decode(srv6(ping4(), ["fcff:2::d20"])).text
    assert line == (
        "02:00:00:00:01:01 > 02:00:00:00:02:01, ethertype IPv6 (0x86dd), length 176: "
        "(flowlabel 0x12345, hlim 63, next-header Routing (43), payload length 122) fcf0:0:1:2::1 > fcff:2::d20: "
        "SRH SL 0, segs [fcff:2::d20], next-header Ethernet (143): "
        "0a:00:00:00:00:01 > 0a:00:00:00:00:02, ethertype IPv4 (0x0800), length 98: "
        "(tos 0x0, ttl 64, id 7, offset 0, flags [DF], proto ICMP (1), length 84) 10.0.0.1 > 10.0.0.2: "
        "ICMP echo request, id 3, seq 1, length 64")


def test_segment_list_in_visiting_order_with_segments_left():
    d = decode(srv6(ping4(), ["fcff:2::e", "fcff:3::e", "fcff:4::d20"], sl=1))
    assert "> fcff:3::e: SRH SL 1, segs [fcff:2::e, fcff:3::e, fcff:4::d20]," in d.text
    assert {"srv6", "srh", "eth", "ipv4", "icmp"} <= d.tags
    assert d.sids == {"fcff:2::e", "fcff:3::e", "fcff:4::d20"}


def test_inner_vlan_tag():
    line = decode(srv6(ping4(vlan=10), ["fcff:2::d20"])).text
    assert ("0a:00:00:00:00:01 > 0a:00:00:00:00:02, ethertype 802.1Q (0x8100), length 102: "
            "vlan 10, p 3, ethertype IPv4 (0x0800), (tos 0x0") in line


def test_inner_arp_request_and_reply():
    req = bytes(sc.Ether(src=H1, dst="ff:ff:ff:ff:ff:ff") / sc.ARP(op=1, hwsrc=H1, psrc="10.0.0.1", pdst="10.0.0.2"))
    rep = bytes(sc.Ether(src=H2, dst=H1) / sc.ARP(op=2, hwsrc=H2, psrc="10.0.0.2", hwdst=H1, pdst="10.0.0.1"))
    assert decode(srv6(req, ["fcff:2::d20"])).text.endswith(
        "ethertype ARP (0x0806), length 42: ARP, Ethernet (len 6), IPv4 (len 4), "
        "Request who-has 10.0.0.2 tell 10.0.0.1, length 28")
    assert decode(rep).text.endswith("Reply 10.0.0.2 is-at 0a:00:00:00:00:02, length 28")
    assert "arp" in decode(req).tags


def test_inner_neighbour_solicitation_and_advertisement():
    ns = bytes(sc.Ether(src=H1, dst="33:33:ff:00:00:02") / sc.IPv6(src="cafe::1", dst="ff02::1:ff00:2", hlim=255)
               / ICMPv6ND_NS(tgt="cafe::2") / ICMPv6NDOptSrcLLAddr(lladdr=H1))
    na = bytes(sc.Ether(src=H2, dst=H1) / sc.IPv6(src="cafe::2", dst="cafe::1", hlim=255)
               / ICMPv6ND_NA(tgt="cafe::2", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=H2))
    d = decode(srv6(ns, ["fcff:2::d20"]))
    assert d.text.endswith("(hlim 255, next-header ICMPv6 (58), payload length 32) cafe::1 > ff02::1:ff00:2: "
                           "ICMP6, neighbor solicitation, who has cafe::2, src lladdr 0a:00:00:00:00:01, length 32")
    assert {"nd", "icmp6", "srv6"} <= d.tags and "icmp" not in d.tags
    assert decode(na).text.endswith("ICMP6, neighbor advertisement, tgt is cafe::2, flags [SO], "
                                    "tgt lladdr 0a:00:00:00:00:02, length 32")


def test_inner_icmpv6_echo_and_udp():
    echo = bytes(sc.Ether(src=H1, dst=H2) / sc.IPv6(src="cafe::1", dst="cafe::2") / sc.ICMPv6EchoRequest(id=9, seq=4))
    assert decode(echo).text.endswith("cafe::1 > cafe::2: ICMP6, echo request, id 9, seq 4, length 8")
    udp = bytes(sc.Ether(src=H1, dst=H2) / sc.IP(src="10.0.0.1", dst="10.0.0.2") / sc.UDP(sport=5, dport=7) / b"abc")
    assert decode(udp).text.endswith("10.0.0.1 > 10.0.0.2: UDP, 5 > 7, length 3")


def test_reduced_encapsulation_without_srh():
    """l2encap.red with one SID (topologies/mesh4.yaml): the frame follows the IPv6 header."""
    pkt = eth(OUTER_DST, OUTER_SRC, 0x86DD) + ipv6("fcf0:0:1:2::1", "fcff:2::d2", 143, ping4())
    d = decode(pkt)
    assert "next-header Ethernet (143), payload length 98) fcf0:0:1:2::1 > fcff:2::d2: 0a:00:00:00:00:01 >" in d.text
    assert "srv6" in d.tags and "srh" not in d.tags and d.sids == {"fcff:2::d2"}


def test_non_ip_ethertype_and_truncation_and_malformed_srh():
    raw = eth(H2, H1, 0x88B5) + b"\x01\x02\x03"
    assert decode(raw).text == "0a:00:00:00:00:01 > 0a:00:00:00:00:02, ethertype Local Experimental (0x88b5), " \
                               "length 17: 3 bytes 010203"
    assert decode(raw[:10]).text == "[|ether] 10 bytes"
    bad = bytearray(srv6(ping4(), ["fcff:2::d20"]))
    bad[14 + 40 + 3] = 5  # segments left beyond the last entry
    assert "SRH malformed: SRH segments left 5 is beyond the last entry 0" in decode(bytes(bad)).text
    short = srv6(ping4(), ["fcff:2::d20"])[:14 + 40 + 8 + 16 + 20]
    assert decode(short).text.endswith("ethertype IPv4 (0x0800), length 20: [|ip]")


def test_nested_encapsulation_is_bounded():
    pkt = ping4()
    for _ in range(20):
        pkt = srv6(pkt, ["fcff:2::d20"])
    assert decode(pkt).text.endswith("[8 nested encapsulations: not followed further]")


@pytest.mark.parametrize("expr, shown", [
    ("srv6", {"srv6", "srv6-arp"}),
    ("arp", {"arp", "srv6-arp"}),
    ("nd", {"nd"}),
    ("icmp", {"srv6"}),
    ("icmp6", {"nd"}),
    ("arp|nd", {"arp", "srv6-arp", "nd"}),
    ("srv6, !arp", {"srv6"}),
    ("!srv6", {"arp", "nd", "vlan", "raw"}),
    ("vlan=10", {"vlan"}),
    ("vlan=11", set()),
    ("vlan", {"vlan"}),
    ("ethertype=0x88b5", {"raw"}),
    ("ethertype=88B5", {"raw"}),
    ("ethertype=0x0806", {"arp", "srv6-arp"}),
    ("sid=fcff:2:0::d20", {"srv6", "srv6-arp"}),
    ("sid=10.0.0.1", None),
    ("host=10.0.0.2", {"srv6", "arp", "srv6-arp"}),
])
def test_filter(expr, shown):
    arp = bytes(sc.Ether(src=H1, dst="ff:ff:ff:ff:ff:ff") / sc.ARP(op=1, hwsrc=H1, psrc="10.0.0.1", pdst="10.0.0.2"))
    frames = {
        "srv6": srv6(ping4(), ["fcff:2::d20"]),
        "srv6-arp": srv6(arp, ["fcff:2::d20"]),
        "arp": arp,
        "nd": bytes(sc.Ether(src=H1) / sc.IPv6(src="cafe::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="cafe::2")),
        "vlan": bytes(sc.Ether(src=H1, dst=H2) / sc.Dot1Q(vlan=10) / sc.IPv6(src="cafe::1", dst="cafe::3")
                      / sc.UDP()),
        "raw": eth(H2, H1, 0x88B5) + b"\x00" * 46,
    }
    if shown is None:
        with pytest.raises(FilterError, match="'10.0.0.1' is not an IPv6 address"):
            Filter.parse(expr)
        return
    f = Filter.parse(expr)
    assert {name for name, data in frames.items() if f(decode(data))} == shown


@pytest.mark.parametrize("expr, message", [
    ("srv7", "unknown filter term 'srv7' (known: srv6, srh, arp"),
    ("srv6||arp", "empty term in filter 'srv6||arp'"),
    ("vlan=5000", "filter term 'vlan=5000': '5000' is not a VLAN id 0-4095"),
    ("ethertype", "filter term 'ethertype' needs a value: ethertype=..."),
    ("arp=1", "filter term 'arp' takes no value"),
    ("ethertype=0xzz", "'0xzz' is not a 16-bit hex number"),
])
def test_filter_errors_say_what_is_wrong(expr, message):
    with pytest.raises(FilterError) as e:
        Filter.parse(expr)
    assert message in str(e.value)
