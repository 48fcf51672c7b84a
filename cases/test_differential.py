"""D — differential: the reference datapath against kernel code
(docs/catalogue.md, D1, D2).

- D1 (a kernel with srl2): the same frames through the kernel's srl2 and the
  reference srl2 give identical outer packets.  Two labs of one topology run
  side by side, one per datapath (`lab(D1_LAB)` on the kernel datapath,
  `lab(D1_LAB, datapath="ref")`); every address and MAC is fixed by the
  topology, so the two outer packets can be compared byte for byte.
- D2 (any kernel): the kernel has no srl2, but it has the same L2
  encapsulation as a route: `encap seg6 mode l2encap` on a route to an IP
  destination encapsulates the frame a packet arrived in (as the kernel
  selftest srv6_hl2encap_red_l2vpn_test.sh and topologies/mesh4.yaml do with
  l2encap.red; srl2 has no reduced form, so the full l2encap is the one to
  compare).  The frame is sent by hs-1 to rt-1's MAC, to an IP address whose
  route carries the encap; in the reference lab rt-1 bridges the very same
  frame into its srl2 device with the same SID list.  The outer packets
  must match (SRH, DA, SA, next headers, the inner frame) except the hop
  limit, traffic class and flow label, which the route-based encap copies
  from the inner IPv6 header (H5, H6 check what srl2 does with them).  The
  same labs carry the packets on to End and End.DX2 (rt-3, oif to hs-2)
  of each datapath; a second case sends identical crafted packets to
  the kernel's End.DX2 and the reference's and compares what each delivers.
"""
from __future__ import annotations

import textwrap

import pytest

from testbed.casekit import MARK, tag_of
from testbed.casekit import marker as marked
from testbed.packets import masked_diff, scapy, send_frames, srv6_packet

QUIET_HOST = "{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.all.addr_gen_mode: 1}"
RT1_UNDERLAY = "fcf0:0:1:2::1"
RT2_UNDERLAY = "fcf0:0:1:2::2"
RT1_UNDERLAY_MAC = "02:d0:00:00:12:01"
RT2_UNDERLAY_MAC = "02:d0:00:00:12:02"
HS1_MAC = "02:d0:00:00:00:01"
RT1_HS_MAC = "02:d0:00:00:00:fe"  # rt-1's veth-hs (D2 kernel lab: the MAC hs-1's frames are sent to)
# Masked in D2: the route-based encap copies hop limit, traffic class and flow
# label from an inner IPv6 header; srl2 sets them by H5/H6.
HEADER_FIELDS_BY_DESIGN = ("IPv6.hlim", "IPv6.tc", "IPv6.fl")


def kernel_reason(features) -> str | None:
    from testbed.datapaths.kernel import KernelDatapath

    return KernelDatapath.probe().reason(list(features))


def one_each(captures, mark: bytes, outgoing: bool) -> list[bytes]:
    """The one frame carrying MARK seen on each capture (direction given)."""
    out = []
    for label, cap in captures:
        seen = cap.wait_for(lambda f: mark in f.data and f.outgoing == outgoing)
        assert len(seen) == 1, f"{label} {cap.where}: expected one frame with {mark!r}, saw {len(seen)}"
        out.append(seen[0].data)
    return out


# ---- D1 ---------------------------------------------------------------------

D1_SEGS = ["fcff:2::e", "fcff:3::e", "fcff:4::d20"]
D1_LAB = textwrap.dedent(f"""\
    name: d1
    nodes:
      hs-1:
        sysctls: {QUIET_HOST}
        interfaces:
          veth0: {{mac: "{HS1_MAC}"}}
      rt-1:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1}}
        interfaces:
          veth-rt2: {{addresses: ["{RT1_UNDERLAY}/64"], mac: "{RT1_UNDERLAY_MAC}"}}
        bridges:
          br0: {{ports: [veth-hs], mcast_snooping: false}}
        srl2:
          srl2-0: {{segs: {D1_SEGS}, bridge: br0}}
        routes:
          - {{dst: "fcff::/16", via: "{RT2_UNDERLAY}", table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      rt-2:
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1}}
        interfaces:
          veth-rt1: {{addresses: ["{RT2_UNDERLAY}/64"], mac: "{RT2_UNDERLAY_MAC}"}}
        routes:
          - {{dst: "fcff::/16", type: blackhole}}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
    """)


