"""Route lookups towards a device's first SID, cached like the kernel's
dst_cache and invalidated by rtnetlink notifications; the netns's SRv6
tunnel source (`ip sr tunsrc`) read over generic netlink.  A device with
a post-encapsulation table (sr6) looks up in that table (srl2_ref.fibtable);
one without, whose master chain has a VRF (sr6: the device, or its bridge,
enslaved to one), looks up out of that VRF, and its packets are sent
bound to it (so that the kernel's own lookup for them goes the same way).

A failed lookup says why (`Route.cause`), since the revisions count them
differently: "no_route" (ENETUNREACH: nothing matches) or "reject"
(a reject route: blackhole EINVAL, unreachable EHOSTUNREACH, prohibit
EACCES; a table that does not exist)."""
from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import fibtable

# legacy rtnetlink group bits: 1 << (RTNLGRP_x - 1)
RTNLGRP_LINK, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE = 1, 9, 11, 19
GROUPS = sum(1 << (g - 1) for g in (RTNLGRP_LINK, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE))
RTN_UNICAST, RTN_LOCAL = 1, 2
NEGATIVE_TTL = 0.05  # an error result is kept this long at most (and dropped on any change)
ANY = IPv6Address("::")


@dataclass(frozen=True)
class Route:
    ok: bool
    oif: Optional[int] = None
    src: Optional[IPv6Address] = None
    hoplimit: Optional[int] = None
    error: str = ""
    expires: float = float("inf")
    cause: str = "no_route"  # of a failed lookup: no_route or reject
    vrf: str = ""  # the VRF (l3mdev) whose table the route was found through: the send follows it


def _failed(error: str, cause: str = "no_route") -> Route:
    return Route(False, error=error, expires=time.monotonic() + NEGATIVE_TTL, cause=cause)


