"""Cross-checks of a node (docs/topology.md "Interfaces of a node",
"Bridges", "srl2 devices", "SIDs"): what needs the whole node known: srl2
devices joining their bridge and naming its HMAC keys, references to
interfaces, the interface entries of the model, one SID per table."""
from __future__ import annotations

from yaml.nodes import Node

from testbed import model
from testbed.topology.inventory import Load, NodeState
from testbed.topology.nodes import add_port
from testbed.topology.values import Ctx
from testbed.topology.yamlpos import did_you_mean, quote


def check_nodes(load: Load) -> None:
    """Pass "cross-checks": then each node joins the topology, in file order."""
    assert load.topo is not None
    for st in load.states.values():
        check_node(load.ctx, st)
        load.topo.nodes[st.node.name] = st.node


def check_node(ctx: Ctx, st: NodeState) -> None:
    """Cross-checks that need every interface of the node."""
    node = st.node
    made = st.made
    nname = quote(node.name)

    # srl2 `bridge:` makes the device a port of that bridge (once)
    for dev, at in st.srl2_bridge:
        br = node.bridges.get(dev.bridge or "")
        if br is None:
            ctx.err(at, f"srl2 device {quote(dev.name)} names unknown bridge {quote(dev.bridge or '')} "
                        f"of node {nname}" + (did_you_mean(dev.bridge or "", node.bridges)
                                              or (" (the node has no bridges)" if not node.bridges else "")))
            continue
        if dev.name in st.port_of and st.port_of[dev.name][0] == br.name:
            continue  # listed in ports as well: one port
        add_port(ctx, st, br, model.BridgePort(name=dev.name, where=dev.where), at)

    # srl2 `hmac:` names a key of the node's hmac_keys
    for dev, at in st.srl2_hmac:
        if dev.hmac not in st.hmac_ids:
            keys = ", ".join(str(k) for k in sorted(st.hmac_ids))
            ctx.err(at, f"srl2 device {quote(dev.name)} names HMAC key {dev.hmac}, which node {nname} does not "
                        "have " + (f"(its keys: {keys})" if keys else
                                   f"(the node has no hmac_keys; add hmac_keys: {{{dev.hmac}: {{secret: TEXT}}}})"))

    # references to interfaces
    vrf_of: dict[str, tuple[str, Node]] = {}  # VRF port -> (its VRF, where)
    for ifname, at, what, check in st.refs:
        if ifname not in made:
            ctx.err(at, what.format(quote(ifname)) + f" is not an interface of node {nname}"
                        + did_you_mean(ifname, made))
            continue
        kind = made[ifname][0]
        if check == "port":
            if ifname == "lo":
                ctx.err(at, "the loopback device cannot be a bridge port")
            elif kind == "a bridge":
                ctx.err(at, f"{quote(ifname)} is a bridge; a bridge cannot be a port of a bridge")
            elif kind == "a VRF":
                ctx.err(at, f"{quote(ifname)} is a VRF; a VRF cannot be a port of a bridge")
        elif check.startswith("vrf port "):
            if ifname == "lo":
                ctx.err(at, "the loopback device cannot be enslaved to a VRF (the VRF device is the VRF's own "
                            "loopback)")
            elif kind == "a VRF":
                ctx.err(at, f"{quote(ifname)} is a VRF; a VRF cannot be enslaved to a VRF")
            elif ifname in st.port_of:
                bridge, first = st.port_of[ifname]
                ctx.err(at, f"{quote(ifname)} is a port of bridge {quote(bridge)} (line {first.start_mark.line + 1}); "
                            "an interface has one master: put the bridge in the VRF instead")
            elif ifname in vrf_of:
                other, first = vrf_of[ifname]
                ctx.err(at, f"{quote(ifname)} is already a port of VRF {quote(other)} "
                            f"(line {first.start_mark.line + 1}); an interface has one master")
            else:
                vrf_of[ifname] = (check.removeprefix("vrf port "), at)

    # interface entries: every interface of the node, configured or not
    rank = {"the loopback device": 0, "a link end": 1, "a bridge": 2, "an srl2 device": 3, "a VRF": 4}
    for ifname, (_what, where) in sorted(made.items(), key=lambda kv: rank.get(kv[1][0], 4)):
        node.interfaces[ifname] = model.Interface(name=ifname, where=where)
    for ifname, knode, iface in st.configured:
        if ifname not in made:
            ctx.err(knode, f"interface {quote(ifname)} of node {nname} does not exist (interfaces are "
                           "lo, link ends, bridges and srl2 devices)" + did_you_mean(ifname, made))
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
