"""Pure pieces of the srl2 encapsulation (no I/O, never raise).

The outer IPv6 header is split in two so the hot loop touches only 8 bytes
per frame:  the first word (version, traffic class, flow label), payload
length, next header 43 and hop limit vary per frame; source, destination and
the SRH are fixed per device (precomputed by `Template`).
"""
from __future__ import annotations

import struct
import zlib
from ipaddress import IPv6Address

from testbed.srv6.srh import encode_srh

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


class Template:
    """Everything fixed about a device's outer headers."""

    def __init__(self, segs: list[IPv6Address], travel_order_fault: bool = False):
        self.segs = [IPv6Address(s) for s in segs]
        self.dst = self.segs[0]
        if travel_order_fault:
            # fault "sid_travel_order": the list is stored as given, not reversed
            srh = encode_srh(list(reversed(self.segs)))
        else:
            srh = encode_srh(self.segs)
        self.srh = srh
        self.src = IPv6Address("::")

    def tail(self, src: IPv6Address) -> bytes:
        """Source, destination and SRH: the outer header after its first 8 bytes."""
        return src.packed + self.dst.packed + self.srh

    def outer(self, frame, src: IPv6Address, flowlabel_mode: int = 0,
              hoplimit: int = DEFAULT_HOPLIMIT, copy_inner_hoplimit: bool = False) -> bytes:
        """The whole encapsulated packet for `frame` (the slow, readable path;
        the daemon writes the same bytes through precomputed buffers)."""
        hl = hoplimit
        if copy_inner_hoplimit:
            inner = inner_ipv6(frame)
            if inner is not None:
                hl = inner[7]
        first = FIRST8.pack(first_word(frame, flowlabel_mode), len(self.srh) + len(frame), 43, hl)
        return first + self.tail(src) + bytes(frame)