def d1_frames(tag: bytes) -> list[tuple[bytes, bytes]]:
    """(marker, frame): IPv4, IPv6 with hop limit 1 and a flow label, a
    broadcast, 802.1Q, QinQ, a non-IP ethertype, the smallest and the largest
    frame the device carries (MTU 1500 - 40 - (8 + 3 * 16) - 14 = 1390 for
    three SIDs, + 14: 1404 bytes; the outer packet fills the underlay's 1500)."""
    sc = scapy()
    e = dict(src=HS1_MAC, dst="02:d0:00:00:00:02")
    out = []

    def add(name: bytes, pkt) -> None:
        m = marked(tag + b"-" + name)
        out.append((m, bytes(pkt / m) if not isinstance(pkt, bytes) else pkt + m))

    add(b"ipv4", sc.Ether(**e) / sc.IP(src="10.0.0.1", dst="10.0.0.2", tos=0xB8) / sc.UDP(sport=1, dport=2))
    add(b"ipv6", sc.Ether(**e) / sc.IPv6(src="cafe::1", dst="cafe::2", hlim=1, tc=0x20, fl=0xABCDE) /
        sc.UDP(sport=3, dport=4))
    add(b"bcast", sc.Ether(src=HS1_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x88B5))
    add(b"dot1q", sc.Ether(**e) / sc.Dot1Q(vlan=10, prio=5) / sc.IPv6(src="cafe::1", dst="cafe::2", hlim=255) /
        sc.UDP(sport=5, dport=6))
    add(b"qinq", sc.Ether(type=0x88A8, **e) / sc.Dot1Q(vlan=100, type=0x8100) / sc.Dot1Q(vlan=10, type=0x88B5))
    add(b"min", sc.Ether(type=0x88B5, **e))
    big = sc.Ether(type=0x88B5, **e)
    m = marked(tag + b"-max")
    out.append((m, bytes(big / (m + b"\xa5" * (1404 - 14 - len(m))))))
    return out


@pytest.mark.conformance("D1")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only("compares the kernel's srl2 device with the reference: needs srl2 in the kernel")
def test_kernel_srl2_and_reference_srl2_send_identical_packets(lab, capture, checks):
    """D1: two labs of one topology (three SIDs), the first on the kernel
    datapath, the second on the reference; the same frames from hs-1 give
    outer packets on rt-1's underlay that are identical byte for byte under
    seg6_flowlabel 0 (the default) and identical but for the flow label
    under seg6_flowlabel 1 (a hash: the two datapaths need not hash alike).
    Source addresses do not differ: both labs have the same addresses.
    One check per frame and mode."""
    labs = {"kernel": lab(D1_LAB), "ref": lab(D1_LAB, datapath="ref")}
    assert labs["kernel"].record.datapath == "kernel" and labs["ref"].record.datapath == "ref"
    caps = [(dp, capture(l, "rt-1", "veth-rt2")) for dp, l in labs.items()]
    sc = scapy()
    for mode, ignore in (("0", ()), ("1", ("IPv6.fl",))):
        for l in labs.values():
            l.node("rt-1").write_sysctls({"net.ipv6.seg6_flowlabel": mode})
        frames = d1_frames(b"D1fl" + mode.encode())
        for l in labs.values():
            send_frames(l.node("hs-1"), "veth0", [f for _, f in frames])
        for m, frame in frames:
            got_k, got_r = one_each(caps, m, outgoing=True)
            d = masked_diff(sc.Ether(got_r), got_k, ignore)
            name = tag_of(m).decode()
            checks.check("D1", f"outer packet of frame {name} under seg6_flowlabel {mode}, kernel against the "
                               "reference", not d, "identical (expected = reference)",
                         "; ".join(x.replace(", got ", ", kernel ") for x in d))


