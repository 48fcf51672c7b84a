"""H — the headers of what srl2 sends (docs/catalogue.md, H1-H6).

Each case sends frames from hs-1 into rt-1's bridge, captures what rt-1
sends on the underlay (armed before sending) and compares the bytes with the
packet the srl2 patch and RFC 8986 call for (testbed.packets.srv6_packet),
field by field, masking only what the case says it does not check.  The
comparison is one check per catalogue ID (testbed.casekit.check_packet): a
wrong hop limit fails H5 and leaves H1, H3 and H4 green."""
from __future__ import annotations

import errno
import ipaddress
import socket

import pytest

from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

from pyroute2.netlink.exceptions import NetlinkError

from testbed.casekit import ETH_P_EXP, check_packet, destination_of, inner_frame_of, l2frame, marker, sent, tag_of
from testbed.packets import scapy, send_frames, srv6_packet
from testbed.srv6.seg6genl import NETLINK_GENERIC, Seg6Genl
from testbed.wait import until

P2P = "topologies/p2p.yaml"
FIRST_SID = "fcff:2::d20"  # rt-1's srl2-0 segs
RT1_UNDERLAY = "fcf0:0:1:2::1"  # the source the kernel selects towards fcff:2::/32


@pytest.mark.conformance("H1", "H3", "H4", "H5", "H6")
@pytest.mark.needs("srl2", "End.DT2U")
def test_outer_headers_of_a_frame_carrying_ipv6_hop_limit_1(lab, capture, checks):
    """A bridged frame carrying IPv6 with hop limit 1, traffic class 0xb8 and
    flow label 0x12345 becomes: IPv6 (version 6, next header 43, payload
    length = SRH + frame, DA = the SID, SA = the source selected for the
    route, hop limit 64 and traffic class 0 from the device, not from the
    frame: H5, RFC 2473 6.3) + SRH (type 4, hdrlen 2, SL = last entry = 0,
    flags 0, tag 0, next header 143: H3) + the frame byte for byte (H4).
    Flow label: seg6_flowlabel 0 (the default) copies the inner IPv6 flow
    label (H6).  Each field is checked under its own ID."""
    sc = scapy()
    lab_ = lab(P2P)
    frame = bytes(sc.Ether(src="02:00:00:00:01:01", dst="02:00:00:00:02:02") /
                  sc.IPv6(src="cafe::1", dst="cafe::2", hlim=1, tc=0xB8, fl=0x12345) /
                  sc.UDP(sport=4000, dport=4001) / marker("H1"))
    underlay = capture(lab_, "rt-1", "veth-rt2")
    send_frames(lab_.node("hs-1"), "veth0", [frame])
    pkt = one_sent(checks, underlay, b"H1", "H1")
    if pkt is not None:
        expected = srv6_packet(frame, [FIRST_SID], RT1_UNDERLAY, hlim=64, tc=0, fl=0x12345)
        expected[sc.Ether].src = lab_.mac("rt-1", "veth-rt2")
        expected[sc.Ether].dst = lab_.mac("rt-2", "veth-rt1")
        check_packet(checks, "a frame carrying IPv6 hop limit 1", expected, pkt, main="H1")


# ---- the lab and helpers of the cases below --------------------------------
#
# hs-1 -- rt-1 ==== rt-2.  hs-1 only sends raw frames (no addresses: nothing
# of its own to say); rt-1 bridges them into its srl2 devices; rt-2 is a plain
# host that owns the next hop and drops what it receives (no SIDs: the cases
# read what rt-1 puts on the wire, and a lab without a far end comes up faster).

