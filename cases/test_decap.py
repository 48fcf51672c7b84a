"""E — decapsulation at End.DT2U and End.DX2 SIDs (docs/catalogue.md, E1-E8).

A host `inj` on rt-2's underlay link sends crafted SRv6 packets (a whole
Ethernet frame to rt-2's MAC, built with scapy) to the SIDs of rt-2 and the
cases capture, armed before sending, what rt-2 delivers: into its bridge
through the End.DT2U l2dev (hs-2, hs-3 are the bridge's other ports) or out
of the End.DX2 oif (hs-x), and what comes back to inj (ICMPv6 errors under
--spec rfc8986).  Every inner frame carries a payload marker, so the lab's
own traffic never confuses a case.  Delivering (or dropping), answering
with ICMPv6 and counting are checks of their own IDs.

    inj ---- rt-2 ---- hs-2          rt-2: br0 = veth-h2 + veth-h3 + srl2-0
              |  \\--- hs-3                End.DT2U fcff:2::d20 l2dev srl2-0
              \\------ hs-x                End.DX2  fcff:2::d2  oif veth-x
"""
from __future__ import annotations

import errno
import textwrap

import pytest

from testbed.casekit import MARK, carrying, fresh_marker, l2frame, leaving, settled_delta
from testbed.errors import LabError
from testbed.packets import assert_packet, field_diffs, scapy, send_frames
from testbed.srv6 import nla
from testbed.wait import until

INJ = "fcf0:0:1:2::1"  # inj's underlay address: the source of every crafted packet
RT2 = "fcf0:0:1:2::2"
DT2U_SID = "fcff:2::d20"
DX2_SID = "fcff:2::d2"
OTHER_SID = "fcff:9::e"  # a segment that is not rt-2's (visited before the SID)
NEXTHDR_ETHERNET = 143
ICMP6_PARAM_PROB = 4

_QUIET_HOST = "{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.all.addr_gen_mode: 1}"

# End.DT2U (+ End.DX2) at rt-2.  Quiet: hosts without IPv6 link-local
# addresses, no IPv6 on br0, no multicast snooping (see tests/test_ref_labs.py
# QUIET); the ICMPv6 rate limit off so that every RFC 8986 error is sent.
DT2U_LAB = textwrap.dedent(f"""\
    name: decap
    nodes:
      inj:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: ["{INJ}/64"]}}
      rt-2:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.icmp.ratelimit: 0,
                  net.ipv6.conf.br0.disable_ipv6: 1}}
        interfaces:
          veth-inj: {{addresses: ["{RT2}/64"]}}
        bridges:
          br0: {{ports: [veth-h2, veth-h3], mcast_snooping: false}}
        srl2:
          srl2-0: {{segs: ["fcff:1::d20"], bridge: br0}}
        sids:
          - {{sid: "{DT2U_SID}", action: End.DT2U, l2dev: srl2-0, table: 90, count: true}}
          - {{sid: "{DX2_SID}", action: End.DX2, oif: veth-x, table: 90, count: true}}
        routes:
          - {{dst: "fcff:1::/32", via: "{INJ}", table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      hs-2:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: [10.0.0.2/24]}}
      hs-3:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: [10.0.0.3/24]}}
      hs-x:
        sysctls: {_QUIET_HOST}
    links:
      - [inj:veth0, rt-2:veth-inj]
      - [rt-2:veth-h2, hs-2:veth0]
      - [rt-2:veth-h3, hs-3:veth0]
      - [rt-2:veth-x, hs-x:veth0]
    """)

# End.DX2 only (no srl2, no End.DT2U): runs on the kernel datapath as well.
DX2_LAB = textwrap.dedent(f"""\
    name: decapdx2
    nodes:
      inj:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: ["{INJ}/64"]}}
      rt-2:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.icmp.ratelimit: 0}}
        interfaces:
          veth-inj: {{addresses: ["{RT2}/64"]}}
        sids:
          - {{sid: "{DX2_SID}", action: End.DX2, oif: veth-x, table: 90, count: true}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      hs-x:
        sysctls: {_QUIET_HOST}
    links:
      - [inj:veth0, rt-2:veth-inj]
      - [rt-2:veth-x, hs-x:veth0]
    """)

marker = fresh_marker  # every frame of this file is unique in the run


def inner_frame(mark: bytes, dst: str = "02:00:00:00:0e:02", src: str = "02:00:00:00:0e:01",
                ethertype: int = 0x88B5, size: int = 0) -> bytes:
    """An Ethernet frame of a local experimental ethertype carrying MARK, at
    least 60 bytes (the minimum frame) or SIZE."""
    return l2frame(dst, mark, src=src, ethertype=ethertype, size=max(60, size))


