"""R — what the series' second revision adds (docs/catalogue.md R1-R6):
encapsulation modes (RFC 8986 §5.3 H.Encaps.L2 and §5.4 H.Encaps.L2.Red), a
post-encapsulation FIB table, changelink, an HMAC TLV (RFC 8754 §2.1.2),
address and creation checks.

Each case is marked with what the revision must have (`revision_has`): on
a revision without it (srl2) the case SKIPs naming the revision that has
it.  The lab: hs-1 -- rt-1 ==== rt-2; hs-1 sends raw frames, rt-1 bridges
them into its device(s) and the case reads what rt-1 puts on the underlay,
byte for byte."""
from __future__ import annotations

import errno
import hashlib
import hmac
import ipaddress
import socket
import struct

import pytest

from pyroute2.netlink.exceptions import NetlinkError

from testbed.casekit import ETH_P_EXP, OUTER, counter_delta, l2frame, marker, sent
from testbed.kerror import kernel_text
from testbed.packets import send_frames
from testbed.srv6 import nla
from testbed.srv6.seg6genl import NETLINK_GENERIC, Seg6Genl
from testbed.srv6.srh import decode_srh, encode_srh
from testbed.wait import until

HS_MAC = "02:00:00:00:01:01"
RT1_UNDERLAY = "fcf0:0:1:2::1"
SECRET = "srl2-testbed-hmac-secret"

LAB = """\
name: rev2
nodes:
  hs-1:
    interfaces:
      veth0: {{mac: "{hs_mac}"}}
  rt-1:
    kind: router
{hmac_keys}    interfaces:
      veth-rt2: {{addresses: ["{rt1}/64"]}}
    bridges:
      br0: {{ports: [veth-hs]}}
    srl2:
{devices}    routes:
{routes}  rt-2:
    interfaces:
      veth-rt1: {{addresses: ["fcf0:0:1:2::2/64"]}}
links:
  - [hs-1:veth0, rt-1:veth-hs]
  - [rt-1:veth-rt2, rt-2:veth-rt1]
"""
MAIN_ROUTE = '      - {dst: "fcff::/16", via: "fcf0:0:1:2::2"}\n'


def rev2_lab(lab, devices: dict[str, str], routes: str = MAIN_ROUTE, hmac_keys: bool = False):
    """rt-1 bridges hs-1 into each device of `devices` (name -> YAML flow
    mapping of its settings, without `bridge`)."""
    devs = "".join(f"      {name}: {{{opts}, bridge: br0}}\n" for name, opts in devices.items())
    keys = f'    hmac_keys: {{1: {{secret: "{SECRET}", algorithm: sha256}}}}\n' if hmac_keys else ""
    return lab(LAB.format(hs_mac=HS_MAC, rt1=RT1_UNDERLAY, devices=devs, routes=routes, hmac_keys=keys))


def frame(tag: str, size: int = 100) -> bytes:
    return l2frame("ff:ff:ff:ff:ff:ff", marker(tag), src=HS_MAC, size=size, ethertype=ETH_P_EXP)


def sent_one(checks, cid: str, cap, tag: str) -> bytes | None:
    got = [f.data for f in sent(cap, marker(tag))]
    ok = checks.check(cid, f"SRv6 packets rt-1 sent for frame {tag}", len(got) == 1, 1, len(got))
    return got[0] if ok else None


def srh_fields(pkt: bytes) -> tuple[int, int, int, int, list[str], int]:
    """(next header, hdrlen, last entry, segments left, segments in wire
    order, SRH length) of the SRH after the outer IPv6 header, read as is:
    a reduced SRH has Segments Left beyond its Last Entry (RFC 8986 §5.4),
    which a strict decoder would refuse."""
    srh = pkt[OUTER:]
    nh, hdrlen, _, sl, last = srh[:5]
    segs = [str(ipaddress.IPv6Address(srh[8 + 16 * i:24 + 16 * i])) for i in range(last + 1)]
    return nh, hdrlen, last, sl, segs, 8 + 8 * hdrlen