HDR = """\
name: hdr
nodes:
  hs-1:
    interfaces:
      veth0: {{mac: "02:00:00:00:01:01"}}
  rt-1:
    kind: router
{rt1_extra}    interfaces:
      veth-rt2: {{addresses: [{rt1_addrs}]}}
    bridges:
      br0: {{ports: [veth-hs]}}
    srl2:
{srl2}    routes:
      - {{dst: "fcff::/16", via: "fcf0:0:1:2::2"}}
  rt-2:
    interfaces:
      veth-rt1: {{addresses: ["fcf0:0:1:2::2/64"]}}
links:
  - [hs-1:veth0, rt-1:veth-hs]
  - [rt-1:veth-rt2, rt-2:veth-rt1]
"""
ONE_DEV = {"srl2-0": [FIRST_SID]}
SEGS_BY_N = {1: ["fcff:2::d20"],  # distinct first SIDs: one DA per device
             2: ["fcff:3::e", "fcff:2::d20"],
             3: ["fcff:4::e", "fcff:3::e", "fcff:2::d20"]}
HS_MAC = "02:00:00:00:01:01"


def hdr_lab(lab, devices=ONE_DEV, rt1_addrs=(RT1_UNDERLAY + "/64",), rt1_extra=""):
    """The H lab: rt-1 bridges hs-1 into one srl2 device per entry of
    `devices` (name -> segs); everything towards fcff::/16 goes to rt-2."""
    srl2 = "".join(f"      {name}: {{segs: [{', '.join(repr(s) for s in segs)}], bridge: br0}}\n"
                   for name, segs in devices.items())
    return lab(HDR.format(rt1_extra=rt1_extra, rt1_addrs=", ".join(f'"{a}"' for a in rt1_addrs),
                          srl2=srl2))


def l2(tag: bytes, dst: str = "ff:ff:ff:ff:ff:ff", size: int = 0, ethertype: int = ETH_P_EXP) -> bytes:
    """A non-IP frame from hs-1 carrying the marker, filled to `size` bytes."""
    return l2frame(dst, marker(tag), src=HS_MAC, size=size, ethertype=ethertype)


def v4(tag: bytes, ttl: int = 64, tos: int = 0, sport: int = 4000) -> bytes:
    sc = scapy()
    return bytes(sc.Ether(src=HS_MAC, dst="02:00:00:00:02:02") /
                 sc.IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl, tos=tos) /
                 sc.UDP(sport=sport, dport=4001) / marker(tag))


def v6(tag: bytes, hlim: int = 64, tc: int = 0, fl: int = 0, sport: int = 4000) -> bytes:
    sc = scapy()
    return bytes(sc.Ether(src=HS_MAC, dst="02:00:00:00:02:02") /
                 sc.IPv6(src="cafe::1", dst="cafe::2", hlim=hlim, tc=tc, fl=fl) /
                 sc.UDP(sport=sport, dport=4001) / marker(tag))


def sent_for(cap, tag: bytes, count: int = 1) -> list[bytes]:
    """The SRv6 packets rt-1 sent carrying `tag`, once `count` were seen."""
    return [f.data for f in sent(cap, marker(tag), count)]


def one_sent(checks, cap, tag: bytes, cid: str) -> bytes | None:
    """The one packet rt-1 sent for frame TAG; None (and a failed check of
    CID) when it sent none or several."""
    got = sent_for(cap, tag)
    ok = checks.check(cid, f"SRv6 packets rt-1 sent for frame {tag.decode()}", len(got) == 1, 1, len(got))
    return got[0] if ok else None


def expected_packet(lab_, frame: bytes, segs, src=RT1_UNDERLAY, **outer):
    """srv6_packet with the underlay link's MACs (checked as well: rt-1 -> rt-2)."""
    sc = scapy()
    exp = srv6_packet(frame, segs, src, **outer)
    srh = exp[IPv6ExtHdrSegmentRouting]
    if exp.haslayer(sc.Padding) or bytes(srh.payload) != frame:
        # scapy does not rebuild some frames as they were (a trailer after ARP
        # becomes Padding, left out of the payload length): keep the bytes
        srh.remove_payload()
        srh.add_payload(sc.Raw(frame))
    exp[sc.Ether].src = lab_.mac("rt-1", "veth-rt2")
    exp[sc.Ether].dst = lab_.mac("rt-2", "veth-rt1")
    return exp


# ---- H1 ----------------------------------------------------------------------

