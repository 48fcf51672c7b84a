"""The networking values of the topology format (interface names, IP
addresses and prefixes, MTUs, MACs, tables, segment lists): `Ctx` reads
them from YAML nodes, with the diagnostics docs/topology.md promises."""
from __future__ import annotations

import ipaddress
from typing import Optional

from yaml.nodes import Node, ScalarNode

from testbed.topology.vocabulary import IFNAME_MAX, MAC_RE, MAX_SEGS, MTU_MAX, MTU_MIN, TABLE_NAMES, U32
from testbed.topology.yamlpos import T_INT, Reader, describe, quote


def ifname_problem(name: str) -> Optional[str]:
    """Why `name` cannot be a Linux interface name (dev_valid_name), or None."""
    if name == "":
        return "an interface name cannot be empty"
    if name in (".", ".."):
        return f"{quote(name)} cannot be an interface name"
    if not all(0x21 <= ord(c) <= 0x7E for c in name):
        return (f"interface name {quote(name)} may only contain printable ASCII "
                "characters without whitespace")
    bad = sorted({c for c in name if c in "/:%"})
    if bad:
        return (f"interface name {quote(name)} contains {' and '.join(quote(c) for c in bad)}, "
                "which Linux does not allow")
    if len(name) > IFNAME_MAX:
        return (f"interface name {quote(name)} is {len(name)} characters long; "
                f"Linux allows at most {IFNAME_MAX}")
    return None


def not_a_sid(what: str, text: str, a: ipaddress.IPv6Address, role: str) -> Optional[str]:
    """Why address `a` (written `text`) cannot be a segment or a SID, or
    None.  Both are the destination of a packet that must reach one node's
    SID, which these three kinds of address never do (the SRv6 analogue of
    a multicast MAC on an interface)."""
    if a.is_multicast:
        kind, why = "a multicast address", "it names a group of listeners, not one node's SID"
    elif a.is_unspecified:
        kind, why = "the unspecified address", "no node has it, and no packet may be sent to it"
    elif a.is_loopback:
        kind, why = "the loopback address", "a packet to it never leaves the node that sends it"
    else:
        return None
    return f"{what} {quote(text)} is {kind}: {why}; {role} must be a unicast address (e.g. fcff:2::e)"


class Ctx(Reader):
    """A Reader that also knows the format's networking values; one per file."""

    def ifname(self, node: Node, what: str) -> Optional[str]:
        s = self.str_(node, what)
        if s is None:
            return None
        problem = ifname_problem(s)
        if problem:
            self.err(node, problem)
            return None
        return s

    def ip(self, node: Node, what: str, version: Optional[int] = None):
        fam = {4: "an IPv4 address", 6: "an IPv6 address", None: "an IP address"}[version]
        s = self.str_(node, f"{what} ({fam})")
        if s is None:
            return None
        try:
            if "%" in s:
                raise ValueError
            a = ipaddress.ip_address(s)
        except ValueError:
            if "/" in s:
                self.err(node, f"{what} must be {fam} without a prefix length, got {quote(s)}")
            else:
                self.err(node, f"{what} {quote(s)} is not {fam}")
            return None
        if version is not None and a.version != version:
            self.err(node, f"{what} {quote(s)} is not {fam}")
            return None
        return a

    def interface_address(self, node: Node, what: str):
        s = self.str_(node, f"{what} (an address with prefix length, e.g. 10.0.0.1/24)")
        if s is None:
            return None
        try:
            if "%" in s:
                raise ValueError
            return ipaddress.ip_interface(s)
        except ValueError:
            self.err(node, f"{what} {quote(s)} is not an IP address with prefix length "
                           "(expected e.g. 10.0.0.1/24 or cafe::1/64)")
            return None

    def prefix(self, node: Node, what: str, text: Optional[str] = None, version: Optional[int] = None):
        if text is None:
            text = self.str_(node, f"{what} (a prefix, e.g. 10.0.0.0/24 or fcff::/16)")
            if text is None:
                return None
        fam = {4: "an IPv4 prefix", 6: "an IPv6 prefix", None: "a prefix"}[version]
        try:
            if "%" in text:
                raise ValueError
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                if "%" in text:
                    raise ValueError
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.err(node, f"{what} {quote(text)} is not {fam} (expected e.g. "
                               + ("fcff::/16" if version == 6 else "10.0.0.0/24 or fcff::/16") + ")")
                return None
            self.err(node, f"{what} {quote(text)} has host bits set; did you mean {loose}?")
            return None
        if version is not None and net.version != version:
            self.err(node, f"{what} {quote(text)} is not {fam}")
            return None
        return net

    def mtu(self, node: Node, what: str = "mtu") -> Optional[int]:
        return self.int_(node, what, MTU_MIN, MTU_MAX)

    def mac(self, node: Node) -> Optional[str]:
        s = self.str_(node, "a MAC address (xx:xx:xx:xx:xx:xx)")
        if s is None:
            return None
        if not MAC_RE.match(s):
            self.err(node, f"mac {quote(s)} is not a MAC address (expected xx:xx:xx:xx:xx:xx, "
                           "e.g. 02:00:00:00:00:01)")
            return None
        s = s.lower()
        if int(s[:2], 16) & 1:
            self.err(node, f"mac {quote(s)} is a multicast address; an interface needs a unicast one "
                           "(first octet even, e.g. 02:...)")
            return None
        if s == "00:00:00:00:00:00":
            self.err(node, "mac 00:00:00:00:00:00 is not a valid interface address")
            return None
        return s

    def table(self, node: Node, what: str = "table") -> Optional[int]:
        if isinstance(node, ScalarNode) and node.tag != T_INT and node.value in TABLE_NAMES:
            return TABLE_NAMES[node.value]
        if isinstance(node, ScalarNode) and node.tag == T_INT:
            return self.int_(node, what, 1, U32)
        self.err(node, f"expected {what} (a number 1..{U32} or main, local, default), "
                       f"got {describe(node)}")
        return None

    def segs(self, node: Node, what: str) -> Optional[list[ipaddress.IPv6Address]]:
        items = self.seq(node, "IPv6 addresses (SIDs)")
        if items is None:
            return None
        if not items:
            self.err(node, f"{what} is empty; give 1..{MAX_SEGS} SIDs")
            return None
        if len(items) > MAX_SEGS:
            self.err(node, f"{what} has {len(items)} SIDs; an SRH holds at most {MAX_SEGS}")
            return None
        out = [self.segment(item) for item in items]
        if any(a is None for a in out):
            return None
        return out  # type: ignore[return-value]

    def segment(self, node: Node) -> Optional[ipaddress.IPv6Address]:
        a = self.ip(node, "segment", 6)
        problem = a is not None and not_a_sid("segment", node.value, a, "a segment")
        if problem:
            self.err(node, problem)
            return None
        return a
