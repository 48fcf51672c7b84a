"""C — scrubbing: what srl2 carries across the encapsulation and what it must
not (docs/catalogue.md, C1-C5).

srl2 calls the kernel's skb scrub with "same netns" on transmit; End.DT2U
decapsulates into the bridge.  C1-C3 and C5 are about skb metadata
(conntrack attachment, mark, packet type) that only the kernel's own
datapath has: a userspace model re-creates every skb, so those cases are
kernel-only and skip on the reference datapath.  They read the metadata
with nftables inside the node (`nft -f -` through testbed.run; counters
read back as JSON, each rule named by its comment):

- the outer packet is matched in an `inet` postrouting chain by its
  destination (the first SID) and by bytes of the inner frame: nftables'
  transport header offset (@th) of an IPv6 packet whose upper-layer header is
  143 is the inner Ethernet frame (the SRH is skipped), so @th,48,48 is the
  inner source MAC and each case counts its own frames only;
- the inner frame is matched in `bridge` chains by its MACs.

C4 (broadcast/multicast still broadcast/multicast after End.DT2U, unicast
to a learned MAC to one port) is visible from userspace and applies to the
reference too: its TAP hands the frame to the bridge as received on l2dev.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import textwrap

import pytest

from testbed.capture import Frame
from testbed.casekit import ETH_P_EXP
from testbed.casekit import marker as marked
from testbed.packets import scapy, send_frames
from testbed.run import Result, run
from testbed.wait import until

P2P = "topologies/p2p.yaml"
RT1_SID = "fcff:1::d20"  # End.DT2U at rt-1 (rt-2's srl2-0 sends there)
RT2_SID = "fcff:2::d20"  # End.DT2U at rt-2: the first (only) SID of rt-1's srl2-0
RT1_UNDERLAY = "fcf0:0:1:2::1"
RT2_UNDERLAY = "fcf0:0:1:2::2"
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST = 0, 1, 2
N = 3  # frames per kind: counters must move by exactly this much


def mac_hex(mac: str) -> str:
    return "0x" + mac.replace(":", "")


# ---- nftables inside a node -------------------------------------------------


def nft(ns, ruleset: str, check: bool = True) -> Result:
    """Load RULESET (nft -f syntax) in the node's netns (a refusal raises
    testbed.run.CommandError with nft's own message, when `check`)."""
    return run(ns, ["nft", "-f", "-"], input=ruleset, check=check)


def nft_counters(ns) -> dict[str, int]:
    """Packet counters of every rule with a comment, by comment (nft -j)."""
    p = run(ns, ["nft", "-j", "list", "ruleset"])
    out: dict[str, int] = {}
    for obj in json.loads(p.stdout)["nftables"]:
        rule = obj.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule["expr"]:
            if "counter" in expr:
                out[rule["comment"]] = expr["counter"]["packets"]
    return out


def conntrack_table(ns) -> str:
    """The node's conntrack table as text: `conntrack -L` where conntrack-tools
    is installed, else /proc/net/nf_conntrack (CONFIG_NF_CONNTRACK_PROCFS);
    "" when neither is available."""
    if shutil.which("conntrack"):
        cmd = ["conntrack", "-L"]
    else:
        cmd = ["cat", "/proc/net/nf_conntrack"]
    p = run(ns, cmd, check=False)
    return p.stdout if p.returncode == 0 else ""


def counted(checks, cid: str, counters: dict[str, int], want: dict[str, tuple[str, int]]) -> None:
    """One check of CID per nft counter: want[comment] = (what, expected)."""
    for comment, (what, expected) in want.items():
        checks.equal(cid, f"{what} [nft rule {comment!r}]", expected, counters.get(comment))


def udp_sock(ns):
    import socket

    return ns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)


# ---- C1 ---------------------------------------------------------------------

C1_PORT = 5001


