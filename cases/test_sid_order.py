"""S — SID ordering (docs/catalogue.md, S1-S4).

What srl2 puts on the wire for one SID and for longer segment lists, how the
list travels through transit End routers (Segments Left counts down, the
destination is always the active segment, the list itself never changes:
RFC 8754 4.3.1.1, RFC 8986 4.1), the 127-SID limit of the SRH, and the SRH
the kernel reads back over rtnetlink."""
from __future__ import annotations

import errno
import ipaddress
import textwrap

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from testbed import topology
from testbed.casekit import carrying, check_packet, counter_delta, l2frame, leaving, marker
from testbed.diagnostics import TopologyError
from testbed.kerror import kernel_text
from testbed.packets import assert_packet, send_frames, srv6_of, srv6_packet
from testbed.srv6 import nla
from testbed.srv6.srh import MAX_SEGMENTS, encode_srh

P2P = "topologies/p2p.yaml"
HS_MAC = "02:00:00:00:01:01"


def l2(tag: bytes, dst: str = "ff:ff:ff:ff:ff:ff") -> bytes:
    """A non-IP frame from hs-1 carrying the marker of TAG (no filler)."""
    return l2frame(dst, marker(tag), src=HS_MAC)


# ---- S1 ----------------------------------------------------------------------

@pytest.mark.conformance("S1", "E1")
@pytest.mark.needs("srl2", "End.DT2U")
def test_one_sid_still_pushes_an_srh(lab, capture, checks):
    """S1: with a one-SID list (p2p: rt-1's srl2-0 segs fcff:2::d20) the
    packet still carries an SRH (next header 43; SRH of one segment, SL 0 =
    last entry 0, next header 143) and its DA is that SID; rt-2's End.DT2U
    takes it (SL 0) and hands hs-2 the frame unchanged (E1)."""
    lab_ = lab(P2P)
    wire = capture(lab_, "rt-1", "veth-rt2")
    far = capture(lab_, "hs-2", "veth0")
    frame = l2(b"S1")
    send_frames(lab_.node("hs-1"), "veth0", [frame])
    sent = wire.wait_for(leaving(marker(b"S1")))
    if checks.equal("S1", "packets rt-1 sent for the frame", 1, len(sent)):
        pkt = sent[0].data
        checks.equal("S1", "next header after the outer IPv6 header (routing)", 43, pkt[20])
        parsed = srv6_of(pkt)
        if checks.check("S1", "SRH of the packet", parsed is not None, "an SRH that decodes",
                        "none" if parsed is None else "one"):
            da, srh = parsed
            checks.equal("S1", "outer destination", "fcff:2::d20", str(da))
            checks.equal("S1", "SRH hdrlen, segments left, last entry, next header", (2, 0, 0, 143),
                         (srh.hdrlen, srh.segments_left, srh.last_entry, srh.nexthdr))
        exp = srv6_packet(frame, ["fcff:2::d20"], "fcf0:0:1:2::1")
        # the link-layer addresses of the underlay hop are not S1's business
        check_packet(checks, "the packet of a one-SID list", exp, pkt, ignore=("Ether.src", "Ether.dst"),
                     main="S1")
    got = far.wait_for(carrying(marker(b"S1")))
    checks.equal("E1", "frames End.DT2U delivered to hs-2 (once, unchanged)", [frame.hex()],
                 [f.data.hex() for f in got])


# ---- S2 ----------------------------------------------------------------------

LISTS = (2, 3, 8, 15)  # segment list lengths of S2


def loc(k: int) -> str:
    """Locator of router rt-k."""
    return f"fcff:{k:x}::"


def segs_for(n: int) -> list[str]:
    """n SIDs: the End SIDs of rt-2 .. rt-n, then End.DT2U at rt-(n+1)."""
    return [f"{loc(k)}e" for k in range(2, n + 1)] + [f"{loc(n + 1)}d20"]