def srv6_to(lab_, sid: str, payload: bytes, *, segleft: int = 0, segs=None, nh: int = NEXTHDR_ETHERNET,
            srh: bool = True, hlim: int = 64):
    """The whole frame inj sends to rt-2: Ethernet + IPv6 (DA = SID) + an SRH
    whose active segment is SID (SEGS in wire order, Segments Left SEGLEFT)
    + PAYLOAD (the inner frame when NH is 143)."""
    sc = scapy()
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

    eth = sc.Ether(src=lab_.mac("inj", "veth0"), dst=lab_.mac("rt-2", "veth-inj"))
    if not srh:
        return eth / sc.IPv6(src=INJ, dst=sid, nh=nh, hlim=hlim) / sc.Raw(payload)
    segs = list(segs) if segs is not None else [sid]
    rh = IPv6ExtHdrSegmentRouting(nh=nh, type=4, segleft=segleft, lastentry=len(segs) - 1, addresses=segs)
    return eth / sc.IPv6(src=INJ, dst=sid, nh=43, hlim=hlim) / rh / sc.Raw(payload)


def inject(lab_, packets) -> None:
    send_frames(lab_.node("inj"), "veth0", [bytes(p) for p in packets])


def sid_model(lab_, sid: str):
    return next(s for s in lab_.topo.nodes["rt-2"].sids if str(s.sid.network_address) == sid)


def sid_counters(lab_, sid: str) -> dict:
    c = lab_.datapath.sid_counters(lab_.node("rt-2"), sid_model(lab_, sid))
    assert c is not None, f"the datapath reports no counters for SID {sid} (count: true)"
    return c


def sid_delta(lab_, sid: str, before: dict, want: dict) -> dict:
    """How the SID's counters moved since BEFORE, once they equal WANT or the deadline passed."""
    return settled_delta(lambda: sid_counters(lab_, sid), before, want)


def param_problems(frames) -> list:
    """ICMPv6 Parameter Problem messages among captured frames (scapy packets)."""
    sc = scapy()
    out = []
    for f in frames:
        if f.outgoing:
            continue
        p = sc.Ether(f.data)
        if p.haslayer(sc.IPv6) and p[sc.IPv6].nh == 58 and bytes(p[sc.IPv6].payload)[:1] == bytes([4]):
            out.append(p)
    return out


def expect_param_problem(inj_cap, sent, mark: bytes, code: int, pointer: int) -> None:
    """The one ICMPv6 Parameter Problem about SENT (the frame inj sent,
    carrying MARK) came back to inj, with CODE and POINTER, quoting the
    invoking packet (RFC 8986 4.9/4.11 and 4.1.1, RFC 4443 3.4)."""
    sc = scapy()
    from scapy.layers.inet6 import ICMPv6ParamProblem

    got = inj_cap.wait_for(lambda f: mark in f.data and bool(param_problems([f])))
    assert got, f"no ICMPv6 Parameter Problem (code {code}) came back to the source (--spec rfc8986)"
    inj_cap.settle()
    errors = [f for f in inj_cap.frames if mark in f.data and param_problems([f])]
    assert len(errors) == 1, f"{len(errors)} ICMPv6 errors for one packet"
    p = sc.Ether(got[0].data)
    assert p[sc.IPv6].dst == INJ, "the error must go back to the packet's source"
    icmp = ICMPv6ParamProblem(bytes(p[sc.IPv6].payload))
    assert (icmp.type, icmp.code, icmp.ptr) == (ICMP6_PARAM_PROB, code, pointer), (
        f"expected Parameter Problem code {code} pointer {pointer}, got type {icmp.type} code {icmp.code} "
        f"pointer {icmp.ptr}")
    quoted = bytes(icmp.payload)
    invoking = bytes(sent)[14:]
    n = min(len(invoking), 1280 - 48)
    assert len(quoted) >= n, "the error quotes less of the invoking packet than fits 1280 bytes"
    # The hop limit (byte 7) is masked: the reference datapath's SID packets
    # are forwarded once by the kernel on their way in (a known reference limit).
    assert quoted[:7] + quoted[8:n] == invoking[:7] + invoking[8:n], "the error does not quote the invoking packet"


def no_param_problem(checks, cid: str, inj_cap) -> None:
    errors = param_problems(inj_cap.settle())
    checks.equal(cid, "ICMPv6 Parameter Problems sent back (--spec linux: Linux drops silently)", 0, len(errors))


