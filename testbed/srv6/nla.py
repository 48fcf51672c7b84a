"""rtnetlink encodings pyroute2 0.9.7 lacks, as small NLA definitions on top of it.

What pyroute2 has and what is added here:

* link kinds: pyroute2 looks IFLA_INFO_DATA classes up in
  `ifinfmsg.ifinfo.data_map` and offers `register_link_kind()` to extend it.
  Importing this module registers kind "srl2" (IFLA_SRL2_SRH, raw SRH bytes),
  so dumps decode it and `ipr.link("add", kind="srl2", srh=b"...")` works too.
* seg6local: pyroute2's `rtmsg.seg6local_encap_info` stops at
  SEG6_LOCAL_VRFTABLE and maps any action it does not know, or any action given
  as a number, to UNSPEC.  `seg6local_encap` below is a complete replacement
  (numbers from testbed.srv6.seg6): actions by name or number (End.DT2U included),
  SEG6_LOCAL_COUNTERS (nested PACKETS/BYTES/ERRORS u64), FLAVORS (raw) and
  SEG6_LOCAL_L2DEV (u32 ifindex).  `rtmsg_srv6` is pyroute2's rtmsg with that
  class behind LWTUNNEL_ENCAP_SEG6_LOCAL; pyroute2's own classes are untouched.

Message builders return pyroute2 messages that `send()` puts on an IPRoute
socket (`Netns.ipr`); `to_bytes()` encodes one with a fixed sequence number and
port id, which is what tests/test_netlink_encoding.py pins.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Iterable, Optional

from pyroute2.netlink import (
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    nla,
)
from pyroute2.netlink.rtnl import RTM_GETROUTE, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from testbed.srv6 import seg6

NLM_F_CREATE_EXCL = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL  # 0x605

RT_TABLE_COMPAT = 252
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route add` uses
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1


# --------------------------------------------------------------------------
# srl2 link data
# --------------------------------------------------------------------------

class srl2_data(nla):
    """IFLA_INFO_DATA of kind "srl2": one attribute, the SRH as on the wire.

    A plain (name, type) map, dense from 0, because pyroute2's link request
    code walks it that way to map `srh=` to IFLA_SRL2_SRH."""

    prefix = "IFLA_SRL2_"
    nla_map = tuple(
        {
            seg6.IFLA_SRL2_UNSPEC: ("IFLA_SRL2_UNSPEC", "none"),
            seg6.IFLA_SRL2_SRH: ("IFLA_SRL2_SRH", "cdata"),
        }[i]
        for i in range(2)
    )


def register_srl2_kind() -> None:
    """Teach pyroute2 the "srl2" link kind (idempotent)."""
    if ifinfmsg.ifinfo.data_map.get(seg6.SRL2_KIND) is not srl2_data:
        ifinfmsg.ifinfo.register_link_kind(module={seg6.SRL2_KIND: srl2_data})


register_srl2_kind()


class sr6_data(nla):
    """IFLA_INFO_DATA of kind "sr6" (the series' second revision,
    testbed.revisions.sr6): the SRH, the post-encapsulation FIB table (u32)
    and the encapsulation mode (u8: 0 full, 1 reduced)."""

    prefix = "IFLA_SR6_"
    nla_map = (
        ("IFLA_SR6_UNSPEC", "none"),
        ("IFLA_SR6_SRH", "cdata"),
        ("IFLA_SR6_FIB_TABLE", "uint32"),
        ("IFLA_SR6_ENCAP_MODE", "uint8"),
    )


if ifinfmsg.ifinfo.data_map.get("sr6") is not sr6_data:
    ifinfmsg.ifinfo.register_link_kind(module={"sr6": sr6_data})


# --------------------------------------------------------------------------
# seg6local
# --------------------------------------------------------------------------

def action_number(action: str | int) -> int:
    if isinstance(action, int):
        return action
    try:
        return seg6.ACTIONS[action]
    except KeyError:
        raise ValueError(f"unknown seg6local action {action!r}") from None


class seg6local_encap(nla):
    """RTA_ENCAP of a seg6local route (LWTUNNEL_ENCAP_SEG6_LOCAL)."""

    prefix = "SEG6_LOCAL_"
    nla_map = (
        (seg6.SEG6_LOCAL_UNSPEC, "SEG6_LOCAL_UNSPEC", "none"),
        (seg6.SEG6_LOCAL_ACTION, "SEG6_LOCAL_ACTION", "action"),
        (seg6.SEG6_LOCAL_SRH, "SEG6_LOCAL_SRH", "cdata"),
        (seg6.SEG6_LOCAL_TABLE, "SEG6_LOCAL_TABLE", "uint32"),
        (seg6.SEG6_LOCAL_NH4, "SEG6_LOCAL_NH4", "ip4addr"),
        (seg6.SEG6_LOCAL_NH6, "SEG6_LOCAL_NH6", "ip6addr"),
        (seg6.SEG6_LOCAL_IIF, "SEG6_LOCAL_IIF", "uint32"),
        (seg6.SEG6_LOCAL_OIF, "SEG6_LOCAL_OIF", "uint32"),
        (seg6.SEG6_LOCAL_BPF, "SEG6_LOCAL_BPF", "hex"),
        (seg6.SEG6_LOCAL_VRFTABLE, "SEG6_LOCAL_VRFTABLE", "uint32"),
        (seg6.SEG6_LOCAL_COUNTERS, "SEG6_LOCAL_COUNTERS", "counters"),
        (seg6.SEG6_LOCAL_FLAVORS, "SEG6_LOCAL_FLAVORS", "hex"),
        (seg6.SEG6_LOCAL_L2DEV, "SEG6_LOCAL_L2DEV", "uint32"),
    )

    class action(nla):
        """u32 action; encodes a name ("End.DT2U") or a number."""

        fields = (("value", "I"),)

        def encode(self):
            self["value"] = action_number(self["value"])
            nla.encode(self)

    class counters(nla):
        """SEG6_LOCAL_COUNTERS.  On add, iproute2's `count` sends the three
        u64 set to 0 (the kernel requires all three); dumps add PAD."""

        nla_flags = NLA_F_NESTED
        nla_map = (
            (seg6.SEG6_LOCAL_CNT_UNSPEC, "SEG6_LOCAL_CNT_UNSPEC", "none"),
            (seg6.SEG6_LOCAL_CNT_PAD, "SEG6_LOCAL_CNT_PAD", "none"),
            (seg6.SEG6_LOCAL_CNT_PACKETS, "SEG6_LOCAL_CNT_PACKETS", "uint64"),
            (seg6.SEG6_LOCAL_CNT_BYTES, "SEG6_LOCAL_CNT_BYTES", "uint64"),
            (seg6.SEG6_LOCAL_CNT_ERRORS, "SEG6_LOCAL_CNT_ERRORS", "uint64"),
        )


class rtmsg_srv6(rtmsg):
    """pyroute2's rtmsg, with `seg6local_encap` for LWTUNNEL_ENCAP_SEG6_LOCAL."""

    encaps = {**rtmsg.encaps, seg6.LWTUNNEL_ENCAP_SEG6_LOCAL: seg6local_encap}