def chain_yaml(lists=LISTS) -> str:
    """rt-1 .. rt-(N+1) in a line (N = the longest list).

    rt-1 has one srl2 device per list length n (srl2-n), in no bridge: the
    test hands each the frame itself (an AF_PACKET send on the device, as
    the bridge's dev_queue_xmit would).  Not bridged because a device with
    15 SIDs has MTU 1198 < 1280, so no IPv6, and the engine cannot then
    switch IPv6 off on it as a bridge port (it expects the sysctl file).  Every
    rt-k (k >= 2) has End SID fcff:k::e; where a list ends (rt-(n+1)) there
    is also End.DT2U fcff:(n+1)::d20 into an srl2 device of its own bridge.
    Link rt-k -- rt-(k+1) is fcf0:0:k::/64 (rt-k ::1, rt-(k+1) ::2) and every
    router sends fcff::/16 down the line.  The far ends' bridges have no
    IPv6 and no multicast snooping: nothing of their own goes back in."""
    last = max(lists) + 1
    ends = {n + 1 for n in lists}
    out = ["name: chain-s2", "nodes:"]
    for k in range(1, last + 1):
        out += [f"  rt-{k}:", "    kind: router", "    interfaces:"]
        if k > 1:
            out.append(f'      veth-dn: {{addresses: ["fcf0:0:{k - 1:x}::2/64"]}}')
        if k < last:
            out.append(f'      veth-up: {{addresses: ["fcf0:0:{k:x}::1/64"]}}')
            out += ["    routes:", f'      - {{dst: "fcff::/16", via: "fcf0:0:{k:x}::2"}}']
        if k == 1:
            out.append("    srl2:")
            out += [f"      srl2-{n}: {{segs: [{', '.join(segs_for(n))}]}}" for n in lists]
        if k in ends:
            out += ["    sysctls: {net.ipv6.conf.br0.disable_ipv6: 1}",
                    "    bridges:",
                    "      br0: {ports: [], mcast_snooping: false}",
                    "    srl2:",
                    '      srl2-0: {segs: ["fcff:1::d20"], bridge: br0}']
        if k > 1:
            out += ["    sids:", f'      - {{sid: "{loc(k)}e", action: End, dev: veth-dn}}']
            if k in ends:
                out.append(f'      - {{sid: "{loc(k)}d20", action: End.DT2U, l2dev: srl2-0}}')
    out += ["links:"]
    out += [f"  - [rt-{k}:veth-up, rt-{k + 1}:veth-dn]" for k in range(1, last)]
    return "\n".join(out) + "\n"


@pytest.mark.conformance("S2", "E1")
@pytest.mark.needs("srl2", "End", "End.DT2U")
def test_segment_lists_of_2_3_8_and_15_sids_through_transit_end_routers(lab, capture, checks):
    """S2 for n = 2, 3, 8 and 15 SIDs in one line of 16 routers: rt-1 sends
    one frame through each of four srl2 devices (one per n); on every underlay link
    k (rt-k -> rt-(k+1)) the packet of list n (k <= n) has DA = the k-th SID
    and Segments Left = n - k, and the SRH's list, the rest of the outer
    header (source, next headers, flow label, traffic class) and the inner
    frame are unchanged; the last node (End.DT2U, rt-(n+1)) sees Segments
    Left 0 and delivers the frame into its bridge (E1: the frame, unchanged,
    is passed up to that node's br0, whose only port is the l2dev srl2-0).
    No packet of list n appears beyond link n.  Whether l2dev's rx counters
    count the delivered frame is noted, not checked: the catalogue does not
    ask it of End.DT2U."""
    lab_ = lab(chain_yaml())
    last = max(LISTS) + 1
    caps = {k: capture(lab_, f"rt-{k + 1}", "veth-dn") for k in range(1, last)}
    bridges = {n: capture(lab_, f"rt-{n + 1}", "br0") for n in LISTS}
    rx0 = {n: lab_.counters(f"rt-{n + 1}", "srl2-0") for n in LISTS}
    mark = marker(b"S2")
    frame = l2(b"S2")
    for n in LISTS:
        send_frames(lab_.node("rt-1"), f"srl2-{n}", [frame])
    src = "fcf0:0:1::1"  # rt-1's address on link 1, the only one it has towards fcff::/16
    reached: set[int] = set()  # lists whose packet reached their End.DT2U (link n, DA the last SID)
    for k, cap in caps.items():
        want = [n for n in LISTS if k <= n]
        got = cap.wait_for(carrying(mark), count=len(want))
        by_list = {}  # (DA, number of segments) -> packets
        for f in got:
            parsed = srv6_of(f.data)
            if checks.check("S2", f"SRH of a packet carrying the frame on link {k}", parsed is not None,
                            "an SRH that decodes", "none"):
                by_list.setdefault((parsed[0], parsed[1].last_entry + 1), []).append(f.data)
        for n in want:
            segs = segs_for(n)
            pkts = by_list.pop((ipaddress.IPv6Address(segs[k - 1]), n), [])
            if not checks.equal("S2", f"packets of the list of {n} to {segs[k - 1]} on link {k}", 1, len(pkts)):
                continue
            if k == n:
                reached.add(n)
            da, srh = srv6_of(pkts[0])
            checks.equal("S2", f"segments left, last entry of the list of {n} on link {k}", (n - k, n - 1),
                         (srh.segments_left, srh.last_entry))
            checks.equal("S2", f"segment list of {n} on link {k} (wire order)", list(reversed(segs)),
                         [str(s) for s in srh.segments])
            exp = srv6_packet(frame, segs, src)
            exp["IPv6"].dst = segs[k - 1]
            exp["IPv6ExtHdrSegmentRouting"].segleft = n - k
            # not S2's: the hop's MACs, and the hop limit each transit router
            # decrements when it forwards (T5 and the E cases look at those)
            check_packet(checks, f"the packet of the list of {n} on link {k}", exp, pkts[0],
                         ignore=("Ether.src", "Ether.dst", "IPv6.hlim"), main="S2")
        checks.equal("S2", f"other packets carrying the frame on link {k} (DA, list length)", [],
                     sorted((str(da), n) for da, n in by_list))
    for n, cap in bridges.items():
        node = f"rt-{n + 1}"
        if n not in reached:
            continue  # the list went wrong before its end (an S2 failure): End.DT2U had nothing to deliver
        got = cap.wait_for(carrying(mark))
        checks.equal("E1", f"frames {node}'s End.DT2U (list of {n}) passed up to its br0 through l2dev srl2-0",
                     [frame.hex()], [f.data.hex() for f in got])
    for n in sorted(reached):
        node = f"rt-{n + 1}"
        moved = counter_delta(lab_, node, "srl2-0", rx0[n])
        if moved["rx_packets"] < 1:
            checks.note("E1", f"rx counters of {node}'s l2dev srl2-0 for a frame End.DT2U delivered into it",
                        f"rx_packets +{moved['rx_packets']}, rx_bytes +{moved['rx_bytes']}", "rx_packets +1")
    # nothing more: each list stopped where it ended (checked on every link)
    for k, cap in caps.items():
        extra = [f for f in cap.settle() if carrying(mark)(f)]
        checks.equal("S2", f"packets carrying the frame on link {k} once the chain is quiet",
                     sum(1 for n in LISTS if k <= n), len(extra))