# ---- E7, E8: End.DX2 (both datapaths) ------------------------------------


def dx2_frames() -> list[tuple[str, bytes]]:
    """Inner frames End.DX2 must carry unchanged: of every shape T3/T4 name."""
    sc = scapy()
    m = marker
    mac = dict(dst="02:00:00:00:0e:02", src="02:00:00:00:0e:01")
    return [
        ("unicast 0x88b5", inner_frame(m("E7u"))),
        ("broadcast", inner_frame(m("E7b"), dst="ff:ff:ff:ff:ff:ff")),
        ("multicast", inner_frame(m("E7m"), dst="01:00:5e:7f:00:01")),
        ("802.1Q", bytes(sc.Ether(**mac) / sc.Dot1Q(vlan=100, prio=5) / sc.Raw(m("E7q").ljust(42, b".")))),
        ("QinQ", bytes(sc.Ether(**mac, type=0x88A8) / sc.Dot1AD(vlan=200) / sc.Dot1Q(vlan=300) /
                       sc.Raw(m("E7qq").ljust(38, b".")))),
        ("IPv6 hop limit 1", bytes(sc.Ether(**mac) / sc.IPv6(src="cafe::1", dst="ff02::16", hlim=1, fl=0xABCDE) /
                                   sc.UDP(sport=1, dport=2) / m("E7h"))),
        ("short (14 + 1 bytes)", bytes(sc.Ether(**mac, type=0x88B5)) + b"\x01"),
        ("long (1420 bytes: outer packet 1500 with two segments)", inner_frame(m("E7l"), size=1420)),
    ]


@pytest.mark.conformance("E7")
@pytest.mark.needs("End.DX2")
def test_end_dx2_sends_the_inner_frame_out_of_oif_unchanged(lab, capture):
    """E7 (RFC 8986 4.9 End.DX2; Linux input_action_end_dx2): the inner
    frame of a packet to an End.DX2 SID leaves oif byte for byte as it was
    carried (MACs, VLAN tags, ethertype, payload, any size up to what the
    underlay carries), once, with Segments Left 0 in a one- or two-segment
    SRH, and without an SRH (reduced encapsulation, next header 143).
    Captured where it leaves: rt-2's veth-x (a receiving veth would move a
    VLAN tag out of the frame)."""
    sc = scapy()
    lab_ = lab(DX2_LAB)
    oif = capture(lab_, "rt-2", "veth-x")
    cases = []
    for i, (what, frame) in enumerate(dx2_frames()):
        if i % 3 == 0:
            pkt, how = srv6_to(lab_, DX2_SID, frame), "SRH with one segment"
        elif i % 3 == 1:
            pkt, how = srv6_to(lab_, DX2_SID, frame, segs=[DX2_SID, OTHER_SID]), "SRH, SL 0 of two segments"
        else:
            pkt, how = srv6_to(lab_, DX2_SID, frame, srh=False), "no SRH"
        cases.append((f"{what}, {how}", frame, pkt))
    inject(lab_, [pkt for _, _, pkt in cases])
    oif.wait_for(lambda f: f.outgoing and f.data == cases[-1][1])
    oif.settle()
    out = [f.data for f in oif.frames if f.outgoing]
    for what, frame, _ in cases:
        seen = [d for d in out if d == frame]
        assert len(seen) == 1, f"{what}: the inner frame left oif {len(seen)} times (expected once, unchanged)"
        assert_packet(sc.Ether(frame), seen[0])  # no field masked: End.DX2 changes nothing
    # nothing else left oif: no outer header, no copy, no other frame of ours
    frames = [f for _, f, _ in cases]
    extra = [d for d in out if d not in frames and MARK in d]
    assert extra == [], f"{len(extra)} other frames left oif"