def outer(pkt: bytes) -> tuple[int, ipaddress.IPv6Address, ipaddress.IPv6Address, int]:
    """(next header, source, destination, payload length) of the outer IPv6 header."""
    ip6 = pkt[14:54]
    return ip6[6], ipaddress.IPv6Address(ip6[8:24]), ipaddress.IPv6Address(ip6[24:40]), \
        int.from_bytes(ip6[4:6], "big")


# ---- R1: encapsulation modes ---------------------------------------------------

@pytest.mark.conformance("R1")
@pytest.mark.revision_has("reduced")
@pytest.mark.needs("srl2")
def test_reduced_mode_with_one_sid_sends_no_srh(lab, capture, checks):
    """R1 (RFC 8986 §5.4 H.Encaps.L2.Red; sr6 mode reduced): with one SID and
    no flags, tag or TLV, the SRH is left out entirely: the outer IPv6
    header's next header is 143 (Ethernet), its DA the SID, its payload the
    frame byte for byte (payload length = frame length)."""
    lab_ = rev2_lab(lab, {"srl2-0": 'segs: ["fcff:2::d20"], mode: reduced'})
    cap = capture(lab_, "rt-1", "veth-rt2")
    f = frame("R1-one")
    send_frames(lab_.node("hs-1"), "veth0", [f])
    pkt = sent_one(checks, "R1", cap, "R1-one")
    if pkt is None:
        return
    nh, _, dst, plen = outer(pkt)
    checks.equal("R1", "outer next header of a reduced one-SID packet (no SRH)", 143, nh)
    checks.equal("R1", "outer destination (the SID)", ipaddress.IPv6Address("fcff:2::d20"), dst)
    checks.equal("R1", "outer payload length (the frame alone)", len(f), plen)
    checks.equal("R1", "what follows the outer IPv6 header (the frame, byte for byte)", f.hex(), pkt[54:].hex())


@pytest.mark.conformance("R1")
@pytest.mark.revision_has("reduced")
@pytest.mark.needs("srl2")
def test_reduced_mode_leaves_the_first_sid_out_of_the_srh_and_full_mode_keeps_it(lab, capture, checks):
    """R1 (RFC 8986 §5.3, §5.4): with three SIDs A, B, C, reduced mode sends
    DA = A and an SRH of B and C only (hdrlen 4, last entry 1, Segments
    Left 2: A is 'consumed' into the DA), next header 143, then the frame;
    full mode (the control, H.Encaps.L2) sends DA = A and all three."""
    segs = ["fcff:2::e", "fcff:3::e", "fcff:4::d20"]
    seg_list = ", ".join(f'"{s}"' for s in segs)
    lab_ = rev2_lab(lab, {"srl2-0": f"segs: [{seg_list}], mode: reduced",
                          "srl2-1": f"segs: [{seg_list}], mode: full"})
    cap = capture(lab_, "rt-1", "veth-rt2")
    f = frame("R1-three")
    send_frames(lab_.node("hs-1"), "veth0", [f])  # flooded into both devices
    got = [x.data for x in sent(cap, marker("R1-three"), 2)]
    if not checks.check("R1", "SRv6 packets rt-1 sent for the frame (one per device)", len(got) == 2, 2, len(got)):
        return
    by_len = sorted(got, key=len)  # the reduced packet is 16 bytes shorter
    reduced, full = by_len
    for what, pkt, in_srh in (("reduced", reduced, segs[1:]), ("full", full, segs)):
        nh, _, dst, _ = outer(pkt)
        checks.equal("R1", f"{what}: outer next header (routing)", 43, nh)
        checks.equal("R1", f"{what}: outer destination (the first SID)", ipaddress.IPv6Address(segs[0]), dst)
        snh, hdrlen, last, sl, wire, length = srh_fields(pkt)
        checks.equal("R1", f"{what}: SRH segments (wire order)", [str(s) for s in reversed(in_srh)], wire)
        checks.equal("R1", f"{what}: SRH hdrlen, last entry, segments left, next header",
                     (2 * len(in_srh), len(in_srh) - 1, len(segs) - 1, 143), (hdrlen, last, sl, snh))
        checks.equal("R1", f"{what}: the frame after the SRH", f.hex(), pkt[OUTER + length:].hex())


