"""Captures inside a node's netns, armed before traffic is sent.

A capture is an AF_PACKET socket of protocol ETH_P_ALL bound to one
interface: it sees frames in both directions (a protocol-specific packet
socket never sees outgoing frames).  It is armed when it is created, so a
test creates it, then sends, then reads: no sleep, no race.
"""
from __future__ import annotations

import dataclasses
import os
import select
import socket
import struct
import time
from typing import BinaryIO, Callable, Iterable, Iterator

from testbed.linux import Netns

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PACKET_NAMES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}
SNAPLEN = 65535


@dataclasses.dataclass
class Frame:
    data: bytes
    time: float
    pkttype: int  # PACKET_HOST, ... PACKET_OUTGOING

    @property
    def outgoing(self) -> bool:
        return self.pkttype == PACKET_OUTGOING


class Capture:
    """Frames seen on NETNS:IFNAME from the moment the object exists."""

    def __init__(self, ns: Netns, ifname: str, rcvbuf: int = 8 << 20):
        self.where = f"{ns.name}:{ifname}"
        self.frames: list[Frame] = []
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((ifname, 0))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _drain(self) -> int:
        """Move every queued frame into self.frames; how many were added."""
        n = 0
        while True:
            try:
                data, addr = self.sock.recvfrom(SNAPLEN)
            except BlockingIOError:
                return n
            self.frames.append(Frame(data, time.time(), addr[2]))
            n += 1

    def wait_for(self, match: Callable[[Frame], bool], count: int = 1, timeout: float = 5.0) -> list[Frame]:
        """Frames matching `match` once `count` of them were seen, or what was
        seen when `timeout` ran out (the caller asserts on the number)."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
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
            self._drain()
        return self.frames

    def write_pcap(self, path: str, frames: Iterable[Frame] | None = None) -> str:
        """pcap (LINKTYPE_ETHERNET) of the captured frames."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            writer = PcapWriter(f)
            for fr in self.frames if frames is None else frames:
                writer.write(fr)
        return path

    def stream(self) -> Iterator[Frame]:
        """Frames as they arrive, until the caller stops iterating."""
        while True:
            start = len(self.frames)
            if not self._drain():
                select.select([self.sock], [], [])
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
