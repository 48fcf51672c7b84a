"""The typed, validated model of a topology.

`testbed.topology` turns YAML (docs/topology.md) into these objects; everything downstream
(lab bring-up, render, datapaths) reads only these.  Every object keeps the
`Where` of the YAML that asked for it, so that a kernel error can be reported
against the line that caused it.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional

if TYPE_CHECKING:  # pragma: no cover
    from testbed.checkmodel import Check

Datapath = Literal["auto", "kernel", "ref"]
Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Where:
    """A place in a topology file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Where("<built-in>", 0, 0)


@dataclass
class Interface:
    """Per-interface settings of a node (any kind of interface: veth end,
    bridge, srl2 device or lo)."""

    name: str
    addresses: list[Address] = field(default_factory=list)
    mac: Optional[str] = None
    mtu: Optional[int] = None
    up: bool = True
    where: Where = NOWHERE


@dataclass
class BridgePort:
    name: str
    vlans: list[int] = field(default_factory=list)  # tagged VLANs (filtering bridges)
    pvid: Optional[int] = None  # untagged VLAN on ingress/egress
    where: Where = NOWHERE


@dataclass
class Bridge:
    name: str
    ports: list[BridgePort] = field(default_factory=list)
    vlan_filtering: bool = False
    mcast_snooping: bool = True  # the kernel's default; off = a silent, plain flooding bridge
    where: Where = NOWHERE


@dataclass
class Vrf:
    """A VRF device (`ip link add NAME type vrf table T`) and the interfaces
    enslaved to it (`ip link set DEV master NAME`): a bridge, an srl2 device,
    a link end.  The route to an srl2 device's first SID is looked up in the
    VRF's table when the device or its bridge is in the VRF and the device
    has no `table` of its own (sr6)."""

    name: str
    table: int
    ports: list[str] = field(default_factory=list)
    where: Where = NOWHERE


@dataclass
class Seg6Encap:
    """`encap seg6 mode MODE segs A,B` of a route (iproute2 vocabulary)."""

    mode: Literal["encap", "inline", "l2encap", "encap.red", "l2encap.red"]
    segs: list[ipaddress.IPv6Address]
    where: Where = NOWHERE


@dataclass
class Route:
    dst: Network  # "default" is parsed to 0.0.0.0/0 or ::/0 by family of via/dst hint
    via: Optional[ipaddress.IPv4Address | ipaddress.IPv6Address] = None
    dev: Optional[str] = None
    table: Optional[int] = None  # None = main
    metric: Optional[int] = None
    type: Literal["unicast", "blackhole", "unreachable", "prohibit"] = "unicast"
    hoplimit: Optional[int] = None  # RTAX_HOPLIMIT metric
    src: Optional[ipaddress.IPv4Address | ipaddress.IPv6Address] = None
    encap: Optional[Seg6Encap] = None
    where: Where = NOWHERE

    @property
    def family(self) -> int:
        return self.dst.version


@dataclass
class Rule:
    """`ip rule add [from P] [to P] lookup T prio N`; family from the prefixes
    (IPv6 when neither is given and `family` is not set)."""

    lookup: int
    prio: Optional[int] = None
    to: Optional[Network] = None
    src: Optional[Network] = None  # YAML key `from`
    family: int = 6
    where: Where = NOWHERE


SidAction = Literal["End", "End.X", "End.DX2", "End.DT2U"]


@dataclass
class Sid:
    """A seg6local route: `ip -6 route add SID encap seg6local action A ... dev D`."""

    sid: ipaddress.IPv6Network  # a /128 unless a prefix is given
    action: SidAction
    nh6: Optional[ipaddress.IPv6Address] = None  # End.X
    oif: Optional[str] = None  # End.DX2
    l2dev: Optional[str] = None  # End.DT2U
    table: Optional[int] = None  # routing table the SID route lives in
    count: bool = False
    dev: Optional[str] = None  # device of the route; default: testbed.defaults.sid_dev
    where: Where = NOWHERE


@dataclass
class Srl2:
    """The series' L2 pseudowire device (srl2, sr6: testbed.revisions): one
    segment list, first SID visited first.  mode/table/hmac exist in the
    revisions that have them (None: not asked for, the revision's default)."""

    name: str
    segs: list[ipaddress.IPv6Address]
    mtu: Optional[int] = None
    mac: Optional[str] = None
    bridge: Optional[str] = None
    mode: Optional[Literal["full", "reduced"]] = None  # H.Encaps.L2 / H.Encaps.L2.Red
    table: Optional[int] = None  # post-encapsulation FIB table
    hmac: Optional[int] = None  # HMAC key id: an HMAC TLV in the SRH (key in Node.hmac_keys)
    where: Where = NOWHERE


@dataclass
class HmacKey:
    """`ip sr hmac KEYID` in a node: the secret an HMAC TLV is computed with."""

    keyid: int
    secret: str
    algorithm: Literal["sha1", "sha256"] = "sha256"
    where: Where = NOWHERE


@dataclass
class Node:
    name: str
    kind: Literal["host", "router"] = "host"
    interfaces: dict[str, Interface] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    vrfs: dict[str, Vrf] = field(default_factory=dict)
    srl2: dict[str, Srl2] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    sids: list[Sid] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # "net.ipv6.conf.all.x": "1"
    tunsrc: Optional[ipaddress.IPv6Address] = None
    hmac_keys: dict[int, HmacKey] = field(default_factory=dict)
    where: Where = NOWHERE


@dataclass
class Endpoint:
    node: str
    ifname: str
    where: Where = NOWHERE

    def __str__(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass
class Link:
    """A veth pair between two nodes."""

    a: Endpoint
    b: Endpoint
    mtu: Optional[int] = None
    where: Where = NOWHERE


@dataclass
class Topology:
    name: str
    nodes: dict[str, Node]
    links: list[Link] = field(default_factory=list)
    datapath: Datapath = "auto"
    revision: str = "auto"  # of the series (testbed.revisions): auto, srl2, sr6
    description: str = ""
    source: str = ""  # path of the YAML file
    where: Where = NOWHERE
    checks: list["Check"] = field(default_factory=list)  # validate: (testbed/checkmodel.py)

    def veth_ends(self, node: str) -> list[tuple[Link, Endpoint, Endpoint]]:
        """(link, local end, remote end) for every link touching `node`."""
        out = []
        for link in self.links:
            if link.a.node == node:
                out.append((link, link.a, link.b))
            if link.b.node == node:
                out.append((link, link.b, link.a))
        return out

    @property
    def needs_srl2(self) -> bool:
        return any(n.srl2 or any(s.action == "End.DT2U" for s in n.sids) for n in self.nodes.values())