# ---- D2: route-based l2encap against the reference srl2 ----------------------

D2_SEGS = ["fcff:3::e", "fcff:3::d2"]  # End, then End.DX2, both on rt-3
RT3_UNDERLAY = "fcf0:0:2:3::3"


def d2_lab(kind: str) -> str:
    """kind "kernel": rt-1 routes 10.0.0.2 / cafe::2 with `encap seg6 mode
    l2encap`; kind "ref": rt-1 bridges veth-hs with an srl2 device.  The
    rest is the same: rt-2 forwards, rt-3 has End + End.DX2 (oif to hs-2).

    Why rt-2: a capture socket queues a clone of the packet that shares its
    data, and a kernel seg6local End rewrites DA and Segments Left in place;
    captured on the link into a kernel End node, the packet would read as
    already processed.  rt-2's IPv6 forwarding un-shares the data before it
    decrements the hop limit, so rt-1's captures keep what rt-1 sent."""
    underlay_route = f'{{dst: "fcff:3::/32", via: "{RT2_UNDERLAY}", table: 90}}'
    if kind == "kernel":
        encap = f"{{type: seg6, mode: l2encap, segs: {D2_SEGS}}}"
        rt1 = (f'      veth-hs: {{addresses: [10.0.0.254/24, "cafe::254/64"], mac: "{RT1_HS_MAC}"}}\n'
               f"    routes:\n"
               f"      - {underlay_route}\n"
               f"      - {{dst: 10.0.0.2/32, dev: veth-rt2, encap: {encap}}}\n"
               f'      - {{dst: "cafe::2/128", dev: veth-rt2, encap: {encap}}}\n')
    else:
        rt1 = (f"    bridges:\n"
               f"      br0: {{ports: [veth-hs], mcast_snooping: false}}\n"
               f"    srl2:\n"
               f"      srl2-0: {{segs: {D2_SEGS}, bridge: br0}}\n"
               f"    routes:\n"
               f"      - {underlay_route}\n")
    return textwrap.dedent(f"""\
        name: d2{kind[0]}
        nodes:
          hs-1:
            sysctls: {QUIET_HOST}
            interfaces:
              veth0: {{mac: "{HS1_MAC}"}}
          rt-1:
            kind: router
            sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1}}
            rules:
              - {{to: "fcff::/16", lookup: 90, prio: 999}}
            interfaces:
              veth-rt2: {{addresses: ["{RT1_UNDERLAY}/64"], mac: "{RT1_UNDERLAY_MAC}"}}
        """) + rt1 + textwrap.dedent(f"""\
          rt-2:
            kind: router  # with link-local addresses: it resolves rt-3 for packets it forwards
            interfaces:
              veth-rt1: {{addresses: ["{RT2_UNDERLAY}/64"], mac: "{RT2_UNDERLAY_MAC}"}}
              veth-rt3: {{addresses: ["fcf0:0:2:3::2/64"]}}
            routes:
              - {{dst: "fcff:3::/32", via: "{RT3_UNDERLAY}"}}
          rt-3:
            kind: router
            interfaces:
              veth-rt2: {{addresses: ["{RT3_UNDERLAY}/64"]}}
            sids:
              - {{sid: "fcff:3::e", action: End, dev: veth-rt2, table: 90}}
              - {{sid: "fcff:3::d2", action: End.DX2, oif: veth-hs, table: 90}}
            rules:
              - {{to: "fcff::/16", lookup: 90, prio: 999}}
          hs-2:
            sysctls: {QUIET_HOST}
        links:
          - [hs-1:veth0, rt-1:veth-hs]
          - [rt-1:veth-rt2, rt-2:veth-rt1]
          - [rt-2:veth-rt3, rt-3:veth-rt2]
          - [rt-3:veth-hs, hs-2:veth0]
        """)