# ---- R2: the post-encapsulation table --------------------------------------------

TABLE_ROUTES = ('      - {dst: "fcff::/16", via: "fcf0:0:1:2::2", table: 100}\n'
                '      - {dst: "fcff::/16", type: blackhole}\n')


@pytest.mark.conformance("R2", "L2")
@pytest.mark.revision_has("table")
@pytest.mark.needs("srl2")
def test_post_encapsulation_lookup_uses_the_devices_table(lab, capture, checks, revision):
    """R2 (sr6 IFLA_SR6_FIB_TABLE): the route to fcff::/16 is only in table
    100, main has a blackhole for it.  srl2-0 (table 100) sends the frame;
    srl2-1 (no table: main) and srl2-2 (table 200, which does not exist)
    send nothing and count each frame as a failed lookup (srl2-1: the
    revision's counters for a reject route, L2; srl2-2: tx_errors).  The
    bridge floods the lab's own frames (ND, MLD) into all three devices
    too: every SRv6 packet rt-1 sends is srl2-0's, and each device counts
    what it was handed."""
    lab_ = rev2_lab(lab, {"srl2-0": 'segs: ["fcff:2::d20"], table: 100',
                          "srl2-1": 'segs: ["fcff:2::d20"]',
                          "srl2-2": 'segs: ["fcff:2::d20"], table: 200'}, routes=TABLE_ROUTES)
    cap = capture(lab_, "rt-1", "veth-rt2")
    before = {d: lab_.counters("rt-1", d) for d in ("srl2-0", "srl2-1", "srl2-2")}
    send_frames(lab_.node("hs-1"), "veth0", [frame("R2")])  # flooded into all three
    sent(cap, marker("R2"), 1)
    reject = revision.counters.reject
    until(lambda: counter_delta(lab_, "rt-1", "srl2-1", before["srl2-1"])[reject[0]] >= 1
          and counter_delta(lab_, "rt-1", "srl2-2", before["srl2-2"])["tx_errors"] >= 1)
    d = {dev: counter_delta(lab_, "rt-1", dev, before[dev]) for dev in before}
    cap.settle()  # after the reads: every packet counted has been captured
    ours = [x.data for x in cap.frames if x.outgoing and marker("R2") in x.data]
    srv6 = [x.data for x in cap.frames if x.outgoing and x.data[12:14] == b"\x86\xdd" and x.data[20] in (43, 143)]
    checks.equal("R2", "packets rt-1 sent for the frame (srl2-0's only: table 100)", 1, len(ours))
    checks.check("R2", "srl2-0 (table 100): tx_packets, by the SRv6 packets rt-1 sent",
                 1 <= d["srl2-0"]["tx_packets"] <= len(srv6), f"1..{len(srv6)}", d["srl2-0"]["tx_packets"])
    handed = d["srl2-1"][reject[0]]
    checks.check("L2", f"srl2-1 (main: a blackhole): {' and '.join(reject)} per frame, nothing sent",
                 handed >= 1 and all(d["srl2-1"][c] == handed for c in reject) and d["srl2-1"]["tx_packets"] == 0,
                 "+1 each per frame handed, tx_packets +0",
                 ", ".join(f"{c} +{d['srl2-1'][c]}" for c in reject + ("tx_packets",)))
    checks.check("R2", "srl2-2 (table 200 does not exist): nothing sent, each frame an error",
                 d["srl2-2"]["tx_packets"] == 0 and d["srl2-2"]["tx_errors"] >= 1,
                 "tx_packets +0, tx_errors +1 or more",
                 f"tx_packets +{d['srl2-2']['tx_packets']}, tx_errors +{d['srl2-2']['tx_errors']}")