@pytest.mark.conformance("E8", "E3")
@pytest.mark.needs("End.DX2")
def test_end_dx2_count_packets_bytes_errors(lab, capture, checks):
    """E8 (`count` on a seg6local SID, Linux seg6_local_update_counters): a
    delivered packet adds 1 to packets and its length to bytes, where the
    length is the IPv6 packet's as the SID received it (outer header, SRH,
    inner frame: the kernel counts skb->len at seg6local input, which is what
    this case asserts for both datapaths); a dropped one (Segments Left 1,
    E3) adds 1 to errors and nothing to packets or bytes."""
    lab_ = lab(DX2_LAB)
    oif = capture(lab_, "rt-2", "veth-x")
    before = sid_counters(lab_, DX2_SID)
    good = [srv6_to(lab_, DX2_SID, inner_frame(marker("E8"), size=s)) for s in (60, 333, 1000)]
    bad = [srv6_to(lab_, DX2_SID, inner_frame(marker("E8x")), segs=[DX2_SID, OTHER_SID], segleft=1)
           for _ in range(2)]
    inject(lab_, bad + good)
    assert len(oif.wait_for(lambda f: f.outgoing and MARK + b"E8:" in f.data, 3)) == 3, \
        "End.DX2 did not deliver the three good packets (E7's, not counted here)"
    leaked = len([f for f in oif.settle() if f.outgoing and MARK + b"E8x:" in f.data])
    checks.equal("E3", "frames of the Segments Left 1 packets leaving oif", 0, leaked)
    # counted as what the SID did (E3 judges whether it should have)
    want = {"packets": 3 + leaked, "bytes": sum(len(bytes(p)) - 14 for p in good + bad[:leaked]),
            "errors": 2 - leaked}
    checks.equal("E8", f"SID counters after {3 + leaked} delivered and {2 - leaked} dropped packets "
                       "(bytes: IPv6 packet lengths)", want, sid_delta(lab_, DX2_SID, before, want))


# ---- E3, E4: what an End.DX2 / End.DT2U SID refuses --------------------


def refused(lab_, capture, checks, cid: str, spec: str, sid: str, deliver_caps, cases) -> None:
    """Send every (what, frame sent, marker, icmp code, pointer) of CASES to
    SID, then one valid packet; each refused packet: not delivered anywhere
    in DELIVER_CAPS and (rfc8986) answered by one ICMPv6 Parameter Problem
    with CODE and POINTER, (linux) by nothing (checks of CID), and counted
    as an error (E8).  The valid packet is delivered: the drops are the
    SID's, not the lab's."""
    inj = capture(lab_, "inj", "veth0")
    caps = [capture(lab_, node, ifname) for node, ifname in deliver_caps]
    before = sid_counters(lab_, sid)
    ok_mark = marker("valid")
    inject(lab_, [sent for _, sent, *_ in cases])
    inject(lab_, [srv6_to(lab_, sid, inner_frame(ok_mark))])
    for cap in caps:
        assert cap.wait_for(lambda f: ok_mark in f.data), \
            f"the valid packet was not delivered to {cap.where} (the lab, or E1/E7)"
    for cap in caps:
        cap.settle()
    for what, sent, mark, code, pointer in cases:
        for cap in caps:
            leaked = [f for f in cap.frames if mark in f.data]
            checks.equal(cid, f"{what}: inner frames delivered to {cap.where.split('-', 1)[1]}", 0, len(leaked))
        if spec == "rfc8986":
            with checks.expect(cid, f"{what}: the ICMPv6 error back to the source (--spec rfc8986)",
                               f"one Parameter Problem code {code} pointer {pointer} quoting the packet"):
                expect_param_problem(inj, sent, mark, code, pointer)
    if spec == "linux":
        no_param_problem(checks, cid, inj)
    # counted as what the SID did (CID judges whether it should have)
    delivered = sum(1 for _, _, m, _, _ in cases if any(m in f.data for cap in caps for f in cap.frames))
    want = {"packets": 1 + delivered, "errors": len(cases) - delivered}
    checks.equal("E8", f"SID {sid} counters after {len(cases) - delivered} refused packets and "
                       f"{1 + delivered} delivered", want, sid_delta(lab_, sid, before, want))


def segments_left_cases(lab_, sid: str):
    """Segments Left 1 and 2 with the SID as the active segment."""
    out = []
    for sl, segs in ((1, [OTHER_SID, sid]), (2, [OTHER_SID, "fcff:9::f", sid])):
        mark = marker(f"E3sl{sl}")
        sent = srv6_to(lab_, sid, inner_frame(mark), segs=segs, segleft=sl)
        out.append((f"Segments Left {sl}", sent, mark, 0, 40 + 3))  # pointer: the SRH's Segments Left
    return out


def upper_layer_cases(lab_, sid: str):
    """Next header 59 (none) and 41 (IPv6) after the SRH, and 59 without SRH."""
    sc = scapy()
    out = []
    for nh in (59, 41):
        mark = marker(f"E4nh{nh}")
        payload = (bytes(sc.IPv6(src="cafe::1", dst="cafe::2") / sc.UDP() / mark) if nh == 41
                   else mark.ljust(64, b"."))
        out.append((f"next header {nh} after the SRH", srv6_to(lab_, sid, payload, nh=nh), mark, 4, 40 + 24))
    mark = marker("E4nosrh")
    out.append(("next header 59, no SRH", srv6_to(lab_, sid, mark.ljust(64, b"."), nh=59, srh=False), mark, 4, 40))
    return out