@pytest.mark.conformance("D2", "E7")
@pytest.mark.needs("srl2", "End", "End.DX2")
def test_srl2_matches_the_kernels_route_based_l2encap(datapath, lab, capture, checks):
    """D2: an IPv4 and an IPv6 frame (hs-1 -> rt-1's MAC) encapsulated by the
    kernel's `encap seg6 mode l2encap` route (the oracle, always on the
    kernel) and by the srl2 device under test (the reference here; the
    kernel's own where it has srl2) with the same SID list (fcff:3::e,
    fcff:3::d2) give the same outer packet on rt-1's underlay: Ethernet, IPv6
    version/payload length/next header 43/SA/DA, the whole SRH and the inner
    frame; hop limit, traffic class and flow label masked (the route-based
    encap copies them from an inner IPv6 header: H5, H6 check srl2's).  Each
    is also the packet the srl2 patch prescribes (srv6_packet).  Both then
    cross rt-3's End and End.DX2 (each lab's datapath) and leave towards hs-2
    unchanged (E7)."""
    reason = kernel_reason(["End", "End.DX2"])
    if reason:
        pytest.skip(f"the oracle needs the kernel's End and End.DX2: {reason}")
    labs = {"l2encap (kernel)": lab(d2_lab("kernel"), datapath="kernel"),
            f"srl2 ({datapath})": lab(d2_lab("ref"))}
    underlay = [(name, capture(l, "rt-1", "veth-rt2")) for name, l in labs.items()]
    delivered = [(name, capture(l, "rt-3", "veth-hs")) for name, l in labs.items()]
    sc = scapy()
    e = dict(src=HS1_MAC, dst=RT1_HS_MAC)
    frames = {
        b"D2-ipv4": bytes(sc.Ether(**e) / sc.IP(src="10.0.0.1", dst="10.0.0.2", ttl=7, tos=0x28) /
                          sc.UDP(sport=1000, dport=2000) / marked(b"D2-ipv4")),
        b"D2-ipv6": bytes(sc.Ether(**e) / sc.IPv6(src="cafe::1", dst="cafe::2", hlim=9, tc=0x28, fl=0x1234) /
                          sc.UDP(sport=1000, dport=2000) / marked(b"D2-ipv6")),
    }
    for l in labs.values():
        send_frames(l.node("hs-1"), "veth0", frames.values())
    for tag, frame in frames.items():
        oracle, got = one_each(underlay, marked(tag), outgoing=True)
        diff = masked_diff(sc.Ether(oracle), got, HEADER_FIELDS_BY_DESIGN)
        checks.check("D2", f"{tag.decode()}: srl2 ({datapath}) against the kernel's l2encap", not diff,
                     "the same outer packet (expected = l2encap)", "; ".join(diff))
        expected = srv6_packet(frame, D2_SEGS, RT1_UNDERLAY)
        expected[sc.Ether].src, expected[sc.Ether].dst = RT1_UNDERLAY_MAC, RT2_UNDERLAY_MAC
        for (name, cap), pkt in zip(delivered, (oracle, got)):
            diff = masked_diff(expected, pkt, HEADER_FIELDS_BY_DESIGN)
            checks.check("D2", f"{tag.decode()}: {name} against the srl2 encapsulation", not diff,
                         "the packet srl2 must send", "; ".join(diff))
            if diff:
                continue  # a packet End and End.DX2 were not meant to get: E7 has nothing to say
            out = [f.data for f in cap.wait_for(lambda f: f.outgoing and marked(tag) in f.data)]
            checks.equal("E7", f"{tag.decode()}: frames {name}'s End.DX2 sent towards hs-2 (once, unchanged)",
                         [frame.hex()], [o.hex() for o in out])


