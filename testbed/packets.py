"""Packets on the wire: sending raw frames from inside a node, and (with
scapy) reading SRv6 packets back.  scapy is imported only by what needs it."""
from __future__ import annotations

import dataclasses
import socket
from typing import Iterable

from testbed.linux import Netns


def is_srv6(frame: bytes) -> bool:
    """An Ethernet frame carrying IPv6 with a routing header first (headers
    only: also true of a fragment or a malformed SRH)."""
    from testbed.srv6.srh import NEXTHDR_ROUTING

    return len(frame) >= 62 and frame[12:14] == b"\x86\xdd" and frame[20] == NEXTHDR_ROUTING


def srv6_of(frame: bytes):
    """(destination, decoded SRH) of an SRv6 packet, else None (also when
    its SRH does not decode)."""
    from ipaddress import IPv6Address

    from testbed.srv6.srh import decode_srh

    if not is_srv6(frame):
        return None
    try:
        return IPv6Address(frame[38:54]), decode_srh(frame[54:])
    except ValueError:
        return None


def send_frames(ns: Netns, ifname: str, frames: Iterable[bytes]) -> int:
    """Send whole Ethernet frames out of NETNS:IFNAME (any ethertype, VLAN
    tags and all); returns how many were sent."""
    n = 0
    with ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
        s.bind((ifname, 0))
        for frame in frames:
            s.send(bytes(frame))
            n += 1
    return n


# ---- scapy ------------------------------------------------------------------

_scapy_ready = False


def scapy():
    """Import scapy (quietly, once) with the SRH's next header 143 bound to
    Ethernet, so a captured srl2 packet parses down to the inner frame."""
    global _scapy_ready
    import logging

    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.all as sc
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

    if not _scapy_ready:
        sc.bind_layers(IPv6ExtHdrSegmentRouting, sc.Ether, nh=143)
        sc.bind_layers(sc.IPv6, sc.Ether, nh=143)  # reduced encapsulation: no SRH
        _scapy_ready = True
    return sc


def srv6_packet(frame: bytes, segs, src, hlim: int = 64, tc: int = 0, fl: int = 0):
    """The packet srl2 must send for FRAME (docs/catalogue.md H1, H3-H5): outer
    IPv6 to the first SID, SRH with the segments reversed, the frame whole."""
    sc = scapy()
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

    segs = [str(s) for s in segs]
    n = len(segs)
    return (sc.Ether() /
            sc.IPv6(src=str(src), dst=segs[0], hlim=hlim, tc=tc, fl=fl, nh=43) /
            IPv6ExtHdrSegmentRouting(nh=143, type=4, segleft=n - 1, lastentry=n - 1,
                                     addresses=list(reversed(segs))) /
            sc.Ether(frame))


@dataclasses.dataclass(frozen=True)
class FieldDiff:
    """One field that differs: `depth` counts layers from the outermost (0),
    so the outer and the inner Ether are told apart; `offset` is set (and
    layer/field empty) when only the bytes can tell."""
    depth: int
    layer: str
    field: str
    expected: object
    got: object
    offset: int | None = None

    def line(self) -> str:
        if self.offset is not None:
            return f"bytes differ at offset {self.offset} (lengths {self.expected} and {self.got})"
        if self.field == "":
            return f"layers differ: expected {self.expected}, got {self.got}"
        return f"{self.layer}.{self.field}: expected {self.expected!r}, got {self.got!r}"


def field_diffs(expected, got: bytes, ignore=()) -> list[FieldDiff]:
    """Differences between the scapy packet EXPECTED and the bytes GOT, with
    the fields in IGNORE ("Layer.field", e.g. "IPv6.fl", "Ether.dst") taken
    from GOT: [] when they match byte for byte (after masking), else one
    entry per differing field (or the first differing byte when fields
    cannot tell)."""
    sc = scapy()
    got_pkt = expected.__class__(got)
    exp = expected.copy()
    for spec in ignore:
        layer_name, field = spec.split(".", 1)
        layer = getattr(sc, layer_name, None) or getattr(__import__("scapy.layers.inet6", fromlist=[layer_name]),
                                                         layer_name)
        if exp.haslayer(layer) and got_pkt.haslayer(layer):
            exp[layer].setfieldval(field, got_pkt[layer].getfieldval(field))
    want = bytes(exp)
    if want == got:
        return []
    diffs = []
    a, b = expected.__class__(want), got_pkt  # both parsed: computed fields have values
    depth = 0
    while a and b:
        for f in a.fields_desc:
            va, vb = a.getfieldval(f.name), b.getfieldval(f.name)
            if f.name != "load" and va != vb:
                diffs.append(FieldDiff(depth, a.__class__.__name__, f.name, va, vb))
        a, b = a.payload, b.payload
        depth += 1
        if a.__class__ is not b.__class__:
            diffs.append(FieldDiff(depth, "", "", a.__class__.__name__, b.__class__.__name__))
            break
    if not diffs:
        at = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), min(len(want), len(got)))
        diffs.append(FieldDiff(-1, "", "", len(want), len(got), offset=at))
    return diffs


def masked_diff(expected, got: bytes, ignore=()) -> list[str]:
    """field_diffs as lines ("IPv6.hlim: expected 64, got 1")."""
    return [d.line() for d in field_diffs(expected, got, ignore)]


def assert_packet(expected, got: bytes, ignore=()) -> None:
    diffs = masked_diff(expected, got, ignore)
    assert not diffs, "captured packet differs from the expected one:\n  " + "\n  ".join(diffs)