# ---- S3 ----------------------------------------------------------------------

# rt-1's srl2-0 in no bridge: with MTU 68 it has no IPv6, and the engine
# cannot switch IPv6 off on it as a bridge port (it expects the sysctl file).
LIMIT_LAB = """\
name: s3
nodes:
  rt-1:
    kind: router
    interfaces:
      veth-rt2: {{addresses: ["fcf0:0:1:2::1/64"]}}
    srl2:
      srl2-0: {{segs: [{segs}]}}
    routes:
      - {{dst: "fc00::/7", via: "fcf0:0:1:2::2"}}
  rt-2:
    interfaces:
      veth-rt1: {{addresses: ["fcf0:0:1:2::2/64"]}}
links:
  - {{endpoints: [rt-1:veth-rt2, rt-2:veth-rt1], mtu: 9000}}
"""


def many_segs(n: int) -> list[str]:
    return [f"fcff:{k:x}::e" for k in range(2, n + 1)] + [f"fcfe:{n:x}::d20"]


@pytest.mark.conformance("S3")
@pytest.mark.needs("srl2")
def test_127_sids_the_most_an_srh_holds(lab, capture):
    """S3: hdrlen is 8 bits, so 127 segments (hdrlen 254, 2040 bytes) is the
    longest list. A device with 127 SIDs is created and works: over a
    9000-byte underlay a 60-byte frame leaves as 40 + 2040 + 60 bytes, SRH
    hdrlen 254, SL = last entry = 126, all 127 segments reversed.

    Its MTU: N1/T4's 1500 - 40 - SRH - 14 is -594 here (below the minimum
    MTU from 86 SIDs on, negative from 90). The case takes the minimum MTU,
    68, as correct: the device is valid and usable once the user raises its
    MTU for a larger underlay, and an MTU is never negative. FINDING: the
    RFC patch assigns the negative result to the unsigned dev->mtu (a
    wrapped 4294966702, above its own max_mtu); a kernel with srl2 fails the
    MTU assertion. The reference first failed to create the device at all
    ("argument out of range") and now clamps."""
    segs = many_segs(MAX_SEGMENTS)
    lab_ = lab(LIMIT_LAB.format(segs=", ".join(f'"{s}"' for s in segs)))
    (link,) = lab_.node("rt-1").ipr.link("get", ifname="srl2-0")
    assert link.get_attr("IFLA_MTU") == 68, "127 SIDs: MTU not clamped to the minimum"
    cap = capture(lab_, "rt-1", "veth-rt2")
    frame = l2(b"S3-127")
    assert len(frame) <= 68 + 14
    send_frames(lab_.node("rt-1"), "srl2-0", [frame])  # as a bridge would: dev_queue_xmit
    sent = cap.wait_for(leaving(marker(b"S3-127")))
    assert len(sent) == 1, f"rt-1 sent {len(sent)} packets for the frame through 127 SIDs"
    pkt = sent[0].data
    assert len(pkt) == 14 + 40 + 2040 + len(frame)
    da, srh = srv6_of(pkt)
    assert da == ipaddress.IPv6Address(segs[0])
    assert (srh.hdrlen, srh.segments_left, srh.last_entry, srh.nexthdr) == (254, 126, 126, 143)
    assert [str(s) for s in srh.segments] == list(reversed(segs))
    exp = srv6_packet(frame, segs, "fcf0:0:1:2::1")
    assert_packet(exp, pkt, ignore=("Ether.src", "Ether.dst"))  # the hop's MACs: not S3's


