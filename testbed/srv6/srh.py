"""The project's one Segment Routing Header (RFC 8754) encoder and decoder.

Pure functions, no I/O.  Segment lists are given in *visiting* order (the first
SID is the one the packet goes to first); on the wire they are stored
reversed, as `struct ipv6_sr_hdr` does:

    0       1       2       3       4       5       6       7
    nexthdr hdrlen  type=4  sl      last    flags   tag (be16)
    segments[0] = last SID visited ... segments[last] = first SID visited

with segments_left = last_entry = n - 1 and hdrlen = 2n (8-octet units, not
counting the first 8 octets).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

ROUTING_TYPE_SRH = 4
NEXTHDR_ETHERNET = 143  # IPPROTO_ETHERNET: an SRH followed by an Ethernet frame
NEXTHDR_ROUTING = 43
IPV6_HLEN = 40
ETH_HLEN = 14
SRH_FIXED = 8
MAX_SEGMENTS = 127  # hdrlen is 8 bits: 2n <= 255

_FIXED = struct.Struct("!BBBBBBH")


def srh_len(nsegs: int) -> int:
    """Bytes an SRH with `nsegs` segments and no TLVs takes on the wire."""
    return SRH_FIXED + 16 * nsegs


def mtu_for(nsegs: int) -> int:
    """The srl2 device MTU over a 1500-byte underlay (docs/catalogue.md T4, N1)."""
    return 1500 - IPV6_HLEN - srh_len(nsegs) - ETH_HLEN


def max_mtu_for(nsegs: int) -> int:
    """The srl2 device's largest accepted MTU (docs/catalogue.md N1, N4)."""
    return 65535 - IPV6_HLEN - srh_len(nsegs) - ETH_HLEN


def _addr(s) -> IPv6Address:
    if isinstance(s, IPv6Address):
        return s
    try:
        return IPv6Address(str(s))
    except ValueError as e:
        raise ValueError(f"segment {s!r} is not an IPv6 address") from e


# RFC 8754 §2.1.2 HMAC TLV as Linux lays it out (struct sr6_tlv_hmac): type,
# length 38, 2 bytes D bit + reserved, key id, 32 bytes of HMAC that the
# kernel fills at encapsulation; Linux marks such an SRH with flag bit 3.
SR6_TLV_HMAC = 5
HMAC_TLV_LEN = 40
SR6_FLAG1_HMAC = 1 << 3


def hmac_tlv(keyid: int, hmac: bytes = bytes(32)) -> bytes:
    if not 0 < keyid < 2**32:
        raise ValueError(f"HMAC key id {keyid} out of range 1..{2**32 - 1}")
    return struct.pack("!BBHI", SR6_TLV_HMAC, HMAC_TLV_LEN - 2, 0, keyid) + hmac


def encode_srh(segs, nexthdr: int = NEXTHDR_ETHERNET, flags: int = 0, tag: int = 0,
               hmac_keyid: int | None = None) -> bytes:
    """The SRH for `segs` (visiting order) exactly as it goes on the wire;
    with `hmac_keyid`, an HMAC TLV (zeroed: the kernel computes it) and
    the HMAC flag, as `ip link add ... hmac KEYID` asks for it."""
    addrs = [_addr(s) for s in segs]
    n = len(addrs)
    if n == 0:
        raise ValueError("an SRH needs at least one segment")
    if n > MAX_SEGMENTS:
        raise ValueError(f"{n} segments do not fit an SRH (at most {MAX_SEGMENTS}: hdrlen is 8 bits)")
    for name, value, top in (("nexthdr", nexthdr, 0xFF), ("flags", flags, 0xFF), ("tag", tag, 0xFFFF)):
        if not 0 <= value <= top:
            raise ValueError(f"{name} {value} out of range 0..{top}")
    tlv = b"" if hmac_keyid is None else hmac_tlv(hmac_keyid)
    if tlv:
        flags |= SR6_FLAG1_HMAC
    head = _FIXED.pack(nexthdr, 2 * n + len(tlv) // 8, ROUTING_TYPE_SRH, n - 1, n - 1, flags, tag)
    return head + b"".join(a.packed for a in reversed(addrs)) + tlv


@dataclass(frozen=True)
class Srh:
    nexthdr: int
    hdrlen: int
    type: int
    segments_left: int
    last_entry: int
    flags: int
    tag: int
    segments: tuple[IPv6Address, ...]  # wire order: segments[0] is visited last
    tlvs: bytes = b""  # whatever follows the segment list inside hdrlen

    @property
    def length(self) -> int:
        """Bytes the header takes on the wire (8 + 8 * hdrlen)."""
        return SRH_FIXED + 8 * self.hdrlen

    @property
    def travel_order(self) -> list[IPv6Address]:
        """The segment list in visiting order (first SID first)."""
        return list(reversed(self.segments))

    @property
    def active_segment(self) -> IPv6Address:
        """The segment the destination address should hold now."""
        return self.segments[self.segments_left]


def decode_srh(data: bytes) -> Srh:
    """Decode the SRH at the start of `data` (bytes after it are ignored).

    Raises ValueError, saying what is wrong, when the header is truncated or
    inconsistent (the checks of the kernel's seg6_validate_srh, without TLV
    parsing: type 4, the segment list inside hdrlen, segments_left <= last
    entry)."""
    data = bytes(data)
    if len(data) < SRH_FIXED:
        raise ValueError(f"SRH truncated: {len(data)} bytes, the fixed part needs {SRH_FIXED}")
    nexthdr, hdrlen, rtype, sl, last, flags, tag = _FIXED.unpack_from(data, 0)
    if rtype != ROUTING_TYPE_SRH:
        raise ValueError(f"routing type {rtype} is not {ROUTING_TYPE_SRH} (SRH)")
    total = SRH_FIXED + 8 * hdrlen
    if len(data) < total:
        raise ValueError(f"SRH truncated: hdrlen {hdrlen} declares {total} bytes, only {len(data)} present")
    nsegs = last + 1
    if 16 * nsegs > 8 * hdrlen:
        raise ValueError(f"SRH last entry {last} needs {nsegs} segments ({16 * nsegs} bytes) "
                         f"but hdrlen {hdrlen} holds only {8 * hdrlen} bytes")
    if sl > last:
        raise ValueError(f"SRH segments left {sl} is beyond the last entry {last}")
    segs = tuple(IPv6Address(data[SRH_FIXED + 16 * i: SRH_FIXED + 16 * (i + 1)]) for i in range(nsegs))
    tlvs = data[SRH_FIXED + 16 * nsegs: total]
    return Srh(nexthdr, hdrlen, rtype, sl, last, flags, tag, segs, tlvs)


__all__ = [
    "Srh", "encode_srh", "decode_srh", "mtu_for", "max_mtu_for", "srh_len",
    "ROUTING_TYPE_SRH", "NEXTHDR_ETHERNET", "NEXTHDR_ROUTING", "MAX_SEGMENTS",
]
