"""YAML topology -> validated `testbed.model.Topology`; no side effects.

    load(path, name=None) -> Topology
    loads(text, filename, name=None) -> Topology

Both raise `testbed.diagnostics.TopologyError` listing *every* problem found,
each as ``FILE:LINE:COL: message`` (FILE as given by the caller), sorted by
position.  No input gives any other exception.

Topology file format
====================

Keys and values use iproute2's vocabulary.  Unknown keys are errors (with a
"did you mean").  A key may appear only once in any mapping.  YAML anchors,
aliases and merge keys (``<<: *defaults``) may be used.  Values that are
names or addresses are taken literally, so ``mac: 10:20:30:40:50:60`` or
``sid: 1:2:3:4:5:6:7:8`` need no quotes.

Top level::

    name: p2p            # lab name, [a-z0-9][a-z0-9-]*, at most 20 characters;
                         # default: the file name without .yaml; the `name`
                         # argument of load()/loads() overrides both
    description: text    # optional
    datapath: auto       # auto | kernel | ref   (default auto)
    nodes: {NODE: {...}} # at least one node
    links: [...]         # veth pairs between nodes (default none)

Node names: ``[A-Za-z0-9][A-Za-z0-9_-]*``, at most 32 characters.

A link is ``[NODE:IFNAME, NODE:IFNAME]`` or ``{endpoints: [A, B], mtu: N}``.

A node::

    kind: host | router          # default host; router = forwarding on
    interfaces:                  # settings of interfaces that exist by other means
      IFNAME: {addresses: [10.0.0.1/24, "cafe::1/64"], mac: "02:00:00:00:00:01",
               mtu: 1500, up: true}
    bridges:
      br0: {ports: [veth-hs, {name: veth-x, vlans: [10, 20], pvid: 1}],
            vlan_filtering: false, mcast_snooping: true}
    srl2:                        # srl2 pseudowire devices
      srl2-0: {segs: ["fcff:2::e", "fcff:3::d20"], mtu: 1400, mac: ..., bridge: br0}
    routes:
      - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", dev: veth0, table: 90,
         metric: 1024, type: unicast, hoplimit: 64, src: ...,
         encap: {type: seg6, mode: l2encap.red, segs: ["fcff:2::d2"]}}
    rules:
      - {to: "fcff::/16", from: ..., lookup: 90, prio: 999, family: 6}
    sids:                        # seg6local routes
      - {sid: "fcff:1::d20", action: End.DT2U, l2dev: srl2-0, table: 90,
         count: true, dev: lo}
    sysctls: {net.ipv6.conf.all.seg6_enabled: 1}
    tunsrc: "fcff:1::1"          # ip sr tunsrc set

Interfaces of a node
    ``lo``, every link end, every bridge and every srl2 device.  Names are
    1..15 bytes of printable ASCII without whitespace, ``/``, ``:`` or ``%``,
    and not ``.``/``..``; one name may be made only once per node.
    ``interfaces:`` configures only interfaces that exist this way.  In the
    model, `Node.interfaces` holds an entry for *every* interface of the node
    (``lo`` first, then link ends, bridges, srl2 devices); entries not
    configured have the defaults (up, no addresses) and point at the YAML
    that made the interface.

Addresses
    ``addresses`` take a prefix length (``10.0.0.1/24``); a bare address is a
    /32 or /128.  Route ``dst``, rule ``to``/``from`` and a SID with a
    prefix length are prefixes: host bits set is an error (as ``ip route``).

``default`` as a route ``dst``
    means 0.0.0.0/0 or ::/0 by the family of ``via`` (else of ``src``).
    When neither is given the family cannot be known (an IPv4 route can carry
    an SRv6 encap, so ``encap`` says nothing), and it is an error: write
    ``0.0.0.0/0`` or ``::/0``.

Routes
    ``via``/``src`` must be of the family of ``dst``.  A unicast route needs
    ``via`` or ``dev``; blackhole/unreachable/prohibit routes take neither,
    nor ``encap``.  ``encap.type`` is ``seg6`` (default), ``mode`` one of
    encap (default), inline (IPv6 routes only), l2encap, encap.red,
    l2encap.red; ``segs`` 1..127 IPv6 addresses.

Tables
    ``table`` / ``lookup``: 1..4294967295, or ``main`` (254), ``local``
    (255), ``default`` (253).  An absent ``table`` is the main table (None).

Rules
    family from ``to``/``from``; when neither is given, from ``family``
    (4 or 6, default 6).

SIDs
    ``sid`` is IPv6 (a /128 unless a prefix is given).  ``action``: End,
    End.X (needs ``nh6``), End.DX2 (needs ``oif``), End.DT2U (needs
    ``l2dev``); each of nh6/oif/l2dev is only allowed with its action.
    oif/l2dev/dev must be interfaces of the node.  Whether l2dev is a bridge
    port or an srl2 device is left to the datapath (the kernel checks it,
    and CONFORMANCE E6 tests that check).  A SID may appear once per table.
    ``dev: lo`` is an error: Linux turns an IPv6 route on lo into a reject
    route, seg6local or not, so give End / End.X SIDs a real interface.

Bridges
    A port is an interface of the node other than ``lo`` and bridges; it may
    belong to one bridge only.  An srl2 device's ``bridge: br0`` makes it a
    port of br0 (once, also when br0's ``ports`` list it too).  VLAN ids are
    1..4094.

Other checks
    MTUs 68..65535; MACs ``xx:xx:xx:xx:xx:xx``, unicast and not all-zero
    (stored lower-case); ``hoplimit`` 1..255; sysctl keys must be under
    ``net.`` (anything else would change the host); sysctl values are
    scalars (true/false -> "1"/"0").
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from testbed import model
from testbed.diagnostics import Diagnostic, TopologyError
from testbed.model import Where

__all__ = ["load", "loads", "TopologyError", "Diagnostic"]

# ---------------------------------------------------------------- vocabulary

TOP_KEYS = ("name", "description", "datapath", "nodes", "links")
NODE_KEYS = ("kind", "interfaces", "bridges", "srl2", "routes", "rules", "sids", "sysctls", "tunsrc")
IFACE_KEYS = ("addresses", "mac", "mtu", "up")
BRIDGE_KEYS = ("ports", "vlan_filtering", "mcast_snooping")
PORT_KEYS = ("name", "vlans", "pvid")
SRL2_KEYS = ("segs", "mtu", "mac", "bridge")
ROUTE_KEYS = ("dst", "via", "dev", "table", "metric", "type", "hoplimit", "src", "encap")
ENCAP_KEYS = ("type", "mode", "segs")
RULE_KEYS = ("to", "from", "lookup", "prio", "family")
SID_KEYS = ("sid", "action", "nh6", "oif", "l2dev", "table", "count", "dev")
LINK_KEYS = ("endpoints", "mtu")

DATAPATHS = ("auto", "kernel", "ref")
KINDS = ("host", "router")
ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")
ENCAP_MODES = ("encap", "inline", "l2encap", "encap.red", "l2encap.red")
SID_ACTIONS = ("End", "End.X", "End.DX2", "End.DT2U")
# the one attribute each action needs, and which action each attribute is for
SID_ATTR = {"End.X": "nh6", "End.DX2": "oif", "End.DT2U": "l2dev"}
SID_ATTR_WHY = {
    "nh6": "the next hop",
    "oif": "the interface the decapsulated frame leaves by",
    "l2dev": "the device the decapsulated frame enters the bridge by",
}
TABLE_NAMES = {"main": 254, "local": 255, "default": 253}

U32 = 0xFFFFFFFF
MTU_MIN, MTU_MAX = 68, 65535
MAX_SEGS = 127
LAB_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
LAB_NAME_MAX = 20
NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
NODE_NAME_MAX = 32
IFNAME_MAX = 15  # IFNAMSIZ - 1
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
SYSCTL_RE = re.compile(r"net(\.[A-Za-z0-9_/-]+)+\Z")

T_NULL = "tag:yaml.org,2002:null"
T_BOOL = "tag:yaml.org,2002:bool"
T_INT = "tag:yaml.org,2002:int"
T_FLOAT = "tag:yaml.org,2002:float"
T_MERGE = "tag:yaml.org,2002:merge"

_constructor = yaml.constructor.SafeConstructor()


# ---------------------------------------------------------------- helpers

def _quote(s: str, limit: int = 40) -> str:
    if len(s) > limit:
        s = s[: limit - 3] + "..."
    return "'" + s.encode("unicode_escape").decode("ascii").replace("'", "\\'") + "'"


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = node.tag
    if tag == T_NULL:
        return "nothing (null)"
    if tag == T_BOOL and _yaml_bool(node) is not None:
        return f"a boolean ({node.value})"
    if tag == T_INT and _yaml_int(node) is not None:
        return f"an integer ({_quote(node.value)[1:-1]})"
    if tag == T_FLOAT:
        return f"a number ({_quote(node.value)[1:-1]})"
    return f"a string {_quote(node.value)}"


def _yaml_int(node: ScalarNode) -> Optional[int]:
    """The YAML 1.1 integer (0x.., 0o.., 1_000, 1:30) of an int-tagged scalar;
    None if it is not one (explicit !!int on anything) or too long for int()."""
    try:
        v = _constructor.construct_yaml_int(node)
    except (ValueError, TypeError, IndexError):
        return None
    return v if isinstance(v, int) else None


def _yaml_bool(node: ScalarNode) -> Optional[bool]:
    v = _constructor.bool_values.get(node.value.lower())
    return None if v is None else bool(v)


def _suggest(word: str, candidates) -> Optional[str]:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, candidates) -> str:
    s = _suggest(word, candidates)
    return f"; did you mean {_quote(s)}?" if s is not None else ""


def _ifname_problem(name: str) -> Optional[str]:
    """Why `name` cannot be a Linux interface name (dev_valid_name), or None."""
    if name == "":
        return "an interface name cannot be empty"
    if name in (".", ".."):
        return f"{_quote(name)} cannot be an interface name"
    if not all(0x21 <= ord(c) <= 0x7E for c in name):
        return (f"interface name {_quote(name)} may only contain printable ASCII "
                "characters without whitespace")
    bad = sorted({c for c in name if c in "/:%"})
    if bad:
        return (f"interface name {_quote(name)} contains {' and '.join(_quote(c) for c in bad)}, "
                "which Linux does not allow")
    if len(name) > IFNAME_MAX:
        return (f"interface name {_quote(name)} is {len(name)} characters long; "
                f"Linux allows at most {IFNAME_MAX}")
    return None


class _Ctx:
    """Collects diagnostics for one file."""

    def __init__(self, filename: str):
        self.file = filename
        self.text = ""
        self.diags: list[Diagnostic] = []

    def where(self, node: Node) -> Where:
        m = node.start_mark
        return Where(self.file, m.line + 1, m.column + 1)

    def err(self, at: Node | Where, message: str) -> None:
        where = at if isinstance(at, Where) else self.where(at)
        self.diags.append(Diagnostic(where, message))

    # --- structure

    def mapping(self, node: Node, what: str) -> Optional[dict[str, tuple[ScalarNode, Node]]]:
        """key -> (key node, value node); None (after an error) if not a mapping.
        Duplicate keys are reported; merge keys (<<) are applied."""
        if not isinstance(node, MappingNode):
            self.err(node, f"expected {what}, got {_describe(node)}")
            return None
        out: dict[str, tuple[ScalarNode, Node]] = {}
        merged: list[tuple[ScalarNode, Node]] = []
        self._collect(node, out, merged, {id(node)}, explicit=True)
        for k, v in merged:
            out.setdefault(k.value, (k, v))
        return out

    def _collect(self, node: MappingNode, out: dict, merged: list, seen: set, explicit: bool) -> None:
        for knode, vnode in node.value:
            if isinstance(knode, ScalarNode) and knode.tag == T_MERGE:
                sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
                for src in sources:
                    if not isinstance(src, MappingNode):
                        self.err(src, f"a merge key (<<) takes a mapping or a list of mappings, "
                                      f"got {_describe(src)}")
                    elif id(src) not in seen:
                        seen.add(id(src))
                        sub: dict = {}
                        self._collect(src, sub, merged, seen, explicit=False)
                        merged.extend(sub.values())
                continue
            if not isinstance(knode, ScalarNode) or knode.tag == T_NULL:
                if explicit:
                    self.err(knode, f"keys must be names, got {_describe(knode)}")
                continue
            key = knode.value
            if key in out:
                if explicit:
                    first = out[key][0].start_mark.line + 1
                    self.err(knode, f"duplicate key {_quote(key)} (first given on line {first})")
                continue
            out[key] = (knode, vnode)

    def known_keys(self, pairs: dict, allowed: tuple[str, ...], where_: str) -> None:
        for key, (knode, _) in pairs.items():
            if key not in allowed:
                hint = _did_you_mean(key, allowed)
                if not hint:
                    hint = f"; expected one of: {', '.join(allowed)}"
                self.err(knode, f"unknown key {_quote(key)} in {where_}{hint}")

    def seq(self, node: Node, what: str) -> Optional[list[Node]]:
        if not isinstance(node, SequenceNode):
            self.err(node, f"expected a list of {what}, got {_describe(node)}")
            return None
        return list(node.value)

    # --- scalars

    def str_(self, node: Node, what: str) -> Optional[str]:
        if isinstance(node, ScalarNode) and node.tag != T_NULL:
            return node.value
        self.err(node, f"expected {what}, got {_describe(node)}")
        return None

    def int_(self, node: Node, what: str, lo: int, hi: int) -> Optional[int]:
        if not (isinstance(node, ScalarNode) and node.tag == T_INT):
            self.err(node, f"expected {what} (an integer {lo}..{hi}), got {_describe(node)}")
            return None
        v = _yaml_int(node)
        if v is None:
            if re.fullmatch(r"[-+]?[0-9_]+", node.value):  # too many digits for int()
                self.err(node, f"{what} {_quote(node.value)} is out of range (expected {lo}..{hi})")
            else:
                self.err(node, f"expected {what} (an integer {lo}..{hi}), got {_quote(node.value)}")
            return None
        if not lo <= v <= hi:
            self.err(node, f"{what} {v} is out of range (expected {lo}..{hi})")
            return None
        return v

    def bool_(self, node: Node, what: str) -> Optional[bool]:
        if isinstance(node, ScalarNode) and node.tag == T_BOOL:
            v = _yaml_bool(node)
            if v is not None:
                return v
        self.err(node, f"expected {what} (true or false), got {_describe(node)}")
        return None

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> Optional[str]:
        s = self.str_(node, f"{what} ({' | '.join(choices)})")
        if s is None:
            return None
        if s not in choices and len(choices) == 1:
            self.err(node, f"{what} {_quote(s)} is not supported; expected {choices[0]}")
            return None
        if s not in choices:
            hint = _did_you_mean(s, choices)
            self.err(node, f"{what} {_quote(s)} is not one of {', '.join(choices)}{hint}")
            return None
        return s

    # --- networking values

    def ifname(self, node: Node, what: str) -> Optional[str]:
        s = self.str_(node, what)
        if s is None:
            return None
        problem = _ifname_problem(s)
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
                self.err(node, f"{what} must be {fam} without a prefix length, got {_quote(s)}")
            else:
                self.err(node, f"{what} {_quote(s)} is not {fam}")
            return None
        if version is not None and a.version != version:
            self.err(node, f"{what} {_quote(s)} is not {fam}")
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
            self.err(node, f"{what} {_quote(s)} is not an IP address with prefix length "
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
                self.err(node, f"{what} {_quote(text)} is not {fam} (expected e.g. "
                               + ("fcff::/16" if version == 6 else "10.0.0.0/24 or fcff::/16") + ")")
                return None
            self.err(node, f"{what} {_quote(text)} has host bits set; did you mean {loose}?")
            return None
        if version is not None and net.version != version:
            self.err(node, f"{what} {_quote(text)} is not {fam}")
            return None
        return net

    def mtu(self, node: Node, what: str = "mtu") -> Optional[int]:
        return self.int_(node, what, MTU_MIN, MTU_MAX)

    def mac(self, node: Node) -> Optional[str]:
        s = self.str_(node, "a MAC address (xx:xx:xx:xx:xx:xx)")
        if s is None:
            return None
        if not MAC_RE.match(s):
            self.err(node, f"mac {_quote(s)} is not a MAC address (expected xx:xx:xx:xx:xx:xx, "
                           "e.g. 02:00:00:00:00:01)")
            return None
        s = s.lower()
        if int(s[:2], 16) & 1:
            self.err(node, f"mac {_quote(s)} is a multicast address; an interface needs a unicast one "
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
                       f"got {_describe(node)}")
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
        out = [self.ip(item, "segment", 6) for item in items]
        if any(a is None for a in out):
            return None
        return out  # type: ignore[return-value]


# ---------------------------------------------------------------- per-node inventory

class _NodeState:
    """What one node's YAML said, before cross-checks."""

    def __init__(self, node: model.Node, keynode: ScalarNode, body: Optional[dict]):
        self.node = node
        self.keynode = keynode
        self.body = body or {}
        # ifname -> (description of what made it, where)
        self.made: dict[str, tuple[str, Where]] = {"lo": ("the loopback device", model.NOWHERE)}
        self.configured: list[tuple[str, ScalarNode, model.Interface]] = []
        # (ifname, yaml node, what refers to it, check) checked once links are known
        self.refs: list[tuple[str, Node, str, str]] = []
        # port name -> (bridge name, where) ; for "a port in two bridges"
        self.port_of: dict[str, tuple[str, Node]] = {}
        self.srl2_bridge: list[tuple[model.Srl2, Node]] = []

    def make(self, ctx: _Ctx, name: str, what: str, at: Node) -> bool:
        where = ctx.where(at)
        if name in self.made:
            prev, pw = self.made[name]
            if name == "lo":
                ctx.err(at, f"interface 'lo' of node {_quote(self.node.name)} is the loopback device; "
                            f"it cannot also be {what}")
            elif prev == what == "a link end":
                ctx.err(at, f"interface {_quote(name)} of node {_quote(self.node.name)} is already an end "
                            f"of the link on line {pw.line}; one interface cannot end two links")
            else:
                ctx.err(at, f"interface {_quote(name)} of node {_quote(self.node.name)} is already "
                            f"{prev} (line {pw.line}); it cannot also be {what}")
            return False
        self.made[name] = (what, where)
        return True