# ---- R3: changelink ----------------------------------------------------------------

@pytest.mark.conformance("R3")
@pytest.mark.revision_has("changelink")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only("changelink is an rtnetlink request; the reference's device is configured from JSON")
def test_changelink_replaces_srh_and_mode_and_refuses_a_table_change(lab, capture, checks, revision):
    """R3 (sr6 changelink): on a live device in the bridge, a new SRH (two
    SIDs) and mode replace the old ones: the next frame carries the new
    list, the MTU is recomputed (1406 for two SIDs, full); back to one SID
    in reduced mode: no SRH, MTU 1446.  A change of the table is refused
    with "Cannot change the FIB table" and the device keeps working."""
    lab_ = rev2_lab(lab, {"srl2-0": 'segs: ["fcff:2::d20"], mode: full, table: 254'})
    ipr, index = lab_.node("rt-1").ipr, lab_.ifindex("rt-1", "srl2-0")
    cap = capture(lab_, "rt-1", "veth-rt2")

    def change(segs, mode, **kw):
        nla.change_l2(ipr, revision, index, "srl2-0", encode_srh(segs), mode=mode, **kw)

    def mtu() -> int:
        (link,) = ipr.link("get", index=index)
        return link.get_attr("IFLA_MTU")

    change(["fcff:3::e", "fcff:2::d20"], "full")
    send_frames(lab_.node("hs-1"), "veth0", [frame("R3-two")])
    pkt = sent_one(checks, "R3", cap, "R3-two")
    if pkt is not None:
        checks.equal("R3", "destination after the change to two SIDs", ipaddress.IPv6Address("fcff:3::e"),
                     outer(pkt)[2])
        checks.equal("R3", "SRH after the change (wire order)", ["fcff:2::d20", "fcff:3::e"],
                     [str(s) for s in decode_srh(pkt[OUTER:]).segments])
    checks.equal("R3", "MTU after the change to two SIDs (full)", revision.default_mtu(2, "full"), mtu())

    change(["fcff:2::d20"], "reduced")
    send_frames(lab_.node("hs-1"), "veth0", [frame("R3-red")])
    pkt = sent_one(checks, "R3", cap, "R3-red")
    if pkt is not None:
        checks.equal("R3", "outer next header after the change to reduced, one SID", 143, outer(pkt)[0])
    checks.equal("R3", "MTU after the change to one SID, reduced", revision.default_mtu(1, "reduced"), mtu())

    try:
        change(["fcff:2::d20"], "reduced", table=100)
        seen = "accepted"
    except NetlinkError as e:
        seen = f"{errno.errorcode.get(abs(e.code), e.code)} {kernel_text(e)}"
    checks.check("R3", "a changelink to another table", "Cannot change the FIB table" in seen,
                 "refused: Cannot change the FIB table", seen)


# ---- R4: HMAC --------------------------------------------------------------------

def linux_hmac(secret: bytes, saddr: ipaddress.IPv6Address, srh: bytes, keyid: int) -> bytes:
    """The HMAC field as RFC 8754 §2.1.2.1 defines its text and Linux
    computes it (seg6_hmac_compute): source address, Last Entry, flags, key
    id, every segment; HMAC-SHA256, 32 bytes."""
    last, flags = srh[4], srh[5]
    segments = srh[8:8 + 16 * (last + 1)]
    text = saddr.packed + bytes([last, flags]) + struct.pack("!I", keyid) + segments
    return hmac.new(secret, text, hashlib.sha256).digest()[:32]


