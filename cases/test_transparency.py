"""T — L2 transparency, the reason srl2 exists (docs/catalogue.md, T1-T7).

Frames go in at hs-1 and must come out at hs-2 exactly as they went in:
ARP and ND resolve across the pseudowire, non-IP ethertypes and VLAN tags
pass untouched, every size up to the device MTU crosses, a frame whose IPv6
hop limit is 1 survives an underlay router, two pseudowires never mix, and a
burst arrives complete, in order and counted.  Captures are armed before
anything is sent; every comparison is byte for byte (testbed.packets
.field_diffs with nothing masked: a transparent service changes nothing).
Arriving and arriving unchanged are checks of their own, and so is counting.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import textwrap

import pytest

from testbed import casekit
from testbed.casekit import (ETH_P_EXP, ETH_P_IPV6, MARK, TPID_CTAG, TPID_STAG, carrying, counters_reach,
                             mac_bytes, ping, received, tag_of)
from testbed.casekit import marker as marked
from testbed.packets import assert_packet, field_diffs, is_srv6, scapy, send_frames
from testbed.srv6 import srh as srhlib

P2P = "topologies/p2p.yaml"
ISOLATION = "topologies/isolation.yaml"
# A source MAC no node of any lab uses: only the case's own frames carry it,
# so whatever arrives from it can be told apart from the lab's own traffic.
SRC = "02:5e:00:00:01:01"
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80


# ---- helpers -------------------------------------------------------------------

def l2frame(dst: str, tag: str, *, size: int = 60, src: str = SRC, vlans=(),
            ethertype: int = ETH_P_EXP) -> bytes:
    """A frame of exactly `size` bytes from SRC carrying the marker of TAG
    (testbed.casekit.l2frame)."""
    return casekit.l2frame(dst, marked(tag), src=src, size=size, vlans=vlans, ethertype=ethertype)


def assert_arrived_unchanged(cap, frames: dict[str, bytes], where: str) -> None:
    """Each frame (by tag) arrived exactly once, byte for byte (nothing masked)."""
    sc = scapy()
    received(cap, MARK, len(frames))
    for tag, frame in frames.items():
        got = [f for f in cap.frames if not f.outgoing and marked(tag) in f.data]
        assert len(got) == 1, f"frame {tag!r} ({len(frame)} bytes) arrived {len(got)} times at {where}"
        assert_packet(sc.Ether(frame), got[0].data)


def check_arrived_unchanged(checks, cap, frames: dict[str, bytes], where: str, arrives: str,
                            unchanged: str, why: str = "") -> None:
    """Each frame (by tag) arrived at WHERE exactly once (a check of ARRIVES)
    and byte for byte as sent (a check of UNCHANGED).  WHY adds to each
    frame's description (e.g. how its size relates to the MTU)."""
    sc = scapy()
    received(cap, MARK, len(frames))
    for tag, frame in frames.items():
        what = f"frame {tag} ({len(frame)} bytes{why})"
        got = [f for f in cap.frames if carrying(marked(tag))(f)]
        if checks.equal(arrives, f"times {what} arrived at {where}", 1, len(got)):
            diffs = field_diffs(sc.Ether(frame), got[0].data)
            checks.check(unchanged, f"{what} as it arrived at {where}", not diffs, "byte for byte the frame sent",
                         "; ".join(d.line() for d in diffs[:3]))


def neighbour(lab_, node: str, dst: str):
    """(lladdr, NUD state) of NODE's neighbour entry for DST, or None."""
    entries = lab_.node(node).ipr.get_neighbours(dst=dst)
    if not entries:
        return None
    return entries[0].get_attr("NDA_LLADDR"), entries[0]["state"]


def drain(*caps) -> None:
    """Move what the sockets queued into each capture (keeps the kernel's
    receive queues short during long runs)."""
    for cap in caps:
        cap.drain()


# ---- T1, T2: address resolution across the pseudowire ------------------------

def is_arp(data: bytes, op: int, sender: str, target: str) -> bool:
    return (len(data) >= 42 and data[12:14] == b"\x08\x06" and data[20:22] == struct.pack("!H", op)
            and data[28:32] == socket.inet_aton(sender) and data[38:42] == socket.inet_aton(target))


def is_nd(data: bytes, icmp_type: int, target: str) -> bool:
    return (len(data) >= 78 and data[12:14] == b"\x86\xdd" and data[20] == 58 and data[54] == icmp_type
            and data[62:78] == ipaddress.IPv6Address(target).packed)


