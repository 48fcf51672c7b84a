"""What the conformance cases share (docs/catalogue.md): markers that tell a
case's frames from the lab's own traffic, frame builders, reading SRv6
packets back (through testbed.srv6.srh), waiting for frames, counter
deltas, running programs in a node, and comparing a captured packet with
the expected one check by check, each differing field under the catalogue
ID it belongs to (a wrong hop limit is H5's, never H1's or H4's)."""
from __future__ import annotations

import itertools
import struct
from ipaddress import IPv6Address
from typing import Callable, Iterable

from testbed.capture import Capture, Frame
from testbed.packets import FieldDiff, field_diffs, srv6_of
from testbed.run import Result, run
from testbed.srv6.srh import ETH_HLEN, IPV6_HLEN
from testbed.wait import until

MARK = b"srl2-testbed:"
END = b"|"  # ends a marker: tag "1" is then never found inside tag "10"
ETH_P_IPV6, ETH_P_EXP = 0x86DD, 0x88B5  # 0x88b5: IEEE local experimental, no stack answers it
TPID_CTAG, TPID_STAG = 0x8100, 0x88A8
BROADCAST = "ff:ff:ff:ff:ff:ff"
OUTER = ETH_HLEN + IPV6_HLEN  # where the SRH starts in a captured SRv6 packet

# ---- markers -----------------------------------------------------------------

_serial = itertools.count()


def _text(tag: str | bytes) -> bytes:
    return tag if isinstance(tag, bytes) else tag.encode()


def marker(tag: str | bytes) -> bytes:
    """The payload marker of one frame: MARK + tag + END."""
    return MARK + _text(tag) + END


def fresh_marker(tag: str | bytes) -> bytes:
    """A marker no other call returns (a serial number after the tag): for
    frames of one kind sent more than once in a run."""
    return marker(_text(tag) + b":%d" % next(_serial))


def tag_of(data: bytes) -> bytes | None:
    """The tag of the first marker in DATA, or None."""
    at = data.find(MARK)
    if at < 0:
        return None
    start = at + len(MARK)
    end = data.find(END, start)
    return data[start:end] if end >= 0 else None


# ---- frames ------------------------------------------------------------------


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def filler(n: int) -> bytes:
    """N bytes that differ from byte to byte: a shifted or truncated frame
    cannot compare equal by accident."""
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def l2frame(dst: str, mark: bytes, *, src: str, size: int = 0, vlans: Iterable[tuple[int, int]] = (),
            ethertype: int = ETH_P_EXP) -> bytes:
    """An Ethernet frame (no FCS): MACs, the VLAN tags VLANS ((tpid, tci),
    outermost first), ETHERTYPE, MARK, then filler up to SIZE bytes (none
    when SIZE is 0 or already reached)."""
    head = mac_bytes(dst) + mac_bytes(src)
    head += b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in vlans)
    head += struct.pack("!H", ethertype) + mark
    if size and len(head) > size:
        raise ValueError(f"a {size}-byte frame cannot hold {len(head)} bytes of headers and marker")
    return head + filler(max(0, size - len(head)))


# ---- SRv6 packets read back ---------------------------------------------------


def inner_frame_of(pkt: bytes) -> bytes | None:
    """The Ethernet frame an SRv6 packet carries (after outer Ethernet, IPv6
    and the SRH, whose length its decoded hdrlen gives), or None when PKT
    is not an SRv6 packet with an SRH."""
    parsed = srv6_of(pkt)
    if parsed is None:
        return None
    return pkt[OUTER + parsed[1].length:]


def destination_of(pkt: bytes) -> IPv6Address | None:
    """The outer destination of an SRv6 packet, else None."""
    parsed = srv6_of(pkt)
    return parsed[0] if parsed else None


# ---- waiting for frames ---------------------------------------------------------


def carrying(key: bytes) -> Callable[[Frame], bool]:
    """Frames arriving (not sent) that carry KEY."""
    return lambda f: not f.outgoing and key in f.data


def leaving(key: bytes) -> Callable[[Frame], bool]:
    """Frames sent out of the interface that carry KEY."""
    return lambda f: f.outgoing and key in f.data


def received(cap: Capture, key: bytes, count: int = 1, timeout: float = 5.0) -> list[Frame]:
    """Frames that arrived on the capture's interface carrying KEY, once
    COUNT were seen (or what there was at the deadline)."""
    return cap.wait_for(carrying(key), count, timeout)


def sent(cap: Capture, key: bytes, count: int = 1, timeout: float = 5.0) -> list[Frame]:
    """Frames that left through the capture's interface carrying KEY."""
    return cap.wait_for(leaving(key), count, timeout)


# ---- counters ---------------------------------------------------------------------


def delta(now: dict, before: dict, keys: Iterable[str] | None = None) -> dict:
    """How each counter (of KEYS, default all of NOW) moved since BEFORE."""
    return {k: now[k] - before[k] for k in (now if keys is None else keys)}


