"""Pure pieces of the srl2 encapsulation (no I/O, never raise).

The outer IPv6 header is split in two so the hot loop touches only 8 bytes
per frame:  the first word (version, traffic class, flow label), payload
length, next header (43, or 143 with no SRH) and hop limit vary per frame;
source, destination and the SRH are fixed per device and source address
(precomputed by `Template`).

Modes (the series' second revision, sr6): full is H.Encaps.L2 (RFC 8986
§5.3), every SID in the SRH, as srl2 does; reduced is H.Encaps.L2.Red
(§5.4): the first SID only in the outer DA.  What reduced sends is what
Linux's seg6_do_srh_encap_red makes of the configured SRH (measured on the
sr6 kernel too): the last entry (the first SID) is cut out, Last Entry and
hdrlen shrink, Segments Left stays n-1 (it counts the SID in the DA); with
one SID and nothing else to carry there is no SRH at all, but one SID with
an HMAC TLV keeps its whole SRH.
"""
from __future__ import annotations

import struct
import zlib
from ipaddress import IPv6Address
from typing import Optional

from testbed.srv6.srh import NEXTHDR_ETHERNET, NEXTHDR_ROUTING, encode_srh

from . import hmac

ETH_P_IPV6 = b"\x86\xdd"
ETH_P_IP = b"\x08\x00"
FIRST8 = struct.Struct("!IHBB")
DEFAULT_HOPLIMIT = 64
VERSION_WORD = 6 << 28


def inner_ipv6(frame) -> bytes | None:
    """The IPv6 header inside an Ethernet frame whose ethertype is IPv6
    (what the kernel's encap helper sees as 'the packet's protocol is IPv6')."""
    if len(frame) >= 54 and bytes(frame[12:14]) == ETH_P_IPV6:
        return bytes(frame[14:54])
    return None


def inner_flowlabel(frame) -> int:
    """H6, seg6_flowlabel 0: the inner IPv6 flow label, else 0."""
    if len(frame) >= 18 and bytes(frame[12:14]) == ETH_P_IPV6:
        return ((frame[15] & 0x0F) << 16) | (frame[16] << 8) | frame[17]
    return 0


def flow_key(frame) -> bytes:
    """The fields that name a frame's flow: IP addresses, protocol and ports
    for IPv4/IPv6 (ports only when the transport header follows directly
    and the packet is not a fragment), MAC addresses and ethertype otherwise."""
    f = bytes(frame)
    et = f[12:14]
    if et == ETH_P_IP and len(f) >= 34 and f[14] >> 4 == 4:
        ihl = (f[14] & 0x0F) * 4
        proto = f[23]
        key = f[26:34] + bytes([proto])
        frag = int.from_bytes(f[20:22], "big") & 0x3FFF
        if proto in (6, 17, 132) and not frag and len(f) >= 14 + ihl + 4:
            key += f[14 + ihl:14 + ihl + 4]
        return b"4" + key
    if et == ETH_P_IPV6 and len(f) >= 54 and f[14] >> 4 == 6:
        proto = f[20]
        key = f[22:54] + bytes([proto]) + f[15:18]
        if proto in (6, 17, 132) and len(f) >= 58:
            key += f[54:58]
        return b"6" + key
    return b"e" + f[:14]


def hash_flowlabel(frame) -> int:
    """H6, seg6_flowlabel 1: a flow label from the frame's flow hash; equal for
    the frames of one flow, spread across flows."""
    h = zlib.crc32(flow_key(frame))
    h = ((h << 16) | (h >> 16)) & 0xFFFFFFFF  # the kernel rotates its hash by 16 too
    return (h ^ (h >> 20)) & 0xFFFFF


def first_word(frame, mode: int) -> int:
    """Version/TC/flow-label word for `frame` under seg6_flowlabel `mode`."""
    if mode == 0:
        return VERSION_WORD | inner_flowlabel(frame)
    if mode > 0:
        return VERSION_WORD | hash_flowlabel(frame)
    return VERSION_WORD


def reduce_srh(srh: bytes) -> bytes:
    """The SRH H.Encaps.L2.Red pushes for the configured (full) `srh`:
    without its last entry (the first SID, which travels in the DA); none
    at all for one SID without flags, tag or TLVs."""
    last = srh[4]
    if last == 0:
        plain = srh[5] == 0 and srh[6:8] == b"\0\0" and len(srh) == 24
        return b"" if plain else srh
    out = bytearray(srh[:8 + 16 * last] + srh[8 + 16 * (last + 1):])
    out[1] -= 2
    out[4] -= 1
    return bytes(out)


class Template:
    """Everything fixed about a device's outer headers.

    `srh` is the header as it goes on the wire (b"" when there is none),
    with a zero HMAC field; `tail(src)` fills the HMAC for a source.
    `error` says why this device cannot encapsulate at all (an HMAC key
    Linux would not find, a text too long for it): every frame is then an
    encapsulation failure."""

    def __init__(self, segs: list[IPv6Address], travel_order_fault: bool = False, *,
                 mode: str = "full", hmac_keyid: Optional[int] = None, key: Optional[hmac.Key] = None,
                 faults: frozenset[str] = frozenset()):
        self.segs = [IPv6Address(s) for s in segs]
        self.dst = self.segs[0]
        # fault "sid_travel_order": the list is stored as given, not reversed;
        # hmac_keyid: an HMAC TLV (zeroed) and the H flag, `ip link ... hmac KEYID`
        order = list(reversed(self.segs)) if travel_order_fault else self.segs
        srh = encode_srh(order, hmac_keyid=hmac_keyid)
        self.key = key  # the node's key of that id (None: it has none)
        if mode == "reduced" and "reduced_repeats_first_sid" not in faults:
            srh = reduce_srh(srh)
        self.srh = srh
        self.nexthdr = NEXTHDR_ROUTING if srh else NEXTHDR_ETHERNET
        self.src = IPv6Address("::")
        self.without_source = "hmac_wrong_bytes" in faults
        self.error = ""
        if hmac_keyid is not None and key is None:
            self.error = f"no HMAC key {hmac_keyid}"
        elif self.key is not None and hmac.compute(self.key, srh, bytes(16)) is None:
            self.error = f"HMAC text of {srh[4] + 1} segments too long (at most 14)"

    def tail(self, src: IPv6Address) -> bytes:
        """Source, destination and SRH: the outer header after its first 8 bytes."""
        srh = self.srh
        if self.key is not None and not self.error:
            srh = hmac.fill(srh, self.key, src.packed, without_source=self.without_source) or srh
        return src.packed + self.dst.packed + srh

    def outer(self, frame, src: IPv6Address, flowlabel_mode: int = 0,
              hoplimit: int = DEFAULT_HOPLIMIT, copy_inner_hoplimit: bool = False) -> bytes:
        """The whole encapsulated packet for `frame` (the slow, readable path;
        the daemon writes the same bytes through precomputed buffers)."""
        hl = hoplimit
        if copy_inner_hoplimit:
            inner = inner_ipv6(frame)
            if inner is not None:
                hl = inner[7]
        first = FIRST8.pack(first_word(frame, flowlabel_mode), len(self.srh) + len(frame), self.nexthdr, hl)
        return first + self.tail(src) + bytes(frame)