@pytest.mark.conformance("H1", "H4")
@pytest.mark.needs("srl2")
def test_payload_length_and_destination_for_several_frame_sizes(lab, capture, checks):
    """H1: for frames of 60 (the minimum Ethernet frame without FCS), 61,
    128, 512, 1000 and 1436 bytes (the device MTU 1422 + 14: the largest
    frame the bridge hands over for one SID, which makes a 1500-byte outer
    packet), the outer IPv6 header has version 6, next header 43, payload
    length = 24 (SRH of one segment) + frame length and DA = the SID; the
    whole packet is compared byte for byte (H4: nothing appended, no FCS)."""
    lab_ = hdr_lab(lab)
    cap = capture(lab_, "rt-1", "veth-rt2")
    sizes = [60, 61, 128, 512, 1000, 1436]
    frames = {size: l2(b"H1-%d" % size, size=size) for size in sizes}
    send_frames(lab_.node("hs-1"), "veth0", frames.values())
    for size, frame in frames.items():
        pkt = one_sent(checks, cap, b"H1-%d" % size, "H1")
        if pkt is None:
            continue
        checks.equal("H1", f"length of the packet of a {size}-byte frame", 14 + 40 + 24 + size, len(pkt))
        checks.equal("H1", f"outer payload length of a {size}-byte frame (SRH + frame)", 24 + size,
                     int.from_bytes(pkt[18:20], "big"))
        check_packet(checks, f"a {size}-byte frame", expected_packet(lab_, frame, [FIRST_SID]), pkt, main="H1")


# ---- H2 ----------------------------------------------------------------------

def _set_preferred(lab_, addr: str, preferred: int) -> None:
    """Make an address of rt-1's underlay deprecated (0) or preferred again."""
    ipr = lab_.node("rt-1").ipr
    ipr.addr("replace", index=lab_.ifindex("rt-1", "veth-rt2"), address=addr, prefixlen=64,
             preferred_lft=preferred, valid_lft=0xFFFFFFFF if preferred == 0xFFFFFFFF else 3600)


def _route_src(lab_, src: str) -> None:
    """Give rt-1's route towards the SIDs a `src` hint.  Set here rather than
    in the topology: right after an interface comes up its addresses are
    tentative for a moment (DAD off still runs addrconf's work queue), and
    the kernel refuses a route whose src is tentative (EINVAL "Invalid
    source address"); so retry with a deadline until it is accepted."""
    ipr = lab_.node("rt-1").ipr

    def replace() -> bool:
        try:
            ipr.route("replace", dst="fcff::", dst_len=16, gateway="fcf0:0:1:2::2", prefsrc=src,
                      family=socket.AF_INET6)
            return True
        except NetlinkError as e:
            if e.code != errno.EINVAL:
                raise
            return False

    assert until(replace), f"rt-1 refuses the route with src {src}"


def _set_tunsrc(lab_, addr: str) -> None:
    genl = Seg6Genl(lab_.node("rt-1").socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_GENERIC))
    try:
        genl.set_tunsrc(addr)
    finally:
        genl.close()


@pytest.mark.conformance("H2")
@pytest.mark.needs("srl2")
def test_source_address_is_selected_for_the_route_to_the_first_sid(lab, capture, checks):
    """H2 (a): with no tunnel source, the outer source is the address the
    kernel selects for the route towards the first SID (the seg6 helper
    srl2 reuses: source selection, RFC 6724, on the route's device). rt-1's
    underlay holds two addresses; which one is selected is steered by
    deprecating one (RFC 6724 rule 3: avoid deprecated addresses) and then
    the other: the source must follow each change (also: the choice is not
    frozen in a route cache). (b) `ip sr tunsrc` set while frames flow wins
    over the selected address from the next frame on; cleared (::), the
    selected address is back."""
    a1, a11 = RT1_UNDERLAY, "fcf0:0:1:2::11"
    lab_ = hdr_lab(lab, rt1_addrs=(a1 + "/64", a11 + "/64"))
    cap = capture(lab_, "rt-1", "veth-rt2")
    steps = [
        (b"H2-a", lambda: _set_preferred(lab_, a11, 0), a1, f"{a11} deprecated"),
        (b"H2-b", lambda: (_set_preferred(lab_, a11, 0xFFFFFFFF), _set_preferred(lab_, a1, 0)), a11,
         f"{a1} deprecated instead"),
        (b"H2-c", lambda: _set_tunsrc(lab_, "fcff:1::1"), "fcff:1::1", "tunsrc fcff:1::1 set"),
        (b"H2-d", lambda: _set_tunsrc(lab_, "::"), a11, "tunsrc cleared"),
    ]
    for tag, change, src, when in steps:
        change()
        frame = l2(tag)
        send_frames(lab_.node("hs-1"), "veth0", [frame])
        pkt = one_sent(checks, cap, tag, "H2")
        if pkt is not None:
            check_packet(checks, f"a frame sent with {when}", expected_packet(lab_, frame, [FIRST_SID], src=src),
                         pkt, main="H2")