@pytest.mark.conformance("E3", "E8")
@pytest.mark.needs("End.DX2")
def test_segments_left_not_zero_at_end_dx2_is_dropped(lab, capture, spec, checks):
    """E3 (RFC 8986 4.9: End.DX2 with Segments Left != 0 -> ICMP Parameter
    Problem code 0, pointer at Segments Left; Linux: silent drop): nothing
    leaves oif, the SID counts an error each; --spec decides the ICMP."""
    lab_ = lab(DX2_LAB)
    refused(lab_, capture, checks, "E3", spec, DX2_SID, [("rt-2", "veth-x")], segments_left_cases(lab_, DX2_SID))


@pytest.mark.conformance("E3", "E8")
@pytest.mark.needs("srl2", "End.DT2U")
def test_segments_left_not_zero_at_end_dt2u_is_dropped(lab, capture, spec, checks):
    """E3 (RFC 8986 4.11: End.DT2U with Segments Left != 0 -> ICMP Parameter
    Problem code 0, pointer at Segments Left; Linux: silent drop): nothing
    enters the bridge (neither host sees it), the SID counts an error each."""
    lab_ = lab(DT2U_LAB)
    refused(lab_, capture, checks, "E3", spec, DT2U_SID, [("hs-2", "veth0"), ("hs-3", "veth0")],
            segments_left_cases(lab_, DT2U_SID))


@pytest.mark.conformance("E4", "E8")
@pytest.mark.needs("End.DX2")
def test_upper_layer_not_ethernet_at_end_dx2_is_dropped(lab, capture, spec, checks):
    """E4 (RFC 8986 4.9 and 4.1.1: an upper-layer header other than 143 ->
    ICMP Parameter Problem code 4 pointing at it; Linux: silent drop):
    next header 59 or 41 after the SRH, or 59 with no SRH, is dropped."""
    lab_ = lab(DX2_LAB)
    refused(lab_, capture, checks, "E4", spec, DX2_SID, [("rt-2", "veth-x")], upper_layer_cases(lab_, DX2_SID))


@pytest.mark.conformance("E4", "E8")
@pytest.mark.needs("srl2", "End.DT2U")
def test_upper_layer_not_ethernet_at_end_dt2u_is_dropped(lab, capture, spec, checks):
    """E4 (RFC 8986 4.11 and 4.1.1): as for End.DX2, at End.DT2U: nothing
    enters the bridge."""
    lab_ = lab(DT2U_LAB)
    refused(lab_, capture, checks, "E4", spec, DT2U_SID, [("hs-2", "veth0"), ("hs-3", "veth0")],
            upper_layer_cases(lab_, DT2U_SID))


# ---- E1, E2: End.DT2U into the bridge ------------------------------------

AF_BRIDGE = 7
NUD_PERMANENT = 0x80


def fdb(lab_, node: str) -> dict[str, tuple[int, int]]:
    """The bridge forwarding database of NODE: MAC -> (port ifindex, NUD state)."""
    out = {}
    for m in lab_.node(node).ipr.get_neighbours(family=AF_BRIDGE):
        mac = m.get_attr("NDA_LLADDR")
        if mac:
            out[mac.lower()] = (m["ifindex"], m["state"])
    return out


