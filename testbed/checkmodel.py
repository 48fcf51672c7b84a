"""The typed checks of a topology's `validate:` section (docs/topology.md
"Checks"), beside the lab's model (testbed/model.py).

`testbed.topology.checks` reads them from YAML; `testbed.validate` runs
them against a running lab and `testbed.render` writes them into the
selftest script: one model, two runners.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from testbed.model import NOWHERE, Endpoint, Where

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Family = Literal[4, 6]
FrameKind = Literal["arp", "nd", "raw"]

# Device counters by the kernel's names (as testbed.datapaths.COUNTERS) and
# a seg6local SID's counters (SEG6_LOCAL_CNT_*).
DEVICE_COUNTERS = (
    "rx_packets", "rx_bytes", "rx_errors", "rx_dropped",
    "tx_packets", "tx_bytes", "tx_errors", "tx_dropped",
    "tx_carrier_errors", "collisions",
)
SID_COUNTERS = ("packets", "bytes", "errors")
DEFAULT_ETHERTYPE = 0x88B5  # IEEE 802 local experimental ethertype 1


@dataclass
class Ping:
    """`ping` (expect replies) or `no_ping` (expect none) from a node to a
    node's addresses or to one address."""

    src: str
    dst: Optional[str] = None  # a node, or None when `address` is given
    address: Optional[IPAddress] = None
    families: tuple[Family, ...] = (4, 6)
    both_ways: bool = True
    count: int = 3
    timeout: int = 5
    expect_replies: bool = True
    dev: Optional[str] = None  # ping -I DEV: an interface of `src` (e.g. a bridge in a VRF)


@dataclass
class Counters:
    """An srl2 device's (`dev`) or a counting SID's (`sid`) counters moved
    while the other checks ran, and others did not."""

    node: str
    dev: Optional[str] = None
    sid: Optional[ipaddress.IPv6Network] = None
    table: Optional[int] = None  # the SID's table, from the node's SIDs
    moved: list[str] = field(default_factory=list)
    unmoved: list[str] = field(default_factory=list)


@dataclass
class Frame:
    """A frame of `kind` sent from `src` must arrive on every `to` end and on
    no `not_to` end."""

    src: Endpoint
    to: list[Endpoint] = field(default_factory=list)
    not_to: list[Endpoint] = field(default_factory=list)
    kind: FrameKind = "raw"
    ethertype: int = DEFAULT_ETHERTYPE
    vlan: Optional[int] = None
    timeout: int = 3
    src_ip: Optional[IPAddress] = None  # arp/nd: the sender's address
    target_ip: Optional[IPAddress] = None  # arp/nd: the address asked for


@dataclass
class Link:
    """An interface of a node, as the kernel has it now, has these
    attributes (the MTU an srl2 device computed, for instance)."""

    node: str
    dev: str
    mtu: int


CheckSpec = Union[Ping, Counters, Frame, Link]
CheckKind = Literal["ping", "no_ping", "counters", "frame", "link"]


@dataclass
class Check:
    """One named entry of `validate:`."""

    name: str
    kind: CheckKind
    spec: CheckSpec
    description: str = ""
    where: Where = NOWHERE
