"""Outer-packet fragmentation at the encapsulating node and reassembly at
the decapsulating SID (RFC 8200 4.5; RFC 2473 7.1, the tunnel entry point
fragments the tunnel packet).

Why the reference needs it (CONFORMANCE T4): the device MTU 1500 - 40 -
SRH - 14 leaves room for an untagged frame of MTU + 14 bytes only, yet a
frame of MTU + 18 with an 802.1Q tag (the Linux MTU convention, which the
bridge applies when it forwards to the device) must cross too: its SRv6
packet is 4 bytes over a 1500-byte underlay.  The raw socket refuses such a
packet (EMSGSIZE), so the encapsulating side sends it as fragments; the
kernel forwards fragments to the SID's TUN one by one (a SID is routed, not
delivered locally, so nothing reassembles them), and the decapsulating side
puts them back together before it decapsulates.

The routing header is per-fragment (it stays in every fragment, before the
Fragment header); the inner frame is the fragmentable part.  Pure functions
and a bounded table; no I/O.
"""
from __future__ import annotations

import struct
import time

NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_DEST = 0, 43, 44, 60
FRAG_HLEN = 8
_FRAG = struct.Struct("!BBHI")


def _per_fragment_end(packet: bytes) -> tuple[int, int]:
    """(offset after the per-fragment headers, offset of the byte that holds
    their last next-header value): hop-by-hop, destination options and the
    routing header (RFC 8200 4.5)."""
    nh_at, off = 6, 40
    while packet[nh_at] in (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_DEST) and off + 2 <= len(packet):
        nh_at, off = off, off + (packet[off + 1] + 1) * 8
    return off, nh_at


def fragment(packet: bytes, mtu: int, ident: int) -> list[bytes]:
    """`packet` (a whole IPv6 packet longer than `mtu`) as fragments of at
    most `mtu` bytes; [] when it cannot be fragmented to fit (the
    per-fragment headers alone leave no room)."""
    packet = bytes(packet)
    unfrag_end, nh_at = _per_fragment_end(packet)
    room = (mtu - unfrag_end - FRAG_HLEN) & ~7
    if room <= 0 or unfrag_end >= len(packet):
        return []
    head = bytearray(packet[:unfrag_end])
    upper = head[nh_at]
    head[nh_at] = NEXTHDR_FRAGMENT
    rest = packet[unfrag_end:]
    out = []
    for at in range(0, len(rest), room):
        chunk = rest[at:at + room]
        more = 1 if at + room < len(rest) else 0
        h = bytearray(head)
        struct.pack_into("!H", h, 4, unfrag_end - 40 + FRAG_HLEN + len(chunk))
        out.append(bytes(h) + _FRAG.pack(upper, 0, at | more, ident) + chunk)
    return out


def _find_fragment_header(packet: bytes):
    """(offset of the Fragment header, offset of the next-header byte naming
    it) or None when the packet is not a fragment."""
    nh_at, off = 6, 40
    while off + 2 <= len(packet):
        nh = packet[nh_at]
        if nh == NEXTHDR_FRAGMENT:
            return (off, nh_at) if off + FRAG_HLEN <= len(packet) else None
        if nh not in (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_DEST):
            return None
        nh_at, off = off, off + (packet[off + 1] + 1) * 8
    return None


class Reassembler:
    """Fragments of packets to a decapsulating SID, put back together.

    `feed(packet)` returns the packet itself when it is not a fragment, the
    reassembled packet when this fragment completed one, or None (held, or
    dropped: overlapping fragments, RFC 5722).  At most `limit` packets are
    pending; the oldest goes first, and any older than `timeout` seconds."""

    def __init__(self, limit: int = 64, timeout: float = 60.0):
        self.limit = limit
        self.timeout = timeout
        self.pending: dict[tuple, dict] = {}
        self.dropped = 0

    def feed(self, packet: bytes):
        if len(packet) < 40 or packet[0] >> 4 != 6:
            return packet
        found = _find_fragment_header(packet)
        if found is None:
            return packet
        off, nh_at = found
        upper, _res, offm, ident = _FRAG.unpack_from(packet, off)
        end = min(len(packet), 40 + (packet[4] << 8 | packet[5]))
        data = packet[off + FRAG_HLEN:end]
        start, more = offm & ~7, offm & 1
        now = time.monotonic()
        for k in [k for k, e in self.pending.items() if now - e["t"] > self.timeout]:
            del self.pending[k]
            self.dropped += 1
        key = (packet[8:40], ident)
        entry = self.pending.get(key)
        if entry is None:
            while len(self.pending) >= self.limit:
                del self.pending[next(iter(self.pending))]
                self.dropped += 1
            entry = self.pending[key] = {"t": now, "pieces": {}, "total": None, "head": None}
        if any(start < s + len(d) and s < start + len(data) for s, d in entry["pieces"].items()) \
                or (more and len(data) % 8):
            del self.pending[key]
            self.dropped += 1
            return None
        entry["pieces"][start] = data
        if not more:
            entry["total"] = start + len(data)
        if start == 0:
            head = bytearray(packet[:off])
            head[nh_at] = upper
            entry["head"] = head
        total = entry["total"]
        if total is None or entry["head"] is None or sum(len(d) for d in entry["pieces"].values()) != total:
            return None
        del self.pending[key]
        head = entry["head"]
        body = b"".join(d for _, d in sorted(entry["pieces"].items()))
        struct.pack_into("!H", head, 4, len(head) - 40 + len(body))
        return bytes(head) + body
