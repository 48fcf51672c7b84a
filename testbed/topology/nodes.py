"""Nodes (docs/topology.md "Nodes"): each node's kind, bridges and their
ports, srl2 devices, sysctls, tunsrc and HMAC keys, and (in a later pass, once every
link end is known) the settings of its interfaces.  Routes, rules and SIDs
are read by testbed/topology/routing.py."""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, TypeVar, cast

from yaml.nodes import MappingNode, Node, ScalarNode

from testbed import model
from testbed.defaults import needs_interfaces
from testbed.topology import routing
from testbed.topology.inventory import Load, NodeState
from testbed.topology.values import Ctx, ifname_problem
from testbed.topology.vocabulary import (BRIDGE_KEYS, DEFAULTS, HMAC_ALGORITHMS, HMAC_KEY_KEYS, HMAC_KEYID_MAX,
                                         HMAC_KEYID_MIN, HMAC_SECRET_MAX, IFACE_KEYS, KINDS, MAX_SEGS, NODE_KEYS,
                                         NODE_NAME_MAX, NODE_NAME_RE, PORT_KEYS, SRL2_KEYS, SRL2_MODES, SYSCTL_RE,
                                         TABLE_NAMES, U32, VLAN_MAX, VLAN_MIN, VRF_KEYS)
from testbed.topology.yamlpos import T_BOOL, T_INT, T_NULL, describe, quote, suggest, yaml_bool, yaml_int


# ---------------------------------------------------------------- passes

def parse_nodes(load: Load) -> None:
    """Pass "nodes": every node's own sections (interfaces come later)."""
    ctx, top = load.ctx, load.top
    assert load.root is not None  # pass "document" stops the load without one
    if "nodes" not in top:
        ctx.err(load.root, "the topology has no nodes (expected nodes: {NAME: {...}, ...})")
        return
    nodes_node = top["nodes"][1]
    pairs = ctx.mapping(nodes_node, "a mapping NAME: {settings} for the nodes")
    if pairs is not None and not pairs:
        ctx.err(nodes_node, "the topology has no nodes; give at least one")
    for nname, (knode, body) in (pairs or {}).items():
        if not NODE_NAME_RE.match(nname) or len(nname) > NODE_NAME_MAX:
            ctx.err(knode, f"node name {quote(nname)} is invalid: expected ASCII letters, digits, '-' "
                           f"and '_', starting with a letter or digit, at most {NODE_NAME_MAX} characters")
            continue
        load.states[nname] = parse_node(ctx, nname, knode, body)


def parse_all_interfaces(load: Load) -> None:
    """Pass "interfaces": settings of interfaces, now that links made theirs."""
    for st in load.states.values():
        if "interfaces" in st.body:
            parse_interfaces(load.ctx, st, st.body["interfaces"][1])


# ---------------------------------------------------------------- one node

def parse_node(ctx: Ctx, name: str, knode: ScalarNode, body: Node) -> NodeState:
    node = model.Node(name=name, where=ctx.where(knode))
    if isinstance(body, ScalarNode) and body.tag == T_NULL:
        return NodeState(node, knode, {})  # `hs-1:` alone: a bare host
    p = ctx.mapping(body, f"a mapping of settings for node {quote(name)}")
    st = NodeState(node, knode, p)
    if p is None:
        return st
    ctx.known_keys(p, NODE_KEYS, f"node {quote(name)}")
    if "kind" in p:
        node.kind = ctx.choice(p["kind"][1], "kind", KINDS) or "host"  # type: ignore[assignment]
    if "tunsrc" in p:
        node.tunsrc = ctx.ip(p["tunsrc"][1], "tunsrc", 6)
    if "bridges" in p:
        parse_bridges(ctx, st, p["bridges"][1])
    if "vrfs" in p:
        parse_vrfs(ctx, st, p["vrfs"][1])
    if "srl2" in p:
        parse_srl2(ctx, st, p["srl2"][1])
    # interfaces are parsed after links are known (pass "interfaces"); routes etc. now
    _parse_list(ctx, st, p, "routes", "routes", routing.parse_route, node.routes)
    _parse_list(ctx, st, p, "rules", "rules", routing.parse_rule, node.rules)
    _parse_list(ctx, st, p, "sids", "SIDs", routing.parse_sid, node.sids)
    if "sysctls" in p:
        parse_sysctls(ctx, st, p["sysctls"][1])
    if "hmac_keys" in p:
        parse_hmac_keys(ctx, st, p["hmac_keys"][1])
    return st