def resolve_and_ping(lab_, capture, *, request, reply, a: str, b: str) -> None:
    """hs-1 pings B with no neighbour entry: its resolution request crosses
    to hs-2 unchanged, hs-2's reply crosses back unchanged, and both hosts
    end with a learned (not static) entry naming the other's MAC; then hs-2
    pings A."""
    sc = scapy()
    mac1, mac2 = lab_.mac("hs-1", "veth0"), lab_.mac("hs-2", "veth0")
    assert neighbour(lab_, "hs-1", b) is None and neighbour(lab_, "hs-2", a) is None, \
        "a neighbour entry exists before anything was sent"
    at1, at2 = capture(lab_, "hs-1", "veth0"), capture(lab_, "hs-2", "veth0")

    p = ping(lab_, "hs-1", b)
    assert p.returncode == 0, f"hs-1 cannot ping {b} across the pseudowire:\n{p.stdout}{p.stderr}"
    asked = at1.wait_for(lambda f: f.outgoing and request(f.data))
    assert asked, f"hs-1 sent no resolution request for {b}"
    arrived = at2.wait_for(lambda f: not f.outgoing and request(f.data))
    assert arrived, f"hs-1's resolution request for {b} never reached hs-2"
    assert_packet(sc.Ether(asked[0].data), arrived[0].data)
    answered = at2.wait_for(lambda f: f.outgoing and reply(f.data))
    back = at1.wait_for(lambda f: not f.outgoing and reply(f.data))
    assert answered and back, f"hs-2's answer for {b} never reached hs-1"
    assert_packet(sc.Ether(answered[0].data), back[0].data)

    learned = neighbour(lab_, "hs-1", b)
    assert learned is not None and learned[0] == mac2, f"hs-1 learned {learned} for {b}, hs-2 is {mac2}"
    assert not learned[1] & (NUD_PERMANENT | NUD_NOARP), f"hs-1's entry for {b} is static ({learned[1]:#x})"

    p = ping(lab_, "hs-2", a)
    assert p.returncode == 0, f"hs-2 cannot ping {a} across the pseudowire:\n{p.stdout}{p.stderr}"
    learned = neighbour(lab_, "hs-2", a)
    assert learned is not None and learned[0] == mac1, f"hs-2 learned {learned} for {a}, hs-1 is {mac1}"
    assert not learned[1] & (NUD_PERMANENT | NUD_NOARP)


@pytest.mark.conformance("T1")
@pytest.mark.needs("srl2", "End.DT2U")
def test_arp_resolves_across_and_ipv4_ping_both_ways(lab, capture):
    """T1 (srl2 patch: an Ethernet pseudowire, so broadcast ARP crosses it):
    no static neighbours; hs-1's ARP request arrives at hs-2 byte for byte,
    the reply comes back byte for byte, hs-1 learns hs-2's MAC for 10.0.0.2
    and hs-2 learns hs-1's; IPv4 ping works both ways."""
    lab_ = lab(P2P)
    resolve_and_ping(lab_, capture, a="10.0.0.1", b="10.0.0.2",
                     request=lambda d: is_arp(d, 1, "10.0.0.1", "10.0.0.2"),
                     reply=lambda d: is_arp(d, 2, "10.0.0.2", "10.0.0.1"))


@pytest.mark.conformance("T2")
@pytest.mark.needs("srl2", "End.DT2U")
def test_nd_resolves_across_and_ipv6_ping_both_ways(lab, capture):
    """T2 (srl2 patch; RFC 4861 ND over a link stretched by the pseudowire):
    hs-1's Neighbor Solicitation for cafe::2 (multicast to the solicited-node
    group) arrives at hs-2 byte for byte, the Neighbor Advertisement comes
    back byte for byte, both hosts learn each other's MAC; ping both ways."""
    lab_ = lab(P2P)
    resolve_and_ping(lab_, capture, a="cafe::1", b="cafe::2",
                     request=lambda d: is_nd(d, 135, "cafe::2"),
                     reply=lambda d: is_nd(d, 136, "cafe::2"))


