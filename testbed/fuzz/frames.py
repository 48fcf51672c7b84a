"""Bytes the fuzzer sends: SRHs (valid, at the limits, malformed), SRv6
packets to SIDs, and odd inner Ethernet frames.  Pure functions of a step's
parameters, so a journal line or a reproducer carries parameters and the
bytes come out the same on every replay (docs/fuzz.md "What it drives").

Unlike testbed.srv6.srh.encode_srh (the project's correct encoder), these
builders take any segment count (hdrlen and the list indexes wrap at 8 bits
past 127) and apply one `edit` to the header after encoding."""
from __future__ import annotations

import struct
from ipaddress import IPv6Address

from testbed.srv6.srh import NEXTHDR_ETHERNET, NEXTHDR_ROUTING, ROUTING_TYPE_SRH, SR6_FLAG1_HMAC, hmac_tlv

SEG_BASE = IPv6Address("fc00:e::")     # segments of fuzzed srl2 devices: fc00:e::1, ...
SID_BASE = IPv6Address("fc00:f::")     # the fuzzed SIDs of the router: fc00:f::1, ...
UNDERLAY_SRC = IPv6Address("fc00:1::2")  # the underlay peer's address (source of SRv6 packets)
NEXTHDR_FRAGMENT = 44
NEXTHDR_IPV6 = 41
NEXTHDR_NONE = 59

# SRH edits: (field, value).  Fields of the fixed part overwrite that byte;
# "truncate" cuts the header to `value` bytes; "tlv" appends `value` 8-byte
# PadN TLVs (RFC 8754 §2.1.1.2) (hdrlen grows with them, so the header stays consistent).
EDIT_FIELDS = ("nexthdr", "hdrlen", "type", "sl", "last", "flags", "truncate", "tlv")
_OFFSET = {"nexthdr": 0, "hdrlen": 1, "type": 2, "sl": 3, "last": 4, "flags": 5}


def seg(i: int) -> IPv6Address:
    """The i-th segment (1-based) of a fuzzed device's list."""
    return SEG_BASE + i


def sid(k: int) -> IPv6Address:
    """The k-th fuzzed SID (1-based)."""
    return SID_BASE + k


