"""The SID side: packets the node routed to one of its SIDs (into its TUN)
are matched to a SID, checked (srl2_ref.decap) and then delivered: the inner
frame into the srl2 device's TAP (End.DT2U) or out of oif (End.DX2), or the
rewritten packet back into the stack (End, End.X).  Outer fragments to an
L2 SID are reassembled first (T4).  HMAC TLVs are checked with the node's
keys (srl2_ref.decap).

rx on the l2dev: End.DT2U counts what it delivers in the l2dev's
rx_packets / rx_bytes (the inner frame).  sr6 does (Revision.rx_on_l2dev,
measured: +1 packet, + the frame's length); srl2's patch does not, a note
on it (catalogue E1, T7): the reference counts in both, as the catalogue
expects of an L2 device."""
from __future__ import annotations

import os
import socket
from ipaddress import IPv6Address

from . import decap, frag, hmac
from .devices import Sid, ifmtu

SLOTS = 64
ETH_P_802_3_MIN_HI = 0x06  # high byte of ETH_P_802_3_MIN (0x0600): below it is an 802.3 length


class Receiver:
    def __init__(self, tun_fd: int, sids: list[Sid], reinject: socket.socket,
                 icmp: socket.socket | None, faults: frozenset[str], hmac_keys: dict[int, hmac.Key]):
        self.tun_fd = tun_fd
        self.hmac_keys = hmac_keys
        self.sid_exact = {s.conf.sid.network_address.packed: s for s in sids
                          if s.conf.sid.prefixlen == 128}
        # the longest prefix first: the first match is the one routing would pick
        self.sid_prefix = sorted((s for s in sids if s.conf.sid.prefixlen < 128),
                                 key=lambda s: -s.conf.sid.prefixlen)
        self.reinject = reinject
        self.icmp = icmp  # set when the node sends ICMPv6 errors for bad packets
        self.check_sl = "no_decap_sl_check" not in faults
        self.reasm = frag.Reassembler()
        self.unknown_sid = 0

    def receive_burst(self) -> None:
        for _ in range(SLOTS):
            try:
                pkt = os.read(self.tun_fd, 65536)
            except OSError:  # BlockingIOError included: the TUN is drained
                return
            self.receive(pkt)

    def find_sid(self, da: bytes) -> Sid | None:
        sid = self.sid_exact.get(da)
        if sid is not None or not self.sid_prefix:
            return sid
        try:
            a = IPv6Address(da)
        except ValueError:
            return None
        for s in self.sid_prefix:
            if a in s.conf.sid:
                return s
        return None

    def receive(self, pkt: bytes) -> None:
        sid = self.find_sid(pkt[24:40]) if len(pkt) >= 40 else None
        if sid is None:
            self.unknown_sid += 1
            return
        if sid.action in ("End.DT2U", "End.DX2"):
            pkt = self.reasm.feed(pkt)  # the whole packet, or None while fragments are missing
            if pkt is None:
                return
        v = decap.classify(pkt, sid.action, check_sl=self.check_sl, hmac_keys=self.hmac_keys)
        if not v.ok:
            sid.errors += 1
            if self.icmp is not None and v.icmp is not None:
                self.send_icmp(pkt, v.icmp)
            return
        try:
            if sid.action == "End.DT2U":
                dev = sid.l2dev
                assert dev is not None  # set up for every End.DT2U SID
                if not dev.is_up():  # E5
                    dev.c["rx_dropped"] += 1
                    sid.errors += 1
                    return
                frame = pkt[v.start:v.end]
                try:
                    os.write(dev.fd, frame)
                except OSError:
                    dev.c["rx_dropped"] += 1
                    sid.errors += 1
                    return
                dev.c["rx_packets"] += 1
                dev.c["rx_bytes"] += len(frame)
            elif sid.action == "End.DX2":
                # As Linux input_action_end_dx2: Ethernet II frames only
                # (eth_proto_is_802_3), and no longer after the Ethernet
                # header than oif's MTU (a VLAN tag counts).
                out = sid.out
                assert out is not None and sid.conf.oif is not None  # set up for every End.DX2 SID
                if pkt[v.start + 12] < ETH_P_802_3_MIN_HI or v.end - v.start - 14 > ifmtu(out, sid.conf.oif):
                    sid.errors += 1
                    return
                out.send(pkt[v.start:v.end])
            else:  # End, End.X: the rewritten packet goes back into the stack
                out = sid.out if sid.action == "End.X" else self.reinject
                assert out is not None and v.packet is not None  # set up / an ok End verdict carries it
                out.sendto(v.packet, (str(IPv6Address(v.packet[24:40])), 0))
        except OSError:
            sid.errors += 1
            return
        sid.packets += 1
        sid.bytes += len(pkt)

    def send_icmp(self, pkt: bytes, icmp: tuple[int, int, int]) -> None:
        _type, code, pointer = icmp
        assert self.icmp is not None  # only called when the node sends ICMPv6 errors
        try:
            src = str(IPv6Address(pkt[8:24]))
            self.icmp.sendto(decap.icmp_param_problem(pkt, code, pointer), (src, 0))
        except (OSError, ValueError):
            pass