L2ENCAP = textwrap.dedent("""\
    # hs-1 and hs-2 share 10.0.0.0/24; rt-1 sends what it routes to 10.0.0.2
    # through the route-based SRv6 L2 encapsulation to rt-2's End.DX2.
    name: l2encap
    nodes:
      hs-1:
        interfaces:
          veth0: {addresses: [10.0.0.1/24]}
      rt-1:
        kind: router
        interfaces:
          veth-hs: {addresses: [10.0.0.254/24]}
          veth-rt2: {addresses: ["fcf0:0:1:2::1/64"]}
        routes:
          - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2"}
          - {dst: 10.0.0.2/32, dev: veth-rt2, encap: {type: seg6, mode: l2encap, segs: ["fcff:2::d2"]}}
      rt-2:
        kind: router
        interfaces:
          veth-rt1: {addresses: ["fcf0:0:1:2::2/64"]}
        sids:
          - {sid: "fcff:2::d2", action: End.DX2, oif: veth-hs}
      hs-2:
        interfaces:
          veth0: {addresses: [10.0.0.2/24]}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
      - [rt-2:veth-hs, hs-2:veth0]
    """)


@pytest.mark.conformance("T1")
@pytest.mark.needs("End.DX2")
def test_route_based_l2encap_never_carries_arp(lab, capture):
    """T1's contrast (docs/catalogue.md T1; Linux seg6_iptunnel l2encap): the
    route-based `encap seg6 mode l2encap` only encapsulates what a router
    routes.  An IPv4 packet hs-1 sends to rt-1's MAC for 10.0.0.2 is
    carried to hs-2 unchanged (End.DX2), but hs-1's ARP request for 10.0.0.2
    is never routed: no SRv6 packet leaves rt-1 and nothing reaches hs-2.
    That is why an L2 segment needs a device (srl2) in the bridge."""
    sc = scapy()
    lab_ = lab(L2ENCAP)
    mac1, rt1_mac = lab_.mac("hs-1", "veth0"), lab_.mac("rt-1", "veth-hs")
    underlay, at_hs2 = capture(lab_, "rt-1", "veth-rt2"), capture(lab_, "hs-2", "veth0")

    # Routed IPv4: the whole frame as rt-1 received it crosses.
    routed = bytes(sc.Ether(dst=rt1_mac, src=mac1) / sc.IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) /
                   sc.UDP(sport=4000, dport=4001) / marked("T1-routed"))
    send_frames(lab_.node("hs-1"), "veth0", [routed])
    got = received(at_hs2, marked("T1-routed"))
    assert len(got) == 1, "the l2encap route did not carry a routed IPv4 packet to hs-2"
    assert_packet(sc.Ether(routed), got[0].data)

    # ARP: the same hs-1, the same destination address, never carried.
    arp = bytes(sc.Ether(dst="ff:ff:ff:ff:ff:ff", src=mac1) /
                sc.ARP(op=1, hwsrc=mac1, psrc="10.0.0.1", pdst="10.0.0.2"))
    send_frames(lab_.node("hs-1"), "veth0", [arp])
    arps = [f for f in at_hs2.settle() if f.data[12:14] == b"\x08\x06"]
    assert arps == [], "an ARP request crossed a route-based l2encap"
    sent = [f for f in underlay.settle() if f.outgoing and is_srv6(f.data)]
    assert len(sent) == 1, f"rt-1 sent {len(sent)} SRv6 packets; only the routed IPv4 packet should be one"


# ---- T3: non-IP ethertypes and VLAN tags ---------------------------------------

