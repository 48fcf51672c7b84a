"""The srl2 device's transmit path: frames the bridge sent to a device's TAP
leave as SRv6 packets (outer IPv6 + SRH + the whole frame), a burst at a time.

The checks of the route to the first SID come first: no usable route (L2),
a route back into the device itself (L1), then whether the device can
encapsulate at all (an HMAC it cannot compute); then each frame gets its
outer header's flow label, payload length, next header and hop limit, and
the burst goes out in one sendmmsg.  A packet over the underlay's MTU is
fragmented (T4).  What a dropped frame counts is the revision's
(srl2_ref.counting).
"""
from __future__ import annotations

import errno
import os
import time

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import encap, frag
from .devices import Device
from .mmsg import Burst
from .routecache import RouteCache

SLOTS = 64
LOOP_FAULT_CAP = 100  # frames/s a device may send into itself under fault no_loop_check
FLOWLABEL_SYSCTL = "/proc/sys/net/ipv6/seg6_flowlabel"
UNREACH_ERRNOS = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EPERM, errno.EINVAL)


class Transmitter:
    def __init__(self, devices: list[Device], routes: RouteCache, ipr: IPRoute,
                 faults: frozenset[str], tx_bytes_inner: bool = True):
        self.devices = devices
        self.routes = routes
        self.ipr = ipr
        self.faults = faults
        self.tx_bytes_inner = tx_bytes_inner
        self.burst = Burst(SLOTS)
        self.bufl = [[v] for v in self.burst.views]
        self.lens = [0] * SLOTS
        self.frag_ident = int.from_bytes(os.urandom(4), "big")
        try:
            self.fl_fd = os.open(FLOWLABEL_SYSCTL, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fl_fd = -1

    def close(self) -> None:
        if self.fl_fd >= 0:
            os.close(self.fl_fd)
            self.fl_fd = -1

    def flowlabel_mode(self) -> int:
        """net.ipv6.seg6_flowlabel now (read per burst: a test may change it)."""
        if self.fl_fd < 0:
            return 0
        try:
            return int(os.pread(self.fl_fd, 16, 0))
        except (OSError, ValueError):
            return 0

    def send_burst(self, dev: Device) -> None:
        burst, bufl, lens, fd = self.burst, self.bufl, self.lens, dev.fd
        readv = os.readv
        n = 0
        while n < SLOTS:
            try:
                ln = readv(fd, bufl[n])
            except OSError:  # BlockingIOError included: the TAP is drained
                break
            if ln <= 0:
                break
            lens[n] = ln
            n += 1
        if n == 0:
            return
        c, drops = dev.c, dev.drops
        route = self.routes.get(dev.dst, dev.table, dev.ifindex if dev.revision_vrf else 0)
        if not route.ok:  # L2: no usable route
            for k in drops[route.cause]:
                c[k] += n
            return
        assert route.src is not None  # RouteCache.lookup sets it on every usable route
        if route.oif == dev.ifindex:  # L1: the route leads back into this device
            if "no_loop_check" not in self.faults:
                for k in drops["loop"]:
                    c[k] += n
                return
            now = time.monotonic()  # the fault skips the check, but stays bounded
            if now - dev.loop_window >= 1.0:
                dev.loop_window, dev.loop_sent = now, 0
            allowed = max(0, min(n, LOOP_FAULT_CAP - dev.loop_sent))
            dev.loop_sent += allowed
            if allowed < n:
                for k in drops["loop"]:
                    c[k] += n - allowed
                n = allowed
                if n == 0:
                    return
        if dev.template.error:  # no HMAC key, or too many segments for its text
            for k in drops["encap_error"]:
                c[k] += n
            return
        dev.bind_vrf(route.vrf)
        dev.set_src(route.src)
        burst.set_device(dev.tail, dev.sockaddr)
        mode = self.flowlabel_mode()
        hl = route.hoplimit or encap.DEFAULT_HOPLIMIT
        copy_hl = "copy_inner_hoplimit" in self.faults
        srhlen, nexthdr = len(dev.template.srh), dev.template.nexthdr
        heads, views, pack_into = burst.head_views, burst.views, encap.FIRST8.pack_into
        frame_iovs = burst._frame_iovs
        word = encap.VERSION_WORD
        nbytes = 0
        for i in range(n):
            ln = lens[i]
            v = views[i]
            h = hl
            if mode == 0:
                if v[12] == 0x86 and v[13] == 0xDD and ln >= 18:
                    w = word | ((v[15] & 0x0F) << 16) | (v[16] << 8) | v[17]
                    if copy_hl and ln >= 54:
                        h = v[21]
                else:
                    w = word
            elif mode > 0:
                w = word | encap.hash_flowlabel(v[:ln])
            else:
                w = word
            if copy_hl and mode != 0 and ln >= 54 and v[12] == 0x86 and v[13] == 0xDD:
                h = v[21]
            pack_into(heads[i], 0, w, srhlen + ln, nexthdr, h)
            frame_iovs[i].len = ln
            nbytes += ln
        start = failed = 0
        raw = dev.raw.fileno()
        while start < n:
            try:
                sent = burst.send(raw, start, n - start)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                if e.errno == errno.EMSGSIZE and self.send_fragments(dev, route.oif, start, lens[start]):
                    start += 1
                    continue
                failed += 1
                for k in drops["send_error"]:
                    c[k] += 1
                if e.errno in UNREACH_ERRNOS:
                    c["tx_carrier_errors"] += 1
                nbytes -= lens[start]
                start += 1
                continue
            start += sent
        c["tx_packets"] += n - failed
        # the frames' length, or (a revision that counts the outer packet) with the outer headers
        c["tx_bytes"] += nbytes if self.tx_bytes_inner else nbytes + (n - failed) * (40 + srhlen)

    def send_fragments(self, dev: Device, oif, i: int, ln: int) -> bool:
        """T4: slot i's packet exceeds the MTU of the route's device (the raw
        socket said EMSGSIZE): send it as fragments (srl2_ref.frag).  Only a
        frame the device accepts (up to its MTU + 14 + two VLAN tags) going
        to the underlay: a route into one of our own devices is a loop (L5),
        whose packets grow each round and must die at the MTU."""
        if oif is None or any(d.ifindex == oif for d in self.devices):
            return False
        ipr = self.ipr
        try:
            mtu = ipr.get_links(oif)[0].get_attr("IFLA_MTU")
            if ln > ipr.get_links(dev.ifindex)[0].get_attr("IFLA_MTU") + 14 + 8:
                return False
        except (NetlinkError, IndexError, TypeError):
            return False
        packet = bytes(self.burst.head_views[i]) + dev.tail.raw + bytes(self.burst.views[i][:ln])
        self.frag_ident = (self.frag_ident + 1) & 0xFFFFFFFF
        pieces = frag.fragment(packet, mtu, self.frag_ident)
        try:
            for piece in pieces:
                dev.raw.sendto(piece, (str(dev.dst), 0))
        except OSError:
            return False
        return bool(pieces)