# ---- D2: End.DX2, kernel against reference -----------------------------------

INJ = "fcf0:0:1:2::1"
DX2_SID = "fcff:2::d2"
DX2_LAB = textwrap.dedent(f"""\
    name: dx2d
    nodes:
      inj:
        sysctls: {QUIET_HOST}
        interfaces:
          veth0: {{addresses: ["{INJ}/64"], mac: "{RT1_UNDERLAY_MAC}"}}
      rt-2:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1}}
        interfaces:
          veth-inj: {{addresses: ["{RT2_UNDERLAY}/64"], mac: "{RT2_UNDERLAY_MAC}"}}
        sids:
          - {{sid: "{DX2_SID}", action: End.DX2, oif: veth-hs, table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      hs-2:
        sysctls: {QUIET_HOST}
    links:
      - {{endpoints: [inj:veth0, rt-2:veth-inj], mtu: 9000}}  # room for the largest frames oif takes
      - [rt-2:veth-hs, hs-2:veth0]
    """)


def dx2_packets() -> list[tuple[str, bytes, bytes, bytes | None]]:
    """(what, marker, packet, frame End.DX2 must deliver or None for a drop):
    SRv6 packets as they arrive at rt-2 (hop limit 64: the reference's SID is
    behind a forwarding hop)."""
    sc = scapy()
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrSegmentRouting as SRH

    out = []

    def pkt(what: str, tag: str, inner, *ext, nh: int = 43, deliver: bool = True) -> None:
        m = marked(b"DX2-" + tag.encode())
        frame = bytes(inner / m)
        p = sc.Ether(src=RT1_UNDERLAY_MAC, dst=RT2_UNDERLAY_MAC) / sc.IPv6(src=INJ, dst=DX2_SID, nh=nh, hlim=64)
        for h in ext:
            p = p / h
        out.append((what, m, bytes(p / frame), frame if deliver else None))

    e = dict(src="02:d0:00:00:0a:01", dst="02:d0:00:00:0a:02")
    pkt("SRH SL 0, one segment, IPv4 frame", "v4",
        sc.Ether(**e) / sc.IP(src="10.0.0.1", dst="10.0.0.2") / sc.UDP(),
        SRH(nh=143, segleft=0, lastentry=0, addresses=[DX2_SID]))
    pkt("SRH SL 0, three segments, 802.1Q IPv6 frame", "v6",
        sc.Ether(**e) / sc.Dot1Q(vlan=7) / sc.IPv6(src="cafe::1", dst="cafe::2", hlim=1) / sc.UDP(),
        SRH(nh=143, segleft=0, lastentry=2, addresses=[DX2_SID, "fcff:9::e", "fcff:8::e"]))
    pkt("no SRH (reduced encapsulation), broadcast frame", "red",
        sc.Ether(src=e["src"], dst="ff:ff:ff:ff:ff:ff", type=0x88B5), nh=143)
    pkt("SRH then destination options", "dopt", sc.Ether(type=0x88B5, **e),
        SRH(nh=60, segleft=0, lastentry=0, addresses=[DX2_SID]), IPv6ExtHdrDestOpt(nh=143))
    pkt("segments left 1 (E3)", "sl1", sc.Ether(type=0x88B5, **e),
        SRH(nh=143, segleft=1, lastentry=1, addresses=["fcff:9::e", DX2_SID]), deliver=False)
    pkt("upper layer 59, not Ethernet (E4)", "nh59", sc.Ether(type=0x88B5, **e),
        SRH(nh=59, segleft=0, lastentry=0, addresses=[DX2_SID]), deliver=False)
    # an 802.3 frame (length field, then LLC): Linux End.DX2 takes Ethernet II only
    pkt("802.3 frame (length field)", "llc", sc.Ether(type=3 + len(marked(b"DX2-llc")), **e) / b"\xaa\xaa\x03",
        SRH(nh=143, segleft=0, lastentry=0, addresses=[DX2_SID]), deliver=False)
    # the largest frames oif takes: Linux End.DX2 drops a frame whose length
    # after the Ethernet header exceeds oif's MTU, VLAN tag included
    pad = lambda n: b"\x5a" * n  # noqa: E731
    pkt("untagged frame, 1500 bytes after the Ethernet header (oif MTU)", "mtu",
        sc.Ether(type=0x88B5, **e) / pad(1500 - len(marked(b"DX2-mtu"))), nh=143)
    pkt("802.1Q frame, 1500 bytes after the Ethernet header", "vmtu",
        sc.Ether(**e) / sc.Dot1Q(vlan=7, type=0x88B5) / pad(1496 - len(marked(b"DX2-vmtu"))), nh=143)
    pkt("802.1Q frame, 1504 bytes after the Ethernet header", "vbig",
        sc.Ether(**e) / sc.Dot1Q(vlan=7, type=0x88B5) / pad(1500 - len(marked(b"DX2-vbig"))), nh=143,
        deliver=False)
    return out