@pytest.mark.conformance("T3", "H4")
@pytest.mark.needs("srl2", "End.DT2U")
def test_non_ip_and_vlan_tagged_frames_cross_unchanged(lab, capture, checks):
    """T3 (srl2 patch: the whole frame is the payload, next header 143;
    RFC 8986 4.11 End.DT2U delivers it as is): a local experimental
    ethertype (0x88b5, unicast and broadcast), an 802.3 length/LLC-SNAP
    frame, 802.1Q-tagged frames (PCP/DEI set, VID 0 priority tag, VID 4094
    carrying IPv6) and QinQ (0x88a8 over 0x8100, and 0x8100 over 0x8100)
    arrive at hs-2 (T3) byte for byte (H4: what srl2 carried is the frame).
    hs-2's capture puts back the VLAN tag the receiving kernel moves into
    metadata (testbed.capture puts it back)."""
    sc = scapy()
    lab_ = lab(P2P)
    hs2 = lab_.mac("hs-2", "veth0")
    ipv6 = bytes(sc.IPv6(src="cafe::1", dst="cafe::2", hlim=7) / sc.UDP(sport=1, dport=2))
    frames = {
        "ethertype": l2frame(hs2, "ethertype", size=64),
        "broadcast": l2frame("ff:ff:ff:ff:ff:ff", "broadcast", size=60),
        "dot1q": l2frame(hs2, "dot1q", vlans=[(TPID_CTAG, 0xB064)], size=80),  # PCP 5, DEI 1, VID 100
        "prio-tag": l2frame(hs2, "prio-tag", vlans=[(TPID_CTAG, 0x6000)], size=64),  # VID 0
        "qinq": l2frame(hs2, "qinq", vlans=[(TPID_STAG, 200), (TPID_CTAG, 100)], size=96),
        "double-8100": l2frame(hs2, "double-8100", vlans=[(TPID_CTAG, 300), (TPID_CTAG, 301)], size=96),
    }
    frames["dot1q-ipv6"] = (mac_bytes(hs2) + mac_bytes(SRC) + struct.pack("!HHH", TPID_CTAG, 4094, ETH_P_IPV6)
                            + ipv6 + marked("dot1q-ipv6"))
    llc = b"\xaa\xaa\x03\x00\x00\x00\x88\xb5" + marked("llc-snap") + b"\x00" * 20
    frames["llc-snap"] = mac_bytes(hs2) + mac_bytes(SRC) + struct.pack("!H", len(llc)) + llc

    at_hs2 = capture(lab_, "hs-2", "veth0")
    send_frames(lab_.node("hs-1"), "veth0", frames.values())
    check_arrived_unchanged(checks, at_hs2, frames, "hs-2", "T3", "H4")


# ---- T4: sizes -----------------------------------------------------------------

def device_mtu(lab_, node: str, dev: str = "srl2-0") -> int:
    return lab_.node(node).ipr.get_links(lab_.ifindex(node, dev))[0].get_attr("IFLA_MTU")


@pytest.mark.conformance("T4")
@pytest.mark.needs("srl2", "End.DT2U")
def test_every_size_up_to_the_mtu_crosses_unchanged(lab, capture, checks):
    """T4 (srl2 patch: MTU = 1500 - 40 - (8 + 16n) - 14, 1422 for one SID):
    the device MTU is 1422 on both ends; frames from the 60-byte minimum
    (without FCS) up to MTU + 14 untagged, MTU + 18 with an 802.1Q tag and
    MTU + 22 with QinQ, arrive at hs-2 byte for byte.  Frames just above
    (MTU + 15 .. MTU + 18 untagged, MTU + 19 tagged), whose SRv6 packet
    exceeds the 1500-byte underlay, may be dropped or fragmented and
    reassembled, but whatever arrives is byte-identical."""
    lab_ = lab(P2P)
    mtu = device_mtu(lab_, "rt-1")
    assert mtu == device_mtu(lab_, "rt-2") == srhlib.mtu_for(1) == 1422
    hs2 = lab_.mac("hs-2", "veth0")
    fit = {f"{n}": l2frame(hs2, f"{n}", size=n) for n in (60, 61, 64, 65, 127, 128, 512, 1000, 1280,
                                                          mtu + 13, mtu + 14)}
    fit["dot1q"] = l2frame(hs2, "dot1q", vlans=[(TPID_CTAG, 10)], size=mtu + 18)
    fit["qinq"] = l2frame(hs2, "qinq", vlans=[(TPID_STAG, 20), (TPID_CTAG, 10)], size=mtu + 22)
    over = {f"over{n}": l2frame(hs2, f"over{n}", size=n) for n in range(mtu + 15, mtu + 19)}
    over["over-dot1q"] = l2frame(hs2, "over-dot1q", vlans=[(TPID_CTAG, 10)], size=mtu + 19)

    at_hs2 = capture(lab_, "hs-2", "veth0")
    send_frames(lab_.node("hs-1"), "veth0", [*fit.values(), *over.values()])
    for tags, why in (([t for t in fit if t.isdigit()], ""), (["dot1q"], f", MTU {mtu} + 14 + 4 for one tag"),
                      (["qinq"], f", MTU {mtu} + 14 + 8 for two tags")):
        check_arrived_unchanged(checks, at_hs2, {t: fit[t] for t in tags}, "hs-2", "T4", "T4", why)
    check_only_unchanged(checks, at_hs2, {**fit, **over})


