"""The SRH's HMAC TLV (RFC 8754 §2.1.2) as Linux fills and checks it
(net/ipv6/seg6_hmac.c: seg6_push_hmac, seg6_hmac_validate_skb).  Pure
functions, no I/O, never raise.

The TLV is the last 40 bytes of the SRH: type 5, length 38, 16 bits of
D flag and reserved (0), the key id (32 bits), then 32 bytes of HMAC.  The
SRH flags carry the H bit (SR6_FLAG1_HMAC, 0x08).  The HMAC's text is

    source address (16) | Last Entry (1) | flags (1) | key id (4) | segments[0..Last Entry]

of the SRH as it goes on the wire (in reduced mode: the reduced SRH),
HMAC-SHA256 or HMAC-SHA1 with the key's secret, truncated or zero-padded
to 32 bytes (a SHA-1 digest is 20).  Linux builds the text in a 256-byte
buffer and refuses a longer one (EMSGSIZE): at most 14 segments.
"""
from __future__ import annotations

import hashlib
import hmac as _hmac
import struct
from dataclasses import dataclass
from typing import Optional

TLV_TYPE = 5
TLV_LEN = 38  # bytes after type and length
TLV_BYTES = 40
FIELD_LEN = 32
FLAG_H = 0x08  # SR6_FLAG1_HMAC
TEXT_LIMIT = 256  # SEG6_HMAC_RING_SIZE: a text this long or longer is refused
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
SECRET_MAX = 64  # SEG6_HMAC_SECRET_LEN


@dataclass(frozen=True)
class Key:
    """`ip sr hmac set KEYID ALGORITHM` with its secret."""

    keyid: int
    secret: bytes
    algorithm: str = "sha256"


def text(srh: bytes, src: bytes, keyid: int) -> bytes:
    """The bytes the HMAC covers (see the module's docstring)."""
    last = srh[4]
    return src + bytes([last, srh[5]]) + struct.pack("!I", keyid) + srh[8:8 + 16 * (last + 1)]


def compute(key: Key, srh: bytes, src: bytes) -> Optional[bytes]:
    """The 32-byte HMAC field for `srh` sent from `src`, or None where Linux
    fails (text too long, unknown algorithm)."""
    msg = text(srh, src, key.keyid)
    digest = ALGORITHMS.get(key.algorithm)
    if len(msg) >= TEXT_LIMIT or digest is None:
        return None
    return _hmac.new(key.secret, msg, digest).digest()[:FIELD_LEN].ljust(FIELD_LEN, b"\0")


def find(srh: bytes) -> Optional[int]:
    """Offset of the HMAC TLV in `srh` (a whole, valid SRH), or None where
    Linux finds none (seg6_get_tlv_hmac): no H flag, no room for it after
    the segments, or the last 40 bytes are not type 5, length 38."""
    if len(srh) < 8 or not srh[5] & FLAG_H or srh[1] < (srh[4] + 1) * 2 + TLV_BYTES // 8:
        return None
    at = (srh[1] + 1) * 8 - TLV_BYTES
    if at + TLV_BYTES > len(srh) or srh[at] != TLV_TYPE or srh[at + 1] != TLV_LEN:
        return None
    return at


def keyid_of(srh: bytes) -> Optional[int]:
    at = find(srh)
    return None if at is None else struct.unpack_from("!I", srh, at + 4)[0]


def fill(srh: bytes, key: Key, src: bytes, *, without_source: bool = False) -> Optional[bytes]:
    """`srh` with its HMAC field computed for `src` (seg6_push_hmac), or
    None where Linux fails.  `without_source`: fault "hmac_wrong_bytes",
    the text without the source address."""
    at = find(srh)
    if at is None:
        return None
    mac = compute(key, srh, b"" if without_source else src)
    if mac is None:
        return None
    return srh[:at + 8] + mac + srh[at + TLV_BYTES:]


def valid(srh: bytes, src: bytes, keys: dict[int, Key]) -> bool:
    """What seg6_hmac_validate_skb says of a packet from `src` carrying
    `srh`, with the interface's seg6_require_hmac at its default 0: an SRH
    without an HMAC TLV passes; one with it passes when the key is known
    and the HMAC matches."""
    at = find(srh)
    if at is None:
        return True
    key = keys.get(struct.unpack_from("!I", srh, at + 4)[0])
    if key is None:
        return False
    mac = compute(key, srh, src)
    return mac is not None and _hmac.compare_digest(mac, srh[at + 8:at + TLV_BYTES])