T = TypeVar("T")


def _parse_list(ctx: Ctx, st: NodeState, p: dict[str, tuple[ScalarNode, Node]], key: str, what: str,
                fn: Callable[[Ctx, NodeState, Node], Optional[T]], dest: list[T]) -> None:
    """Append to dest what fn makes of each item of the list under key, if the node has one."""
    if key in p:
        for item in ctx.seq(p[key][1], what) or []:
            obj = fn(ctx, st, item)
            if obj is not None:
                dest.append(obj)


def parse_sysctls(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    pairs = ctx.mapping(vnode, "sysctls as a mapping {net.KEY: VALUE}")
    if pairs is None:
        return
    for key, (knode, val) in pairs.items():
        if not SYSCTL_RE.match(key):
            if key == "net" or key.startswith("net."):
                ctx.err(knode, f"sysctl {quote(key)} is not a dotted sysctl name")
            else:
                ctx.err(knode, f"sysctl {quote(key)} is not under net.; only per-namespace net.* "
                               "sysctls may be set (anything else would change the host)")
            continue
        problem = sysctl_problem(key)
        if problem:
            ctx.err(knode, problem)
            continue
        if not isinstance(val, ScalarNode) or val.tag == T_NULL:
            ctx.err(val, f"expected a value for sysctl {quote(key)}, got {describe(val)}")
            continue
        b = yaml_bool(val) if val.tag == T_BOOL else None
        i = yaml_int(val) if val.tag == T_INT else None
        if b is not None:
            st.node.sysctls[key] = "1" if b else "0"
        elif i is not None:
            st.node.sysctls[key] = str(i)
        else:
            st.node.sysctls[key] = val.value


def sysctl_problem(key: str) -> Optional[str]:
    """Why the net.* sysctl `key` does not exist, or None (also when that
    cannot be known).  Read from /proc/sys of this process's namespace, never
    written: a lab's fresh namespace has the same per-namespace keys (same
    kernel, same modules), so a key missing here is missing there.  The lab's
    interfaces do not exist here: their keys are looked up under `default`,
    which every interface has.  A key of the initial namespace only (e.g.
    net.core.rmem_max) passes, and is refused by `up`."""
    if not os.path.isdir("/proc/sys/net"):
        return None  # no /proc (a chroot, a container without it): `up` will tell
    parts = key.split(".")
    if needs_interfaces(key):
        parts[3] = "default"
    path = os.path.join("/proc/sys", *parts)
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return f"sysctl {quote(key, 60)} is a group of sysctls, not one; name a key under it"
    try:
        near = suggest(parts[-1], os.listdir(os.path.dirname(path)))
    except OSError:  # its group does not exist either
        near = None
    hint = f"; did you mean {quote('.'.join(key.split('.')[:-1] + [near]), 60)}?" if near else ""
    return f"sysctl {quote(key, 60)} does not exist on this kernel{hint}"


def parse_interfaces(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping IFNAME: {{settings}} for the interfaces of node {quote(nname)}")
    if pairs is None:
        return
    for ifname, (knode, body) in pairs.items():
        if ifname_problem(ifname):
            ctx.ifname(knode, "an interface name")
            continue
        iface = model.Interface(name=ifname, where=ctx.where(knode))
        st.configured.append((ifname, knode, iface))
        if isinstance(body, ScalarNode) and body.tag == T_NULL:
            continue  # `veth0:` with nothing: defaults
        p = ctx.mapping(body, f"a mapping of settings for interface {quote(ifname)}")
        if p is None:
            continue
        ctx.known_keys(p, IFACE_KEYS, f"interface {quote(ifname)} of node {quote(nname)}")
        if "addresses" in p:
            items = ctx.seq(p["addresses"][1], "addresses (e.g. [10.0.0.1/24, cafe::1/64])")
            seen: dict[Any, int] = {}
            for item in items or []:
                a = ctx.interface_address(item, "address")
                if a is None:
                    continue
                if a in seen:
                    ctx.err(item, f"address {a} is given twice for interface {quote(ifname)} "
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


def parse_bridges(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping NAME: {{settings}} for the bridges of node {quote(nname)}")
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
        p = ctx.mapping(body, f"a mapping of settings for bridge {quote(bname)}")
        if p is None:
            continue
        ctx.known_keys(p, BRIDGE_KEYS, f"bridge {quote(bname)} of node {quote(nname)}")
        if "vlan_filtering" in p:
            vf = ctx.bool_(p["vlan_filtering"][1], "vlan_filtering")
            br.vlan_filtering = bool(vf)
        if "mcast_snooping" in p:
            ms = ctx.bool_(p["mcast_snooping"][1], "mcast_snooping")
            br.mcast_snooping = bool(ms) if ms is not None else True
        if "ports" in p:
            for item in ctx.seq(p["ports"][1], "bridge ports") or []:
                port = parse_port(ctx, item, bname, nname)
                if port is None:
                    continue
                add_port(ctx, st, br, port, item)


def parse_vrfs(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    """`vrfs: {NAME: {table: T, ports: [IFNAME, ...]}}`: VRF devices and
    what is enslaved to them (checked once every interface is known)."""
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping NAME: {{table: T, ports: [...]}} for the VRFs of node {quote(nname)}")
    if pairs is None:
        return
    for vname, (knode, body) in pairs.items():
        if ctx.ifname(knode, "a VRF name") is None:
            continue
        st.make(ctx, vname, "a VRF", knode)
        p = ctx.mapping(body, f"a mapping of settings for VRF {quote(vname)} (at least table: T)")
        if p is None:
            continue
        ctx.known_keys(p, VRF_KEYS, f"VRF {quote(vname)} of node {quote(nname)}")
        table = None
        if "table" not in p:
            ctx.err(knode, f"VRF {quote(vname)} needs a table (table: 1..{U32}, the table its routes are in)")
        else:
            table = _nonzero_table(ctx, p["table"][1], "Invalid VRF table id")
        vrf = model.Vrf(name=vname, table=table or 0, where=ctx.where(knode))
        if "ports" in p:
            for item in ctx.seq(p["ports"][1], "VRF ports") or []:
                port = ctx.ifname(item, "a port name")
                if port is None:
                    continue
                if port in vrf.ports:
                    ctx.err(item, f"{quote(port)} is listed twice as a port of VRF {quote(vname)}")
                    continue
                vrf.ports.append(port)
                st.refs.append((port, item, f"port {{}} of VRF {quote(vname)}", f"vrf port {vname}"))
        if table is not None:
            st.node.vrfs[vname] = vrf


def parse_port(ctx: Ctx, item: Node, bname: str, nname: str) -> Optional[model.BridgePort]:
    if isinstance(item, MappingNode):
        p = ctx.mapping(item, "a bridge port")
        assert p is not None
        ctx.known_keys(p, PORT_KEYS, f"a port of bridge {quote(bname)} of node {quote(nname)}")
        if "name" not in p:
            ctx.err(item, f"a port of bridge {quote(bname)} needs a name")
            return None
        name = ctx.ifname(p["name"][1], "a port name")
        if name is None:
            return None
        port = model.BridgePort(name=name, where=ctx.where(item))
        if "vlans" in p:
            for v in ctx.seq(p["vlans"][1], "VLAN ids") or []:
                vid = ctx.int_(v, "VLAN id", VLAN_MIN, VLAN_MAX)
                if vid is not None:
                    port.vlans.append(vid)
        if "pvid" in p:
            port.pvid = ctx.int_(p["pvid"][1], "pvid", VLAN_MIN, VLAN_MAX)
        return port
    if isinstance(item, ScalarNode) and item.tag != T_NULL:
        name = ctx.ifname(item, "a port name")
        return None if name is None else model.BridgePort(name=name, where=ctx.where(item))
    ctx.err(item, f"expected a port (an interface name or {{name: IFNAME, vlans: [...], pvid: N}}), "
                  f"got {describe(item)}")
    return None


def add_port(ctx: Ctx, st: NodeState, br: model.Bridge, port: model.BridgePort, at: Node) -> None:
    if port.name in st.port_of:
        other, first = st.port_of[port.name]
        line = first.start_mark.line + 1
        if other == br.name:
            ctx.err(at, f"{quote(port.name)} is listed twice as a port of bridge {quote(br.name)} "
                        f"(first on line {line})")
        else:
            ctx.err(at, f"{quote(port.name)} is already a port of bridge {quote(other)} (line {line}); "
                        "an interface can be a port of one bridge only")
        return
    st.port_of[port.name] = (br.name, at)
    st.refs.append((port.name, at, f"port {{}} of bridge {quote(br.name)}", "port"))
    br.ports.append(port)


def parse_srl2(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    nname = st.node.name
    pairs = ctx.mapping(vnode, f"a mapping NAME: {{segs: [...]}} for the srl2 devices of node {quote(nname)}")
    if pairs is None:
        return
    for dname, (knode, body) in pairs.items():
        if ctx.ifname(knode, "an srl2 device name") is None:
            continue
        st.make(ctx, dname, "an srl2 device", knode)
        p = ctx.mapping(body, f"a mapping of settings for srl2 device {quote(dname)} (at least segs: [...])")
        if p is None:
            continue
        ctx.known_keys(p, SRL2_KEYS, f"srl2 device {quote(dname)} of node {quote(nname)}")
        segs = None
        if "segs" not in p:
            ctx.err(knode, f"srl2 device {quote(dname)} needs segs (its list of 1..{MAX_SEGS} SIDs)")
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
        # mode, table and hmac exist in some revisions only: pass "revision" checks them
        for key in ("mode", "table", "hmac"):
            if key in p:
                st.srl2_at[(dname, key)] = p[key][1]
        if "mode" in p:
            # one of vocabulary.yaml's srl2_mode (typed str), which model.Srl2.mode lists
            dev.mode = cast(Any, ctx.choice(p["mode"][1], "mode", SRL2_MODES))
        if "table" in p:
            dev.table = _srl2_table(ctx, p["table"][1])
        if "hmac" in p:
            dev.hmac = ctx.int_(p["hmac"][1], "hmac", HMAC_KEYID_MIN, HMAC_KEYID_MAX)
            if dev.hmac is not None:
                st.srl2_hmac.append((dev, p["hmac"][1]))
        st.node.srl2[dname] = dev


def _srl2_table(ctx: Ctx, vnode: Node) -> Optional[int]:
    """The device's post-encapsulation FIB table; 0 is what the kernel
    refuses ("Invalid FIB table ID"), said as such rather than as a range."""
    return _nonzero_table(ctx, vnode, "Invalid FIB table ID")


def _nonzero_table(ctx: Ctx, vnode: Node, kernel_says: str) -> Optional[int]:
    """A table other than 0 (an sr6 device's, a VRF's: the kernel refuses 0
    with `kernel_says`)."""
    if isinstance(vnode, ScalarNode) and vnode.tag == T_INT and yaml_int(vnode) == 0:
        names = ", ".join(TABLE_NAMES)
        ctx.err(vnode, f"table 0 is refused by the kernel (\"{kernel_says}\"); expected 1..{U32} "
                       f"or {names}")
        return None
    return ctx.table(vnode)


def parse_hmac_keys(ctx: Ctx, st: NodeState, vnode: Node) -> None:
    """`hmac_keys: {KEYID: {secret: TEXT, algorithm: sha256}}`: `ip sr hmac
    KEYID` in the node.  No message ever shows a secret."""
    nname = quote(st.node.name)
    pairs = ctx.mapping(vnode, f"a mapping KEYID: {{secret: TEXT, algorithm: sha256 | sha1}} for the HMAC keys "
                               f"of node {nname}")
    if pairs is None:
        return
    first: dict[int, ScalarNode] = {}
    for knode, body in pairs.values():
        keyid = ctx.int_(knode, "HMAC key id", HMAC_KEYID_MIN, HMAC_KEYID_MAX)
        if keyid is None:
            continue
        if keyid in first:  # 1 and 0x1: two YAML keys, one key id
            ctx.err(knode, f"HMAC key {keyid} is given twice for node {nname} "
                           f"(first on line {first[keyid].start_mark.line + 1})")
            continue
        first[keyid] = knode
        st.hmac_ids.add(keyid)
        p = ctx.mapping(body, f"a mapping {{secret: TEXT, algorithm: sha256 | sha1}} for HMAC key {keyid}")
        if p is None:
            continue
        ctx.known_keys(p, HMAC_KEY_KEYS, f"HMAC key {keyid} of node {nname}")
        secret = None
        if "secret" not in p:
            ctx.err(knode, f"HMAC key {keyid} of node {nname} needs a secret (secret: TEXT)")
        else:
            secret = _hmac_secret(ctx, p["secret"][1], keyid)
        algorithm = DEFAULTS["hmac_algorithm"]
        if "algorithm" in p:
            algorithm = ctx.choice(p["algorithm"][1], "algorithm", HMAC_ALGORITHMS)
        if secret is not None and algorithm is not None:
            # algorithm: one of vocabulary.yaml's hmac_algorithm (typed str), which model.HmacKey lists
            st.node.hmac_keys[keyid] = model.HmacKey(keyid=keyid, secret=secret, algorithm=cast(Any, algorithm),
                                                     where=ctx.where(knode))


def _hmac_secret(ctx: Ctx, vnode: Node, keyid: int) -> Optional[str]:
    """The secret as written (any scalar, taken literally); 1..64 bytes of
    one line, which is what `ip sr hmac` reads and the kernel keeps.  The
    messages never show it."""
    if not isinstance(vnode, ScalarNode) or vnode.tag == T_NULL:
        ctx.err(vnode, f"expected the secret of HMAC key {keyid} (text), got {describe(vnode)}")
        return None
    secret = vnode.value
    try:
        size = len(secret.encode("utf-8"))
    except UnicodeEncodeError:  # "\ud800" in double quotes: a lone surrogate
        ctx.err(vnode, f"the secret of HMAC key {keyid} is not text (it has a lone UTF-16 surrogate)")
        return None
    if size == 0:
        ctx.err(vnode, f"the secret of HMAC key {keyid} is empty; `ip sr hmac` takes an empty secret as "
                       "removing the key")
    elif size > HMAC_SECRET_MAX:
        ctx.err(vnode, f"the secret of HMAC key {keyid} is {size} bytes; the kernel keeps at most "
                       f"{HMAC_SECRET_MAX} (SEG6_HMAC_SECRET_LEN)")
    elif "\n" in secret or "\0" in secret:
        ctx.err(vnode, f"the secret of HMAC key {keyid} contains a line break or a NUL; `ip sr hmac` reads a "
                       "secret as one line of text")
    else:
        return secret
    return None