@pytest.mark.conformance("R4")
@pytest.mark.revision_has("hmac")
@pytest.mark.needs("srl2")
def test_hmac_tlv_is_computed_as_rfc_8754_says(lab, capture, checks, datapath):
    """R4 (RFC 8754 §2.1.2; sr6 hmac): a device with `hmac: 1` (key 1,
    SHA-256, set with `ip sr hmac`) and two SIDs sends an SRH with the HMAC
    flag and an HMAC TLV (type 5, length 38, key id 1) whose HMAC is the one
    computed here independently over source, Last Entry, flags, key id and
    segments; hdrlen counts the TLV.  On the kernel datapath the far end
    then validates it: an End SID (the first segment; Segments Left 1, so it
    forwards) on an interface that requires HMAC (seg6_require_hmac 1)
    counts the packet as processed with the same key, and as an error with
    another (the control that the validation is real)."""
    segs = ["fcff:2::e", "fcff:3::d20"]
    lab_ = rev2_lab(lab, {"srl2-0": f'segs: ["{segs[0]}", "{segs[1]}"], hmac: 1'}, hmac_keys=True)
    cap = capture(lab_, "rt-1", "veth-rt2")
    send_frames(lab_.node("hs-1"), "veth0", [frame("R4")])
    pkt = sent_one(checks, "R4", cap, "R4")
    if pkt is None:
        return
    _, src, _, _ = outer(pkt)
    srh = pkt[OUTER:]
    checks.equal("R4", "SRH hdrlen (two segments + the 40-byte HMAC TLV)", 4 + 5, srh[1])
    checks.check("R4", "SRH flags: the HMAC flag", bool(srh[5] & 0x08), "bit 3 set", f"0x{srh[5]:02x}")
    tlv = srh[8 + 32:8 + 32 + 40]
    checks.equal("R4", "HMAC TLV type, length, key id", (5, 38, 1),
                 (tlv[0], tlv[1], struct.unpack("!I", tlv[4:8])[0]) if len(tlv) == 40 else tlv.hex())
    checks.equal("R4", "the HMAC (RFC 8754 §2.1.2.1, SHA-256)",
                 linux_hmac(SECRET.encode(), src, srh, 1).hex(), tlv[8:40].hex())
    if datapath == "kernel":  # the reference's End does not validate HMACs
        validated_by_a_far_end(lab_, checks, segs[0])


def validated_by_a_far_end(lab_, checks, sid: str) -> None:
    """rt-2 gets key 1, an End SID for `sid` with counters, and requires
    HMAC on its underlay interface; packets with the right key are
    processed (packets, no errors); once rt-2's key 1 changes they are
    refused (errors, no packets)."""
    from testbed.datapaths.kernel import KernelDatapath
    from testbed.model import Sid

    rt2 = lab_.node("rt-2")

    def set_key(secret: str) -> None:
        genl = Seg6Genl(rt2.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_GENERIC))
        try:
            genl.set_hmac(1, secret.encode(), "sha256")
        finally:
            genl.close()

    set_key(SECRET)
    rt2.write_sysctls({"net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf.all.seg6_enabled": "1",
                       "net.ipv6.conf.veth-rt1.seg6_enabled": "1",
                       "net.ipv6.conf.veth-rt1.seg6_require_hmac": "1"})
    rt2.ipr.route("add", dst="fcff:3::", dst_len=32, type="blackhole", family=socket.AF_INET6)
    index = rt2.ipr.link_lookup(ifname="veth-rt1")[0]
    nla.add_seg6local(rt2.ipr, sid, "End", dev=index, count=True)
    end = Sid(ipaddress.IPv6Network(f"{sid}/128"), "End", count=True)
    kdp = KernelDatapath()
    for tag, secret, moved in (("R4-valid", SECRET, "packets"), ("R4-wrong-key", SECRET + "-other", "errors")):
        set_key(secret)
        before = kdp.sid_counters(rt2, end) or {}
        send_frames(lab_.node("hs-1"), "veth0", [frame(tag)])
        until(lambda: sum((kdp.sid_counters(rt2, end) or {}).get(k, 0) - before.get(k, 0)
                          for k in ("packets", "errors")) >= 1)
        after = kdp.sid_counters(rt2, end) or {}
        d = {k: after.get(k, 0) - before.get(k, 0) for k in ("packets", "errors")}
        other = "errors" if moved == "packets" else "packets"
        # >= 1: the bridge also floods rt-1's own ND and MLD into srl2-0
        checks.check("R4", f"End with seg6_require_hmac 1, {'the same key' if secret == SECRET else 'another key'}: "
                     "its counters after the frame", d[moved] >= 1 and d[other] == 0,
                     f"{moved} +1 or more, {other} +0", f"packets +{d['packets']}, errors +{d['errors']}")