ZERO_COUNTERS = {
    "attrs": [
        ("SEG6_LOCAL_CNT_PACKETS", 0),
        ("SEG6_LOCAL_CNT_BYTES", 0),
        ("SEG6_LOCAL_CNT_ERRORS", 0),
    ]
}


def seg6local_attrs(
    action: str | int,
    *,
    nh6=None,
    oif: Optional[int] = None,
    l2dev: Optional[int] = None,
    table: Optional[int] = None,
    count: bool = False,
) -> list:
    """The SEG6_LOCAL_* attributes, in iproute2's order: ACTION, then the
    action's parameters, then COUNTERS."""
    attrs: list = [("SEG6_LOCAL_ACTION", action_number(action))]
    if table is not None:
        attrs.append(("SEG6_LOCAL_TABLE", table))
    if nh6 is not None:
        attrs.append(("SEG6_LOCAL_NH6", str(nh6)))
    if oif is not None:
        attrs.append(("SEG6_LOCAL_OIF", oif))
    if l2dev is not None:
        attrs.append(("SEG6_LOCAL_L2DEV", l2dev))
    if count:
        attrs.append(("SEG6_LOCAL_COUNTERS", ZERO_COUNTERS))
    return attrs


def seg6local_route(
    dst: str | ipaddress.IPv6Network,
    action: str | int,
    *,
    dev: int,
    nh6=None,
    oif: Optional[int] = None,
    l2dev: Optional[int] = None,
    table: Optional[int] = None,
    count: bool = False,
    proto: int = RTPROT_BOOT,
) -> rtmsg_srv6:
    """`ip -6 route add DST encap seg6local action A ... dev DEV [table T]`.

    `dev`, `oif` and `l2dev` are ifindexes; `table` None is main.  The route
    table goes in rtm_table (RT_TABLE_COMPAT above 255) and in RTA_TABLE."""
    net = ipaddress.IPv6Network(dst, strict=False)
    tid = RT_TABLE_MAIN if table is None else table
    msg = rtmsg_srv6()
    msg["family"] = socket.AF_INET6
    msg["dst_len"] = net.prefixlen
    msg["src_len"] = 0
    msg["tos"] = 0
    msg["table"] = tid if tid < 256 else RT_TABLE_COMPAT
    msg["proto"] = proto
    msg["scope"] = RT_SCOPE_UNIVERSE
    msg["type"] = RTN_UNICAST
    msg["flags"] = 0
    msg["attrs"] = [
        ("RTA_DST", str(net.network_address)),
        ("RTA_TABLE", tid),
        ("RTA_ENCAP_TYPE", seg6.LWTUNNEL_ENCAP_SEG6_LOCAL),
        ("RTA_ENCAP", {"attrs": seg6local_attrs(action, nh6=nh6, oif=oif, l2dev=l2dev, count=count)},
         NLA_F_NESTED),
        ("RTA_OIF", dev),
    ]
    return msg