# ---------------------------------------------------------------- sections

def _parse_interfaces(ctx: _Ctx, st: _NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping IFNAME: {{settings}} for the interfaces of node {_quote(nname)}")
    if pairs is None:
        return
    for ifname, (knode, body) in pairs.items():
        if _ifname_problem(ifname):
            ctx.ifname(knode, "an interface name")
            continue
        iface = model.Interface(name=ifname, where=ctx.where(knode))
        st.configured.append((ifname, knode, iface))
        if isinstance(body, ScalarNode) and body.tag == T_NULL:
            continue  # `veth0:` with nothing: defaults
        p = ctx.mapping(body, f"a mapping of settings for interface {_quote(ifname)}")
        if p is None:
            continue
        ctx.known_keys(p, IFACE_KEYS, f"interface {_quote(ifname)} of node {_quote(nname)}")
        if "addresses" in p:
            items = ctx.seq(p["addresses"][1], "addresses (e.g. [10.0.0.1/24, cafe::1/64])")
            seen: dict[Any, int] = {}
            for item in items or []:
                a = ctx.interface_address(item, "address")
                if a is None:
                    continue
                if a in seen:
                    ctx.err(item, f"address {a} is given twice for interface {_quote(ifname)} "
                                  f"(first on line {seen[a]})")
                    continue
                seen[a] = item.start_mark.line + 1
                iface.addresses.append(a)
        if "mac" in p:
            iface.mac = ctx.mac(p["mac"][1])
        if "mtu" in p:
            iface.mtu = ctx.mtu(p["mtu"][1])
        if "up" in p:
            up = ctx.bool_(p["up"][1], "up")
            if up is not None:
                iface.up = up


def _parse_bridges(ctx: _Ctx, st: _NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping NAME: {{settings}} for the bridges of node {_quote(nname)}")
    if pairs is None:
        return
    for bname, (knode, body) in pairs.items():
        if ctx.ifname(knode, "a bridge name") is None:
            continue
        br = model.Bridge(name=bname, where=ctx.where(knode))
        st.make(ctx, bname, "a bridge", knode)
        st.node.bridges[bname] = br
        if isinstance(body, ScalarNode) and body.tag == T_NULL:
            continue
        p = ctx.mapping(body, f"a mapping of settings for bridge {_quote(bname)}")
        if p is None:
            continue
        ctx.known_keys(p, BRIDGE_KEYS, f"bridge {_quote(bname)} of node {_quote(nname)}")
        if "vlan_filtering" in p:
            vf = ctx.bool_(p["vlan_filtering"][1], "vlan_filtering")
            br.vlan_filtering = bool(vf)
        if "mcast_snooping" in p:
            ms = ctx.bool_(p["mcast_snooping"][1], "mcast_snooping")
            br.mcast_snooping = bool(ms) if ms is not None else True
        if "ports" in p:
            for item in ctx.seq(p["ports"][1], "bridge ports") or []:
                port = _parse_port(ctx, item, bname, nname)
                if port is None:
                    continue
                _add_port(ctx, st, br, port, item)


def _parse_port(ctx: _Ctx, item: Node, bname: str, nname: str) -> Optional[model.BridgePort]:
    if isinstance(item, MappingNode):
        p = ctx.mapping(item, "a bridge port")
        assert p is not None
        ctx.known_keys(p, PORT_KEYS, f"a port of bridge {_quote(bname)} of node {_quote(nname)}")
        if "name" not in p:
            ctx.err(item, f"a port of bridge {_quote(bname)} needs a name")
            return None
        name = ctx.ifname(p["name"][1], "a port name")
        if name is None:
            return None
        port = model.BridgePort(name=name, where=ctx.where(item))
        if "vlans" in p:
            for v in ctx.seq(p["vlans"][1], "VLAN ids") or []:
                vid = ctx.int_(v, "VLAN id", 1, 4094)
                if vid is not None:
                    port.vlans.append(vid)
        if "pvid" in p:
            port.pvid = ctx.int_(p["pvid"][1], "pvid", 1, 4094)
        return port
    if isinstance(item, ScalarNode) and item.tag != T_NULL:
        name = ctx.ifname(item, "a port name")
        return None if name is None else model.BridgePort(name=name, where=ctx.where(item))
    ctx.err(item, f"expected a port (an interface name or {{name: IFNAME, vlans: [...], pvid: N}}), "
                  f"got {_describe(item)}")
    return None


def _add_port(ctx: _Ctx, st: _NodeState, br: model.Bridge, port: model.BridgePort, at: Node) -> None:
    if port.name in st.port_of:
        other, first = st.port_of[port.name]
        line = first.start_mark.line + 1
        if other == br.name:
            ctx.err(at, f"{_quote(port.name)} is listed twice as a port of bridge {_quote(br.name)} "
                        f"(first on line {line})")
        else:
            ctx.err(at, f"{_quote(port.name)} is already a port of bridge {_quote(other)} (line {line}); "
                        "an interface can be a port of one bridge only")
        return
    st.port_of[port.name] = (br.name, at)
    st.refs.append((port.name, at, f"port {{}} of bridge {_quote(br.name)}", "port"))
    br.ports.append(port)


def _parse_srl2(ctx: _Ctx, st: _NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping NAME: {{segs: [...]}} for the srl2 devices of node {_quote(nname)}")
    if pairs is None:
        return
    for dname, (knode, body) in pairs.items():
        if ctx.ifname(knode, "an srl2 device name") is None:
            continue
        st.make(ctx, dname, "an srl2 device", knode)
        p = ctx.mapping(body, f"a mapping of settings for srl2 device {_quote(dname)} (at least segs: [...])")
        if p is None:
            continue
        ctx.known_keys(p, SRL2_KEYS, f"srl2 device {_quote(dname)} of node {_quote(nname)}")
        segs = None
        if "segs" not in p:
            ctx.err(knode, f"srl2 device {_quote(dname)} needs segs (its list of 1..{MAX_SEGS} SIDs)")
        else:
            segs = ctx.segs(p["segs"][1], "segs")
        dev = model.Srl2(name=dname, segs=segs or [], where=ctx.where(knode))
        if "mtu" in p:
            dev.mtu = ctx.mtu(p["mtu"][1])
        if "mac" in p:
            dev.mac = ctx.mac(p["mac"][1])
        if "bridge" in p:
            dev.bridge = ctx.ifname(p["bridge"][1], "a bridge name")
            if dev.bridge is not None:
                st.srl2_bridge.append((dev, p["bridge"][1]))
        st.node.srl2[dname] = dev


def _parse_route(ctx: _Ctx, st: _NodeState, item: Node) -> Optional[model.Route]:
    nname = st.node.name
    p = ctx.mapping(item, "a route as a mapping {dst: PREFIX, via: ADDR, ...}")
    if p is None:
        return None
    ctx.known_keys(p, ROUTE_KEYS, f"a route of node {_quote(nname)}")
    ok = True
    via = src = None
    if "via" in p:
        via = ctx.ip(p["via"][1], "via")
        ok &= via is not None
    if "src" in p:
        src = ctx.ip(p["src"][1], "src")
        ok &= src is not None
    dst = None
    if "dst" not in p:
        ctx.err(item, "a route needs dst (a prefix, or default)")
        ok = False
    else:
        dnode = p["dst"][1]
        text = ctx.str_(dnode, "dst (a prefix, e.g. 10.0.0.0/24, or default)")
        if text == "default":
            fam = via.version if via is not None else src.version if src is not None else None
            if fam is None:
                if "via" not in p and "src" not in p:
                    ctx.err(dnode, "dst 'default' needs via (or src) to tell IPv4 from IPv6; "
                                   "write 0.0.0.0/0 or ::/0 instead")
                ok = False
            else:
                dst = ipaddress.ip_network("0.0.0.0/0" if fam == 4 else "::/0")
        elif text is not None:
            dst = ctx.prefix(dnode, "dst", text)
        ok &= dst is not None
    rtype = "unicast"
    if "type" in p:
        rtype = ctx.choice(p["type"][1], "route type", ROUTE_TYPES) or "unicast"
    route = model.Route(dst=dst, type=rtype, where=ctx.where(item))  # type: ignore[arg-type]
    if dst is not None:
        for key, addr in (("via", via), ("src", src)):
            if addr is not None and addr.version != dst.version:
                ctx.err(p[key][1], f"{key} {addr} is IPv{addr.version} but dst {dst} is IPv{dst.version}")
                ok = False
    route.via, route.src = via, src
    if "dev" in p:
        route.dev = ctx.ifname(p["dev"][1], "dev (an interface name)")
        if route.dev is not None:
            st.refs.append((route.dev, p["dev"][1], "route dev {}", "any"))
    if "table" in p:
        route.table = ctx.table(p["table"][1])
    if "metric" in p:
        route.metric = ctx.int_(p["metric"][1], "metric", 0, U32)
    if "hoplimit" in p:
        route.hoplimit = ctx.int_(p["hoplimit"][1], "hoplimit", 1, 255)
    if "encap" in p:
        route.encap = _parse_encap(ctx, p["encap"][1], dst)
    if rtype != "unicast":
        for key in ("via", "dev", "encap"):
            if key in p:
                ctx.err(p[key][0], f"a {rtype} route takes no {key}")
                ok = False
    elif "via" not in p and "dev" not in p and dst is not None:
        ctx.err(item, f"the route to {dst} needs via or dev")
        ok = False
    return route if ok else None


def _parse_encap(ctx: _Ctx, node: Node, dst) -> Optional[model.Seg6Encap]:
    p = ctx.mapping(node, "encap as a mapping {type: seg6, mode: MODE, segs: [...]}")
    if p is None:
        return None
    ctx.known_keys(p, ENCAP_KEYS, "encap")
    if "type" in p:
        ctx.choice(p["type"][1], "encap type", ("seg6",))
    mode = "encap"
    if "mode" in p:
        mode = ctx.choice(p["mode"][1], "encap mode", ENCAP_MODES) or "encap"
        if mode == "inline" and dst is not None and dst.version == 4:
            ctx.err(p["mode"][1], "encap mode inline inserts an SRH into an IPv6 packet; "
                                  "it cannot be used on an IPv4 route")
    segs = None
    if "segs" not in p:
        ctx.err(node, "encap needs segs (a list of 1..127 SIDs)")
    else:
        segs = ctx.segs(p["segs"][1], "segs")
    if segs is None:
        return None
    return model.Seg6Encap(mode=mode, segs=segs, where=ctx.where(node))  # type: ignore[arg-type]


def _parse_rule(ctx: _Ctx, st: _NodeState, item: Node) -> Optional[model.Rule]:
    p = ctx.mapping(item, "a rule as a mapping {to: PREFIX, lookup: TABLE, prio: N}")
    if p is None:
        return None
    ctx.known_keys(p, RULE_KEYS, f"a rule of node {_quote(st.node.name)}")
    ok = True
    lookup = None
    if "lookup" not in p:
        ctx.err(item, "a rule needs lookup (the table to look up)")
        ok = False
    else:
        lookup = ctx.table(p["lookup"][1], "lookup")
        ok &= lookup is not None
    rule = model.Rule(lookup=lookup or 0, where=ctx.where(item))
    fams: list[tuple[int, Node]] = []
    for key, attr in (("to", "to"), ("from", "src")):
        if key in p:
            net = ctx.prefix(p[key][1], key)
            setattr(rule, attr, net)
            ok &= net is not None
            if net is not None:
                fams.append((net.version, p[key][1]))
    if "prio" in p:
        rule.prio = ctx.int_(p["prio"][1], "prio", 0, U32)
    if "family" in p:
        fam = ctx.int_(p["family"][1], "family", 4, 6)
        if fam is not None and fam not in (4, 6):
            ctx.err(p["family"][1], f"family {fam} is not 4 or 6")
        elif fam is not None:
            fams.insert(0, (fam, p["family"][1]))
    if fams:
        rule.family = fams[0][0]
        for fam, n in fams[1:]:
            if fam != rule.family:
                ctx.err(n, f"this rule mixes IPv{rule.family} and IPv{fam}")
                ok = False
    return rule if ok else None


def _parse_sid(ctx: _Ctx, st: _NodeState, item: Node) -> Optional[model.Sid]:
    p = ctx.mapping(item, "a SID as a mapping {sid: ADDR, action: ACTION, ...}")
    if p is None:
        return None
    ctx.known_keys(p, SID_KEYS, f"a SID of node {_quote(st.node.name)}")
    ok = True
    sid = action = None
    if "sid" not in p:
        ctx.err(item, "a SID needs sid (an IPv6 address)")
        ok = False
    else:
        sid = ctx.prefix(p["sid"][1], "sid", version=6)
        ok &= sid is not None
    if "action" not in p:
        ctx.err(item, f"a SID needs action ({', '.join(SID_ACTIONS)})")
        ok = False
    else:
        action = ctx.choice(p["action"][1], "action", SID_ACTIONS)
        ok &= action is not None
    s = model.Sid(sid=sid, action=action or "End", where=ctx.where(item))  # type: ignore[arg-type]
    if action is not None:
        need = SID_ATTR.get(action)
        if need is not None and need not in p:
            ctx.err(p["action"][1], f"action {action} needs {need} ({SID_ATTR_WHY[need]})")
            ok = False
        for attr, owner in (("nh6", "End.X"), ("oif", "End.DX2"), ("l2dev", "End.DT2U")):
            if attr in p and action != owner:
                ctx.err(p[attr][0], f"{attr} does not belong to action {action} (only {owner} takes {attr})")
                ok = False
    if "nh6" in p:
        s.nh6 = ctx.ip(p["nh6"][1], "nh6", 6)
    for attr in ("oif", "l2dev", "dev"):
        if attr in p:
            name = ctx.ifname(p[attr][1], f"{attr} (an interface name)")
            setattr(s, attr, name)
            if name is not None:
                st.refs.append((name, p[attr][1], f"SID {attr} {{}}", "any"))
    if s.dev == "lo":
        ctx.err(p["dev"][1], "a SID cannot use dev lo: the kernel turns an IPv6 route on lo into a "
                             "reject route (packets to the SID get 'unreachable'); name another interface")
        ok = False
    if "table" in p:
        s.table = ctx.table(p["table"][1])
    if "count" in p:
        s.count = bool(ctx.bool_(p["count"][1], "count"))
    return s if ok else None


def _parse_sysctls(ctx: _Ctx, st: _NodeState, vnode: Node) -> None:
    pairs = ctx.mapping(vnode, "sysctls as a mapping {net.KEY: VALUE}")
    if pairs is None:
        return
    for key, (knode, val) in pairs.items():
        if not SYSCTL_RE.match(key):
            if key == "net" or key.startswith("net."):
                ctx.err(knode, f"sysctl {_quote(key)} is not a dotted sysctl name")
            else:
                ctx.err(knode, f"sysctl {_quote(key)} is not under net.; only per-namespace net.* "
                               "sysctls may be set (anything else would change the host)")
            continue
        if not isinstance(val, ScalarNode) or val.tag == T_NULL:
            ctx.err(val, f"expected a value for sysctl {_quote(key)}, got {_describe(val)}")
            continue
        b = _yaml_bool(val) if val.tag == T_BOOL else None
        i = _yaml_int(val) if val.tag == T_INT else None
        if b is not None:
            st.node.sysctls[key] = "1" if b else "0"
        elif i is not None:
            st.node.sysctls[key] = str(i)
        else:
            st.node.sysctls[key] = val.value


def _parse_node(ctx: _Ctx, name: str, knode: ScalarNode, body: Node) -> _NodeState:
    node = model.Node(name=name, where=ctx.where(knode))
    if isinstance(body, ScalarNode) and body.tag == T_NULL:
        return _NodeState(node, knode, {})  # `hs-1:` alone: a bare host
    p = ctx.mapping(body, f"a mapping of settings for node {_quote(name)}")
    st = _NodeState(node, knode, p)
    if p is None:
        return st
    ctx.known_keys(p, NODE_KEYS, f"node {_quote(name)}")
    if "kind" in p:
        node.kind = ctx.choice(p["kind"][1], "kind", KINDS) or "host"  # type: ignore[assignment]
    if "tunsrc" in p:
        node.tunsrc = ctx.ip(p["tunsrc"][1], "tunsrc", 6)
    if "bridges" in p:
        _parse_bridges(ctx, st, p["bridges"][1])
    if "srl2" in p:
        _parse_srl2(ctx, st, p["srl2"][1])
    # interfaces are parsed after links are known (see _check_node); routes etc. now
    for key, what, fn, dest in (("routes", "routes", _parse_route, node.routes),
                                ("rules", "rules", _parse_rule, node.rules),
                                ("sids", "SIDs", _parse_sid, node.sids)):
        if key in p:
            for item in ctx.seq(p[key][1], what) or []:
                obj = fn(ctx, st, item)
                if obj is not None:
                    dest.append(obj)
    if "sysctls" in p:
        _parse_sysctls(ctx, st, p["sysctls"][1])
    return st


def _parse_endpoint(ctx: _Ctx, node: Node, states: dict[str, _NodeState]) -> Optional[model.Endpoint]:
    text = ctx.str_(node, "a link endpoint NODE:IFNAME")
    if text is None:
        return None
    nname, sep, ifname = text.partition(":")
    if not sep or not nname or not ifname:
        ctx.err(node, f"malformed link endpoint {_quote(text)} (expected NODE:IFNAME, e.g. rt-1:veth0)")
        return None
    ok = True
    if nname not in states:
        ctx.err(node, f"link endpoint {_quote(text)} names unknown node {_quote(nname)}"
                      + _did_you_mean(nname, states))
        ok = False
    problem = _ifname_problem(ifname)
    if problem:
        ctx.err(node, problem)
        ok = False
    return model.Endpoint(node=nname, ifname=ifname, where=ctx.where(node)) if ok else None


def _parse_link(ctx: _Ctx, item: Node, states: dict[str, _NodeState]) -> Optional[model.Link]:
    mtu = None
    if isinstance(item, SequenceNode):
        ends_node: Node = item
    elif isinstance(item, MappingNode):
        p = ctx.mapping(item, "a link")
        assert p is not None
        ctx.known_keys(p, LINK_KEYS, "a link")
        if "mtu" in p:
            mtu = ctx.mtu(p["mtu"][1])
        if "endpoints" not in p:
            ctx.err(item, "a link needs endpoints: [NODE:IFNAME, NODE:IFNAME]")
            return None
        ends_node = p["endpoints"][1]
        if not isinstance(ends_node, SequenceNode):
            ctx.seq(ends_node, "two endpoints [NODE:IFNAME, NODE:IFNAME]")
            return None
    else:
        ctx.err(item, "expected a link ([NODE:IFNAME, NODE:IFNAME] or {endpoints: [...], mtu: N}), "
                      f"got {_describe(item)}")
        return None
    ends = ends_node.value
    if len(ends) != 2:
        ctx.err(ends_node, f"a link has exactly two endpoints, got {len(ends)}")
        return None
    a, b = (_parse_endpoint(ctx, e, states) for e in ends)
    ok = True
    for ep, enode in ((a, ends[0]), (b, ends[1])):
        if ep is not None:
            ok &= states[ep.node].make(ctx, ep.ifname, "a link end", enode)
    if a is None or b is None or not ok:
        return None
    return model.Link(a=a, b=b, mtu=mtu, where=ctx.where(item))


def _check_node(ctx: _Ctx, st: _NodeState) -> None:
    """Cross-checks that need every interface of the node."""
    node = st.node
    made = st.made
    nname = _quote(node.name)

    # srl2 `bridge:` makes the device a port of that bridge (once)
    for dev, at in st.srl2_bridge:
        br = node.bridges.get(dev.bridge or "")
        if br is None:
            ctx.err(at, f"srl2 device {_quote(dev.name)} names unknown bridge {_quote(dev.bridge or '')} "
                        f"of node {nname}" + (_did_you_mean(dev.bridge or "", node.bridges)
                                              or (" (the node has no bridges)" if not node.bridges else "")))
            continue
        if dev.name in st.port_of and st.port_of[dev.name][0] == br.name:
            continue  # listed in ports as well: one port
        _add_port(ctx, st, br, model.BridgePort(name=dev.name, where=dev.where), at)

    # references to interfaces
    for ifname, at, what, check in st.refs:
        if ifname not in made:
            ctx.err(at, what.format(_quote(ifname)) + f" is not an interface of node {nname}"
                        + _did_you_mean(ifname, made))
            continue
        if check == "port":
            kind = made[ifname][0]
            if ifname == "lo":
                ctx.err(at, "the loopback device cannot be a bridge port")
            elif kind == "a bridge":
                ctx.err(at, f"{_quote(ifname)} is a bridge; a bridge cannot be a port of a bridge")

    # interface entries: every interface of the node, configured or not
    rank = {"the loopback device": 0, "a link end": 1, "a bridge": 2, "an srl2 device": 3}
    for ifname, (what, where) in sorted(made.items(), key=lambda kv: rank.get(kv[1][0], 4)):
        node.interfaces[ifname] = model.Interface(name=ifname, where=where)
    for ifname, knode, iface in st.configured:
        if ifname not in made:
            ctx.err(knode, f"interface {_quote(ifname)} of node {nname} does not exist (interfaces are "
                           "lo, link ends, bridges and srl2 devices)" + _did_you_mean(ifname, made))
            continue
        node.interfaces[ifname] = iface
    # lo kept first, as made; "where" of lo stays the node when not configured
    if node.interfaces["lo"].where == model.NOWHERE:
        node.interfaces["lo"].where = node.where

    # one SID per (table, prefix)
    seen: dict[tuple, model.Sid] = {}
    for s in node.sids:
        key = (s.table, s.sid)
        if key in seen:
            ctx.err(s.where, f"SID {s.sid} is already installed"
                             + (f" in table {s.table}" if s.table else "")
                             + f" (line {seen[key].where.line})")
        else:
            seen[key] = s


# ---------------------------------------------------------------- entry points

def _yaml_error(ctx: _Ctx, e: yaml.YAMLError) -> None:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if isinstance(e, yaml.MarkedYAMLError):
        problem = e.problem or "invalid YAML"
        msg = f"invalid YAML: {problem}"
        if e.context and e.context_mark is not None and e.problem_mark is not None:
            cm = e.context_mark
            msg += f" ({e.context} at line {cm.line + 1}, column {cm.column + 1})"
        elif e.context:
            msg += f" ({e.context})"
        if mark is not None:
            ctx.err(Where(ctx.file, mark.line + 1, mark.column + 1), msg)
        else:
            ctx.err(Where(ctx.file, 1, 1), msg)
        return
    if isinstance(e, yaml.reader.ReaderError):
        ch = e.character
        code = ord(ch) if isinstance(ch, str) else ch
        ctx.err(_offset_where(ctx, e.position), f"invalid YAML: {e.reason} (character U+{code:04X})")
        return
    ctx.err(Where(ctx.file, 1, 1), f"invalid YAML: {e}")


def _offset_where(ctx: _Ctx, pos: int) -> Where:
    text = ctx.text
    before = text[:pos]
    line = before.count("\n") + 1
    col = pos - (before.rfind("\n") + 1) + 1
    return Where(ctx.file, line, col)


def _compose(ctx: _Ctx, text: str) -> Optional[Node]:
    ctx.text = text
    try:
        # the pure-Python loader: its recursion is bounded by Python's limit
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        _yaml_error(ctx, e)
    except RecursionError:
        ctx.err(Where(ctx.file, 1, 1), "invalid YAML: nested too deeply")
    return None


def loads(text: str, filename: str = "<string>", name: Optional[str] = None) -> model.Topology:
    """Parse and validate a topology given as text; `filename` is used in
    messages and for the default lab name (its stem)."""
    filename = os.fspath(filename)
    ctx = _Ctx(filename)
    root = _compose(ctx, text)
    if ctx.diags:
        raise TopologyError(ctx.diags)
    if root is None:
        raise TopologyError([Diagnostic(Where(filename, 1, 1),
                                        "the file is empty; expected a topology (name, nodes, links)")])
    top = ctx.mapping(root, "a topology: a mapping with name, nodes, links")
    if top is None:
        raise TopologyError(ctx.diags)
    ctx.known_keys(top, TOP_KEYS, "the topology")
    topo = model.Topology(name="", nodes={}, source=filename, where=ctx.where(root))

    # lab name: argument > YAML > file stem
    name_node = top["name"][1] if "name" in top else None
    if name is not None:
        lab, at, origin = name, (name_node or root), "given by the caller"
    elif name_node is not None:
        lab, at, origin = ctx.str_(name_node, "a lab name"), name_node, ""
    else:
        lab, at, origin = Path(filename).stem, root, "taken from the file name; set name: to choose one"
    if lab is not None:
        problem = None
        if not LAB_NAME_RE.match(lab):
            problem = "lowercase letters, digits and '-', starting with a letter or digit"
        elif len(lab) > LAB_NAME_MAX:
            problem = f"at most {LAB_NAME_MAX} characters, got {len(lab)}"
        if problem:
            ctx.err(at, f"lab name {_quote(lab)}" + (f" ({origin})" if origin else "")
                        + f" is invalid: expected {problem}")
        topo.name = lab

    if "description" in top:
        d = top["description"][1]
        if isinstance(d, ScalarNode):
            topo.description = "" if d.tag == T_NULL else d.value
        else:
            ctx.err(d, f"expected a description (text), got {_describe(d)}")
    if "datapath" in top:
        topo.datapath = ctx.choice(top["datapath"][1], "datapath", DATAPATHS) or "auto"  # type: ignore

    states: dict[str, _NodeState] = {}
    if "nodes" not in top:
        ctx.err(root, "the topology has no nodes (expected nodes: {NAME: {...}, ...})")
    else:
        nodes_node = top["nodes"][1]
        pairs = ctx.mapping(nodes_node, "a mapping NAME: {settings} for the nodes")
        if pairs is not None and not pairs:
            ctx.err(nodes_node, "the topology has no nodes; give at least one")
        for nname, (knode, body) in (pairs or {}).items():
            if not NODE_NAME_RE.match(nname) or len(nname) > NODE_NAME_MAX:
                ctx.err(knode, f"node name {_quote(nname)} is invalid: expected letters, digits, '-' "
                               f"and '_', starting with a letter or digit, at most {NODE_NAME_MAX} characters")
                continue
            states[nname] = _parse_node(ctx, nname, knode, body)

    if "links" in top:
        lnode = top["links"][1]
        if not (isinstance(lnode, ScalarNode) and lnode.tag == T_NULL):
            for item in ctx.seq(lnode, "links ([NODE:IFNAME, NODE:IFNAME])") or []:
                link = _parse_link(ctx, item, states)
                if link is not None:
                    topo.links.append(link)

    for st in states.values():
        if "interfaces" in st.body:
            _parse_interfaces(ctx, st, st.body["interfaces"][1])
        _check_node(ctx, st)
        topo.nodes[st.node.name] = st.node

    if ctx.diags:
        raise TopologyError(ctx.diags)
    return topo


def load(path: str | os.PathLike, name: Optional[str] = None) -> model.Topology:
    """Read and validate a topology file.  Messages show `path` as given."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TopologyError([Diagnostic(Where(filename, 0, 0), f"cannot read: {e.strerror or e}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise TopologyError([Diagnostic(Where(filename, line, col),
                                        f"not UTF-8 text (byte 0x{data[e.start]:02x})")]) from None
    return loads(text, filename, name)