def open_monitor() -> socket.socket:
    """A non-blocking rtnetlink socket subscribed to link, IPv6 address,
    route and rule changes (any message on it invalidates the cache)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                      socket.NETLINK_ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, GROUPS))
    return s


def drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(65536)
            n += 1
        except BlockingIOError:
            return n
        except OSError as e:  # ENOBUFS: we missed some; invalidation covers it
            if e.errno != errno.ENOBUFS:
                raise
            n += 1


class Seg6Genl:
    """SEG6_CMD_GET_TUNSRC over NETLINK_GENERIC (family "SEG6")."""

    GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 0x10, 3, 1, 2
    SEG6_CMD_GET_TUNSRC, SEG6_ATTR_DST = 4, 1

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 16)  # NETLINK_GENERIC
        self.sock.settimeout(1.0)
        self.sock.bind((0, 0))
        self.seq = 0
        self.family = None

    def _request(self, ftype: int, cmd: int, attrs: bytes) -> list[tuple[int, bytes]]:
        self.seq += 1
        body = struct.pack("=BBH", cmd, 1, 0) + attrs
        self.sock.send(struct.pack("=IHHII", 16 + len(body), ftype, 1, self.seq, 0) + body)  # NLM_F_REQUEST
        data = self.sock.recv(65536)
        length, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, 0)
        if mtype == 2:  # NLMSG_ERROR
            err = struct.unpack_from("=i", data, 16)[0]
            raise OSError(-err, os.strerror(-err))
        out, off = [], 20
        while off + 4 <= length:
            alen, atype = struct.unpack_from("=HH", data, off)
            if alen < 4:
                break
            out.append((atype & 0x3FFF, data[off + 4:off + alen]))
            off += (alen + 3) & ~3
        return out

    def tunsrc(self) -> Optional[IPv6Address]:
        """The tunnel source, or None when unset (::) or seg6 is unavailable."""
        try:
            if self.family is None:
                name = b"SEG6\0"
                attr = struct.pack("=HH", 4 + len(name), self.CTRL_ATTR_FAMILY_NAME) + name + b"\0" * (-len(name) % 4)
                for atype, val in self._request(self.GENL_ID_CTRL, self.CTRL_CMD_GETFAMILY, attr):
                    if atype == self.CTRL_ATTR_FAMILY_ID:
                        self.family = struct.unpack_from("=H", val)[0]
            if self.family is None:
                return None
            for atype, val in self._request(self.family, self.SEG6_CMD_GET_TUNSRC, b""):
                if atype == self.SEG6_ATTR_DST and len(val) >= 16:
                    a = IPv6Address(val[:16])
                    return None if a == ANY else a
        except (OSError, struct.error):
            return None
        return None

    def close(self) -> None:
        self.sock.close()


def _device_hoplimit(oif: int) -> Optional[int]:
    """ip6_dst_hoplimit for a route without a hoplimit metric: the hop_limit
    of the route's device (net.ipv6.conf.DEV.hop_limit), CONFORMANCE H5."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{socket.if_indextoname(oif)}/hop_limit") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _select_source(dst: IPv6Address, oif: Optional[int]) -> Optional[IPv6Address]:
    """Source address selection by connect() of a UDP socket (never sends)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.connect((str(dst), 9, 0, 0))
            return IPv6Address(s.getsockname()[0].split("%")[0])
    except OSError:
        return None


class RouteCache:
    def __init__(self, ipr: IPRoute, genl: Seg6Genl):
        self.ipr = ipr
        self.genl = genl
        self.cache: dict[tuple[IPv6Address, Optional[int], Optional[int]], Route] = {}
        self.vrfs: dict[int, Optional[tuple[int, str]]] = {}  # device -> the VRF of its master chain
        self.lookups = 0
        self.tunsrc: Optional[IPv6Address] = None

    def invalidate(self) -> None:
        self.cache.clear()
        self.vrfs.clear()  # a link change may be a new master (sr6 resets its route cache then)

    def vrf_of(self, ifindex: int) -> Optional[tuple[int, str]]:
        """(index, name) of the VRF of a device's master chain (its master,
        the master's master, ...: an sr6 port of a bridge in a VRF is in that
        VRF), or None."""
        if ifindex in self.vrfs:
            return self.vrfs[ifindex]
        found, index = None, ifindex
        try:
            for _ in range(8):  # the kernel nests uppers a few levels at most
                (link,) = self.ipr.get_links(index)
                info = link.get_attr("IFLA_LINKINFO")
                if index != ifindex and info is not None and info.get_attr("IFLA_INFO_KIND") == "vrf":
                    found = (index, link.get_attr("IFLA_IFNAME"))
                    break
                index = link.get_attr("IFLA_MASTER") or 0
                if not index:
                    break
        except (NetlinkError, OSError, ValueError):
            found = None
        self.vrfs[ifindex] = found
        return found

    def get(self, dst: IPv6Address, table: Optional[int] = None, ifindex: int = 0) -> Route:
        """The route to dst: in `table` only when given (sr6's table), else
        through the netns's rules, in the VRF of device `ifindex`'s master
        chain when it has one (sr6: the l3mdev's table)."""
        # Linux reads the tunnel source per packet and `ip sr tunsrc set`
        # sends no notification: a change must reach the next frame.
        tunsrc = self.genl.tunsrc()
        if tunsrc != self.tunsrc:
            self.tunsrc = tunsrc
            self.cache.clear()
        vrf = self.vrf_of(ifindex) if table is None and ifindex else None
        key = (dst, table, vrf[0] if vrf else None)
        r = self.cache.get(key)
        if r is not None and (r.ok or r.expires > time.monotonic()):
            return r
        r = self.lookup(dst, vrf) if table is None else self.lookup_table(dst, table)
        self.cache[key] = r
        return r

    def lookup(self, dst: IPv6Address, vrf: Optional[tuple[int, str]] = None) -> Route:
        """RTM_GETROUTE for dst (policy rules apply; from tunsrc when set;
        out of the VRF `vrf` (index, name) when given: its l3mdev rule
        leads to its table, as `ip route get DST vrf NAME`)."""
        self.lookups += 1
        tunsrc = self.genl.tunsrc()
        kw = {"dst": str(dst), "family": socket.AF_INET6}
        if tunsrc is not None:
            kw["src"] = str(tunsrc)
        if vrf is not None:
            kw["oif"] = vrf[0]
        try:
            msgs = self.ipr.route("get", **kw)
        except NetlinkError as e:
            return _failed(f"no route to {dst}: {os.strerror(e.code)}",
                           "no_route" if e.code == errno.ENETUNREACH else "reject")
        except OSError as e:
            return _failed(f"route lookup for {dst} failed: {e}", "reject")
        if not msgs:
            return _failed(f"no route to {dst}")
        m = msgs[0]
        if m["type"] not in (RTN_UNICAST, RTN_LOCAL):
            return _failed(f"route to {dst} has type {m['type']}", "reject")
        oif = m.get_attr("RTA_OIF")
        hl = None
        metrics = m.get_attr("RTA_METRICS")
        if metrics is not None:
            hl = metrics.get_attr("RTAX_HOPLIMIT")
        src = tunsrc
        if src is None:
            pref = m.get_attr("RTA_PREFSRC")
            src = IPv6Address(pref) if pref else _select_source(dst, oif)
        if not hl and oif:
            hl = _device_hoplimit(oif)
        return Route(True, oif=oif, src=src or ANY, hoplimit=hl or None, vrf=vrf[1] if vrf else "")

    def lookup_table(self, dst: IPv6Address, table: int) -> Route:
        """The route to dst in `table` alone (srl2_ref.fibtable)."""
        self.lookups += 1
        try:
            routes = fibtable.dump(self.ipr, table)
        except (NetlinkError, OSError) as e:
            return _failed(f"route lookup for {dst} in table {table} failed: {e}", "reject")
        if not routes:
            return _failed(f"table {table} does not exist", "reject")
        m = fibtable.best(routes, dst)
        if m is None:
            return _failed(f"no route to {dst} in table {table}")
        if m["type"] not in (RTN_UNICAST, RTN_LOCAL):
            return _failed(f"route to {dst} in table {table} has type {m['type']}", "reject")
        oif, _gateway = fibtable.next_hop(m)
        hl = None
        metrics = m.get_attr("RTA_METRICS")
        if metrics is not None:
            hl = metrics.get_attr("RTAX_HOPLIMIT")
        src = self.genl.tunsrc()
        if src is None:
            pref = m.get_attr("RTA_PREFSRC")
            try:
                src = IPv6Address(pref) if pref else fibtable.source_for(
                    self.ipr.get_addr(family=socket.AF_INET6), oif, dst)
            except (NetlinkError, OSError):
                src = None
        if not hl and oif:
            hl = _device_hoplimit(oif)
        return Route(True, oif=oif, src=src or ANY, hoplimit=hl or None)
