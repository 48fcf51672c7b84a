"""What a reference node owns: its srl2 devices (TAPs) and its SIDs.

A Device is one srl2 device: the TAP the bridge writes frames into, the
encapsulation template of its segment list, the raw socket its SRv6 packets
leave by, and its counters.  A Sid is one End.DT2U / End.DX2 / End / End.X
behaviour routed into the node's TUN, with its own counters.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from ipaddress import IPv6Address

from . import encap, hmac
from .config import DeviceConf, SidConf
from .mmsg import sockaddr_in6
from .routecache import ANY
from .tun import open_tun

# The counters an srl2 device keeps (those `ip -s link` shows).
COUNTERS = ("rx_packets", "rx_bytes", "rx_errors", "rx_dropped", "tx_packets", "tx_bytes",
            "tx_errors", "tx_dropped", "tx_carrier_errors", "collisions")
IPV6_FREEBIND = 78
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
IFF_UP = 1


def raw6() -> socket.socket:
    """A header-included IPv6 raw socket (packets are sent whole, SRH and all)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def ifmtu(sock: socket.socket, ifname: str) -> int:
    """The MTU of IFNAME now (End.DX2 checks every frame against it)."""
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, struct.pack("16si20x", ifname.encode(), 0))
    except OSError:
        return 0
    return struct.unpack_from("i", res, 16)[0]


class Device:
    def __init__(self, conf: DeviceConf, faults: frozenset[str], keys: dict[int, hmac.Key],
                 drops: dict[str, tuple[str, ...]], mark: int = 0):
        self.conf = conf
        self.name = conf.name
        self.template = encap.Template(conf.segs, "sid_travel_order" in faults, mode=conf.mode,
                                       hmac_keyid=conf.hmac, key=keys.get(conf.hmac) if conf.hmac is not None else None,
                                       faults=faults)
        # the table the route to the first SID is looked up in (None: the
        # netns's rules); fault "table_ignored" looks in main instead
        self.table = conf.table if "table_ignored" not in faults else None
        self.drops = drops  # cause -> the counters a dropped frame moves (srl2_ref.counting)
        self.fd, _ = open_tun(conf.name, tap=True)
        self.ifindex = 0
        self.dst = self.template.dst
        self.sockaddr = sockaddr_in6(self.dst.packed)
        self.src: IPv6Address | None = None
        self.tail = ctypes.create_string_buffer(len(self.template.tail(ANY)))
        self.raw = raw6()
        self.vrf = ""  # the VRF its raw socket is bound to (SO_BINDTODEVICE), "" for none
        # whether the route to the first SID follows the VRF of the device's
        # master chain (set by the daemon from the revision: sr6)
        self.revision_vrf = False
        if mark:  # its packets follow the device's table (srl2_ref.fibtable)
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        # the kernel's counters, and any other a drop of this revision moves
        self.c = dict.fromkeys(COUNTERS + tuple(k for ks in drops.values() for k in ks if k not in COUNTERS), 0)
        self.loop_window = 0.0
        self.loop_sent = 0

    def set_src(self, src: IPv6Address) -> None:
        if src == self.src:
            return
        self.src = src
        ctypes.memmove(self.tail, self.template.tail(src), len(self.tail))
        try:  # so that the kernel's send-path lookup sees the same source (policy rules)
            self.raw.bind((str(src), 0)) if src != ANY else None
        except OSError:
            pass

    def bind_vrf(self, vrf: str) -> None:
        """Send out of VRF `vrf` ("": none), as the route was found."""
        if vrf == self.vrf:
            return
        self.vrf = vrf
        try:
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, vrf.encode())
        except OSError:
            pass

    def is_up(self) -> bool:
        try:
            res = fcntl.ioctl(self.raw.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", self.name.encode(), 0))
        except OSError:
            return False
        return bool(struct.unpack_from("H", res, 16)[0] & IFF_UP)

    def close(self) -> None:
        os.close(self.fd)
        self.raw.close()


class Sid:
    def __init__(self, conf: SidConf):
        self.conf = conf
        self.key = conf.key
        self.action = conf.action
        self.l2dev: Device | None = None
        self.out: socket.socket | None = None  # End.DX2: AF_PACKET on oif; End.X: raw6 bound to oif
        self.oif = 0
        self.packets = self.bytes = self.errors = 0
