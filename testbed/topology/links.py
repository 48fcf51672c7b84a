"""Links (docs/topology.md "Links"): veth pairs between nodes, each end an
interface its node makes."""
from __future__ import annotations

from typing import Optional

from yaml.nodes import MappingNode, Node, SequenceNode

from testbed import model
from testbed.topology.inventory import Load, NodeState
from testbed.topology.values import Ctx, ifname_problem
from testbed.topology.vocabulary import LINK_KEYS
from testbed.topology.yamlpos import describe, did_you_mean, is_null, quote


def parse_links(load: Load) -> None:
    """Pass "links"."""
    assert load.topo is not None
    if "links" not in load.top or is_null(load.top["links"][1]):
        return
    for item in load.ctx.seq(load.top["links"][1], "links ([NODE:IFNAME, NODE:IFNAME])") or []:
        link = parse_link(load.ctx, item, load.states)
        if link is not None:
            load.topo.links.append(link)


def parse_endpoint(ctx: Ctx, node: Node, states: dict[str, NodeState]) -> Optional[model.Endpoint]:
    text = ctx.str_(node, "a link endpoint NODE:IFNAME")
    if text is None:
        return None
    nname, sep, ifname = text.partition(":")
    if not sep or not nname or not ifname:
        ctx.err(node, f"malformed link endpoint {quote(text)} (expected NODE:IFNAME, e.g. rt-1:veth0)")
        return None
    ok = True
    if nname not in states:
        ctx.err(node, f"link endpoint {quote(text)} names unknown node {quote(nname)}"
                      + did_you_mean(nname, states))
        ok = False
    problem = ifname_problem(ifname)
    if problem:
        ctx.err(node, problem)
        ok = False
    return model.Endpoint(node=nname, ifname=ifname, where=ctx.where(node)) if ok else None


def parse_link(ctx: Ctx, item: Node, states: dict[str, NodeState]) -> Optional[model.Link]:
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
                      f"got {describe(item)}")
        return None
    ends = ends_node.value
    if len(ends) != 2:
        ctx.err(ends_node, f"a link has exactly two endpoints, got {len(ends)}")
        return None
    a, b = (parse_endpoint(ctx, e, states) for e in ends)
    ok = True
    for ep, enode in ((a, ends[0]), (b, ends[1])):
        if ep is not None:
            ok &= states[ep.node].make(ctx, ep.ifname, "a link end", enode)
    if a is None or b is None or not ok:
        return None
    return model.Link(a=a, b=b, mtu=mtu, where=ctx.where(item))