def check_only_unchanged(checks, cap, frames: dict[str, bytes]) -> None:
    """Once the link is quiet: every frame from the case's source MAC that
    arrived is one of `frames`, byte for byte (a frame cut short, padded or
    with a corrupted marker fails here): a T4 check."""
    sent = set(frames.values())
    ours = [f for f in cap.settle(quiet=0.3) if not f.outgoing and f.data[6:12] == mac_bytes(SRC)]
    corrupted = [f.data for f in ours if f.data not in sent]
    checks.check("T4", "frames that arrived changed (cut short, padded, corrupted)", corrupted == [], "none",
                 f"{len(corrupted)}, e.g. {len(corrupted[0])} bytes starting {corrupted[0][:64].hex()}"
                 if corrupted else "none")


BIG_UNDERLAY = textwrap.dedent("""\
    # p2p with every link at 9000 bytes: the bridges would carry frames far
    # bigger than the srl2 MTU, and the underlay any SRv6 packet they make.
    name: bigmtu
    nodes:
      hs-1: {}
      hs-2: {}
      rt-1:
        kind: router
        interfaces:
          veth-rt2: {addresses: ["fcf0:0:1:2::1/64"]}
        bridges:
          br0: {ports: [veth-hs]}
        srl2:
          srl2-0: {segs: ["fcff:2::d20"], bridge: br0}
        sids:
          - {sid: "fcff:1::d20", action: End.DT2U, l2dev: srl2-0, table: 90}
        routes:
          - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
      rt-2:
        kind: router
        interfaces:
          veth-rt1: {addresses: ["fcf0:0:1:2::2/64"]}
        bridges:
          br0: {ports: [veth-hs]}
        srl2:
          srl2-0: {segs: ["fcff:1::d20"], bridge: br0}
        sids:
          - {sid: "fcff:2::d20", action: End.DT2U, l2dev: srl2-0, table: 90}
        routes:
          - {dst: "fcff:1::/32", via: "fcf0:0:1:2::1", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
    links:
      - {endpoints: [hs-1:veth0, rt-1:veth-hs], mtu: 9000}
      - {endpoints: [rt-1:veth-rt2, rt-2:veth-rt1], mtu: 9000}
      - {endpoints: [rt-2:veth-hs, hs-2:veth0], mtu: 9000}
    """)


@pytest.mark.conformance("T4")
@pytest.mark.needs("srl2", "End.DT2U")
def test_frames_bigger_than_the_mtu_never_arrive_corrupted(lab, capture, checks):
    """T4, the "bigger frames" clause (docs/catalogue.md T4): with hosts, bridge
    ports and underlay at 9000 bytes, frames above the srl2 MTU (MTU + 15
    up to 8000 bytes, untagged and tagged) are sent; the device may drop
    them (the bridge does not forward a frame above the port's MTU + 18) or
    carry them, but any that reaches hs-2 is byte-identical to one sent.
    A frame at exactly MTU + 14 still crosses (the control)."""
    lab_ = lab(BIG_UNDERLAY)
    mtu = device_mtu(lab_, "rt-1")
    hs2 = lab_.mac("hs-2", "veth0")
    control = {"fits": l2frame(hs2, "fits", size=mtu + 14)}
    big = {f"big{n}": l2frame(hs2, f"big{n}", size=n)
           for n in (mtu + 15, mtu + 18, mtu + 19, 1500, 1514, 1600, 4000, 8000, 9014)}
    big["big-dot1q"] = l2frame(hs2, "big-dot1q", vlans=[(TPID_CTAG, 10)], size=mtu + 23)
    big["big-dot1q-4k"] = l2frame(hs2, "big-dot1q-4k", vlans=[(TPID_CTAG, 10)], size=4018)

    at_hs2 = capture(lab_, "hs-2", "veth0")
    send_frames(lab_.node("hs-1"), "veth0", [*big.values(), *control.values()])
    check_arrived_unchanged(checks, at_hs2, control, "hs-2", "T4", "T4", f", MTU {mtu} + 14")
    check_only_unchanged(checks, at_hs2, {**control, **big})


MTU_BY_SEGMENTS = textwrap.dedent("""\
    name: mtus
    nodes:
      rt-1:
        kind: router
        srl2:
          srl2-1: {segs: ["fcff:2::d20"]}
          srl2-2: {segs: ["fcff:2::e", "fcff:3::d20"]}
          srl2-3: {segs: ["fcff:2::e", "fcff:3::e", "fcff:4::d20"]}
          srl2-8: {segs: ["fcff:2::1", "fcff:2::2", "fcff:2::3", "fcff:2::4",
                          "fcff:2::5", "fcff:2::6", "fcff:2::7", "fcff:2::8"]}
    """)