def counter_delta(lab_, node: str, dev: str, before: dict) -> dict:
    """How NODE's DEV counters moved since BEFORE (lab_.counters)."""
    return delta(lab_.counters(node, dev), before)


def settled_delta(read: Callable[[], dict], before: dict, want: dict, timeout: float = 5.0) -> dict:
    """How the counters READ returns moved since BEFORE, on WANT's keys, once
    they equal WANT or the deadline passed (counters kept by another process
    lag the wire); the caller checks the result against WANT."""
    def now() -> dict:
        return delta(read(), before, want)

    until(lambda: now() == want, timeout)
    return now()


def counters_reach(lab_, node: str, dev: str, before: dict, want: dict, timeout: float = 5.0) -> dict:
    """settled_delta of NODE's DEV counters."""
    return settled_delta(lambda: lab_.counters(node, dev), before, want, timeout)


# ---- programs in a node ----------------------------------------------------------


def ping(lab_, node: str, dst: str) -> Result:
    """One ping from NODE to DST (5 s); the caller asserts on returncode."""
    return run(lab_.node(node), ["ping", "-n", "-c1", "-W5", dst], check=False)


# ---- packets compared check by check -----------------------------------------------

# Which catalogue ID a differing field of an srl2 packet belongs to: the
# outer Ethernet header and IPv6's fixed fields are H1's, the source H2's,
# hop limit and traffic class H5's, the flow label H6's, the SRH H3's and
# everything inside H4's.
IPV6_FIELD_IDS = {"src": "H2", "hlim": "H5", "tc": "H5", "fl": "H6"}
IPV6_FIELD_WHAT = {"src": "outer source", "hlim": "outer hop limit", "tc": "outer traffic class",
                   "fl": "outer flow label", "dst": "outer destination", "plen": "outer payload length",
                   "nh": "outer next header", "version": "outer version"}


def owner(d: FieldDiff, srh_len: int) -> str:
    """The catalogue ID a differing field of an srl2 packet belongs to."""
    if d.offset is not None:  # only the bytes tell: place the offset
        if d.offset < ETH_HLEN:
            return "H1"
        if d.offset < OUTER:
            return _ipv6_byte(d.offset - ETH_HLEN)
        return "H3" if d.offset < OUTER + srh_len else "H4"
    if d.depth <= 0:
        return "H1"
    if d.depth == 1:
        return IPV6_FIELD_IDS.get(d.field, "H1")
    return "H3" if d.depth == 2 else "H4"


def _ipv6_byte(at: int) -> str:
    """The ID of byte AT of the outer IPv6 header: bytes 0-1 hold the traffic
    class (H5), 1-3 the flow label (H6), 7 the hop limit (H5), 8-23 the
    source (H2); the rest (version, payload length, next header,
    destination) are H1's."""
    if at in (0, 1, 7):
        return "H5"
    if at in (2, 3):
        return "H6"
    return "H2" if 8 <= at < 24 else "H1"


def describe(d: FieldDiff) -> str:
    """What a differing field is, in words."""
    if d.offset is not None:
        return f"byte {d.offset} of the packet"
    if d.field == "":
        return f"layer {d.depth} of the packet"
    if d.depth == 1:
        return IPV6_FIELD_WHAT.get(d.field, f"outer IPv6 {d.field}")
    if d.depth == 0:
        return f"outer Ethernet {d.field}"
    if d.depth == 2:
        return f"SRH {d.field}"
    return f"inner frame {d.layer}.{d.field}"


def check_packet(checks, what: str, expected, got: bytes, *, main: str, ignore=()) -> bool:
    """Compare the captured srl2 packet GOT with the scapy packet EXPECTED
    (testbed.packets.field_diffs, IGNORE masked) as one check per catalogue
    ID: each differing field fails the ID it belongs to (`owner`) when the
    case is tagged with that ID, else MAIN; every other ID of the case that
    the packet covers (H1-H6) and MAIN pass.  WHAT names the packet ("the
    packet of a frame carrying IPv6 hop limit 1").  True when nothing differs."""
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

    srh = expected.getlayer(IPv6ExtHdrSegmentRouting)
    srh_len = len(bytes(srh)) - len(bytes(srh.payload)) if srh is not None else 0
    tagged = checks.ids or {main}
    diffs = field_diffs(expected, got, ignore)
    by_id: dict[str, list[FieldDiff]] = {}
    for d in diffs:
        cid = owner(d, srh_len)
        by_id.setdefault(cid if cid in tagged else main, []).append(d)
    covered = ({"H1", "H2", "H3", "H4", "H5", "H6"} & tagged) | {main}
    for cid in sorted(covered | set(by_id)):
        found = by_id.get(cid, [])
        if not found:
            checks.check(cid, what, True, "the packet srl2 must send", "that packet")
        for d in found:
            checks.check(cid, f"{describe(d)} of {what}", False, d.expected, d.got)
    return not diffs
