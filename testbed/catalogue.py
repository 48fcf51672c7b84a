"""The conformance catalogue (shared/CONFORMANCE.md): every behaviour ID the
suite checks, with a one-line title.  Cases tag themselves with these IDs
(`@pytest.mark.conformance("H3", "S2")`); the report maps IDs to outcomes."""
from __future__ import annotations

AREAS = {
    "H": "headers of what srl2 sends",
    "S": "SID ordering",
    "C": "scrubbing",
    "L": "loops and route errors",
    "E": "decapsulation",
    "T": "L2 transparency",
    "N": "configuration through rtnetlink",
    "D": "differential",
}

CATALOGUE = {
    "H1": "outer IPv6: version 6, next header 43, payload length, DA = first SID",
    "H2": "source address: tunsrc when set, else the source selected for the route to the first SID",
    "H3": "SRH: type 4, hdrlen 2n, SL = last entry = n-1, flags 0, tag 0, next header 143, reversed list",
    "H4": "inner frame byte for byte (MACs, VLAN tags, ethertype, payload), no FCS",
    "H5": "hop limit from the device (64), traffic class 0, not from IP headers inside the frame",
    "H6": "flow label by net.ipv6.seg6_flowlabel (-1, 0, 1)",
    "S1": "one SID: the SRH is still pushed, DA = that SID",
    "S2": "n SIDs through transit End nodes: DA and SL per link, list unchanged, SL 0 at the end",
    "S3": "limits: at most 127 SIDs; SRH length must match the attribute",
    "S4": "the SRH read back (RTM_GETLINK) is byte-identical",
    "C1": "conntrack: the outer packet is a new flow, not the inner frame's",
    "C2": "skb mark kept across the encapsulation",
    "C3": "broadcast/multicast inner frame -> outer packet type host",
    "C4": "decap: broadcast/multicast stay broadcast/multicast in the bridge",
    "C5": "decap: the inner frame does not carry the outer conntrack entry",
    "L1": "route to the first SID back into the device: dropped, collisions, tx_dropped",
    "L2": "no usable route: dropped, tx_carrier_errors, tx_dropped",
    "L3": "route repaired: the next frame goes out (errors not cached)",
    "L4": "route changes while traffic flows: frames follow the new path",
    "L5": "two devices routing into each other: no hang, bounded work",
    "E1": "End.DT2U: frame enters the bridge on l2dev; source MAC learned on l2dev",
    "E2": "unknown unicast, broadcast, multicast flooded",
    "E3": "Segments Left != 0 at End.DT2U/End.DX2: dropped (RFC 8986: ICMP Parameter Problem code 0)",
    "E4": "upper layer not 143: dropped (RFC 8986: Parameter Problem code 4)",
    "E5": "l2dev down or without carrier: dropped",
    "E6": "route creation errors: missing l2dev ENODEV, wrong kind EINVAL",
    "E7": "End.DX2: the frame leaves oif unchanged",
    "E8": "count: packets/bytes/errors move as expected",
    "T1": "ARP across the pseudowire, IPv4 ping both ways",
    "T2": "IPv6 ND across, IPv6 ping both ways",
    "T3": "non-IP ethertypes, 802.1Q and QinQ cross unchanged",
    "T4": "sizes from the minimum to the device MTU cross; bigger never delivered corrupted",
    "T5": "an IPv6 frame with hop limit 1 crosses an underlay with a router between",
    "T6": "two pseudowires in two bridges stay isolated",
    "T7": "a burst arrives complete and in order; counters agree",
    "N1": "created device: Ethernet, noqueue, random unicast MAC, MTU, min/max MTU",
    "N2": "missing SRH attribute -> EINVAL 'SRH with segment list is required'",
    "N3": "short or malformed SRH -> EINVAL 'SRH too short' / 'Invalid SRH'",
    "N4": "MTU changes within [min, max] accepted, outside rejected",
    "N5": "deleting the device or its netns while frames flow: no crash, no leak",
    "N6": "moving the device to another netns",
    "N7": "tx_packets / tx_bytes move by one frame and a consistent size",
    "D1": "kernel srl2 and the reference give identical outer packets",
    "D2": "reference srl2 vs kernel route-based l2encap; kernel vs reference End.DX2",
}


def area(cid: str) -> str:
    return cid[0]
