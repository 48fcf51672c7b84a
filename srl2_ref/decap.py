"""Pure classification of packets that reached a SID (no I/O, never raises).

`classify(packet, action)` reads the outer IPv6 header and its extension
headers and says what the SID's behaviour does with the packet:

- End.DT2U / End.DX2 (RFC 8986 4.9, 4.11; Linux decap_and_validate): an SRH,
  if present, must have Segments Left 0 (else drop, E3: Parameter Problem
  code 0 at Segments Left); another routing type is ignored when its Segments
  Left is 0 (RFC 8200 4.4); the upper-layer header must be 143, Ethernet (else
  drop, E4: Parameter Problem code 4 at the upper-layer header); the inner
  frame (at least 14 bytes) is what is delivered.
- End / End.X (RFC 8986 4.1, 4.2): an SRH with Segments Left > 0 is needed;
  Segments Left is decremented and the destination address becomes the next
  segment; the rewritten packet is re-injected.

An SRH may have Segments Left = Last Entry + 1: a reduced SRH (H.Encaps.Red,
RFC 8986 §5.4), whose first segment travels only in the destination
address; Linux's seg6_local validates SRHs as possibly reduced.  With the
node's HMAC keys (`hmac_keys`), an SRH carrying an HMAC TLV must carry the
right HMAC (seg6_hmac_validate_skb with seg6_require_hmac 0, its default;
the per-interface setting is not modelled): else the packet is dropped
silently, as Linux does.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from testbed.srv6.srh import Srh, decode_srh

from . import hmac

NEXTHDR_HOP = 0
NEXTHDR_ROUTING = 43
NEXTHDR_FRAGMENT = 44
NEXTHDR_DEST = 60
NEXTHDR_ETHERNET = 143
ICMP6_PARAM_PROB = 4
ETH_HLEN = 14


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why it was dropped (one word-ish), "" when ok
    start: int = 0  # ok decap: inner frame is packet[start:end]
    end: int = 0
    packet: Optional[bytes] = None  # ok End/End.X: the rewritten packet to re-inject
    icmp: Optional[tuple[int, int, int]] = None  # (type, code, pointer) RFC 8986 asks for


def _drop(reason: str, icmp=None) -> Verdict:
    return Verdict(False, reason, icmp=icmp)


def _walk(packet: bytes):
    """-> (error | None, end, routing header offset | None, upper type, upper offset)."""
    if len(packet) < 40:
        return f"truncated IPv6 header ({len(packet)} bytes)", 0, None, 0, 0
    if packet[0] >> 4 != 6:
        return f"IP version {packet[0] >> 4}", 0, None, 0, 0
    plen = (packet[4] << 8) | packet[5]
    end = 40 + plen
    if plen == 0:
        return "payload length 0 (jumbogram or empty)", 0, None, 0, 0
    if end > len(packet):
        return f"truncated: payload length {plen}, {len(packet) - 40} bytes present", 0, None, 0, 0
    nh, off, rh = packet[6], 40, None
    while nh in (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_DEST, NEXTHDR_FRAGMENT):
        if nh == NEXTHDR_FRAGMENT:
            return "fragment", end, rh, nh, off
        if nh == NEXTHDR_HOP and off != 40:
            return "hop-by-hop header not first", end, rh, nh, off
        if off + 2 > end:
            return "truncated extension header", end, rh, nh, off
        hlen = (packet[off + 1] + 1) * 8
        if off + hlen > end:
            return "truncated extension header", end, rh, nh, off
        if nh == NEXTHDR_ROUTING:
            if rh is not None:
                return "more than one routing header", end, rh, nh, off
            rh = off
        nh, off = packet[off], off + hlen
    return None, end, rh, nh, off


def decode_reduced(data: bytes) -> Srh:
    """decode_srh, also accepting Segments Left = Last Entry + 1 (a reduced
    SRH, as Linux's seg6_validate_srh(..., reduced=true) does)."""
    if len(data) >= 8 and data[2] == 4 and data[3] == data[4] + 1:
        srh = decode_srh(data[:3] + bytes([data[4]]) + data[4:])
        return Srh(srh.nexthdr, srh.hdrlen, srh.type, data[3], srh.last_entry, srh.flags, srh.tag,
                   srh.segments, srh.tlvs)
    return decode_srh(data)


def classify(packet: bytes, action: str, *, check_sl: bool = True,
             hmac_keys: Optional[dict[int, hmac.Key]] = None) -> Verdict:
    """What SID behaviour `action` does with `packet` (an IPv6 packet);
    with `hmac_keys`, HMAC TLVs are checked against them."""
    try:
        return _classify(bytes(packet), action, check_sl, hmac_keys)
    except Exception as e:  # a bug here must cost a packet, not the process
        return _drop(f"internal error: {type(e).__name__}")


def _hmac_ok(packet: bytes, rh: Optional[int], keys: Optional[dict[int, hmac.Key]]) -> bool:
    if keys is None or rh is None or packet[rh + 2] != 4:
        return True
    return hmac.valid(packet[rh:rh + (packet[rh + 1] + 1) * 8], packet[8:24], keys)


def _classify(packet: bytes, action: str, check_sl: bool, keys: Optional[dict[int, hmac.Key]]) -> Verdict:
    err, end, rh, upper, uoff = _walk(packet)
    if err:
        return _drop(err)
    if action in ("End.DT2U", "End.DX2"):
        if rh is not None:
            rtype, sl = packet[rh + 2], packet[rh + 3]
            if rtype == 4:
                try:
                    decode_reduced(packet[rh:end])
                except ValueError as e:
                    return _drop(f"invalid SRH: {e}", (ICMP6_PARAM_PROB, 0, rh + 2))
                if sl != 0 and check_sl:
                    return _drop("segments left not 0", (ICMP6_PARAM_PROB, 0, rh + 3))
                if not _hmac_ok(packet, rh, keys):
                    return _drop("HMAC not valid")
            elif sl != 0:
                return _drop(f"routing type {rtype} with segments left {sl}", (ICMP6_PARAM_PROB, 0, rh + 2))
        if upper != NEXTHDR_ETHERNET:
            return _drop(f"upper-layer header {upper} is not 143", (ICMP6_PARAM_PROB, 4, uoff))
        if end - uoff < ETH_HLEN:
            return _drop(f"inner frame truncated ({end - uoff} bytes)")
        return Verdict(True, start=uoff, end=end)
    if action in ("End", "End.X"):
        if rh is None or packet[rh + 2] != 4:
            return _drop("no SRH", (ICMP6_PARAM_PROB, 4, uoff))
        try:
            srh = decode_reduced(packet[rh:end])
        except ValueError as e:
            return _drop(f"invalid SRH: {e}", (ICMP6_PARAM_PROB, 0, rh + 3))
        if srh.segments_left == 0:
            return _drop("segments left 0 at End", (ICMP6_PARAM_PROB, 4, uoff))
        if not _hmac_ok(packet, rh, keys):
            return _drop("HMAC not valid")
        if packet[7] == 0:
            return _drop("hop limit 0")
        sl = srh.segments_left - 1
        out = bytearray(packet[:end])
        out[rh + 3] = sl
        out[24:40] = srh.segments[sl].packed
        return Verdict(True, packet=bytes(out))
    return _drop(f"unknown action {action!r}")


def icmp_param_problem(packet: bytes, code: int, pointer: int) -> bytes:
    """ICMPv6 Parameter Problem body (checksum left 0 for the kernel to fill)
    quoting as much of `packet` as fits the IPv6 minimum MTU."""
    return struct.pack("!BBHI", ICMP6_PARAM_PROB, code, 0, pointer) + bytes(packet[:1280 - 40 - 8])