@pytest.mark.conformance("T4", "N1")
@pytest.mark.needs("srl2")
def test_device_mtu_follows_the_number_of_segments(lab, checks):
    """T4/N1 (srl2 patch): the device MTU is 1500 - 40 - (8 + 16n) - 14 for
    n segments: 1422 (n=1), 1406 (n=2), 1390 (n=3), 1310 (n=8).  Both IDs
    state it: one check each."""
    lab_ = lab(MTU_BY_SEGMENTS)
    got = {n: device_mtu(lab_, "rt-1", f"srl2-{n}") for n in (1, 2, 3, 8)}
    assert {n: srhlib.mtu_for(n) for n in got} == {1: 1422, 2: 1406, 3: 1390, 8: 1310}  # the formula itself
    for cid in ("T4", "N1"):
        checks.equal(cid, "device MTU by number of segments", {1: 1422, 2: 1406, 3: 1390, 8: 1310}, got)


# ---- T5: an IPv6 hop limit of 1 inside the frame -------------------------------

ROUTED_UNDERLAY = textwrap.dedent("""\
    # hs-1 -- rt-1 == mid == rt-2 -- hs-2: the pseudowire crosses a plain
    # IPv6 router (mid), which decrements the outer hop limit and drops a
    # packet that arrives with hop limit 1.
    name: routed
    nodes:
      hs-1: {}
      hs-2: {}
      rt-1:
        kind: router
        interfaces:
          veth-mid: {addresses: ["fcf0:0:1:3::1/64"]}
        bridges:
          br0: {ports: [veth-hs]}
        srl2:
          srl2-0: {segs: ["fcff:2::d20"], bridge: br0}
        sids:
          - {sid: "fcff:1::d20", action: End.DT2U, l2dev: srl2-0, table: 90}
        routes:
          - {dst: "fcff:2::/32", via: "fcf0:0:1:3::3", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
      mid:
        kind: router
        interfaces:
          veth-rt1: {addresses: ["fcf0:0:1:3::3/64"]}
          veth-rt2: {addresses: ["fcf0:0:2:3::3/64"]}
        routes:
          - {dst: "fcff:1::/32", via: "fcf0:0:1:3::1"}
          - {dst: "fcff:2::/32", via: "fcf0:0:2:3::2"}
      rt-2:
        kind: router
        interfaces:
          veth-mid: {addresses: ["fcf0:0:2:3::2/64"]}
        bridges:
          br0: {ports: [veth-hs]}
        srl2:
          srl2-0: {segs: ["fcff:1::d20"], bridge: br0}
        sids:
          - {sid: "fcff:2::d20", action: End.DT2U, l2dev: srl2-0, table: 90}
        routes:
          - {dst: "fcff:1::/32", via: "fcf0:0:2:3::3", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-mid, mid:veth-rt1]
      - [mid:veth-rt2, rt-2:veth-mid]
      - [rt-2:veth-hs, hs-2:veth0]
    """)


@pytest.mark.conformance("T5", "H5")
@pytest.mark.needs("srl2", "End.DT2U")
def test_frames_carrying_ipv6_hop_limit_1_cross_a_routed_underlay(lab, capture, checks):
    """T5 (RFC 2473 6.3: the tunnel's hop limit is the entry point's own;
    docs/catalogue.md H5): an MLDv2 report (hop limit 1, router alert) and
    a UDP datagram to ff02::1 with hop limit 1 cross an underlay with a
    router (mid) between the two ends and arrive at hs-2 byte for byte (T5);
    rt-1 sent them with the device's hop limit, 64 (H5), and mid forwarded
    them with 63 (T5).  A datapath that copies the inner hop limit to the
    outer header loses both at mid (reference fault `copy_inner_hoplimit`
    fails this case on T5 and H5)."""
    sc = scapy()
    from scapy.layers.inet6 import ICMPv6MLDMultAddrRec, ICMPv6MLReport2, IPv6ExtHdrHopByHop, RouterAlert

    lab_ = lab(ROUTED_UNDERLAY)
    group = "ff05::5e:7b"  # the report's group: what identifies it among the lab's own MLD
    frames = {
        "mld": bytes(sc.Ether(dst="33:33:00:00:00:16", src=SRC) /
                     sc.IPv6(src="fe80::5e:1", dst="ff02::16", hlim=1) /
                     IPv6ExtHdrHopByHop(options=[RouterAlert()]) /
                     ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(dst=group)])),
        "udp": bytes(sc.Ether(dst="33:33:00:00:00:01", src=SRC) /
                     sc.IPv6(src="fe80::5e:1", dst="ff02::1", hlim=1) /
                     sc.UDP(sport=5000, dport=5001) / marked("T5")),
    }
    keys = {"mld": ipaddress.IPv6Address(group).packed, "udp": marked("T5")}
    at_rt1 = capture(lab_, "rt-1", "veth-mid")
    at_mid, at_hs2 = capture(lab_, "mid", "veth-rt2"), capture(lab_, "hs-2", "veth0")
    send_frames(lab_.node("hs-1"), "veth0", frames.values())
    for name, frame in frames.items():
        out = at_rt1.wait_for(lambda f: f.outgoing and is_srv6(f.data) and keys[name] in f.data)
        checks.equal("H5", f"outer hop limit rt-1 sent for the {name} frame (inner hop limit 1)", [64],
                     [f.data[21] for f in out])
        got = received(at_hs2, keys[name])
        if checks.equal("T5", f"times the {name} frame (inner hop limit 1) arrived at hs-2 across the routed "
                              "underlay", 1, len(got)):
            diffs = field_diffs(sc.Ether(frame), got[0].data)
            checks.check("T5", f"the {name} frame as it arrived at hs-2", not diffs, "byte for byte the frame sent",
                         "; ".join(d.line() for d in diffs[:3]))
            fwd = at_mid.wait_for(lambda f: f.outgoing and is_srv6(f.data) and keys[name] in f.data)
            checks.equal("T5", f"outer hop limit mid forwarded the {name} frame with (64 - 1)", [63],
                         [f.data[21] for f in fwd])


