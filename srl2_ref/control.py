"""Client side of the control socket (line protocol over a unix stream socket).

    "ping\n"     -> "pong\n"
    "counters\n" -> {"devices": {NAME: {rx_packets: .., ..., collisions: ..}},
                     "sids": {SID: {"packets": .., "bytes": .., "errors": ..}}}  (one JSON line)
    "info\n"     -> {"pid", "devices": {NAME: {"ifindex", "segs", "srh"}}, "tun", "sids", "faults", ...}
"""
from __future__ import annotations

import json
import socket


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