@pytest.mark.conformance("H2")
@pytest.mark.needs("srl2")
def test_tunsrc_from_the_topology_wins(lab, capture, checks):
    """H2 (b): the node's `ip sr tunsrc` (topology key `tunsrc:`), set when
    the lab is built, is the source of every outer packet, although the
    route towards the first SID carries a `src` hint and the underlay has
    an address of its own; the address need not be local (Linux copies it)."""
    lab_ = hdr_lab(lab, rt1_extra='    tunsrc: "fcff:1::1"\n')
    _route_src(lab_, RT1_UNDERLAY)
    cap = capture(lab_, "rt-1", "veth-rt2")
    frames = [l2(b"H2-tunsrc"), v6(b"H2-tunsrc6", fl=0x1)]
    send_frames(lab_.node("hs-1"), "veth0", frames)
    for tag, frame, what, fl in ((b"H2-tunsrc", frames[0], "a non-IP frame", 0),
                                 (b"H2-tunsrc6", frames[1], "a frame carrying IPv6", 0x1)):
        pkt = one_sent(checks, cap, tag, "H2")
        if pkt is not None:
            check_packet(checks, f"{what} (tunsrc from the topology)",
                         expected_packet(lab_, frame, [FIRST_SID], src="fcff:1::1", fl=fl), pkt, main="H2")


@pytest.mark.conformance("H2")
@pytest.mark.needs("srl2")
def test_source_with_a_route_src_hint(lab, capture, checks):
    """H2 (a) with a route `src` hint: the route towards the first SID says
    `src fcf0:0:1:2::1` while source selection on the underlay device would
    pick the other address, fcf0:0:1:2::11 (the first one is deprecated).
    This case holds H2 to its words, "the address the kernel selects for the
    route towards the first SID", which is what `ip -6 route get SID`
    reports (the hint), asked here of rt-1 itself.

    FINDING: Linux's seg6 encap helper (seg6_do_srh_encap -> set_tun_src ->
    ipv6_dev_get_saddr on the route's device), which srl2 reuses, ignores
    a route's prefsrc: on 6.18, a route-based `encap seg6` packet leaves
    with the device-selected source although `ip route get` shows the hint.
    A kernel srl2 would fail this case; whether srl2 should honour `src`
    (as every other locally generated packet does) is for the series."""
    a1, a11 = RT1_UNDERLAY, "fcf0:0:1:2::11"
    lab_ = hdr_lab(lab, rt1_addrs=(a1 + "/64", a11 + "/64"))
    _route_src(lab_, a1)
    _set_preferred(lab_, a1, 0)
    reported = lab_.node("rt-1").ipr.route("get", dst=FIRST_SID, family=socket.AF_INET6)[0]
    assert reported.get_attr("RTA_PREFSRC") == a1, "the kernel does not report the route's src hint"
    cap = capture(lab_, "rt-1", "veth-rt2")
    frame = l2(b"H2-hint")
    send_frames(lab_.node("hs-1"), "veth0", [frame])
    pkt = one_sent(checks, cap, b"H2-hint", "H2")
    if pkt is not None:
        check_packet(checks, f"a frame sent with the route's src hint {a1} (deprecated)",
                     expected_packet(lab_, frame, [FIRST_SID], src=a1), pkt, main="H2")


# ---- H3 ----------------------------------------------------------------------