@pytest.mark.conformance("D2", "E7")
@pytest.mark.needs("End.DX2")
def test_end_dx2_delivers_what_the_kernels_end_dx2_delivers(datapath, lab, capture, checks):
    """D2 (End.DX2, RFC 8986 4.9, Linux seg6local input_action_end_dx2):
    identical SRv6 packets sent to the End.DX2 SID of the datapath under test
    and (on the reference) to the kernel's make both send the same frames out
    of oif, byte for byte, and drop the same ones.  Sent unchanged (E7): SL 0
    with one or three segments, no SRH at all, a destination options header
    after the SRH, VLAN-tagged and broadcast frames, frames of oif's MTU
    after the Ethernet header.  Dropped: SL 1 (E3), an upper layer that is
    not Ethernet (E4), an 802.3 (length field) frame and a tagged frame
    longer than oif's MTU after the Ethernet header (Linux takes Ethernet II
    only and counts the tag against the MTU)."""
    labs = {datapath: lab(DX2_LAB)}
    if datapath != "kernel":
        reason = kernel_reason(["End.DX2"])
        if reason:
            pytest.skip(f"the oracle needs the kernel's End.DX2: {reason}")
        labs["kernel"] = lab(DX2_LAB, datapath="kernel")
    # What End.DX2 sends on oif, captured as it leaves: a frame received on
    # hs-2 would have its VLAN tag moved out of the data (skb_vlan_untag).
    caps = {dp: capture(l, "rt-2", "veth-hs") for dp, l in labs.items()}
    packets = dx2_packets()
    for l in labs.values():
        send_frames(l.node("inj"), "veth0", [p for _, _, p, _ in packets])
    n_sent = sum(f is not None for *_, f in packets)
    for cap in caps.values():
        cap.wait_for(lambda f: MARK + b"DX2-" in f.data and f.outgoing, count=n_sent)
        cap.settle()  # and nothing more: the drops stay dropped
    for what, m, _, frame in packets:
        got = {dp: [f.data for f in cap.frames if f.outgoing and m in f.data] for dp, cap in caps.items()}
        expect = [frame] if frame is not None else []

        def said(frames: list[bytes]) -> str:
            return f"{len(frames)} frame(s)" + (" (other bytes)" if len(frames) == len(expect) and frames != expect
                                                else "")

        if "kernel" in got and datapath != "kernel":
            checks.check("D2", f"End.DX2 of {datapath} against the kernel's: {what}", got["kernel"] == got[datapath],
                         f"what the kernel sent: {said(got['kernel'])}", said(got[datapath]))
        checks.check("E7", f"End.DX2 ({datapath}): {what}", got[datapath] == expect,
                     f"{len(expect)} frame(s), unchanged", said(got[datapath]))
