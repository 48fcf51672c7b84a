"""What every lab gets without asking: one place, read by the engine
(testbed.lab) and by the rendered script (testbed.render), so that both
build the same lab."""
from __future__ import annotations

from testbed.model import Node, Sid, Topology

BASE_SYSCTLS = {
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}
ROUTER_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.all.seg6_enabled": "1",
    "net.ipv6.conf.default.seg6_enabled": "1",
}


def needs_interfaces(key: str) -> bool:
    """net.ipv6.conf.veth0.x only exists once veth0 does; all/default must
    be set before interfaces are made, to be inherited by them."""
    parts = key.split(".")
    return len(parts) > 4 and parts[2] == "conf" and parts[3] not in ("all", "default")


def early_sysctls(node: Node) -> dict[str, str]:
    """Sysctls written right after the node's netns is made."""
    values = dict(BASE_SYSCTLS)
    if node.kind == "router":
        values.update(ROUTER_SYSCTLS)
    values.update({k: str(v) for k, v in node.sysctls.items() if not needs_interfaces(k)})
    return values


def late_sysctls(node: Node) -> dict[str, str]:
    """Per-interface sysctls, written once the interfaces exist."""
    return {k: str(v) for k, v in node.sysctls.items() if needs_interfaces(k)}


def port_without_ipv6(node: Node, port: str) -> bool:
    """A bridge port gets IPv6 disabled unless the topology gives it an IPv6
    address: L3 lives on the bridge, and a port's link-local address would
    only send ND and MLD of its own through the pseudowire (noise on the
    wire the conformance cases read)."""
    conf = node.interfaces.get(port)
    return not (conf and any(a.version == 6 for a in conf.addresses))


def disable_ipv6_path(ifname: str) -> str:
    """/proc/sys path (interface names may contain dots: no dotted form)."""
    return f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"


def sid_dev(topo: Topology, node: str, sid: Sid) -> str:
    """The device of a SID's route when the topology names none: one that
    has IPv6 (the kernel refuses a route on a device without), preferring
    oif (End.DX2) or l2dev (End.DT2U), else the node's first link.  Never lo
    unless nothing else exists: Linux turns a non-local IPv6 route via lo
    into a reject route.  (For seg6local input the device does not matter.)"""
    if sid.dev:
        return sid.dev
    n = topo.nodes[node]
    no_ipv6 = {p.name for b in n.bridges.values() for p in b.ports if port_without_ipv6(n, p.name)}
    own = sid.oif if sid.action == "End.DX2" else sid.l2dev if sid.action == "End.DT2U" else None
    links = [end.ifname for _, end, _ in topo.veth_ends(node)]
    for name in [own, *links]:
        if name and name not in no_ipv6:
            return name
    return own or (links[0] if links else "lo")