def check_c1(lab_, checks) -> None:
    """rt-1 itself sends UDP from its br0 address to hs-2 (10.0.0.2): the
    packet is tracked in rt-1's output path (conntrack entry, IPv4, state
    new), leaves br0, is bridged to srl2-0 and encapsulated.  The outer packet
    must carry a conntrack entry of its own: IPv6, original destination the
    SID, state new; never the inner packet's IPv4 entry."""
    rt1 = lab_.node("rt-1")
    # A static neighbour: the frames go out at once (unknown unicast, flooded
    # to srl2-0), whatever ARP across the pseudowire does.
    rt1.ipr.neigh("add", dst="10.0.0.2", lladdr="02:c1:00:00:00:02",
                  ifindex=lab_.ifindex("rt-1", "br0"), state="permanent")
    # The inner frame inside the outer packet: ethertype at @th,96,16 (bytes
    # 12-13 of the frame), UDP destination port at @th,288,16 (bytes 36-37:
    # 14 Ethernet + 20 IPv4 + 2).
    ours = f"ip6 daddr {RT2_SID} @th,96,16 0x0800 @th,288,16 {C1_PORT}"
    nft(rt1, textwrap.dedent(f"""\
        table inet c1 {{
          chain out {{
            type filter hook output priority 0;
            ip daddr 10.0.0.2 udp dport {C1_PORT} ct state new counter comment "inner-new"
          }}
          chain post {{
            type filter hook postrouting priority 0;
            {ours} counter comment "outer-seen"
            {ours} ct state new ct l3proto ipv6 ct original ip6 daddr {RT2_SID} ct original ip6 saddr {RT1_UNDERLAY} counter comment "outer-own-new"
            {ours} ct l3proto ipv4 counter comment "outer-inner-ct"
            {ours} ct state untracked counter comment "outer-untracked"
          }}
        }}
        """))
    with udp_sock(rt1) as s:
        s.bind(("10.0.0.254", 0))
        for i in range(N):
            s.sendto(marked(b"C1-%d" % i), ("10.0.0.2", C1_PORT))
    c = until(lambda: (c := nft_counters(rt1))["outer-seen"] >= N and c, timeout=5) or nft_counters(rt1)
    counted(checks, "C1", c, {"inner-new": ("inner packets tracked new in rt-1's output path", N),
                              "outer-seen": ("outer packets seen in rt-1's postrouting", N),
                              "outer-inner-ct": ("outer packets carrying the inner frame's IPv4 conntrack entry", 0),
                              "outer-untracked": ("outer packets untracked", 0),
                              "outer-own-new": ("outer packets tracked as a new IPv6 flow to the SID", N)})
    table = conntrack_table(rt1).splitlines()
    if table:  # the same seen in the conntrack table: two flows, each of its own
        sid = ipaddress.IPv6Address(RT2_SID)
        checks.check("C1", "conntrack entry of the outer flow (to the SID)",
                     any(f"dst={sid}" in ln or f"dst={sid.exploded}" in ln for ln in table), "one",
                     "none among " + " | ".join(table))
        checks.check("C1", "conntrack entry of the inner flow (UDP to 10.0.0.2)",
                     any("udp" in ln and "dst=10.0.0.2" in ln and f"dport={C1_PORT}" in ln for ln in table),
                     "one", "none among " + " | ".join(table))


@pytest.mark.conformance("C1")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.kernel_only("conntrack attachment of the skb: a userspace datapath builds a new skb")
def test_outer_packet_is_a_new_conntrack_flow_of_its_own(lab, checks):
    """C1 (srl2 patch: skb_scrub_packet(skb, false) resets the conntrack
    reference): a frame whose packet was tracked before it reached srl2
    (rt-1's own UDP out of br0) becomes an outer packet that is tracked as a
    new IPv6 flow of its own (original destination the SID) in rt-1's output
    path, and never carries the inner IPv4 entry."""
    check_c1(lab(P2P), checks)


# ---- C2 ---------------------------------------------------------------------

C2_MAC = "02:c2:00:00:00:01"
C2_MARK = 0x5A1