def route_dump_request(family: int = socket.AF_INET6) -> rtmsg_srv6:
    msg = rtmsg_srv6()
    msg["family"] = family
    return msg


def decode_route(msg) -> rtmsg_srv6:
    """Re-decode a route message pyroute2 parsed with its own rtmsg (which
    leaves SEG6_LOCAL_COUNTERS / L2DEV as UNKNOWN) with `rtmsg_srv6`."""
    length = msg["header"]["length"]
    raw = bytes(msg.data[msg.offset: msg.offset + length])
    out = rtmsg_srv6(raw)
    out.decode()
    return out


def seg6local_of(route) -> Optional[dict]:
    """{'action': int, 'oif':.., 'l2dev':.., 'nh6':.., 'table':..,
    'counters': {'packets','bytes','errors'} or None} of a decoded
    `rtmsg_srv6` route, or None if it is not a seg6local route."""
    if route.get_attr("RTA_ENCAP_TYPE") != seg6.LWTUNNEL_ENCAP_SEG6_LOCAL:
        return None
    enc = route.get_attr("RTA_ENCAP")
    if enc is None:
        return None
    out: dict = {
        "action": enc.get_attr("SEG6_LOCAL_ACTION"),
        "oif": enc.get_attr("SEG6_LOCAL_OIF"),
        "l2dev": enc.get_attr("SEG6_LOCAL_L2DEV"),
        "nh6": enc.get_attr("SEG6_LOCAL_NH6"),
        "table": enc.get_attr("SEG6_LOCAL_TABLE"),
        "counters": None,
    }
    cnt = enc.get_attr("SEG6_LOCAL_COUNTERS")
    if cnt is not None:
        out["counters"] = {
            "packets": cnt.get_attr("SEG6_LOCAL_CNT_PACKETS") or 0,
            "bytes": cnt.get_attr("SEG6_LOCAL_CNT_BYTES") or 0,
            "errors": cnt.get_attr("SEG6_LOCAL_CNT_ERRORS") or 0,
        }
    return out


# --------------------------------------------------------------------------
# links
# --------------------------------------------------------------------------

def srl2_link(ifname: str, srh: bytes, *, mtu: Optional[int] = None,
              address: Optional[str] = None) -> ifinfmsg:
    """`ip link add IFNAME [address MAC] [mtu N] type srl2 segs ...` with the
    SRH already encoded (testbed.srv6.srh.encode_srh)."""
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["ifi_type"] = 0
    msg["index"] = 0
    msg["flags"] = 0
    msg["change"] = 0
    attrs: list = [("IFLA_IFNAME", ifname)]
    if address is not None:
        attrs.append(("IFLA_ADDRESS", address))
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    attrs.append(
        ("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", seg6.SRL2_KIND),
            ("IFLA_INFO_DATA", {"attrs": [("IFLA_SRL2_SRH", bytes(srh))]}),
        ]})
    )
    msg["attrs"] = attrs
    return msg


