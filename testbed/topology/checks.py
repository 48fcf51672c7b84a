"""Checks (docs/topology.md "Checks"): the `validate:` section, read into
`testbed.checkmodel` objects.  Runs after the cross-checks, so that every
node and every interface it may name is known."""
from __future__ import annotations

import ipaddress
from typing import Optional

from yaml.nodes import Node, ScalarNode, SequenceNode

from testbed import checkmodel as cm
from testbed import model
from testbed.topology.inventory import Load
from testbed.topology.values import Ctx
from testbed.topology.vocabulary import (AFS, CHECK_KEYS, CHECK_KINDS, COUNTERS_KEYS, DEFAULTS, ETHERTYPE_MAX,
                                         ETHERTYPE_MIN, FRAME_KEYS, FRAME_KINDS, LINK_CHECK_KEYS, MTU_MAX, MTU_MIN,
                                         NODE_NAME_MAX, NODE_NAME_RE,
                                         PING_COUNT_MAX, PING_COUNT_MIN, PING_KEYS, RESERVED_ETHERTYPES,
                                         TIMEOUT_MAX, TIMEOUT_MIN, VLAN_MAX, VLAN_MIN)
from testbed.topology.yamlpos import did_you_mean, is_null, quote

AF_FAMILY = {"ipv4": 4, "ipv6": 6}


def parse_checks(load: Load) -> None:
    """Pass "checks"."""
    topo = load.topo
    assert topo is not None
    if "validate" not in load.top or is_null(load.top["validate"][1]):
        return
    ctx = load.ctx
    pairs = ctx.mapping(load.top["validate"][1], "a mapping NAME: {KIND: {...}} of checks")
    for name, (knode, body) in (pairs or {}).items():
        if not NODE_NAME_RE.match(name) or len(name) > NODE_NAME_MAX:
            ctx.err(knode, f"check name {quote(name)} is invalid: expected ASCII letters, digits, '-' "
                           f"and '_', starting with a letter or digit, at most {NODE_NAME_MAX} characters")
            continue
        check = _check(ctx, topo, name, knode, body)
        if check is not None:
            topo.checks.append(check)


def _check(ctx: Ctx, topo: model.Topology, name: str, knode: ScalarNode, body: Node) -> Optional[cm.Check]:
    p = ctx.mapping(body, f"a mapping for check {quote(name)} (one of {', '.join(CHECK_KINDS)}: {{...}})")
    if p is None:
        return None
    ctx.known_keys(p, CHECK_KEYS, f"check {quote(name)}")
    kinds = [k for k in CHECK_KINDS if k in p]
    if not kinds:
        ctx.err(knode, f"check {quote(name)} needs one of: {', '.join(CHECK_KINDS)}")
        return None
    for extra in kinds[1:]:
        ctx.err(p[extra][0], f"check {quote(name)} already is a {kinds[0]} check; "
                             "give each check its own name")
    kind = kinds[0]
    description = ""
    if "description" in p:
        d = p["description"][1]
        if not is_null(d):
            description = ctx.str_(d, "a description (text)") or ""
    what = f"{kind} check {quote(name)}"
    vnode = p[kind][1]
    spec: Optional[cm.CheckSpec]
    if kind in ("ping", "no_ping"):
        spec = _ping(ctx, topo, vnode, what, expect_replies=kind == "ping")
    elif kind == "counters":
        spec = _counters(ctx, topo, vnode, what)
    elif kind == "link":
        spec = _link(ctx, topo, vnode, what)
    else:
        spec = _frame(ctx, topo, vnode, what)
    if spec is None:
        return None
    return cm.Check(name=name, kind=kind, spec=spec, description=description,  # type: ignore[arg-type]
                    where=ctx.where(knode))


# ---------------------------------------------------------------- pieces

