"""Captures inside a node's netns, armed before traffic is sent.

A capture is an AF_PACKET socket of protocol ETH_P_ALL bound to one
interface: it sees frames in both directions (a protocol-specific packet
socket never sees outgoing frames).  It is armed when it is created, so a
test creates it, then sends, then reads: no sleep, no race.

It reads through a TPACKET_V2 receive ring, as tcpdump does, for two
reasons: the kernel copies each frame into the ring when it is captured (a
plain recvfrom() reads a clone whose data a later in-place rewrite, such as
seg6local End advancing the segment, would already have changed), and the
ring's header carries the VLAN tag the kernel moved out of a received frame,
which is put back so that frames look as they did on the wire.
"""
from __future__ import annotations

import dataclasses
import mmap
import os
import select
import socket
import struct
import time
from typing import BinaryIO, Callable, Iterable, Iterator

from testbed.linux import Netns

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
PACKET_OUTGOING = 4
PACKET_NAMES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}
SNAPLEN = 65535

# linux/if_packet.h
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V2 = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 0x1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TPACKET2_HDR = struct.Struct("=IIIHHIIHH4x")  # status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid
SLL_PKTTYPE = TPACKET2_HDR.size + 10  # sockaddr_ll follows the header: family, protocol, ifindex, hatype, pkttype

FRAME_SIZE = 16384  # a ring slot: jumbo frames (9000) fit whole
RING_FRAMES = 256
FRAMES_PER_BLOCK = 16


@dataclasses.dataclass
class Frame:
    data: bytes
    time: float
    pkttype: int  # PACKET_HOST, ... PACKET_OUTGOING
    length: int = 0  # on the wire; more than len(data) if the slot truncated it

    @property
    def outgoing(self) -> bool:
        return self.pkttype == PACKET_OUTGOING


class Capture:
    """Frames seen on NETNS:IFNAME from the moment the object exists."""

    def __init__(self, ns: Netns, ifname: str, frames: int = RING_FRAMES):
        self.where = f"{ns.name}:{ifname}"
        self.frames: list[Frame] = []
        # protocol 0 until bound: no frame of another interface enters the ring
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            nblocks = max(1, frames // FRAMES_PER_BLOCK)
            self.nframes = nblocks * FRAMES_PER_BLOCK
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
                "IIII", FRAME_SIZE * FRAMES_PER_BLOCK, nblocks, FRAME_SIZE, self.nframes))
            self.ring = mmap.mmap(self.sock.fileno(), FRAME_SIZE * self.nframes)
            self.sock.bind((ifname, ETH_P_ALL))
        except OSError:
            self.sock.close()
            raise
        self.next = 0  # the ring slot to read next
        self.dropped = 0  # frames the kernel dropped because the ring was full

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self.sock._closed:
            self.ring.close()
            self.sock.close()

    def drain(self) -> int:
        """Move every captured frame into self.frames; how many were added."""
        n = 0
        while True:
            at = self.next * FRAME_SIZE
            (status, length, snaplen, mac, _net, sec, nsec, tci, tpid) = TPACKET2_HDR.unpack_from(self.ring, at)
            if not status & TP_STATUS_USER:
                break
            data = self.ring[at + mac:at + mac + snaplen]
            if status & TP_STATUS_VLAN_VALID:  # the kernel moved the tag out of the frame: put it back
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                length += 4
            self.frames.append(Frame(data, sec + nsec / 1e9, self.ring[at + SLL_PKTTYPE], length))
            struct.pack_into("I", self.ring, at, TP_STATUS_KERNEL)  # hand the slot back
            self.next = (self.next + 1) % self.nframes
            n += 1
        if n:
            _, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.dropped += drops
        return n

    def wait_for(self, match: Callable[[Frame], bool], count: int = 1, timeout: float = 5.0) -> list[Frame]:
        """Frames matching `match` once `count` of them were seen, or what was
        seen when `timeout` ran out (the caller asserts on the number)."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            found = [f for f in self.frames if match(f)]
            left = deadline - time.monotonic()
            if len(found) >= count or left <= 0:
                return found
            select.select([self.sock], [], [], left)

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> list[Frame]:
        """Everything seen until no frame arrived for `quiet` seconds: how a
        test shows that nothing (more) was sent where that matters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([self.sock], [], [], quiet)[0]:
                break
            self.drain()
        return self.frames

    def write_pcap(self, path: str, frames: Iterable[Frame] | None = None) -> str:
        """pcap (LINKTYPE_ETHERNET) of the captured frames."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            writer = PcapWriter(f)
            for fr in self.frames if frames is None else frames:
                writer.write(fr)
        return path

    def stream(self, alive: Callable[[], bool] | None = None, every: float = 1.0) -> Iterator[Frame]:
        """Frames as they arrive, until the caller stops iterating, or until
        `alive()` (asked every `every` seconds without a frame) says the
        interface is gone: a capture keeps its netns alive, so without it a
        capture on a lab that was taken down would wait forever."""
        while True:
            start = len(self.frames)
            if not self.drain():
                if alive is not None and not alive():
                    return
                if select.select([self.sock], [], [], every if alive is not None else None)[0]:
                    # the interface went down or away (ENETDOWN): read the error, or
                    # select() reports it again at once until it is read
                    self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                continue
            yield from self.frames[start:]
            del self.frames[:]  # a long capture must not grow without bound


class PcapWriter:
    """The classic pcap format, one frame at a time (flushed, so a reader
    such as `tcpdump -r` or wireshark sees frames while the capture runs)."""

    def __init__(self, f: BinaryIO):
        self.f = f
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))  # LINKTYPE_ETHERNET

    def write(self, frame: Frame) -> None:
        sec = int(frame.time)
        self.f.write(struct.pack("<IIII", sec, int((frame.time - sec) * 1e6), len(frame.data), len(frame.data)))
        self.f.write(frame.data)
        self.f.flush()
