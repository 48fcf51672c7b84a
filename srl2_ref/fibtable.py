"""The post-encapsulation lookup in one FIB table (sr6's `table`), and how
the reference's packets then follow it.

sr6 looks the route to the first SID up directly in the device's table,
bypassing the policy rules: a blackhole for the SID in main does not
matter; a table that does not exist is a failed lookup (the kernel's
fib6_get_table finds nothing: tx_errors, like a reject route); a table
without a route for it is ENETUNREACH (no route: tx_carrier_errors too).
RTM_GETROUTE cannot do that for IPv6 (it takes no table, it always goes
through the rules), so the reference dumps the table and picks the route
itself as fib6 does: the longest prefix, then the lowest metric; of a
multipath route, the first next hop (the kernel hashes the flow: which one
is not modelled).

The packets themselves leave through the node's stack (a raw socket),
whose lookup goes through the rules again: the device's socket is marked
and one rule per table (`fwmark MARK lookup TABLE`, priority 1, right after
the local table's rule) sends marked packets to that table.  The rule only
carries packets the reference's own lookup routed through that table;
everything else it drops before sending.  The rules are the reference's
and go with it.

A VRF's table (sr6 without `table`, the device or its bridge in a VRF: the
master chain's l3mdev table) needs neither: the route is asked for out of
the VRF (RTM_GETROUTE with the VRF as oif, through the VRF's l3mdev rule)
and the device's raw socket is bound to the VRF (srl2_ref.routecache).  A
kernel without VRF (CONFIG_NET_VRF) cannot build such a lab at all.
"""
from __future__ import annotations

import errno
import socket
from ipaddress import IPv6Address, IPv6Network
from typing import Optional

from pyroute2.netlink.exceptions import NetlinkError

RULE_PRIORITY = 1
MARK_BASE = 0x53520000  # "SR" + a per-table index: the reference's marks only
RTN_UNICAST, RTN_LOCAL = 1, 2
IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x08, 0x20, 0x40
RT_SCOPE_UNIVERSE = 0


def best(routes: list, dst: IPv6Address):
    """The route of `routes` (RTM_NEWROUTE messages of one table) fib6
    would choose for `dst`, or None."""
    found, key = None, None
    for r in routes:
        plen = r["dst_len"]
        prefix = r.get_attr("RTA_DST") or "::"
        try:
            if dst not in IPv6Network(f"{prefix}/{plen}", strict=False):
                continue
        except ValueError:
            continue
        k = (plen, -(r.get_attr("RTA_PRIORITY") or 0))
        if key is None or k > key:
            found, key = r, k
    return found


def next_hop(route) -> tuple[Optional[int], Optional[str]]:
    """(oif, gateway) of a route; of a multipath route, its first next hop."""
    oif, gw = route.get_attr("RTA_OIF"), route.get_attr("RTA_GATEWAY")
    hops = route.get_attr("RTA_MULTIPATH")
    if oif is None and hops:
        oif, gw = hops[0]["oif"], hops[0].get_attr("RTA_GATEWAY")
    return oif, gw


def _common_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 128 - x.bit_length()


def source_for(addrs: list, oif: Optional[int], dst: IPv6Address) -> Optional[IPv6Address]:
    """The source address for `dst` out of `oif` (RTM_NEWADDR messages of
    the netns), as ipv6_dev_get_saddr would pick it, in short: a usable
    (not tentative, not failed) global address, not deprecated rather than
    deprecated, on oif rather than elsewhere (RFC 6724 rules 3 and 5), then
    the longest common prefix with dst (rule 8)."""
    best_key, found = None, None
    for a in addrs:
        flags = a.get_attr("IFA_FLAGS") or a["flags"]
        if a["family"] != socket.AF_INET6 or a["scope"] != RT_SCOPE_UNIVERSE \
                or flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            continue
        addr = IPv6Address(a.get_attr("IFA_ADDRESS"))
        key = (not flags & IFA_F_DEPRECATED, a["index"] == oif, _common_prefix(addr.packed, dst.packed))
        if best_key is None or key > best_key:
            best_key, found = key, addr
    return found


def dump(ipr, table: int) -> list:
    """The IPv6 routes of `table` ([] when it has none: does not exist)."""
    return [r for r in ipr.route("dump", family=socket.AF_INET6, table=table)
            if (r.get_attr("RTA_TABLE") or r["table"]) == table]


def mark_of(index: int) -> int:
    return MARK_BASE + index


def add_rule(ipr, table: int, mark: int) -> None:
    try:
        ipr.rule("add", family=socket.AF_INET6, fwmark=mark, fwmask=0xFFFFFFFF, table=table,
                 priority=RULE_PRIORITY)
    except NetlinkError as e:
        if e.code != errno.EEXIST:  # left by a reference process that was killed
            raise


def del_rule(ipr, table: int, mark: int) -> None:
    try:
        ipr.rule("del", family=socket.AF_INET6, fwmark=mark, fwmask=0xFFFFFFFF, table=table,
                 priority=RULE_PRIORITY)
    except (NetlinkError, OSError):
        pass