def check_c2(lab_, checks) -> None:
    """A bridge rule on rt-1 marks hs-1's frames on their way to srl2-0; the
    outer packets of exactly those frames carry the mark in postrouting."""
    rt1 = lab_.node("rt-1")
    ours = f"ip6 daddr {RT2_SID} @th,48,48 {mac_hex(C2_MAC)}"
    nft(rt1, textwrap.dedent(f"""\
        table bridge c2 {{
          chain fwd_ {{
            type filter hook forward priority 0;
            ether saddr {C2_MAC} meta mark set {C2_MARK:#x} counter comment "bridge-marked"
          }}
        }}
        table inet c2 {{
          chain post {{
            type filter hook postrouting priority 0;
            {ours} counter comment "outer-seen"
            {ours} meta mark {C2_MARK:#x} counter comment "outer-marked"
          }}
        }}
        """))
    sc = scapy()
    frames = [bytes(sc.Ether(src=C2_MAC, dst="02:c2:00:00:00:02", type=ETH_P_EXP) / marked(b"C2-%d" % i))
              for i in range(N)]
    send_frames(lab_.node("hs-1"), "veth0", frames)
    c = until(lambda: (c := nft_counters(rt1))["outer-seen"] >= N and c, timeout=5) or nft_counters(rt1)
    assert c["bridge-marked"] >= N, f"the bridge rule did not mark the frames (the lab, not C2): {c}"
    counted(checks, "C2", c, {"outer-seen": ("outer packets seen in rt-1's postrouting", N),
                              "outer-marked": ("outer packets carrying the mark set in the bridge", N)})


@pytest.mark.conformance("C2")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.kernel_only("skb->mark: a userspace datapath cannot carry the mark of the frame it read")
def test_mark_set_in_the_bridge_is_kept_on_the_outer_packet(lab, checks):
    """C2 (srl2 patch: same-netns scrub keeps skb->mark): `meta mark set` in
    rt-1's bridge forward chain on hs-1's frames is seen on their outer
    packets in rt-1's IPv6 postrouting chain."""
    check_c2(lab(P2P), checks)


# ---- C3 ---------------------------------------------------------------------

C3_MAC = "02:c3:00:00:00:01"


def check_c3(lab_, checks) -> None:
    """Broadcast and multicast frames from hs-1: rt-1's bridge floods them
    to srl2-0 (skb packet type broadcast / multicast); their outer packets
    must have packet type host in postrouting."""
    rt1 = lab_.node("rt-1")
    ours = f"ip6 daddr {RT2_SID} @th,48,48 {mac_hex(C3_MAC)}"
    nft(rt1, textwrap.dedent(f"""\
        table inet c3 {{
          chain post {{
            type filter hook postrouting priority 0;
            {ours} counter comment "outer-seen"
            {ours} meta pkttype host counter comment "outer-host"
            {ours} meta pkttype != host counter comment "outer-not-host"
          }}
        }}
        """))
    sc = scapy()
    frames = []
    for i in range(N):
        frames.append(bytes(sc.Ether(src=C3_MAC, dst="ff:ff:ff:ff:ff:ff", type=ETH_P_EXP) / marked(b"C3b%d" % i)))
        frames.append(bytes(sc.Ether(src=C3_MAC, dst="33:33:00:00:c3:01", type=ETH_P_EXP) / marked(b"C3m%d" % i)))
    send_frames(lab_.node("hs-1"), "veth0", frames)
    c = until(lambda: (c := nft_counters(rt1))["outer-seen"] >= 2 * N and c, timeout=5) or nft_counters(rt1)
    counted(checks, "C3", c, {"outer-seen": ("outer packets seen in rt-1's postrouting", 2 * N),
                              "outer-not-host": ("outer packets that kept the inner frame's packet type", 0),
                              "outer-host": ("outer packets of packet type host", 2 * N)})


@pytest.mark.conformance("C3")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.kernel_only("skb->pkt_type of the outer packet: a userspace datapath's packets are always host")
def test_broadcast_and_multicast_frames_give_outer_packets_of_type_host(lab, checks):
    """C3 (srl2 patch: skb_scrub_packet sets pkt_type PACKET_HOST): a
    broadcast and a multicast frame flooded to srl2-0 become outer packets
    whose packet type (`meta pkttype` in postrouting) is host, so the IPv6
    output path treats them as the unicast packets they are."""
    check_c3(lab(P2P), checks)


# ---- C4 ---------------------------------------------------------------------

# p2p with a second host on rt-2's bridge: the decapsulated frames must be
# flooded to both host ports and passed up to br0.  rt-2's br0 has an IPv4
# address (it is a host on the L2 segment).
C4_LAB = textwrap.dedent("""\
    name: c4
    nodes:
      hs-1:
        interfaces:
          veth0: {addresses: [10.0.0.1/24]}
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
          br0: {addresses: [10.0.0.253/24]}
        bridges:
          br0: {ports: [veth-h2, veth-h3]}
        srl2:
          srl2-0: {segs: ["fcff:1::d20"], bridge: br0}
        sids:
          - {sid: "fcff:2::d20", action: End.DT2U, l2dev: srl2-0, table: 90}
        routes:
          - {dst: "fcff:1::/32", via: "fcf0:0:1:2::1", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
      hs-2:
        interfaces:
          veth0: {addresses: [10.0.0.2/24]}
      hs-3:
        interfaces:
          veth0: {addresses: [10.0.0.3/24]}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
      - [rt-2:veth-h2, hs-2:veth0]
      - [rt-2:veth-h3, hs-3:veth0]
    """)
