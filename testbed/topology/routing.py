"""Routing and SIDs (docs/topology.md "Routes", "Rules", "SIDs"): one
node's routes (with their seg6 encap), policy rules and seg6local SIDs.
References to interfaces are recorded and checked once every interface of
the node is known (testbed/topology/crosscheck.py)."""
from __future__ import annotations

import ipaddress
from typing import Optional

from yaml.nodes import Node

from testbed import model
from testbed.topology.inventory import NodeState
from testbed.topology.values import Ctx, not_a_sid
from testbed.topology.vocabulary import (ENCAP_KEYS, ENCAP_MODES, ENCAP_TYPES, HOPLIMIT_MAX, HOPLIMIT_MIN,
                                         ROUTE_KEYS, ROUTE_TYPES, RULE_KEYS, SID_ACTIONS, SID_ATTR,
                                         SID_ATTR_WHY, SID_KEYS, U32, MAX_SEGS)
from testbed.topology.yamlpos import quote


def parse_route(ctx: Ctx, st: NodeState, item: Node) -> Optional[model.Route]:
    nname = st.node.name
    p = ctx.mapping(item, "a route as a mapping {dst: PREFIX, via: ADDR, ...}")
    if p is None:
        return None
    ctx.known_keys(p, ROUTE_KEYS, f"a route of node {quote(nname)}")
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
        route.hoplimit = ctx.int_(p["hoplimit"][1], "hoplimit", HOPLIMIT_MIN, HOPLIMIT_MAX)
    if "encap" in p:
        route.encap = parse_encap(ctx, p["encap"][1], dst)
    if rtype != "unicast":
        for key in ("via", "dev", "encap"):
            if key in p:
                ctx.err(p[key][0], f"a {rtype} route takes no {key}")
                ok = False
    elif "via" not in p and "dev" not in p and dst is not None:
        ctx.err(item, f"the route to {dst} needs via or dev")
        ok = False
    return route if ok else None


def parse_encap(ctx: Ctx, node: Node, dst) -> Optional[model.Seg6Encap]:
    p = ctx.mapping(node, "encap as a mapping {type: seg6, mode: MODE, segs: [...]}")
    if p is None:
        return None
    ctx.known_keys(p, ENCAP_KEYS, "encap")
    if "type" in p:
        ctx.choice(p["type"][1], "encap type", ENCAP_TYPES)
    mode = "encap"
    if "mode" in p:
        mode = ctx.choice(p["mode"][1], "encap mode", ENCAP_MODES) or "encap"
        if mode == "inline" and dst is not None and dst.version == 4:
            ctx.err(p["mode"][1], "encap mode inline inserts an SRH into an IPv6 packet; "
                                  "it cannot be used on an IPv4 route")
    segs = None
    if "segs" not in p:
        ctx.err(node, f"encap needs segs (a list of 1..{MAX_SEGS} SIDs)")
    else:
        segs = ctx.segs(p["segs"][1], "segs")
    if segs is None:
        return None
    return model.Seg6Encap(mode=mode, segs=segs, where=ctx.where(node))  # type: ignore[arg-type]


def parse_rule(ctx: Ctx, st: NodeState, item: Node) -> Optional[model.Rule]:
    p = ctx.mapping(item, "a rule as a mapping {to: PREFIX, lookup: TABLE, prio: N}")
    if p is None:
        return None
    ctx.known_keys(p, RULE_KEYS, f"a rule of node {quote(st.node.name)}")
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


def parse_sid(ctx: Ctx, st: NodeState, item: Node) -> Optional[model.Sid]:
    p = ctx.mapping(item, "a SID as a mapping {sid: ADDR, action: ACTION, ...}")
    if p is None:
        return None
    ctx.known_keys(p, SID_KEYS, f"a SID of node {quote(st.node.name)}")
    ok = True
    sid = action = None
    if "sid" not in p:
        ctx.err(item, "a SID needs sid (an IPv6 address)")
        ok = False
    else:
        sid = ctx.prefix(p["sid"][1], "sid", version=6)
        # A prefix matches many SIDs: refused when all of them are multicast,
        # or when it is exactly :: or ::1 (::/0 is a catch-all, not ::).
        problem = sid is not None and not_a_sid("sid", p["sid"][1].value, sid.network_address, "a SID")
        if problem and (sid.prefixlen == 128 or sid.is_multicast):
            ctx.err(p["sid"][1], problem)
            sid = None
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
        for owner, attr in SID_ATTR.items():
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
