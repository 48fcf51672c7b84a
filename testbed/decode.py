"""One readable line per captured frame, SRv6 included (`testbed capture`).

`decode(frame)` reads an Ethernet frame down to its last header it knows and
returns a `Decoded`: the line, and the tags a capture filter matches on.
An SRv6 packet shows its outer addresses, then its SRH (Segments Left and
the segment list in visiting order, from testbed.srv6.srh), then the frame
it carries, printed the way `tcpdump -e -vv` prints a frame: MACs, VLAN
tags, IPv4 / IPv6 / ARP / ND / ICMP / UDP / TCP.  For example (one line):

    02:00:00:00:01:01 > 02:00:00:00:02:01, ethertype IPv6 (0x86dd), length 176:
    (hlim 64, next-header Routing (43), payload length 122) fcf0:0:1:2::1 > fcff:2::d20:
    SRH SL 0, segs [fcff:2::d20], next-header Ethernet (143):
    0a:..:01 > 0a:..:02, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 64, id 7,
    flags [DF], proto ICMP (1), length 84) 10.0.0.1 > 10.0.0.2: ICMP echo request, id 3, seq 1, length 64

`Filter` is the small expression of `testbed capture --filter` (see its
docstring): terms such as srv6, arp, nd, icmp, vlan=10, ethertype=0x88b5,
sid=fcff:2::d20, matched against every layer, outer and inner.

Pure functions of the bytes, no I/O, no scapy (a capture prints thousands of
lines a second; scapy decodes a few hundred)."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from testbed.filterterms import FILTER_HELP, TERMS, VALUE_TERMS
from testbed.srv6.srh import NEXTHDR_ETHERNET, NEXTHDR_ROUTING, ROUTING_TYPE_SRH, decode_srh

ETHERTYPES = {0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6", 0x8100: "802.1Q", 0x88A8: "802.1Q-QinQ",
              0x88CC: "LLDP", 0x8847: "MPLS unicast", 0x88B5: "Local Experimental"}
VLAN_TPIDS = (0x8100, 0x88A8)
IPPROTO_NAMES = {0: "Options", 1: "ICMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 43: "Routing",
                 44: "Fragment", 58: "ICMPv6", 59: "NoNext", 60: "DstOpts", 143: "Ethernet"}
IPV6_EXT = (0, 43, 44, 60)  # extension headers walked over to the upper layer
ICMP_TYPES = {0: "echo reply", 3: "unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded",
              12: "parameter problem"}
ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 4: "parameter problem",
               128: "echo request", 129: "echo reply", 133: "router solicitation", 134: "router advertisement",
               135: "neighbor solicitation", 136: "neighbor advertisement", 137: "redirect",
               143: "multicast listener report v2"}
ND_TYPES = (133, 134, 135, 136, 137)
TCP_FLAGS = "FSRPAUEW"  # tcpdump's letters, bit 0 first (P for PSH, . for ACK alone)
MAX_DEPTH = 8  # nested encapsulations followed before giving up (a crafted loop of headers)


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _proto(n: int) -> str:
    return f"{IPPROTO_NAMES.get(n, 'unknown')} ({n})"


@dataclass
class Decoded:
    """A frame read by `decode`: the line, and what a filter matches on.

    tags: layer names ("eth", "vlan", "ipv4", "ipv6", "srv6", "srh", "arp",
    "icmp", "icmp6", "nd", "udp", "tcp", ...); vlans: VLAN ids; ethertypes:
    every ethertype seen (outer and inner); addresses: every IP address
    seen, SRH segments included; sids: the segments of every SRH and the
    destination of every IPv6 packet that carries an SRH or a frame."""

    text: str = ""
    tags: set[str] = field(default_factory=set)
    vlans: set[int] = field(default_factory=set)
    ethertypes: set[int] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    sids: set[str] = field(default_factory=set)


class _Reader:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.out = Decoded()
        self.depth = 0

    def say(self, text: str) -> None:
        self.parts.append(text)

    # ---- layer 2 ---------------------------------------------------------

    def ether(self, b: bytes) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.say(f"[{MAX_DEPTH} nested encapsulations: not followed further]")
            return
        if len(b) < 14:
            self.say(f"[|ether] {len(b)} bytes")
            return
        self.out.tags.add("eth")
        etype = struct.unpack_from("!H", b, 12)[0]
        head = f"{mac(b[6:12])} > {mac(b[0:6])}, ethertype {ETHERTYPES.get(etype, 'Unknown')} (0x{etype:04x}), " \
               f"length {len(b)}:"
        self.say(head)
        at = 14
        while etype in VLAN_TPIDS:
            self.out.ethertypes.add(etype)
            if len(b) < at + 4:
                self.say("[|vlan]")
                return
            tci, etype = struct.unpack_from("!HH", b, at)
            vid = tci & 0xFFF
            self.out.tags.add("vlan")
            self.out.vlans.add(vid)
            self.say(f"vlan {vid}, p {tci >> 13}{', DEI' if tci & 0x1000 else ''}, "
                     f"ethertype {ETHERTYPES.get(etype, 'Unknown')} (0x{etype:04x}),")
            at += 4
        self.ethertype(etype, b[at:])

    def ethertype(self, etype: int, b: bytes) -> None:
        self.out.ethertypes.add(etype)
        if etype == 0x0800:
            self.ipv4(b)
        elif etype == 0x86DD:
            self.ipv6(b)
        elif etype == 0x0806:
            self.arp(b)
        else:
            self.say(f"{len(b)} bytes" + (f" {b[:16].hex()}{'...' if len(b) > 16 else ''}" if b else ""))

    def arp(self, b: bytes) -> None:
        self.out.tags.add("arp")
        if len(b) < 28:
            self.say("[|arp]")
            return
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", b, 0)
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
            self.say(f"ARP, hardware {htype} (len {hlen}), protocol 0x{ptype:04x} (len {plen}), op {op}")
            return
        sha, spa, tha, tpa = b[8:14], IPv4Address(b[14:18]), b[18:24], IPv4Address(b[24:28])
        self.out.addresses.update((str(spa), str(tpa)))
        what = {1: f"Request who-has {tpa} tell {spa}", 2: f"Reply {spa} is-at {mac(sha)}"}
        self.say(f"ARP, Ethernet (len 6), IPv4 (len 4), {what.get(op, f'op {op} {spa} > {tpa}')}"
                 + (f" ({mac(tha)})" if op == 1 and any(tha) else "") + f", length {len(b)}")

    # ---- IP ----------------------------------------------------------------

    def ipv4(self, b: bytes) -> None:
        self.out.tags.add("ipv4")
        if len(b) < 20 or b[0] >> 4 != 4:
            self.say("[|ip]")
            return
        ihl = (b[0] & 0xF) * 4
        tos, total, ident, frag, ttl, proto = struct.unpack_from("!xBHHHBB", b, 0)
        src, dst = IPv4Address(b[12:16]), IPv4Address(b[16:20])
        self.out.addresses.update((str(src), str(dst)))
        flags = ", ".join(f for f, bit in (("+", 0x2000), ("DF", 0x4000)) if frag & bit) or "none"
        self.say(f"(tos 0x{tos:x}, ttl {ttl}, id {ident}, offset {(frag & 0x1FFF) * 8}, "
                 f"flags [{flags}], proto {_proto(proto)}, "
                 f"length {total}) {src} > {dst}:")
        if frag & 0x1FFF:
            self.say(f"fragment, {max(0, total - ihl)} bytes")
            return
        self.upper(proto, b[ihl:total] if total >= ihl else b[ihl:], v6=False)

    def ipv6(self, b: bytes) -> None:
        self.out.tags.add("ipv6")
        if len(b) < 40 or b[0] >> 4 != 6:
            self.say("[|ip6]")
            return
        word, plen, nh, hlim = struct.unpack_from("!IHBB", b, 0)
        tc, fl = (word >> 20) & 0xFF, word & 0xFFFFF
        src, dst = IPv6Address(b[8:24]), IPv6Address(b[24:40])
        self.out.addresses.update((str(src), str(dst)))
        extra = (f"class 0x{tc:x}, " if tc else "") + (f"flowlabel 0x{fl:05x}, " if fl else "")
        self.say(f"({extra}hlim {hlim}, next-header {_proto(nh)}, payload length {plen}) {src} > {dst}:")
        b = b[40:40 + plen]
        while nh in IPV6_EXT:
            if len(b) < 8:
                self.say(f"[|{IPPROTO_NAMES[nh].lower()}]")
                return
            if nh == NEXTHDR_ROUTING and b[2] == ROUTING_TYPE_SRH:
                self.out.sids.add(str(dst))
                self.srh(b)
                return
            size = 8 if nh == 44 else 8 + 8 * b[1]
            if nh == 44:
                off = struct.unpack_from("!H", b, 2)[0]
                self.say(f"frag (offset {off & 0xFFF8}, {'more' if off & 1 else 'last'}, "
                         f"id 0x{struct.unpack_from('!I', b, 4)[0]:08x}):")
                if off & 0xFFF8:
                    self.say(f"{len(b) - 8} bytes")
                    return
            else:
                self.say(f"{IPPROTO_NAMES[nh]} ({size} bytes):")
            nh, b = b[0], b[size:]
        if nh == NEXTHDR_ETHERNET:
            self.out.sids.add(str(dst))
            self.out.tags.add("srv6")  # reduced encapsulation: the frame follows the IPv6 header
        self.upper(nh, b, v6=True)

    def srh(self, b: bytes) -> None:
        self.out.tags.update(("srh", "srv6"))
        try:
            srh = decode_srh(b)
        except ValueError as e:
            self.say(f"SRH malformed: {e}")
            return
        segs = [str(s) for s in srh.travel_order]
        self.out.addresses.update(segs)
        self.out.sids.update(segs)
        extra = "".join((f", flags 0x{srh.flags:02x}" if srh.flags else "", f", tag {srh.tag}" if srh.tag else "",
                         f", TLVs {len(srh.tlvs)} bytes" if srh.tlvs else ""))
        self.say(f"SRH SL {srh.segments_left}, segs [{', '.join(segs)}]{extra}, "
                 f"next-header {_proto(srh.nexthdr)}:")
        self.upper(srh.nexthdr, b[srh.length:], v6=True)

    def upper(self, proto: int, b: bytes, v6: bool) -> None:
        if proto == NEXTHDR_ETHERNET:
            self.ether(b)
        elif proto == 4:
            self.ipv4(b)
        elif proto == 41:
            self.ipv6(b)
        elif proto == 1 and not v6:
            self.icmp(b)
        elif proto == 58:
            self.icmp6(b)
        elif proto in (6, 17):
            self.ports(proto, b)
        elif proto == 59:
            self.say("no next header")
        else:
            self.say(f"{IPPROTO_NAMES.get(proto, 'proto')} {proto}, {len(b)} bytes")

    # ---- layer 4 -------------------------------------------------------------

    def icmp(self, b: bytes) -> None:
        self.out.tags.add("icmp")
        if len(b) < 8:
            self.say("[|icmp]")
            return
        typ, code = b[0], b[1]
        name = ICMP_TYPES.get(typ, f"type {typ}")
        if typ in (0, 8):
            ident, seq = struct.unpack_from("!HH", b, 4)
            self.say(f"ICMP {name}, id {ident}, seq {seq}, length {len(b)}")
        else:
            self.say(f"ICMP {name}, code {code}, length {len(b)}")

    def icmp6(self, b: bytes) -> None:
        self.out.tags.add("icmp6")
        if len(b) < 4:
            self.say("[|icmp6]")
            return
        typ, code = b[0], b[1]
        name = ICMP6_TYPES.get(typ, f"type {typ}")
        if typ in (128, 129) and len(b) >= 8:
            ident, seq = struct.unpack_from("!HH", b, 4)
            self.say(f"ICMP6, {name}, id {ident}, seq {seq}, length {len(b)}")
        elif typ in (135, 136) and len(b) >= 24:
            self.out.tags.add("nd")
            target = IPv6Address(b[8:24])
            self.out.addresses.add(str(target))
            opts = _nd_lladdr(b[24:])
            if typ == 135:
                self.say(f"ICMP6, {name}, who has {target}" + (f", src lladdr {opts}" if opts else "")
                         + f", length {len(b)}")
            else:
                flags = "".join(f for f, bit in (("R", 0x80), ("S", 0x40), ("O", 0x20)) if b[4] & bit)
                self.say(f"ICMP6, {name}, tgt is {target}, flags [{flags or 'none'}]"
                         + (f", tgt lladdr {opts}" if opts else "") + f", length {len(b)}")
        else:
            if typ in ND_TYPES:
                self.out.tags.add("nd")
            self.say(f"ICMP6, {name}" + (f", code {code}" if typ < 128 else "") + f", length {len(b)}")

    def ports(self, proto: int, b: bytes) -> None:
        name = "udp" if proto == 17 else "tcp"
        self.out.tags.add(name)
        if len(b) < (8 if proto == 17 else 20):
            self.say(f"[|{name}]")
            return
        sport, dport = struct.unpack_from("!HH", b, 0)
        if proto == 17:
            self.say(f"UDP, {sport} > {dport}, length {struct.unpack_from('!H', b, 4)[0] - 8}")
            return
        seq, ack, off, flags = struct.unpack_from("!IIBB", b, 4)
        letters = "".join(TCP_FLAGS[i] for i in range(8) if flags & (1 << i) and TCP_FLAGS[i] != "A")
        letters += "." if flags & 0x10 else ""
        self.say(f"TCP, {sport} > {dport}, Flags [{letters or 'none'}], seq {seq}"
                 + (f", ack {ack}" if flags & 0x10 else "") + f", length {len(b) - (off >> 4) * 4}")


def _nd_lladdr(opts: bytes) -> str | None:
    """The source/target link-layer address option of an NS/NA, if any."""
    while len(opts) >= 8 and opts[1]:
        if opts[0] in (1, 2) and opts[1] == 1:
            return mac(opts[2:8])
        opts = opts[8 * opts[1]:]
    return None


def decode(frame: bytes) -> Decoded:
    """The frame as one line (see the module docstring), with its tags."""
    r = _Reader()
    r.ether(bytes(frame))
    r.out.text = " ".join(r.parts)
    return r.out


# ---- filters ------------------------------------------------------------------

class FilterError(ValueError):
    """A --filter expression that does not parse; the message says why."""


@dataclass(frozen=True)
class Filter:
    """Which frames `testbed capture --filter EXPR` shows (FILTER_HELP)."""

    show: tuple[tuple[str, str], ...] = ()  # (term, value): any of them
    hide: tuple[tuple[str, str], ...] = ()  # (term, value): none of them

    @classmethod
    def parse(cls, text: str) -> "Filter":
        show: list[tuple[str, str]] = []
        hide: list[tuple[str, str]] = []
        for raw in text.replace(",", "|").split("|"):
            word = raw.strip().lower()
            negate = word.startswith("!")
            word = word.lstrip("!").strip()
            if not word:
                raise FilterError(f"empty term in filter {text!r}")
            term, _, value = word.partition("=")
            (hide if negate else show).append((term.strip(), _check(term.strip(), value.strip(), word)))
        return cls(tuple(show), tuple(hide))

    def __call__(self, d: Decoded) -> bool:
        if any(_matches(d, t, v) for t, v in self.hide):
            return False
        return not self.show or any(_matches(d, t, v) for t, v in self.show)


def _check(term: str, value: str, word: str) -> str:
    if term not in TERMS and term not in VALUE_TERMS:
        known = ", ".join([*TERMS, "vlan=ID", "ethertype=0xNNNN", "sid=ADDR", "host=ADDR"])
        raise FilterError(f"unknown filter term {word!r} (known: {known})")
    if not value:
        if term not in TERMS:
            raise FilterError(f"filter term {term!r} needs a value: {term}=...")
        return ""
    if term not in VALUE_TERMS:
        raise FilterError(f"filter term {term!r} takes no value")
    try:
        if term == "vlan":
            vid = int(value, 0)
            if not 0 <= vid <= 4095:
                raise ValueError
            return str(vid)
        if term == "ethertype":
            et = int(value, 16) if not value.startswith("0x") else int(value, 0)
            if not 0 <= et <= 0xFFFF:
                raise ValueError
            return str(et)
        if term == "sid":
            return str(IPv6Address(value))
        from ipaddress import ip_address
        return str(ip_address(value))
    except ValueError:
        what = {"vlan": "a VLAN id 0-4095", "ethertype": "a 16-bit hex number such as 0x88b5",
                "sid": "an IPv6 address", "host": "an IPv4 or IPv6 address"}[term]
        raise FilterError(f"filter term {word!r}: {value!r} is not {what}") from None


def _matches(d: Decoded, term: str, value: str) -> bool:
    if not value:
        return term in d.tags
    if term == "vlan":
        return int(value) in d.vlans
    if term == "ethertype":
        return int(value) in d.ethertypes
    if term == "sid":
        return value in d.sids
    return value in d.addresses


__all__ = ["decode", "Decoded", "Filter", "FilterError", "FILTER_HELP", "mac"]