C4_SRC = "02:c4:00:00:00:01"  # our frames from hs-1's side (not hs-1's own MAC: its MLD/ND would count)
C4_LEARNED = "02:c4:00:00:00:02"  # a MAC rt-2's bridge learns on veth-h2 (hs-2's side)
C4_MCAST = "01:00:5e:44:00:01"


@pytest.mark.conformance("C4")
@pytest.mark.needs("srl2", "End.DT2U")
def test_decapsulated_broadcast_and_multicast_stay_so_unicast_goes_to_one_port(lab, capture):
    """C4 (srl2 patch, End.DT2U; RFC 8986 4.11 "L2 table lookup"): after
    End.DT2U at rt-2, a broadcast and a multicast frame are flooded to every
    host port (hs-2 and hs-3 each get one copy, byte for byte) AND passed up
    to rt-2's br0 as broadcast / multicast (packet type on br0 and nft bridge
    input `meta pkttype`, counted exactly); a unicast frame to a MAC the
    bridge learned on veth-h2 goes to hs-2 only (nothing at hs-3, nothing up
    to br0).  A decap that scrubs the skb after the Ethernet header was
    parsed resets the packet type to host and fails this."""
    sc = scapy()
    lab_ = lab(C4_LAB)
    rt2 = lab_.node("rt-2")
    nft(rt2, textwrap.dedent(f"""\
        table bridge c4 {{
          chain in_ {{
            type filter hook input priority 0;
            ether saddr {C4_SRC} ether daddr ff:ff:ff:ff:ff:ff meta pkttype broadcast counter comment "up-bcast"
            ether saddr {C4_SRC} ether daddr {C4_MCAST} meta pkttype multicast counter comment "up-mcast"
            ether saddr {C4_SRC} counter comment "up-all"
          }}
        }}
        """))
    hs2, hs3 = capture(lab_, "hs-2", "veth0"), capture(lab_, "hs-3", "veth0")
    up = capture(lab_, "rt-2", "br0")

    # rt-2's bridge learns C4_LEARNED on veth-h2 (hs-2 sends one frame; it
    # is flooded, so hs-3 seeing it means the bridge has processed it).
    learn = bytes(sc.Ether(src=C4_LEARNED, dst="ff:ff:ff:ff:ff:ff", type=ETH_P_EXP) / marked(b"C4-learn"))
    send_frames(lab_.node("hs-2"), "veth0", [learn])
    assert hs3.wait_for(lambda f: marked(b"C4-learn") in f.data), "rt-2's bridge did not flood hs-2's frame"

    bcast = bytes(sc.Ether(src=C4_SRC, dst="ff:ff:ff:ff:ff:ff", type=ETH_P_EXP) / marked(b"C4-bcast"))
    mcast = bytes(sc.Ether(src=C4_SRC, dst=C4_MCAST, type=ETH_P_EXP) / marked(b"C4-mcast"))
    ucast = bytes(sc.Ether(src=C4_SRC, dst=C4_LEARNED, type=ETH_P_EXP) / marked(b"C4-ucast"))
    send_frames(lab_.node("hs-1"), "veth0", [bcast, mcast, ucast])

    def got(cap, frame: bytes) -> list[Frame]:
        return cap.wait_for(lambda f: f.data == frame)

    for name, frame in (("broadcast", bcast), ("multicast", mcast)):
        for host, cap in (("hs-2", hs2), ("hs-3", hs3)):
            assert len(got(cap, frame)) == 1, f"the {name} frame was not flooded to {host} exactly once, unchanged"
    assert len(got(hs2, ucast)) == 1, "the unicast frame to a learned MAC did not reach hs-2 unchanged"
    seen_up = {frame: [f.pkttype for f in got(up, frame)] for frame in (bcast, mcast)}
    assert seen_up[bcast] == [PACKET_BROADCAST], f"broadcast frame passed up to br0 as {seen_up[bcast]}"
    assert seen_up[mcast] == [PACKET_MULTICAST], f"multicast frame passed up to br0 as {seen_up[mcast]}"

    # Nothing more: the unicast frame went to one port only.
    hs3.settle()
    up.settle()
    assert not [f for f in hs3.frames if marked(b"C4-ucast") in f.data], "unicast to a learned MAC reached hs-3"
    assert not [f for f in up.frames if marked(b"C4-ucast") in f.data], "unicast to a learned MAC went up to br0"
    c = nft_counters(rt2)
    assert (c["up-bcast"], c["up-mcast"], c["up-all"]) == (1, 1, 2), \
        f"rt-2's bridge input saw the frames with other packet types: {c}"