# ---- R5, R6: rtnetlink checks ---------------------------------------------------------

def refused(fn) -> str:
    try:
        fn()
    except NetlinkError as e:
        return f"{errno.errorcode.get(abs(e.code), e.code)} {kernel_text(e)}"
    return "accepted"


ONE_NODE = "name: scratch\nnodes:\n  n: {}\n"


@pytest.mark.conformance("R5")
@pytest.mark.revision_has("changelink")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only("rtnetlink refusals: the reference makes its devices from a JSON configuration")
def test_device_address_must_be_ethernet_unicast(lab, checks, revision):
    """R5 (sr6 newlink/changelink): a multicast or all-zero IFLA_ADDRESS is
    refused with "Provided Ethernet address is not unicast"; a unicast one
    is taken (the control)."""
    ipr = lab(ONE_NODE).node("n").ipr
    srh = encode_srh(["fcff:2::d20"])
    for i, mac in enumerate(("01:00:5e:00:00:01", "00:00:00:00:00:00")):
        seen = refused(lambda: nla.add_l2(ipr, revision, f"sr-mac{i}", srh, address=mac))
        checks.check("R5", f"a device with address {mac}", "not unicast" in seen and seen.startswith("E"),
                     "refused: Provided Ethernet address is not unicast", seen)
    nla.add_l2(ipr, revision, "sr-ok", srh, address="02:00:00:00:5e:01")
    assert ipr.link_lookup(ifname="sr-ok"), "the control (a unicast address) was refused"


@pytest.mark.conformance("R6")
@pytest.mark.revision_has("table")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only("rtnetlink refusals: the reference makes its devices from a JSON configuration")
def test_creation_needs_a_mode_and_refuses_table_0(lab, checks, revision):
    """R6 (sr6 newlink): a request without IFLA_SR6_ENCAP_MODE is refused
    ("Encapsulation mode is required"), one with table 0 too ("Invalid FIB
    table ID"); neither leaves a device."""
    ipr = lab(ONE_NODE).node("n").ipr
    srh = encode_srh(["fcff:2::d20"])
    msg = nla.l2_link(revision, "sr-nomode", srh)
    info = dict(msg["attrs"])["IFLA_LINKINFO"]["attrs"]
    data = dict(info)["IFLA_INFO_DATA"]["attrs"]
    data[:] = [a for a in data if a[0] != "IFLA_SR6_ENCAP_MODE"]
    from pyroute2.netlink.rtnl import RTM_NEWLINK

    seen = refused(lambda: nla.send(ipr, msg, RTM_NEWLINK))
    checks.check("R6", "a device without a mode", "Encapsulation mode is required" in seen,
                 "refused: Encapsulation mode is required", seen)
    seen = refused(lambda: nla.add_l2(ipr, revision, "sr-table0", srh, table=0))
    checks.check("R6", "a device with table 0", "Invalid FIB table ID" in seen,
                 "refused: Invalid FIB table ID", seen)
    checks.equal("R6", "devices left after the refusals", [],
                 ipr.link_lookup(ifname="sr-nomode") + ipr.link_lookup(ifname="sr-table0"))