# ---- T6: isolation -------------------------------------------------------------

@pytest.mark.conformance("T6")
@pytest.mark.needs("srl2", "End.DT2U")
def test_two_pseudowires_in_two_bridges_stay_isolated(lab, capture):
    """T6 (srl2 patch: one segment list per device, End.DT2U delivers into
    its own l2dev): VPN A and VPN B use the same host addresses and MACs
    (topologies/isolation.yaml).  Broadcast, unicast and tagged frames of
    each VPN, both ways, arrive on their own side byte for byte and never
    in the other VPN; on the underlay VPN A's frames go to fcff:2::d2a and
    VPN B's to fcff:2::d2b only; ping 10.0.0.2 works in both VPNs."""
    lab_ = lab(ISOLATION)
    peer = "02:00:00:00:00:02"
    hosts = ("hs-a1", "hs-a2", "hs-b1", "hs-b2")
    caps = {h: capture(lab_, h, "veth0") for h in hosts}
    underlay = capture(lab_, "rt-1", "veth-rt2")

    def frames(vpn: str, dst: str) -> dict[str, bytes]:
        return {f"{vpn}-bcast": l2frame("ff:ff:ff:ff:ff:ff", f"{vpn}-bcast"),
                f"{vpn}-ucast": l2frame(dst, f"{vpn}-ucast", size=100),
                f"{vpn}-dot1q": l2frame(dst, f"{vpn}-dot1q", vlans=[(TPID_CTAG, 7)], size=100)}

    sent = {("hs-a1", "hs-a2"): frames("A", peer), ("hs-b1", "hs-b2"): frames("B", peer),
            ("hs-a2", "hs-a1"): frames("A2", "02:00:00:00:00:01"),
            ("hs-b2", "hs-b1"): frames("B2", "02:00:00:00:00:01")}
    for (src, _), fs in sent.items():
        send_frames(lab_.node(src), "veth0", fs.values())
    for (_, dst), fs in sent.items():
        assert_arrived_unchanged(caps[dst], fs, dst)
    seen = {h: caps[h].settle() for h in hosts}  # a leaked frame would be here by now
    for (src, dst), fs in sent.items():
        for other in hosts:
            if other in (src, dst):
                continue
            leaked = [t for t in fs if any(marked(t) in f.data for f in seen[other])]
            assert leaked == [], f"frames {leaked} sent from {src} to {dst} appeared at {other}"

    das = {}
    for f in underlay.settle():
        if f.outgoing and is_srv6(f.data) and MARK in f.data:
            das.setdefault(f.data[f.data.index(MARK) + len(MARK):].split(b"-")[0], set()).add(ipaddress.IPv6Address(f.data[38:54]))
    assert das == {b"A": {ipaddress.IPv6Address("fcff:2::d2a")}, b"B": {ipaddress.IPv6Address("fcff:2::d2b")}}
    for src in ("hs-a1", "hs-b1"):
        p = ping(lab_, src, "10.0.0.2")
        assert p.returncode == 0, f"{src} cannot ping 10.0.0.2 in its own VPN:\n{p.stdout}{p.stderr}"


