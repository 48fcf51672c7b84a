"""Packets on the wire: sending raw frames from inside a node, and (with
scapy) reading SRv6 packets back.  scapy is imported only by what needs it."""
from __future__ import annotations

import socket
from typing import Iterable

from testbed.linux import Netns


def send_frames(ns: Netns, ifname: str, frames: Iterable[bytes]) -> int:
    """Send whole Ethernet frames out of NETNS:IFNAME (any ethertype, VLAN
    tags and all); returns how many were sent."""
    n = 0
    with ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
        s.bind((ifname, 0))
        for frame in frames:
            s.send(bytes(frame))
            n += 1
    return n