def l2_link(revision, ifname: str, srh: bytes, *, mode: Optional[str] = None, table: Optional[int] = None,
            mtu: Optional[int] = None, address: Optional[str] = None, index: int = 0) -> ifinfmsg:
    """The RTM_NEWLINK of the series' L2 device in `revision`
    (testbed.revisions): `ip link add IFNAME type KIND [mode M] segs ...
    [table N]`; with `index`, the same as a changelink of that device."""
    if revision.name == "srl2":
        if mode not in (None, "full") or table is not None:
            raise ValueError(f"revision srl2 has no {'table' if table is not None else 'mode ' + str(mode)}")
        msg = srl2_link(ifname, srh, mtu=mtu, address=address)
        msg["index"] = index
        return msg
    from testbed.revisions.sr6 import ENCAP_MODES

    data: list = [("IFLA_SR6_SRH", bytes(srh))]
    if table is not None:
        data.append(("IFLA_SR6_FIB_TABLE", table))
    if mode is not None or not index:  # required at creation; kept as it is on a change without it
        data.append(("IFLA_SR6_ENCAP_MODE", ENCAP_MODES[mode or revision.modes[0]]))
    msg = srl2_link(ifname, srh, mtu=mtu, address=address)
    msg["index"] = index
    msg["attrs"] = [a for a in msg["attrs"] if a[0] != "IFLA_LINKINFO"] + [
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", revision.kind), ("IFLA_INFO_DATA", {"attrs": data})]})]
    return msg


def l2_link_of(link) -> Optional[dict]:
    """The series' L2 device of an RTM_NEWLINK pyroute2 decoded: kind, srh,
    mode, table (None where the kind has none), or None for another kind."""
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    if kind not in (seg6.SRL2_KIND, "sr6"):
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    if data is None or not hasattr(data, "get_attr"):
        return {"kind": kind, "srh": None, "mode": None, "table": None}
    if kind == seg6.SRL2_KIND:
        return {"kind": kind, "srh": data.get_attr("IFLA_SRL2_SRH"), "mode": None, "table": None}
    from testbed.revisions.sr6 import ENCAP_MODES

    number = data.get_attr("IFLA_SR6_ENCAP_MODE")
    mode = next((m for m, n in ENCAP_MODES.items() if n == number), None if number is None else str(number))
    return {"kind": kind, "srh": data.get_attr("IFLA_SR6_SRH"), "mode": mode,
            "table": data.get_attr("IFLA_SR6_FIB_TABLE")}


def srl2_srh_of(link) -> Optional[bytes]:
    """IFLA_SRL2_SRH of an RTM_NEWLINK message pyroute2 decoded, or None."""
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != seg6.SRL2_KIND:
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    if data is None or not hasattr(data, "get_attr"):
        return None
    return data.get_attr("IFLA_SRL2_SRH")


# --------------------------------------------------------------------------
# encoding and sending
# --------------------------------------------------------------------------

def to_bytes(msg, msg_type: int, flags: int = NLM_F_CREATE_EXCL, seq: int = 1, pid: int = 0) -> bytes:
    """The exact request bytes (struct nlmsghdr included) for `msg`."""
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = pid
    msg.encode()
    return bytes(msg.data)


def send(ipr, msg, msg_type: int, flags: int = NLM_F_CREATE_EXCL):
    """Send one request on a pyroute2 IPRoute and wait for the ack.
    Raises pyroute2's NetlinkError (args: errno, extack text or strerror)."""
    return tuple(_nlm_request(ipr, msg, msg_type, flags))


def _nlm_request(ipr, msg, msg_type: int, flags: int):
    # pyroute2 0.9.7: the sync IPRoute.__init__ never sets
    # status['nlm_generator'], which IPRoute.nlm_request reads (KeyError).
    # Only nlm_request looks at it; default it to "return a tuple".
    status = ipr.asyncore.status
    if "nlm_generator" not in status:
        status["nlm_generator"] = False
    return ipr.nlm_request(msg, msg_type=msg_type, msg_flags=flags)


def add_srl2(ipr, ifname: str, srh: bytes, *, mtu=None, address=None):
    return send(ipr, srl2_link(ifname, srh, mtu=mtu, address=address), RTM_NEWLINK)


def add_l2(ipr, revision, ifname: str, srh: bytes, **kw):
    """Create the series' L2 device of `revision` (see l2_link)."""
    return send(ipr, l2_link(revision, ifname, srh, **kw), RTM_NEWLINK)


def change_l2(ipr, revision, index: int, ifname: str, srh: bytes, **kw):
    """changelink: a new SRH (and mode) for a live device (revisions that have it)."""
    return send(ipr, l2_link(revision, ifname, srh, index=index, **kw), RTM_NEWLINK,
                flags=NLM_F_REQUEST | NLM_F_ACK)


def add_seg6local(ipr, dst, action, *, dev: int, **kw):
    return send(ipr, seg6local_route(dst, action, dev=dev, **kw), RTM_NEWROUTE)


def dump_seg6local(ipr, family: int = socket.AF_INET6) -> Iterable[rtmsg_srv6]:
    """Every seg6local route of the netns (all tables), decoded with rtmsg_srv6."""
    for m in _nlm_request(ipr, route_dump_request(family), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP):
        if m["header"]["type"] != RTM_NEWROUTE:
            continue
        if m.get_attr("RTA_ENCAP_TYPE") != seg6.LWTUNNEL_ENCAP_SEG6_LOCAL:
            continue
        yield decode_route(m)


__all__ = [
    "srl2_data", "register_srl2_kind", "seg6local_encap", "rtmsg_srv6", "action_number",
    "seg6local_attrs", "seg6local_route", "srl2_link", "srl2_srh_of", "seg6local_of",
    "decode_route", "to_bytes", "send", "add_srl2", "add_seg6local", "dump_seg6local",
    "sr6_data", "l2_link", "l2_link_of", "add_l2", "change_l2",
    "NLM_F_CREATE_EXCL",
]