def _node(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> Optional[model.Node]:
    name = ctx.str_(vnode, f"{what} (a node name)")
    if name is None:
        return None
    if name not in topo.nodes:
        ctx.err(vnode, f"{what} names unknown node {quote(name)}" + did_you_mean(name, topo.nodes))
        return None
    return topo.nodes[name]


def _endpoint(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> Optional[model.Endpoint]:
    text = ctx.str_(vnode, f"{what} (NODE:IFNAME)")
    if text is None:
        return None
    nname, sep, ifname = text.partition(":")
    if not sep or not nname or not ifname:
        ctx.err(vnode, f"malformed {what} {quote(text)} (expected NODE:IFNAME, e.g. hs-1:veth0)")
        return None
    node = topo.nodes.get(nname)
    if node is None:
        ctx.err(vnode, f"{what} {quote(text)} names unknown node {quote(nname)}" + did_you_mean(nname, topo.nodes))
        return None
    if ifname not in node.interfaces:
        ctx.err(vnode, f"{what} {quote(text)}: {quote(ifname)} is not an interface of node {quote(nname)}"
                       + did_you_mean(ifname, node.interfaces))
        return None
    return model.Endpoint(node=nname, ifname=ifname, where=ctx.where(vnode))


def _endpoints(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> list[model.Endpoint]:
    items = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
    found = [_endpoint(ctx, topo, item, what) for item in items]
    return [e for e in found if e is not None]


def _addresses(node: model.Node, family: int, ifname: Optional[str] = None) -> list:
    """The node's addresses of `family` (of one interface if named), in the
    order of its interfaces; link-local ones last (they need a scope)."""
    out = [a.ip for i in node.interfaces.values() if ifname in (None, i.name)
           for a in i.addresses if a.version == family]
    return sorted(out, key=lambda a: a.is_link_local)


def _timeout(ctx: Ctx, p: dict, default: int) -> int:
    if "timeout" not in p:
        return default
    return ctx.int_(p["timeout"][1], "timeout (seconds)", TIMEOUT_MIN, TIMEOUT_MAX) or default


# ---------------------------------------------------------------- kinds

def _ping(ctx: Ctx, topo: model.Topology, vnode: Node, what: str, expect_replies: bool) -> Optional[cm.Ping]:
    p = ctx.mapping(vnode, f"a mapping {{from: NODE, to: NODE or ADDRESS, ...}} for {what}")
    if p is None:
        return None
    ctx.known_keys(p, PING_KEYS, what)
    defaults = DEFAULTS["ping" if expect_replies else "no_ping"]
    ok = True
    src = dst = None
    address = None
    for key in ("from", "to"):
        if key not in p:
            ctx.err(vnode, f"{what} needs {key} ({'a node' if key == 'from' else 'a node or an IP address'})")
            ok = False
    if "from" in p:
        src = _node(ctx, topo, p["from"][1], "from")
        ok &= src is not None
    if "to" in p:
        tnode = p["to"][1]
        text = ctx.str_(tnode, "to (a node or an IP address)")
        if text is not None and text in topo.nodes:
            dst = topo.nodes[text]
        elif text is not None:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                ctx.err(tnode, f"to {quote(text)} is neither a node nor an IP address"
                               + did_you_mean(text, topo.nodes))
        ok &= dst is not None or address is not None
    families: list[int] = []
    if "af" in p:
        anode = p["af"][1]
        for item in anode.value if isinstance(anode, SequenceNode) else [anode]:
            af = ctx.choice(item, "af", AFS)
            if af is not None and AF_FAMILY[af] not in families:
                families.append(AF_FAMILY[af])
        ok &= bool(families)
    dev = None
    if "dev" in p and src is not None:
        dev = ctx.str_(p["dev"][1], "dev (an interface of the pinging node: ping -I DEV)")
        if dev is not None and dev not in src.interfaces:
            ctx.err(p["dev"][1], f"dev {quote(dev)} is not an interface of node {quote(src.name)}"
                                 + did_you_mean(dev, src.interfaces))
            ok = False
    both_ways = dst is not None and expect_replies and "dev" not in p
    if "both_ways" in p:
        both_ways = bool(ctx.bool_(p["both_ways"][1], "both_ways"))
        if both_ways and address is not None:
            ctx.err(p["both_ways"][1], "both_ways needs to: NODE (an address cannot ping back)")
            ok = False
        elif both_ways and "dev" in p:
            ctx.err(p["both_ways"][1], "both_ways cannot be used with dev (the interface is the pinging "
                                       "node's; write the way back as a check of its own)")
            ok = False
    count = defaults["count"]
    if "count" in p:
        count = ctx.int_(p["count"][1], "count", PING_COUNT_MIN, PING_COUNT_MAX) or count
    timeout = _timeout(ctx, p, defaults["timeout"])
    if not ok or src is None:
        return None
    if address is not None:
        if families and address.version not in families:
            ctx.err(p["af"][1], f"af does not include IPv{address.version}, the family of {address}")
            return None
        families = [address.version]
    else:
        assert dst is not None
        ends = [src, dst] if both_ways else [dst]
        if not families:
            families = [f for f in (4, 6) if all(_addresses(n, f) for n in ends)]
            if not families:
                ctx.err(vnode, f"{what}: {' and '.join(quote(n.name) for n in ends)} have no address "
                               "family in common" if len(ends) > 1 else
                               f"{what}: node {quote(dst.name)} has no address")
                return None
        for f in families:
            for n in ends:
                if not _addresses(n, f):
                    ctx.err(vnode, f"{what}: node {quote(n.name)} has no IPv{f} address to ping")
                    ok = False
        if not ok:
            return None
    return cm.Ping(src=src.name, dst=dst.name if dst else None, address=address,
                   families=tuple(families), both_ways=both_ways, count=count,  # type: ignore[arg-type]
                   timeout=timeout, expect_replies=expect_replies, dev=dev)


def _counters(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> Optional[cm.Counters]:
    p = ctx.mapping(vnode, f"a mapping {{node: NODE, dev: SRL2 or sid: SID, moved: [...]}} for {what}")
    if p is None:
        return None
    ctx.known_keys(p, COUNTERS_KEYS, what)
    if "node" not in p:
        ctx.err(vnode, f"{what} needs node")
        return None
    node = _node(ctx, topo, p["node"][1], "node")
    if node is None:
        return None
    spec = cm.Counters(node=node.name)
    ok = True
    names: tuple[str, ...] = cm.DEVICE_COUNTERS
    if ("dev" in p) == ("sid" in p):
        ctx.err(vnode, f"{what} needs exactly one of dev (an srl2 device) and sid (a SID with count: true)")
        return None
    if "dev" in p:
        dev = ctx.ifname(p["dev"][1], "dev (an srl2 device)")
        if dev is None:
            return None
        if dev not in node.srl2:
            hint = did_you_mean(dev, node.srl2) if node.srl2 else " (it has none)"
            ctx.err(p["dev"][1], f"dev {quote(dev)} is not an srl2 device of node {quote(node.name)}{hint}")
            ok = False
        spec.dev = dev
    else:
        net = ctx.prefix(p["sid"][1], "sid", version=6)
        if net is None:
            return None
        sids = [s for s in node.sids if s.sid == net]
        if not sids:
            ctx.err(p["sid"][1], f"{net} is not a SID of node {quote(node.name)}"
                                 + did_you_mean(str(net), [str(s.sid) for s in node.sids]))
            return None
        if not sids[0].count:
            ctx.err(p["sid"][1], f"SID {net} of node {quote(node.name)} keeps no counters; "
                                 f"give it count: true (line {sids[0].where.line})")
            return None
        spec.sid, spec.table = net, sids[0].table
        names = cm.SID_COUNTERS
    for key in ("moved", "unmoved"):
        if key in p:
            for item in ctx.seq(p[key][1], "counter names") or []:
                c = ctx.choice(item, "counter", names)
                if c is not None:
                    getattr(spec, key).append(c)
    if not spec.moved and not spec.unmoved:
        if "moved" not in p and "unmoved" not in p:
            ctx.err(vnode, f"{what} needs moved or unmoved (lists of counter names)")
        return None
    return spec if ok else None


def _frame(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> Optional[cm.Frame]:
    p = ctx.mapping(vnode, f"a mapping {{from: NODE:IFNAME, to: NODE:IFNAME, kind: KIND}} for {what}")
    if p is None:
        return None
    ctx.known_keys(p, FRAME_KEYS, what)
    defaults = DEFAULTS["frame"]
    if "from" not in p:
        ctx.err(vnode, f"{what} needs from (NODE:IFNAME, where the frame is sent)")
        return None
    src = _endpoint(ctx, topo, p["from"][1], "from")
    to = _endpoints(ctx, topo, p["to"][1], "to") if "to" in p else []
    not_to = _endpoints(ctx, topo, p["not_to"][1], "not_to") if "not_to" in p else []
    if "to" not in p and "not_to" not in p:
        ctx.err(vnode, f"{what} needs to or not_to (NODE:IFNAME, or a list of them)")
    kind = defaults["kind"]
    if "kind" in p:
        kind = ctx.choice(p["kind"][1], "frame kind", FRAME_KINDS) or kind
    frame = cm.Frame(src=src or model.Endpoint("", ""), to=to, not_to=not_to, kind=kind,
                     timeout=_timeout(ctx, p, defaults["timeout"]))
    ok = src is not None and bool(to or not_to)
    if "ethertype" in p:
        enode = p["ethertype"][1]
        if kind != "raw":
            ctx.err(p["ethertype"][0], f"ethertype belongs to frames of kind raw, not {kind}")
            ok = False
        et = ctx.int_(enode, "ethertype", ETHERTYPE_MIN, ETHERTYPE_MAX)
        if et in RESERVED_ETHERTYPES:
            ctx.err(enode, f"ethertype 0x{et:04x} is {RESERVED_ETHERTYPES[et]}; "
                           + ("use vlan: for a tagged frame" if RESERVED_ETHERTYPES[et].startswith("802")
                              else "use kind arp or nd, or another ethertype"))
            ok = False
        elif et is not None:
            frame.ethertype = et
        else:
            ok = False
    if "vlan" in p:
        frame.vlan = ctx.int_(p["vlan"][1], "vlan", VLAN_MIN, VLAN_MAX)
        ok &= frame.vlan is not None
    if not ok or src is None:
        return None
    if kind in ("arp", "nd"):
        family = 4 if kind == "arp" else 6
        target = (to or not_to)[0]
        for end, role in ((src, "sender"), (target, "target")):
            addrs = _addresses(topo.nodes[end.node], family, end.ifname)
            if not addrs:
                ctx.err(vnode, f"{what}: a frame of kind {kind} needs an IPv{family} address on {end} "
                               f"(the {role})")
                return None
            if role == "sender":
                frame.src_ip = addrs[0]
            else:
                frame.target_ip = addrs[0]
    return frame


def _link(ctx: Ctx, topo: model.Topology, vnode: Node, what: str) -> Optional[cm.Link]:
    p = ctx.mapping(vnode, f"a mapping {{node: NODE, dev: IFNAME, mtu: N}} for {what}")
    if p is None:
        return None
    ctx.known_keys(p, LINK_CHECK_KEYS, what)
    ok = True
    for key, want in (("node", "a node"), ("dev", "an interface of the node"), ("mtu", "the MTU it must have")):
        if key not in p:
            ctx.err(vnode, f"{what} needs {key} ({want})")
            ok = False
    node = _node(ctx, topo, p["node"][1], "node") if "node" in p else None
    dev = None
    if node is not None and "dev" in p:
        dev = ctx.str_(p["dev"][1], "dev (an interface of the node)")
        if dev is not None and dev not in node.interfaces:
            ctx.err(p["dev"][1], f"dev {quote(dev)} is not an interface of node {quote(node.name)}"
                                 + did_you_mean(dev, node.interfaces))
            dev = None
    mtu = ctx.int_(p["mtu"][1], "mtu", MTU_MIN, MTU_MAX) if "mtu" in p else None
    if not ok or node is None or dev is None or mtu is None:
        return None
    return cm.Link(node=node.name, dev=dev, mtu=mtu)