# ---- T7: a burst ---------------------------------------------------------------

QUIET = "topologies/quiet.yaml"  # no background traffic through the pseudowire

BURST = 2000
WINDOW = 50  # frames in flight at most: the sender waits for hs-2 to see each window


def seq_of(data: bytes) -> int | None:
    """The sequence number of a burst frame (its marker's tag is T7#N), else None."""
    tag = tag_of(data)
    return int(tag[3:]) if tag and tag.startswith(b"T7#") else None


@pytest.mark.conformance("T7", "N7")
@pytest.mark.needs("srl2", "End.DT2U")
def test_a_burst_arrives_complete_in_order_and_counted(lab, capture, checks):
    """T7 (docs/catalogue.md T7; counters as N7): 2000 frames of mixed sizes
    with sequence numbers, sent from hs-1 at most 50 ahead of what hs-2 has
    received, all arrive at hs-2, each once, in order, byte for byte (T7).
    Counters agree with the wire whatever else the nodes send (N7, a check
    of its own): rt-1's srl2-0 tx_packets moved by the number of SRv6
    packets rt-1 sent (at least the 2000) and tx_bytes by the sum of their
    inner frames' lengths.  rt-2's rx_packets / rx_bytes should move by the
    packets that reached its SID; the catalogue does not ask it of
    End.DT2U, so a difference is noted (T7), not failed."""
    lab_ = lab(QUIET)
    frames = [l2frame("ff:ff:ff:ff:ff:ff", f"T7#{i}", size=60 + (i * 37) % 1300) for i in range(BURST)]
    at_hs2 = capture(lab_, "hs-2", "veth0")
    out1, in2 = capture(lab_, "rt-1", "veth-rt2"), capture(lab_, "rt-2", "veth-rt1")
    tx0, rx0 = lab_.counters("rt-1", "srl2-0"), lab_.counters("rt-2", "srl2-0")

    hs1 = lab_.node("hs-1")
    with checks.expect("T7", "the burst at hs-2", f"all {BURST} frames, each once, in order, unchanged"):
        for start in range(0, BURST, WINDOW):
            send_frames(hs1, "veth0", frames[start:start + WINDOW])
            drain(out1, in2)
            got = at_hs2.wait_for(lambda f: not f.outgoing and seq_of(f.data) is not None,
                                  min(start + WINDOW, BURST), timeout=5.0)
            assert len(got) >= min(start + WINDOW, BURST), \
                f"after {min(start + WINDOW, BURST)} frames sent, hs-2 has received {len(got)}"
        got = [f for f in at_hs2.settle() if not f.outgoing and seq_of(f.data) is not None]
        seqs = [seq_of(f.data) for f in got]
        assert seqs == list(range(BURST)), (f"{len(seqs)} frames arrived; first out of place at index "
                                            f"{next((i for i, s in enumerate(seqs) if s != i), len(seqs))}")
        changed = [i for i, f in enumerate(got) if f.data != frames[i]]
        assert changed == [], f"{len(changed)} frames arrived changed, first seq {changed[:1]}"

    sent = [f.data for f in out1.settle() if f.outgoing and is_srv6(f.data)]
    came = [f.data for f in in2.settle() if not f.outgoing and is_srv6(f.data)]
    ours = [d for d in sent if seq_of(d) is not None]
    checks.equal("T7", f"SRv6 packets rt-1 sent for the {BURST} frames", BURST, len(ours))
    outer = 40 + srhlib.srh_len(1)
    want_tx = {"tx_packets": len(sent), "tx_bytes": sum(len(d) - 14 - outer for d in sent),
               "tx_dropped": 0, "tx_errors": 0}
    want_rx = {"rx_packets": len(came), "rx_bytes": sum(len(d) - 14 - outer for d in came)}

    got_tx = counters_reach(lab_, "rt-1", "srl2-0", tx0, want_tx)
    checks.equal("N7", "rt-1 srl2-0 counters after the burst, by the SRv6 packets it sent (tx_bytes: the frames "
                       "they carry)", want_tx, got_tx)
    got_rx = counters_reach(lab_, "rt-2", "srl2-0", rx0, want_rx)
    if got_rx != want_rx:
        checks.note("T7", "rt-2 srl2-0 (End.DT2U's l2dev) rx counters after the burst, by the SRv6 packets its "
                          "SID received", got_rx, want_rx)