@pytest.mark.conformance("E1", "E2", "E8")
@pytest.mark.needs("srl2", "End.DT2U")
def test_end_dt2u_frame_enters_the_bridge_on_l2dev_and_is_learned(lab, capture, checks):
    """E1 (RFC 8986 4.11 End.DT2U: learn the inner source MAC in the L2
    table, then forward; srl2 patch: the frame is received as if on l2dev,
    the Linux bridge learns): a decapsulated frame with an unknown
    destination reaches both other ports unchanged (E2) and never goes back
    out of l2dev (the bridge's split horizon: it came in there); `bridge fdb`
    then holds its source MAC on l2dev, a learned (not permanent) entry, and
    a frame from hs-2 to that MAC leaves on l2dev only, not on veth-h3.
    The SID counts one packet of the IPv6 packet's length (E8)."""
    sc = scapy()
    lab_ = lab(DT2U_LAB)
    src = "02:00:00:00:e1:01"
    assert src not in fdb(lab_, "rt-2")
    caps = {n: capture(lab_, n, "veth0") for n in ("hs-2", "hs-3")}
    l2dev = capture(lab_, "rt-2", "srl2-0")
    before = sid_counters(lab_, DT2U_SID)
    mark = marker("E1")
    frame = inner_frame(mark, src=src, dst="02:00:00:00:e1:02")
    sent = srv6_to(lab_, DT2U_SID, frame)
    inject(lab_, [sent])
    for name, cap in caps.items():
        got = cap.wait_for(carrying(mark))
        if checks.equal("E2", f"times the decapsulated unknown-unicast frame reached {name} (flooded once)", 1,
                        len(got)):
            diffs = field_diffs(sc.Ether(frame), got[0].data)
            checks.check("E1", f"the decapsulated frame as it reached {name}", not diffs,
                         "byte for byte the inner frame", "; ".join(d.line() for d in diffs[:3]))
    srl2_index = lab_.ifindex("rt-2", "srl2-0")
    learned = until(lambda: fdb(lab_, "rt-2").get(src))
    checks.equal("E1", f"port rt-2's bridge learned {src} on (l2dev srl2-0 is ifindex {srl2_index})",
                 srl2_index, learned[0] if learned else "not learned")
    if learned:
        checks.check("E1", f"the fdb entry of {src}", not learned[1] & NUD_PERMANENT, "learned",
                     f"static (state {learned[1]:#x})")
    checks.equal("E1", "times the frame went back out of l2dev (split horizon)", 0,
                 len([f for f in l2dev.frames if leaving(mark)(f)]))

    # the learned entry is used: a frame to src goes to srl2-0 only
    reply_mark = marker("E1r")
    reply = inner_frame(reply_mark, src="02:00:00:00:e1:02", dst=src)
    send_frames(lab_.node("hs-2"), "veth0", [reply])
    got = l2dev.wait_for(leaving(reply_mark))
    checks.equal("E1", "frames to the learned MAC leaving on srl2-0 (once, unchanged)", [reply.hex()],
                 [f.data.hex() for f in got])
    checks.equal("E1", "frames to the learned MAC flooded to hs-3", 0,
                 len([f for f in caps["hs-3"].settle() if reply_mark in f.data]))
    want = {"packets": 1, "bytes": len(bytes(sent)) - 14, "errors": 0}
    checks.equal("E8", "SID counters after one packet (bytes: its IPv6 length)", want,
                 sid_delta(lab_, DT2U_SID, before, want))


@pytest.mark.conformance("E2")
@pytest.mark.needs("srl2", "End.DT2U")
def test_end_dt2u_floods_unknown_unicast_broadcast_multicast(lab, capture):
    """E2 (RFC 8986 4.11: End.DT2U floods what the L2 table cannot resolve;
    C4: still broadcast/multicast after decapsulation): unknown unicast,
    broadcast and IPv4- and IPv6-mapped multicast each reach every other
    port of the bridge (hs-2, hs-3) once, unchanged, and none goes back out
    of l2dev.  (Multicast snooping is off in this lab: every multicast is
    flooded; snooping's own rules are not End.DT2U's.)"""
    sc = scapy()
    lab_ = lab(DT2U_LAB)
    caps = {n: capture(lab_, n, "veth0") for n in ("hs-2", "hs-3")}
    l2dev = capture(lab_, "rt-2", "srl2-0")
    frames = {}
    for what, dst in (("unknown unicast", "02:00:00:00:e2:99"), ("broadcast", "ff:ff:ff:ff:ff:ff"),
                      ("IPv4 multicast MAC", "01:00:5e:7f:00:01"), ("IPv6 multicast MAC", "33:33:00:00:00:fb")):
        mark = marker("E2")
        frames[what] = (mark, inner_frame(mark, dst=dst, src="02:00:00:00:e2:01"))
    inject(lab_, [srv6_to(lab_, DT2U_SID, f) for _, f in frames.values()])
    for name, cap in caps.items():
        for what, (mark, frame) in frames.items():
            got = cap.wait_for(carrying(mark))
            assert len(got) == 1, f"{what}: reached {name} {len(got)} times, expected once (flooded)"
            assert_packet(sc.Ether(frame), got[0].data)
    for name, cap in caps.items():
        cap.settle()
        for what, (mark, _) in frames.items():
            assert len([f for f in cap.frames if mark in f.data]) == 1, f"{what}: duplicated towards {name}"
    back = [f for f in l2dev.settle() if f.outgoing and MARK + b"E2:" in f.data]
    assert back == [], f"{len(back)} flooded frames went back out of l2dev (the port they came in on)"


# ---- E5: l2dev down or without carrier ---------------------------------