# ---- C5 ---------------------------------------------------------------------

C5_PORT = 5005
C5_MAC = "02:c5:00:00:00:01"


def check_c5(lab_, checks) -> None:
    """hs-1 sends UDP to rt-2's br0 address across the pseudowire.  At rt-2
    the outer packet is tracked in prerouting (IPv6, to the SID); End.DT2U
    hands the inner frame to the bridge, which passes it up to br0; the
    inner IPv4 packet must then be tracked as its own new IPv4 flow, not
    carry the outer packet's IPv6 entry."""
    sc = scapy()
    rt2 = lab_.node("rt-2")
    outer = f"ip6 daddr {RT2_SID} @th,48,48 {mac_hex(C5_MAC)}"
    inner = f"ip daddr 10.0.0.253 udp dport {C5_PORT}"
    nft(rt2, textwrap.dedent(f"""\
        table inet c5 {{
          chain pre {{
            type filter hook prerouting priority 0;
            {outer} ct state new ct l3proto ipv6 counter comment "outer-tracked"
            {inner} counter comment "inner-seen"
            {inner} ct l3proto ipv6 counter comment "inner-outer-ct"
            {inner} ct state new ct l3proto ipv4 ct original ip daddr 10.0.0.253 counter comment "inner-own-new"
          }}
        }}
        """))
    # Where this kernel has bridge conntrack (CONFIG_NF_CONNTRACK_BRIDGE),
    # look in the bridge itself too; without it nft refuses `ct` in the
    # bridge family (EPROTO) and the IP-layer view above is what there is.
    bridge_ct = nft(rt2, textwrap.dedent(f"""\
        table bridge c5 {{
          chain pre {{
            type filter hook prerouting priority 0;
            ether saddr {C5_MAC} ct l3proto ipv6 counter comment "bridge-outer-ct"
          }}
        }}
        """), check=False).returncode == 0
    br0_mac = lab_.mac("rt-2", "br0")
    frames = [bytes(sc.Ether(src=C5_MAC, dst=br0_mac) / sc.IP(src="10.0.0.1", dst="10.0.0.253") /
                    sc.UDP(sport=40000 + i, dport=C5_PORT) / marked(b"C5-%d" % i)) for i in range(N)]
    send_frames(lab_.node("hs-1"), "veth0", frames)
    c = until(lambda: (c := nft_counters(rt2))["inner-seen"] >= N and c, timeout=5) or nft_counters(rt2)
    counted(checks, "C5", c, {
        "outer-tracked": ("outer packets tracked at rt-2 (what could leak)", N),
        "inner-seen": ("decapsulated packets passed up to rt-2's br0", N),
        "inner-outer-ct": ("decapsulated packets carrying the outer packet's IPv6 conntrack entry", 0),
        "inner-own-new": ("decapsulated packets tracked as a new IPv4 flow of their own", N),
        **({"bridge-outer-ct": ("inner frames entering the bridge with the outer's conntrack entry", 0)}
           if bridge_ct else {})})


@pytest.mark.conformance("C5")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.kernel_only("conntrack attachment of the decapsulated skb: a userspace datapath builds a new skb")
def test_decapsulated_frame_does_not_carry_the_outer_conntrack_entry(lab, checks):
    """C5 (srl2 patch, End.DT2U; RFC 8986 4.11): the inner frame handed to
    rt-2's bridge does not carry the conntrack entry of the outer packet:
    passed up to br0, its IPv4 packet is tracked as a new IPv4 flow of its
    own (and, where bridge conntrack exists, the bridge sees no IPv6 entry
    on it)."""
    check_c5(lab(P2P), checks)