@pytest.mark.conformance("H1", "H3")
@pytest.mark.needs("srl2")
def test_srh_of_one_two_and_three_segments(lab, capture, checks):
    """H3: rt-1's bridge holds three srl2 devices with 1, 2 and 3 segments;
    one broadcast frame is flooded to all three, and each sends it with its
    own SRH: type 4, hdrlen 2n, segments_left = last entry = n-1, flags 0,
    tag 0, next header 143, no TLVs (the SRH is exactly 8 + 16n bytes), the
    segments reversed on the wire; DA = the first segment (H1)."""
    from testbed.srv6.srh import decode_srh

    devices = {f"srl2-{n}": segs for n, segs in SEGS_BY_N.items()}
    lab_ = hdr_lab(lab, devices)
    cap = capture(lab_, "rt-1", "veth-rt2")
    frame = l2(b"H3")
    send_frames(lab_.node("hs-1"), "veth0", [frame])
    got = sent_for(cap, b"H3", count=3)
    by_da = {destination_of(p): p for p in got}
    checks.equal("H1", "destinations of the packets of the 1-, 2- and 3-segment devices",
                 sorted(str(ipaddress.IPv6Address(s[0])) for s in SEGS_BY_N.values()),
                 sorted(str(destination_of(p) or "a packet without an SRH") for p in got))
    for n, segs in SEGS_BY_N.items():
        pkt = by_da.get(ipaddress.IPv6Address(segs[0]))
        if pkt is None:
            continue  # the H1 check above names the missing destination
        srh = decode_srh(pkt[54:])
        checks.equal("H3", f"SRH of {n} segments: nexthdr, hdrlen, type, segments left, last entry, flags, tag",
                      (143, 2 * n, 4, n - 1, n - 1, 0, 0),
                      (srh.nexthdr, srh.hdrlen, srh.type, srh.segments_left, srh.last_entry, srh.flags, srh.tag))
        checks.equal("H3", f"TLVs in the SRH of {n} segments", b"", srh.tlvs)
        checks.equal("H3", f"segment list on the wire for {n} segments (reversed)", list(reversed(segs)),
                     [str(s) for s in srh.segments])
        check_packet(checks, f"the packet of the {n}-segment device", expected_packet(lab_, frame, segs), pkt,
                     main="H3")


# ---- H4 ----------------------------------------------------------------------

@pytest.mark.conformance("H4")
@pytest.mark.needs("srl2")
def test_inner_frame_is_the_bridged_frame_byte_for_byte(lab, capture, checks):
    """H4: unicast (to a MAC the bridge does not know: flooded), broadcast
    and multicast destination MACs, an 802.1Q-tagged frame (PCP 5, VID 10),
    a QinQ frame (0x88a8 VID 100 + 0x8100 VID 10), a non-IP ethertype
    (0x88b5) and an ARP frame with trailing bytes are carried whole: the
    inner frame is byte for byte what hs-1 sent (MACs, tags, ethertype,
    payload, trailer), with no FCS and nothing appended."""
    sc = scapy()
    lab_ = hdr_lab(lab)
    cap = capture(lab_, "rt-1", "veth-rt2")
    frames = {
        b"H4-ucast": l2(b"H4-ucast", dst="02:00:00:00:02:02"),
        b"H4-bcast": l2(b"H4-bcast"),
        b"H4-mcast": l2(b"H4-mcast", dst="01:00:5e:7f:00:01"),
        b"H4-dot1q": bytes(sc.Ether(src=HS_MAC, dst="02:00:00:00:02:02") /
                           sc.Dot1Q(vlan=10, prio=5, type=ETH_P_EXP) / marker(b"H4-dot1q")),
        b"H4-qinq": bytes(sc.Ether(src=HS_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x88A8) /
                          sc.Dot1AD(vlan=100, type=0x8100) / sc.Dot1Q(vlan=10, type=ETH_P_EXP) /
                          marker(b"H4-qinq")),
        b"H4-arp": bytes(sc.Ether(src=HS_MAC, dst="ff:ff:ff:ff:ff:ff") /
                         sc.ARP(hwsrc=HS_MAC, psrc="10.0.0.1", pdst="10.0.0.2") / marker(b"H4-arp")),
    }
    send_frames(lab_.node("hs-1"), "veth0", frames.values())
    for tag, frame in frames.items():
        pkt = one_sent(checks, cap, tag, "H4")
        if pkt is None:
            continue
        name = tag.decode().removeprefix("H4-")
        checks.equal("H4", f"inner frame of the {name} frame", frame.hex(), (inner_frame_of(pkt) or b"").hex())
        check_packet(checks, f"the {name} frame", expected_packet(lab_, frame, [FIRST_SID]), pkt, main="H4")