BR_STATE_FORWARDING = 3


def port_forwarding(lab_, node: str, ifname: str) -> bool:
    """Does the bridge port NODE:IFNAME forward (IFLA_BRPORT_STATE)?"""
    (link,) = lab_.node(node).ipr.get_links(lab_.ifindex(node, ifname))
    info = link.get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_SLAVE_DATA") if info is not None else None
    return data is not None and data.get_attr("IFLA_BRPORT_STATE") == BR_STATE_FORWARDING


def delivered_after_repair(lab_, caps, tag: str) -> None:
    """Once the bridge port forwards again, a valid packet gets through."""
    assert until(lambda: port_forwarding(lab_, "rt-2", "srl2-0")), "srl2-0 did not forward again once up"
    mark = marker(tag)
    inject(lab_, [srv6_to(lab_, DT2U_SID, inner_frame(mark))])
    for cap in caps:
        assert cap.wait_for(carrying(mark)), f"after the repair, the frame did not reach {cap.where}"


@pytest.mark.conformance("E5")
@pytest.mark.needs("srl2", "End.DT2U")
def test_end_dt2u_into_a_down_l2dev_is_dropped(lab, capture):
    """E5 (srl2 patch: End.DT2U delivers as if received on l2dev; a device
    that is down receives nothing): with srl2-0 set down (ip link set down),
    a valid packet to the End.DT2U SID reaches neither host; set up again,
    the next one does (the drop was l2dev's state, not the lab)."""
    lab_ = lab(DT2U_LAB)
    caps = [capture(lab_, n, "veth0") for n in ("hs-2", "hs-3")]
    rt2 = lab_.node("rt-2")
    index = lab_.ifindex("rt-2", "srl2-0")
    rt2.ipr.link("set", index=index, state="down")
    mark = marker("E5down")
    inject(lab_, [srv6_to(lab_, DT2U_SID, inner_frame(mark, dst="ff:ff:ff:ff:ff:ff"))])
    rt2.ipr.link("set", index=index, state="up")
    # the frame sent while down must never show up, also not late (after up)
    delivered_after_repair(lab_, caps, "E5up")
    for cap in caps:
        assert [f for f in cap.settle() if mark in f.data] == [], \
            f"a frame sent while l2dev was down reached {cap.where}"


CARRIER_LAB = textwrap.dedent(f"""\
    name: decapcarrier
    nodes:
      inj:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: ["{INJ}/64"]}}
      rt-2:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.br0.disable_ipv6: 1}}
        interfaces:
          veth-inj: {{addresses: ["{RT2}/64"]}}
        bridges:
          br0: {{ports: [veth-h2, veth-l2], mcast_snooping: false}}
        sids:
          - {{sid: "{DT2U_SID}", action: End.DT2U, l2dev: veth-l2, table: 90, dev: veth-inj}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      hs-2:
        sysctls: {_QUIET_HOST}
      hs-l:
        sysctls: {_QUIET_HOST}
    links:
      - [inj:veth0, rt-2:veth-inj]
      - [rt-2:veth-h2, hs-2:veth0]
      - [rt-2:veth-l2, hs-l:veth0]
    """)


@pytest.mark.conformance("E5")
@pytest.mark.needs("End.DT2U")
@pytest.mark.kernel_only("l2dev is a veth bridge port whose carrier goes off: the reference can deliver only "
                         "into its own srl2 TAPs, whose carrier cannot be turned off from outside")
def test_end_dt2u_into_an_l2dev_without_carrier_is_dropped(lab, capture):
    """E5 (srl2 patch: l2dev may be any bridge port): End.DT2U into a veth
    bridge port whose peer is down (no carrier) delivers nothing to the
    bridge's other port; with the peer up again, the next frame gets through."""
    lab_ = lab(CARRIER_LAB)
    cap = capture(lab_, "hs-2", "veth0")
    hsl = lab_.node("hs-l")
    peer = lab_.ifindex("hs-l", "veth0")
    hsl.ipr.link("set", index=peer, state="down")
    assert until(lambda: not port_forwarding(lab_, "rt-2", "veth-l2")), "veth-l2 kept forwarding without carrier"
    mark = marker("E5nocarrier")
    inject(lab_, [srv6_to(lab_, DT2U_SID, inner_frame(mark, dst="ff:ff:ff:ff:ff:ff"))])
    assert [f for f in cap.settle() if mark in f.data] == [], \
        "a frame reached the bridge through an l2dev without carrier"
    hsl.ipr.link("set", index=peer, state="up")
    assert until(lambda: port_forwarding(lab_, "rt-2", "veth-l2")), "veth-l2 did not forward with carrier back"
    mark = marker("E5carrier")
    inject(lab_, [srv6_to(lab_, DT2U_SID, inner_frame(mark, dst="ff:ff:ff:ff:ff:ff"))])
    assert cap.wait_for(carrying(mark)), "with carrier back, the frame did not reach hs-2"


