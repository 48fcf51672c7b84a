"""sendmmsg(2) through ctypes, over preallocated buffers.

A `Burst` owns N slots; slot i sends three iovecs: an 8-byte per-frame head
(first word, payload length, next header, hop limit), a per-device tail
(source, destination, SRH), and the frame buffer the TAP was read into.
"""
from __future__ import annotations

import ctypes
import os
import socket
import struct

_libc = ctypes.CDLL(None, use_errno=True)


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(MMsgHdr), ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


def sockaddr_in6(addr: bytes) -> ctypes.Array:
    """struct sockaddr_in6 for a 16-byte address, port 0."""
    raw = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, addr, 0)
    return ctypes.create_string_buffer(raw, len(raw))


class Burst:
    def __init__(self, slots: int = 64, bufsize: int = 65536):
        self.slots = slots
        self.heads = [ctypes.create_string_buffer(8) for _ in range(slots)]
        self.head_views = [memoryview(h).cast("B") for h in self.heads]
        self.bufs = [ctypes.create_string_buffer(bufsize) for _ in range(slots)]
        self.views = [memoryview(b).cast("B") for b in self.bufs]
        self.iovs = (IoVec * (3 * slots))()
        self.msgs = (MMsgHdr * slots)()
        for i in range(slots):
            self.iovs[3 * i].base = ctypes.addressof(self.heads[i])
            self.iovs[3 * i].len = 8
            self.iovs[3 * i + 2].base = ctypes.addressof(self.bufs[i])
            m = self.msgs[i].hdr
            m.iov = ctypes.cast(ctypes.byref(self.iovs, 3 * i * ctypes.sizeof(IoVec)), ctypes.POINTER(IoVec))
            m.iovlen = 3
        self._tail_of: tuple[int, int, int] | None = None
        self._frame_iovs = [self.iovs[3 * i + 2] for i in range(slots)]

    def set_device(self, tail, name) -> None:
        """Point every slot at a device's tail buffer and destination sockaddr
        (tail/name: ctypes buffers the caller keeps alive)."""
        key = (ctypes.addressof(tail), len(tail), ctypes.addressof(name))
        if self._tail_of == key:
            return
        self._tail_of = key
        for i in range(self.slots):
            self.iovs[3 * i + 1].base = key[0]
            self.iovs[3 * i + 1].len = key[1]
            m = self.msgs[i].hdr
            m.name = key[2]
            m.namelen = len(name)

    def set_len(self, i: int, n: int) -> None:
        self._frame_iovs[i].len = n

    def send(self, fd: int, start: int, count: int) -> int:
        """sendmmsg slots [start, start+count); returns how many went, or
        raises OSError for the first one that did not."""
        ptr = ctypes.cast(ctypes.byref(self.msgs, start * ctypes.sizeof(MMsgHdr)), ctypes.POINTER(MMsgHdr))
        n = _sendmmsg(fd, ptr, count, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return n