def srh(segs: list[IPv6Address], *, nexthdr: int = NEXTHDR_ETHERNET, sl: int | None = None,
        edit: list | tuple | None = None, hmac: int | None = None) -> bytes:
    """An SRH holding `segs` (visiting order), segments left `sl` (default:
    last entry), with an HMAC TLV for key `hmac` (zeroed, and Linux's HMAC
    flag: the kernel fills it at encapsulation), then `edit` applied.  Any
    length: fields wrap at 8 bits."""
    n = len(segs)
    last = (n - 1) & 0xFF
    tlv = b"" if hmac is None else hmac_tlv(hmac)
    head = bytearray(struct.pack("!BBBBBBH", nexthdr & 0xFF, (2 * n + len(tlv) // 8) & 0xFF, ROUTING_TYPE_SRH,
                                 last if sl is None else sl & 0xFF, last, SR6_FLAG1_HMAC if tlv else 0, 0))
    body = b"".join(a.packed for a in reversed(segs))
    data = bytearray(head + body + tlv)
    if edit:
        field, value = edit[0], int(edit[1])
        if field in _OFFSET:
            data[_OFFSET[field]] = value & 0xFF
        elif field == "truncate":
            data = data[:max(0, value)]
        elif field == "tlv":
            data[1] = (data[1] + value) & 0xFF
            data += (b"\x04\x06" + bytes(6)) * max(0, value)  # PadN, 8 bytes each
        else:
            raise ValueError(f"unknown SRH edit {field!r}")
    return bytes(data)


def device_srh(nsegs: int, edit: list | tuple | None = None, hmac: int | None = None) -> bytes:
    """The SRH attribute of a fuzzed device with `nsegs` segments."""
    return srh([seg(i) for i in range(1, max(nsegs, 0) + 1)], edit=edit, hmac=hmac)


def mac(n: int) -> bytes:
    """A locally administered unicast MAC, 02:00:00:00:00:NN."""
    return bytes([2, 0, 0, 0, (n >> 8) & 0xFF, n & 0xFF])


def inner_frame(kind: str, size: int, vlans: int = 0, dst: bytes | None = None) -> bytes:
    """An Ethernet frame of `size` bytes (at least the bytes it was given:
    runts are cut short, even inside the 14-byte header).  kind: ipv4,
    ipv6, arp, raw (a local experimental ethertype), llc (802.3 length
    field), bcast (broadcast ARP).  `vlans` 802.1ad/802.1Q tags stacked."""
    ethertypes = {"ipv4": 0x0800, "ipv6": 0x86DD, "arp": 0x0806, "raw": 0x88B5, "bcast": 0x0806}
    d = b"\xff" * 6 if kind == "bcast" else (dst or mac(0xA0))
    head = d + mac(0xA1)
    for i in range(vlans):
        head += struct.pack("!HH", 0x88A8 if i < vlans - 1 else 0x8100, 10 + i)
    if kind == "llc":
        head += struct.pack("!H", max(0, min(size - len(head) - 2, 1500)))
        body = b"\x42\x42\x03"
    else:
        head += struct.pack("!H", ethertypes[kind])
        body = {"ipv4": bytes([0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]),
                "ipv6": bytes([0x60, 0, 0, 0, 0, 0, 59, 64]) + bytes(32)}.get(kind, b"fuzz")
    frame = head + body
    if len(frame) < size:
        frame += bytes((i * 7) & 0xFF for i in range(size - len(frame)))
    return frame[:max(size, 0)]


def ipv6_header(payload_len: int, nexthdr: int, dst: IPv6Address, src: IPv6Address = UNDERLAY_SRC,
                hlim: int = 64) -> bytes:
    return struct.pack("!IHBB", 6 << 28, payload_len & 0xFFFF, nexthdr, hlim) + src.packed + dst.packed


def srv6_payload(dst: IPv6Address, nsegs: int, sl: int | None, edit, inner: bytes,
                 nested: bool, reduced: bool, red: str | None = None) -> tuple[int, bytes]:
    """(next header, bytes after the outer IPv6 header) of a packet to `dst`:
    an SRH whose active segment is `dst` when sl is the default, carrying
    `inner` (Ethernet); `nested` wraps it once more in IPv6+SRH (next header
    41 in the outer SRH); `reduced` sends the frame with no SRH at all.

    `red`: the SRH of a reduced encapsulation (H.Encaps.L2.Red, RFC 8986
    §5.4: the first SID only in the destination address, not in the list):
    "head" as the first SID gets it from the head-end (dst first, segments
    left one beyond the last entry), "tail" as the last SID gets it (dst
    last, segments left 0: what an End.DT2U at the end of the path sees)."""
    if reduced:
        return NEXTHDR_ETHERNET, inner
    others = [seg(200 + i) for i in range(1, max(nsegs, 1))]
    if red == "tail" and others:
        listed = others[1:] + [dst]  # others[0] was the first SID, carried in the DA only
        payload = srh(listed, nexthdr=NEXTHDR_ETHERNET, sl=0 if sl is None else sl, edit=edit) + inner
    elif red == "head" and others:
        payload = srh(others, nexthdr=NEXTHDR_ETHERNET, sl=len(others) if sl is None else sl, edit=edit) + inner
    else:
        segs = [dst] + others
        # Active segment dst: segments left points at the first segment visited.
        left = len(segs) - 1 if sl is None else sl
        payload = srh(segs, nexthdr=NEXTHDR_ETHERNET, sl=left, edit=edit) + inner
    if nested:
        inner6 = ipv6_header(len(payload), NEXTHDR_ROUTING, dst) + payload
        payload = srh([dst], nexthdr=NEXTHDR_IPV6) + inner6
    return NEXTHDR_ROUTING, payload


def fragments(nexthdr: int, payload: bytes, parts: int, ident: int = 0x5A5A) -> list[tuple[int, bytes]]:
    """`payload` cut into `parts` IPv6 fragments: [(44, fragment header +
    piece), ...]; pieces are multiples of 8 except the last."""
    parts = max(1, parts)
    step = max(8, (len(payload) // parts) // 8 * 8)
    out: list[tuple[int, bytes]] = []
    off = 0
    while off < len(payload) or not out:
        piece = payload[off:off + step]
        more = off + step < len(payload)
        fh = struct.pack("!BBHI", nexthdr, 0, (off & 0xFFF8) | int(more), ident)
        out.append((NEXTHDR_FRAGMENT, fh + piece))
        off += step
    return out


def srv6_frames(eth_dst: bytes, eth_src: bytes, dst: IPv6Address, *, nsegs: int = 1,
                sl: int | None = None, edit=None, inner: bytes = b"", nested: bool = False,
                reduced: bool = False, frags: int = 0, cut: int | None = None,
                red: str | None = None) -> list[bytes]:
    """The Ethernet frames of one SRv6 packet to `dst` (several when
    `frags` > 1); `cut` truncates each frame to that many bytes."""
    nh, payload = srv6_payload(dst, nsegs, sl, edit, inner, nested, reduced, red)
    pieces = fragments(nh, payload, frags) if frags > 1 else [(nh, payload)]
    out = []
    for nh_i, body in pieces:
        frame = eth_dst + eth_src + b"\x86\xdd" + ipv6_header(len(body), nh_i, dst) + body
        out.append(frame[:cut] if cut is not None else frame)
    return out


__all__ = ["seg", "sid", "srh", "device_srh", "mac", "inner_frame", "srv6_frames", "fragments",
           "EDIT_FIELDS", "NEXTHDR_ROUTING"]
