"""The control socket, both sides (line protocol over a unix stream socket).

    "ping\n"     -> "pong\n"
    "counters\n" -> {"devices": {NAME: {rx_packets: .., ..., collisions: ..}},
                     "sids": {SID: {"packets": .., "bytes": .., "errors": ..}}}  (one JSON line)
    "info\n"     -> {"pid", "revision", "devices": {NAME: {"ifindex", "segs", "srh", "kind", "mode",
                     "table", "hmac"}}, "tun", "sids", "faults", ...}
"""
from __future__ import annotations

import json
import os
import select
import socket
from typing import Callable


def query(path: str, command: str = "counters", timeout: float = 5.0):
    """Send one command, return the parsed JSON (or the text for ping)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    text = buf.decode()
    if text.startswith("error:"):
        raise RuntimeError(text.strip())
    if command == "ping":
        return text.strip()
    return json.loads(text)


class ControlServer:
    """The daemon's side: answers each line with ANSWER(line), served from
    the daemon's own epoll loop (non-blocking; a reply is sent whole)."""

    def __init__(self, path: str, answer: Callable[[str], str]):
        self.path = path
        self.answer = answer
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                raise OSError(f"control socket {path} is in use by another process")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(path)
            finally:
                probe.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.sock.listen(16)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self, ep: select.epoll) -> None:
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:  # BlockingIOError included: no one else is waiting
                return
            s.setblocking(False)
            self.clients[s.fileno()] = (s, bytearray())
            ep.register(s.fileno(), select.EPOLLIN)

    def serve(self, fd: int, ep: select.epoll) -> None:
        s, buf = self.clients[fd]
        try:
            data = s.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or len(buf) > 65536:
            ep.unregister(fd)
            s.close()
            del self.clients[fd]
            return
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self.answer(line.decode(errors="replace").strip())
            s.setblocking(True)
            s.settimeout(1.0)
            try:
                s.sendall(reply.encode())
            except OSError:
                pass
            s.setblocking(False)

    def close(self) -> None:
        for client, _ in self.clients.values():
            client.close()
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
