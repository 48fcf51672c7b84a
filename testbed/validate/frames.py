"""The frames of `frame` checks (docs/topology.md "Checks"): how they are
built, and how what arrived is judged.

Standard library only, on purpose: `testbed render` embeds this file in
the selftest script, where it runs as `python3 - send ...` (see `main`),
and `testbed validate` imports `build` and `judge` (capturing with
testbed.capture instead).  One builder and one judge for both.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
BROADCAST = b"\xff" * 6
MARKER = b"testbed-frame:"  # + 8 random bytes: how a sent frame is recognised
MIN_FRAME = 60  # an Ethernet frame without FCS is padded to this
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
AUXDATA = struct.Struct("=IIIHHHH")  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid
CLONE_NEWNET = 0x40000000
LEAK_WAIT = 0.5  # seconds not_to ends are watched once every to end has the frame


def new_marker() -> bytes:
    return MARKER + os.urandom(8)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build(kind: str, src_mac: bytes, marker: bytes, src_ip: object = None, target_ip: object = None,
          ethertype: int = 0x88B5, vlan: int | None = None) -> bytes:
    """An Ethernet frame of `kind` from `src_mac`, `marker` at its end:
    arp (a broadcast who-has target_ip from src_ip), nd (a neighbour
    solicitation for target_ip, to its solicited-node group) or raw (a
    broadcast frame of `ethertype`); 802.1Q-tagged with `vlan` if given."""
    if kind == "arp":
        dst, etype = BROADCAST, ETH_P_ARP
        payload = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src_mac,
                              socket.inet_pton(socket.AF_INET, str(src_ip)), b"\0" * 6,
                              socket.inet_pton(socket.AF_INET, str(target_ip)))
    elif kind == "nd":
        src = socket.inet_pton(socket.AF_INET6, str(src_ip))
        target = socket.inet_pton(socket.AF_INET6, str(target_ip))
        group = b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target[13:]
        dst, etype = b"\x33\x33" + group[12:], ETH_P_IPV6
        # options: the source link-layer address, and the marker as a nonce
        # option (RFC 3971; ignored by receivers): inside the packet, since a
        # bridge with multicast snooping drops IPv6 multicast with a trailer
        nonce = marker.ljust(-(-(len(marker) + 2) // 8) * 8 - 2, b"\0")
        icmp = struct.pack("!BBHI16sBB6sBB", 135, 0, 0, 0, target, 1, 1, src_mac, 14, (len(nonce) + 2) // 8) + nonce
        csum = _checksum(src + group + struct.pack("!I3xB", len(icmp), 58) + icmp)
        icmp = icmp[:2] + struct.pack("!H", csum) + icmp[4:]
        payload = struct.pack("!IHBB16s16s", 0x6 << 28, len(icmp), 58, 255, src, group) + icmp
        marker = b""  # carried in the option
    elif kind == "raw":
        dst, etype, payload = BROADCAST, ethertype, b""
    else:
        raise ValueError(f"unknown frame kind {kind!r}")
    tag = struct.pack("!HH", ETH_P_8021Q, vlan) if vlan else b""
    frame = dst + src_mac + tag + struct.pack("!H", etype) + payload + marker
    return frame.ljust(MIN_FRAME + len(tag), b"\0")


def vlan_of(data: bytes) -> int | None:
    """The VLAN id of an 802.1Q-tagged frame, else None."""
    if len(data) >= 16 and struct.unpack_from("!H", data, 12)[0] == ETH_P_8021Q:
        return struct.unpack_from("!H", data, 14)[0] & 0x0FFF
    return None


def judge(seen: dict[str, list[bytes]], to: list[str], not_to: list[str], vlan: int | None,
          timeout: float) -> tuple[bool, str]:
    """Verdict on what the captures saw: `seen` maps each end ("hs-2:veth0")
    to the frames carrying the marker that arrived there."""
    problems, good = [], []
    for end in to:
        frames = seen.get(end, [])
        if not frames:
            problems.append(f"not seen on {end} within {timeout:g} s")
            continue
        tags = [vlan_of(f) for f in frames]
        if vlan is not None and vlan not in tags:
            problems.append(f"arrived on {end} without its VLAN tag {vlan} (tags seen: {tags})")
            continue
        good.append(f"arrived on {end} ({len(frames[0])} bytes" + (f", vlan {vlan})" if vlan else ")"))
    for end in not_to:
        if seen.get(end):
            problems.append(f"leaked to {end} ({len(seen[end])} frame{'s' if len(seen[end]) > 1 else ''})")
    if problems:
        return False, "; ".join(problems)
    if not_to:
        good.append(f"none on {', '.join(not_to)}")
    return True, "; ".join(good)


# ---------------------------------------------------------------- the script's side

def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _capture(netns: str, ifname: str) -> socket.socket:
    _enter(netns)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # no frames until bound to one interface
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)  # the VLAN tag the kernel takes out of a received frame
    s.bind((ifname, ETH_P_ALL))
    return s


def _read(s: socket.socket, marker: bytes) -> list[bytes]:
    out = []
    while select.select([s], [], [], 0)[0]:
        data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
        if marker not in data or addr[2] == socket.PACKET_OUTGOING:
            continue
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= AUXDATA.size:
                status, _l, _s, _m, _n, tci, tpid = AUXDATA.unpack_from(cdata)
                if status & TP_STATUS_VLAN_VALID:  # put the tag back, as it was on the wire
                    data = data[:12] + struct.pack("!HH", tpid or ETH_P_8021Q, tci) + data[12:]
        out.append(data)
    return out


def main(argv: list[str] | None = None) -> int:
    """`send --from NS IF [--to NS IF]... [--not-to NS IF]... --kind K ...`:
    arm a capture on every end, send one frame, print the verdict; exit 0
    when it holds, 1 when not."""
    ap = argparse.ArgumentParser(prog="frame-check")
    ap.add_argument("verb", choices=["send"])
    ap.add_argument("--from", dest="src", nargs=2, metavar=("NETNS", "IFNAME"), required=True)
    ap.add_argument("--to", nargs=3, action="append", default=[], metavar=("NETNS", "IFNAME", "LABEL"))
    ap.add_argument("--not-to", nargs=3, action="append", default=[], metavar=("NETNS", "IFNAME", "LABEL"))
    ap.add_argument("--kind", default="raw", choices=["arp", "nd", "raw"])
    ap.add_argument("--src-ip")
    ap.add_argument("--target-ip")
    ap.add_argument("--ethertype", type=lambda s: int(s, 0), default=0x88B5)
    ap.add_argument("--vlan", type=int)
    ap.add_argument("--timeout", type=float, default=3)
    args = ap.parse_args(argv)
    marker = new_marker()
    caps = {label: _capture(ns, ifname) for ns, ifname, label in args.to + args.not_to}
    _enter(args.src[0])
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as tx:
        tx.bind((args.src[1], 0))
        src_mac = tx.getsockname()[4]
        tx.send(build(args.kind, src_mac, marker, args.src_ip, args.target_ip, args.ethertype, args.vlan))
    seen: dict[str, list[bytes]] = {label: [] for label in caps}
    to = [label for _, _, label in args.to]
    not_to = [label for _, _, label in args.not_to]
    deadline = time.monotonic() + args.timeout
    while True:  # until every `to` end saw it (then a short while for leaks), or the deadline
        for label, s in caps.items():
            seen[label] += _read(s, marker)
        if to and all(seen[t] for t in to):  # it went through: a leak would come as soon
            deadline = min(deadline, time.monotonic() + LEAK_WAIT)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select(list(caps.values()), [], [], left)
    ok, detail = judge(seen, [label for _, _, label in args.to], not_to, args.vlan, args.timeout)
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