# ---- H5 ----------------------------------------------------------------------

@pytest.mark.conformance("H5", "H6")
@pytest.mark.needs("srl2")
def test_hop_limit_and_traffic_class_from_the_device_and_the_route(lab, capture, checks):
    """H5: the outer hop limit is the route's or device's (64 by default)
    and the traffic class 0, for a non-IP frame and for frames carrying
    IPv4 (TTL 1, TOS 0xb8) and IPv6 (hop limit 1, traffic class 0xb8): the
    payload's IP header has no say (RFC 2473 6.3; T5: an L2 service carries
    MLD's hop limit 1 across routers). Then the route towards the first SID
    gets a `hoplimit 7` metric: the next frames leave with hop limit 7.
    Flow label: seg6_flowlabel 0 copies the inner IPv6 one (H6), else 0."""
    lab_ = hdr_lab(lab)
    cap = capture(lab_, "rt-1", "veth-rt2")
    for hl, suffix in ((64, b""), (7, b"-metric")):
        if hl != 64:
            ipr = lab_.node("rt-1").ipr
            ipr.route("replace", dst="fcff::", dst_len=16, gateway="fcf0:0:1:2::2", family=socket.AF_INET6,
                      metrics={"hoplimit": hl})
        frames = [(l2(b"H5-l2" + suffix), 0), (v4(b"H5-v4" + suffix, ttl=1, tos=0xB8), 0),
                  (v6(b"H5-v6" + suffix, hlim=1, tc=0xB8, fl=0x54321), 0x54321)]
        send_frames(lab_.node("hs-1"), "veth0", [f for f, _ in frames])
        for frame, fl in frames:
            tag = tag_of(frame)
            pkt = one_sent(checks, cap, tag, "H5")
            if pkt is not None:
                check_packet(checks, f"frame {tag.decode()} (route hop limit {hl})",
                             expected_packet(lab_, frame, [FIRST_SID], hlim=hl, tc=0, fl=fl), pkt, main="H5")


@pytest.mark.conformance("H5")
@pytest.mark.needs("srl2")
def test_hop_limit_of_the_underlay_device(lab, capture, checks):
    """H5, "the device's hop limit": with no hoplimit metric on the route,
    Linux takes the hop limit of the route's device (ip6_dst_hoplimit:
    net.ipv6.conf.DEV.hop_limit of the underlay device the first SID is
    routed through). rt-1's veth-rt2 has hop_limit 33: a non-IP frame and a
    frame carrying IPv6 with hop limit 1 both leave with hop limit 33."""
    lab_ = hdr_lab(lab, rt1_extra="    sysctls: {net.ipv6.conf.veth-rt2.hop_limit: 33}\n")
    cap = capture(lab_, "rt-1", "veth-rt2")
    frames = [(l2(b"H5-dev"), 0), (v6(b"H5-dev6", hlim=1, fl=0x7), 0x7)]
    send_frames(lab_.node("hs-1"), "veth0", [f for f, _ in frames])
    for (frame, fl), (tag, what) in zip(frames, ((b"H5-dev", "a non-IP frame"),
                                                 (b"H5-dev6", "a frame carrying IPv6 hop limit 1"))):
        pkt = one_sent(checks, cap, tag, "H5")
        if pkt is not None:
            check_packet(checks, f"{what} (underlay hop_limit 33)",
                         expected_packet(lab_, frame, [FIRST_SID], hlim=33, fl=fl), pkt, main="H5")