# ---- E6: route creation errors -------------------------------------------

# rt-2 has a bridge port (veth-p) and a plain veth (veth-inj): End.DT2U
# routes are tried against them through rtnetlink.
E6_LAB = textwrap.dedent(f"""\
    name: decape6
    nodes:
      inj:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: ["{INJ}/64"]}}
      rt-2:
        kind: router
        interfaces:
          veth-inj: {{addresses: ["{RT2}/64"]}}
        bridges:
          br0: {{ports: [veth-p]}}
      hs-2: {{}}
    links:
      - [inj:veth0, rt-2:veth-inj]
      - [rt-2:veth-p, hs-2:veth0]
    """)


@pytest.mark.conformance("E6")
@pytest.mark.needs("End.DT2U")
@pytest.mark.kernel_only("rtnetlink refusals of seg6local End.DT2U routes: the reference has no such route")
def test_end_dt2u_route_creation_errors(lab, revision):
    """E6 (srl2 patch, seg6local End.DT2U l2dev parsing): an l2dev ifindex
    that does not exist -> ENODEV "l2dev device not found"; an l2dev that is
    neither a bridge port nor an srl2 device -> EINVAL "l2dev must be a
    bridge port or srl2 device" (sr6: "... or sr6 device", the revision's
    word); a bridge port is accepted (control)."""
    from pyroute2.netlink.exceptions import NetlinkError

    lab_ = lab(E6_LAB)
    ipr = lab_.node("rt-2").ipr
    dev = lab_.ifindex("rt-2", "veth-inj")
    missing = max(m["index"] for m in ipr.get_links()) + 1000
    for l2dev, code, text in ((missing, errno.ENODEV, "l2dev device not found"),
                              (dev, errno.EINVAL, f"l2dev must be a bridge port or {revision.l2dev_word} device")):
        with pytest.raises(NetlinkError) as e:
            nla.add_seg6local(ipr, "fcff:2::e6", "End.DT2U", dev=dev, l2dev=l2dev, table=90)
        assert abs(e.value.code) == code, f"l2dev {l2dev}: errno {e.value.code}, expected {errno.errorcode[code]}"
        assert len(e.value.args) > 1 and e.value.args[1] == text, f"extack {e.value.args[1:]!r}, expected {text!r}"
    nla.add_seg6local(ipr, "fcff:2::e6", "End.DT2U", dev=dev, l2dev=lab_.ifindex("rt-2", "veth-p"), table=90)


def e6_topology(l2dev: str) -> tuple[str, int]:
    """DT2U_LAB with the End.DT2U SID's l2dev replaced; (text, the SID's line)."""
    text = DT2U_LAB.replace("l2dev: srl2-0,", f"l2dev: {l2dev},")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f"l2dev: {l2dev}," in ln)
    return text, line


@pytest.mark.conformance("E6")
@pytest.mark.needs("srl2", "End.DT2U")
def test_end_dt2u_l2dev_errors_are_reported_at_the_yaml_line(lab, datapath, revision):
    """E6 through a topology: an End.DT2U whose l2dev is neither a bridge
    port nor an srl2 device (veth-inj) fails bring-up with one clear
    LabError naming the SID's YAML line and the reason (the kernel's
    extack on the kernel datapath; on the reference, which can only deliver
    into its own srl2 devices, its own equivalent refusal); an l2dev that
    does not exist at all is caught by the loader, at that line too."""
    from testbed.diagnostics import TopologyError

    text, line = e6_topology("nosuchdev")
    with pytest.raises(TopologyError) as te:
        lab(text)
    assert f":{line}:" in str(te.value) and "nosuchdev" in str(te.value), str(te.value)

    text, line = e6_topology("veth-inj")
    with pytest.raises(LabError) as e:
        lab(text)
    msg = str(e.value)
    assert "Traceback" not in msg and "\n" not in msg, msg
    expected = (f"l2dev must be a bridge port or {revision.l2dev_word} device" if datapath == "kernel"
                else "'veth-inj' is not an srl2 device of this node")
    assert expected in msg, msg
    assert e.value.where is not None and e.value.where.line == line, \
        f"the error names {e.value.where}, not the SID's line {line}: {msg}"