@pytest.mark.conformance("S3")
def test_128_sids_are_rejected_by_the_topology_loader():
    """S3: 128 SIDs do not fit an SRH (hdrlen would be 256); the topology
    loader refuses the list with file:line:col and the limit, before any
    lab is built (127 is accepted)."""
    text = LIMIT_LAB.format(segs=", ".join(f'"{s}"' for s in many_segs(128)))
    with pytest.raises(TopologyError) as err:
        topology.loads(text, "s3.yaml")
    msg = str(err.value)
    assert "s3.yaml:8:" in msg and "128 SIDs" in msg and "at most 127" in msg, msg
    ok = LIMIT_LAB.format(segs=", ".join(f'"{s}"' for s in many_segs(127)))
    assert len(topology.loads(ok, "s3.yaml").nodes["rt-1"].srl2["srl2-0"].segs) == 127
    with pytest.raises(ValueError, match="at most 127"):
        encode_srh(many_segs(128))


SCRATCH = textwrap.dedent("""\
    name: scratch
    nodes:
      a: {kind: router}
""")
KERNEL_ONLY = "the reference datapath has no srl2 link kind in rtnetlink (its device is a TAP)"


@pytest.mark.conformance("S3", "N3")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(KERNEL_ONLY)
def test_kernel_rejects_an_srh_whose_length_does_not_match(lab, checks, revision):
    """S3: the kernel validates the SRH attribute (seg6_validate_srh): an SRH
    whose hdrlen declares fewer or more bytes than the attribute carries
    is refused with EINVAL "Invalid SRH" and no device is made; the same
    SRH with a matching length is accepted."""
    lab_ = lab(SCRATCH)
    ipr = lab_.node("a").ipr
    good = encode_srh(["fcff:2::e", "fcff:3::d20"])  # hdrlen 4: 40 bytes
    bad = {
        "hdrlen too small": bytes([good[0], 2]) + good[2:],
        "hdrlen too large": bytes([good[0], 6]) + good[2:],
        "attribute longer than hdrlen": good + bytes(16),
        "attribute shorter than hdrlen": good[:-8],
    }
    for i, (what, srh) in enumerate(bad.items()):
        try:
            nla.add_l2(ipr, revision, f"srl2-bad{i}", srh)
            seen = "accepted"
        except NetlinkError as e:
            seen = f"{errno.errorcode.get(abs(e.code), e.code)} {kernel_text(e)!r}"
        checks.check("S3", f"RTM_NEWLINK with an SRH whose {what}", seen.startswith("EINVAL")
                     and "Invalid SRH" in seen, "EINVAL 'Invalid SRH'", seen)
        checks.equal("N3", f"devices made from an SRH whose {what}", [], ipr.link_lookup(ifname=f"srl2-bad{i}"))
    nla.add_l2(ipr, revision, "srl2-ok", good)
    assert ipr.link_lookup(ifname="srl2-ok"), "the control (the same SRH, matching length) was not accepted"


# ---- S4 ----------------------------------------------------------------------

@pytest.mark.conformance("S4")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(KERNEL_ONLY)
def test_srh_read_back_is_byte_identical(lab, revision):
    """S4: for lists of 1, 2, 3, 15 and 127 SIDs, the SRH attribute read back
    with RTM_GETLINK (single get and dump) is byte for byte the SRH given at
    creation (segments reversed, hdrlen 2n, SL = last entry = n-1)."""
    lab_ = lab(SCRATCH)
    ipr = lab_.node("a").ipr
    made = {}
    for n in (1, 2, 3, 15, 127):
        srh = encode_srh(many_segs(n))
        nla.add_l2(ipr, revision, f"srl2-{n}", srh)
        made[f"srl2-{n}"] = srh
    for name, srh in made.items():
        (link,) = ipr.link("get", ifname=name)
        assert (nla.l2_link_of(link) or {}).get("srh") == srh, f"{name}: RTM_GETLINK SRH differs"
    dumped = {m.get_attr("IFLA_IFNAME"): (nla.l2_link_of(m) or {}).get("srh") for m in ipr.get_links()}
    for name, srh in made.items():
        assert dumped.get(name) == srh, f"{name}: the link dump's SRH differs"