# ---- H6 ----------------------------------------------------------------------

FLOWLABEL = "net.ipv6.seg6_flowlabel"


@pytest.mark.conformance("H6")
@pytest.mark.needs("srl2")
def test_flow_label_modes(lab, capture, checks):
    """H6, net.ipv6.seg6_flowlabel in rt-1, changed while the lab runs:
    -1 -> flow label 0 for every frame (also one carrying IPv6 with flow
    label 0x12345); 0 -> copied from the inner IPv6 header, 0 for IPv4 and
    non-IP frames; 1 -> derived from the flow: six flows (IPv6 and IPv4 UDP
    with different source ports, a non-IP flow) of two frames each: the two
    frames of a flow get the same label, the flows at least two different
    labels, none zero. Everything but the flow label is compared too."""
    lab_ = hdr_lab(lab)
    rt1, hs1 = lab_.node("rt-1"), lab_.node("hs-1")
    cap = capture(lab_, "rt-1", "veth-rt2")

    def run(mode: int, frames: dict[bytes, bytes]) -> dict[bytes, int]:
        rt1.write_sysctls({FLOWLABEL: str(mode)})
        assert rt1.read_sysctl(FLOWLABEL) == str(mode)
        send_frames(hs1, "veth0", frames.values())
        labels = {}
        for tag, frame in frames.items():
            pkt = one_sent(checks, cap, tag, "H6")
            if pkt is None:
                continue
            # the flow label is what this case reads; the rest must be as always
            check_packet(checks, f"frame {tag.decode()} (seg6_flowlabel {mode})",
                         expected_packet(lab_, frame, [FIRST_SID]), pkt, ignore=("IPv6.fl",), main="H6")
            labels[tag] = int.from_bytes(pkt[15:18], "big") & 0xFFFFF
        return labels

    def hexed(labels: dict[bytes, int]) -> dict[str, str]:
        return {t.decode(): f"{v:#x}" for t, v in labels.items()}

    got = run(-1, {b"H6-off6": v6(b"H6-off6", fl=0x12345), b"H6-off4": v4(b"H6-off4"), b"H6-offl2": l2(b"H6-offl2")})
    checks.equal("H6", "flow labels under seg6_flowlabel -1", hexed({b"H6-off6": 0, b"H6-off4": 0, b"H6-offl2": 0}),
                 hexed(got))

    got = run(0, {b"H6-copy6": v6(b"H6-copy6", fl=0x12345), b"H6-copy4": v4(b"H6-copy4"),
                  b"H6-copyl2": l2(b"H6-copyl2")})
    checks.equal("H6", "flow labels under seg6_flowlabel 0 (copied from inner IPv6)",
                 hexed({b"H6-copy6": 0x12345, b"H6-copy4": 0, b"H6-copyl2": 0}), hexed(got))

    flows = {}
    for i in range(3):
        for k in range(2):
            flows[b"H6-hash6-%d-%d" % (i, k)] = v6(b"H6-hash6-%d-%d" % (i, k), sport=5000 + i)
    for i in range(2):
        for k in range(2):
            flows[b"H6-hash4-%d-%d" % (i, k)] = v4(b"H6-hash4-%d-%d" % (i, k), sport=6000 + i)
    for k in range(2):
        flows[b"H6-hashl2-x-%d" % k] = l2(b"H6-hashl2-x-%d" % k)
    got = run(1, flows)
    per_flow: dict[bytes, set[int]] = {}
    for tag, label in got.items():
        per_flow.setdefault(tag.rsplit(b"-", 1)[0], set()).add(label)
    differing = {f.decode(): sorted(v) for f, v in per_flow.items() if len(v) != 1}
    checks.equal("H6", "seg6_flowlabel 1: flows whose two frames got different labels", {}, differing)
    labels = {x for v in per_flow.values() for x in v}
    checks.check("H6", "seg6_flowlabel 1: distinct labels over six flows", len(labels) >= 2, "at least 2",
                 len(labels))
    checks.check("H6", "seg6_flowlabel 1: zero labels", 0 not in labels, "none", "some")
