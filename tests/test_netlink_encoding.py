"""Exact rtnetlink request bytes of testbed.srv6.nla, computed by hand field by field.

No sockets, no root.  Netlink headers and attribute headers are in host byte
order ("=" below); IPv6 addresses and the SRH tag are in network order.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from testbed.srv6 import nla, seg6
from pyroute2.netlink.rtnl import RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLA_F_NESTED = 0x8000
SEQ, PID = 0x01020304, 0x0A0B0C0D


def ip6(a: str) -> bytes:
    return ipaddress.IPv6Address(a).packed


def nlmsghdr(length: int, type_: int) -> bytes:
    # struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }
    return struct.pack("=IHHII", length, type_, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, SEQ, PID)


def attr(type_: int, payload: bytes) -> bytes:
    # struct nlattr { u16 len; u16 type; } + payload, padded to 4 (len excludes padding)
    length = 4 + len(payload)
    return struct.pack("=HH", length, type_) + payload + b"\0" * (-length % 4)


# ---------------------------------------------------------------------------
# (a) ip link add srl2-0 type srl2 segs fc00::a,fc00::b
# ---------------------------------------------------------------------------

def test_srl2_newlink_bytes():
    srh = nla_srh = bytes([
        143,  # nexthdr: Ethernet
        4,    # hdrlen: 2n, n = 2 (8-octet units after the first 8)
        4,    # routing type 4 (SRH)
        1,    # segments_left = n - 1
        1,    # last entry (first_segment) = n - 1
        0,    # flags
        0, 0,  # tag (be16)
    ]) + ip6("fc00::b") + ip6("fc00::a")  # segments reversed: a is visited first, stored last
    assert len(nla_srh) == 8 + 2 * 16

    ifinfomsg = struct.pack(
        "=BxHiII",
        socket.AF_UNSPEC,  # ifi_family (+ 1 pad byte)
        0,                 # ifi_type
        0,                 # ifi_index
        0,                 # ifi_flags
        0,                 # ifi_change
    )
    assert len(ifinfomsg) == 16
    ifname = struct.pack("=HH", 11, 3) + b"srl2-0\0" + b"\0"      # IFLA_IFNAME=3, len 4+7, pad 1
    kind = struct.pack("=HH", 9, 1) + b"srl2\0" + b"\0\0\0"        # IFLA_INFO_KIND=1, len 4+5, pad 3
    srh_attr = struct.pack("=HH", 44, seg6.IFLA_SRL2_SRH) + srh     # IFLA_SRL2_SRH=1, len 4+40
    info_data = struct.pack("=HH", 48, 2) + srh_attr                # IFLA_INFO_DATA=2, len 4+44
    linkinfo = struct.pack("=HH", 64, 18) + kind + info_data        # IFLA_LINKINFO=18, len 4+12+48
    body = ifinfomsg + ifname + linkinfo
    expected = nlmsghdr(16 + len(body), RTM_NEWLINK) + body
    assert len(expected) == 108
    assert RTM_NEWLINK == 16

    # the SRH as the project's encoder makes it
    from testbed.srv6.srh import encode_srh

    assert encode_srh(["fc00::a", "fc00::b"]) == srh

    msg = nla.srl2_link("srl2-0", srh)
    assert nla.to_bytes(msg, RTM_NEWLINK, seq=SEQ, pid=PID) == expected

    # and it decodes back through pyroute2 with the registered "srl2" kind
    back = ifinfmsg(expected)
    back.decode()
    assert back.get_attr("IFLA_IFNAME") == "srl2-0"
    assert nla.srl2_srh_of(back) == srh


def test_srl2_newlink_with_mac_and_mtu():
    srh = bytes([143, 2, 4, 0, 0, 0, 0, 0]) + ip6("fc00::a")
    got = nla.to_bytes(nla.srl2_link("s", srh, mtu=1422, address="02:00:00:00:00:01"),
                       RTM_NEWLINK, seq=SEQ, pid=PID)
    body = (
        struct.pack("=BxHiII", 0, 0, 0, 0, 0)
        + struct.pack("=HH", 6, 3) + b"s\0" + b"\0\0"                       # IFLA_IFNAME
        + struct.pack("=HH", 10, 1) + bytes.fromhex("020000000001") + b"\0\0"  # IFLA_ADDRESS=1
        + struct.pack("=HHI", 8, 4, 1422)                                   # IFLA_MTU=4
        + struct.pack("=HH", 4 + 12 + 4 + 4 + 24, 18)                       # IFLA_LINKINFO
        + struct.pack("=HH", 9, 1) + b"srl2\0\0\0\0"
        + struct.pack("=HH", 4 + 4 + 24, 2)
        + struct.pack("=HH", 4 + 24, 1) + srh
    )
    assert got == nlmsghdr(16 + len(body), RTM_NEWLINK) + body


# ---------------------------------------------------------------------------
# (b) ip -6 route add fcff:1::d20/128 encap seg6local action End.DT2U l2dev <7> dev <3> table 90
# ---------------------------------------------------------------------------

def rtmsg_hdr(table: int, dst_len: int = 128) -> bytes:
    return struct.pack(
        "=BBBBBBBBI",
        socket.AF_INET6,  # rtm_family
        dst_len,          # rtm_dst_len
        0,                # rtm_src_len
        0,                # rtm_tos
        table,            # rtm_table (RT_TABLE_COMPAT=252 above 255)
        3,                # rtm_protocol: RTPROT_BOOT, as `ip route add`
        0,                # rtm_scope: RT_SCOPE_UNIVERSE
        1,                # rtm_type: RTN_UNICAST
        0,                # rtm_flags
    )


def test_end_dt2u_newroute_bytes():
    assert seg6.SEG6_LOCAL_ACTION_END_DT2U == 17 and seg6.SEG6_LOCAL_L2DEV == 12
    encap = (
        struct.pack("=HHI", 8, 1, 17)   # SEG6_LOCAL_ACTION=1: End.DT2U=17
        + struct.pack("=HHI", 8, 12, 7)  # SEG6_LOCAL_L2DEV=12: ifindex 7
    )
    body = (
        rtmsg_hdr(90)
        + struct.pack("=HH", 20, 1) + ip6("fcff:1::d20")              # RTA_DST=1
        + struct.pack("=HHI", 8, 15, 90)                               # RTA_TABLE=15
        + struct.pack("=HHH", 6, 21, 7) + b"\0\0"                      # RTA_ENCAP_TYPE=21: SEG6_LOCAL=7
        + struct.pack("=HH", 4 + len(encap), 22 | NLA_F_NESTED) + encap  # RTA_ENCAP=22
        + struct.pack("=HHI", 8, 4, 3)                                 # RTA_OIF=4: dev ifindex 3
    )
    expected = nlmsghdr(16 + len(body), RTM_NEWROUTE) + body
    assert len(expected) == 92 and RTM_NEWROUTE == 24

    msg = nla.seg6local_route("fcff:1::d20/128", "End.DT2U", l2dev=7, dev=3, table=90)
    assert nla.to_bytes(msg, RTM_NEWROUTE, seq=SEQ, pid=PID) == expected
    # the action may be given by number too
    msg = nla.seg6local_route(ipaddress.IPv6Network("fcff:1::d20/128"), 17, l2dev=7, dev=3, table=90)
    assert nla.to_bytes(msg, RTM_NEWROUTE, seq=SEQ, pid=PID) == expected

    back = nla.rtmsg_srv6(expected)
    back.decode()
    assert back.get_attr("RTA_DST") == "fcff:1::d20"
    info = nla.seg6local_of(back)
    assert info["action"] == 17 and info["l2dev"] == 7 and info["counters"] is None


# ---------------------------------------------------------------------------
# (c) End.DX2 oif <5> dev <5> count; End.X; End in a table above 255
# ---------------------------------------------------------------------------

def zero_counters() -> bytes:
    # SEG6_LOCAL_COUNTERS=10 (nested): PACKETS=2, BYTES=3, ERRORS=4 as u64 0, like iproute2's `count`
    inner = b"".join(struct.pack("=HHQ", 12, t, 0) for t in (2, 3, 4))
    return struct.pack("=HH", 4 + len(inner), 10 | NLA_F_NESTED) + inner


def test_end_dx2_count_newroute_bytes():
    encap = (
        struct.pack("=HHI", 8, 1, 4)   # SEG6_LOCAL_ACTION: End.DX2=4
        + struct.pack("=HHI", 8, 7, 5)  # SEG6_LOCAL_OIF=7: ifindex 5
        + zero_counters()
    )
    assert len(encap) == 56
    body = (
        rtmsg_hdr(254)                                                 # main table
        + struct.pack("=HH", 20, 1) + ip6("fcff:1::d2")
        + struct.pack("=HHI", 8, 15, 254)
        + struct.pack("=HHH", 6, 21, 7) + b"\0\0"
        + struct.pack("=HH", 4 + len(encap), 22 | NLA_F_NESTED) + encap
        + struct.pack("=HHI", 8, 4, 5)
    )
    expected = nlmsghdr(16 + len(body), RTM_NEWROUTE) + body
    msg = nla.seg6local_route("fcff:1::d2/128", "End.DX2", oif=5, dev=5, count=True)
    assert nla.to_bytes(msg, RTM_NEWROUTE, seq=SEQ, pid=PID) == expected

    back = nla.rtmsg_srv6(expected)
    back.decode()
    assert nla.seg6local_of(back) == {
        "action": 4, "oif": 5, "l2dev": None, "nh6": None, "table": None,
        "counters": {"packets": 0, "bytes": 0, "errors": 0},
    }


def test_end_x_and_big_table_bytes():
    encap = struct.pack("=HHI", 8, 1, 2) + struct.pack("=HH", 20, 5) + ip6("fc00::1")  # End.X=2, NH6=5
    body = (
        rtmsg_hdr(252, dst_len=64)                                     # table 1000: RT_TABLE_COMPAT
        + struct.pack("=HH", 20, 1) + ip6("fcff:2::")
        + struct.pack("=HHI", 8, 15, 1000)
        + struct.pack("=HHH", 6, 21, 7) + b"\0\0"
        + struct.pack("=HH", 4 + len(encap), 22 | NLA_F_NESTED) + encap
        + struct.pack("=HHI", 8, 4, 1)
    )
    msg = nla.seg6local_route("fcff:2::/64", "End.X", nh6=ipaddress.IPv6Address("fc00::1"), dev=1, table=1000)
    assert nla.to_bytes(msg, RTM_NEWROUTE, seq=SEQ, pid=PID) == nlmsghdr(16 + len(body), RTM_NEWROUTE) + body


def test_plain_end_bytes():
    encap = struct.pack("=HHI", 8, 1, 1)
    body = (
        rtmsg_hdr(254)
        + struct.pack("=HH", 20, 1) + ip6("fcff::e")
        + struct.pack("=HHI", 8, 15, 254)
        + struct.pack("=HHH", 6, 21, 7) + b"\0\0"
        + struct.pack("=HH", 12, 22 | NLA_F_NESTED) + encap  # 4 + ACTION (8)
        + struct.pack("=HHI", 8, 4, 1)
    )
    msg = nla.seg6local_route("fcff::e/128", "End", dev=1)
    assert nla.to_bytes(msg, RTM_NEWROUTE, seq=SEQ, pid=PID) == nlmsghdr(16 + len(body), RTM_NEWROUTE) + body


# ---------------------------------------------------------------------------
# decoding what the kernel sends back, and the extension's footprint
# ---------------------------------------------------------------------------

def test_decode_counters_dump_with_pad():
    # A dump puts a PAD (type 1) before each u64 so the value is 8-aligned.
    inner = b"".join(
        struct.pack("=HH", 4, 1) + struct.pack("=HHQ", 12, t, v)
        for t, v in ((2, 3), (3, 294), (4, 1))
    )
    encap = struct.pack("=HHI", 8, 1, 4) + struct.pack("=HHI", 8, 7, 9) + struct.pack("=HH", 4 + len(inner), 10) + inner
    body = (
        rtmsg_hdr(254)
        + struct.pack("=HH", 20, 1) + ip6("fcff::d2")
        + struct.pack("=HHH", 6, 21, 7) + b"\0\0"
        + struct.pack("=HH", 4 + len(encap), 22) + encap
    )
    raw = nlmsghdr(16 + len(body), RTM_NEWROUTE) + body
    back = nla.rtmsg_srv6(raw)
    back.decode()
    assert nla.seg6local_of(back)["counters"] == {"packets": 3, "bytes": 294, "errors": 1}


def test_action_numbers_live_in_seg6():
    assert nla.action_number("End.DT2U") == seg6.SEG6_LOCAL_ACTION_END_DT2U
    assert nla.action_number("End.DX2") == 4 and nla.action_number(4) == 4
    assert seg6.ACTION_NAMES[17] == "End.DT2U"
    with pytest.raises(ValueError):
        nla.action_number("End.Nope")


def test_pyroute2_left_alone():
    """The extension subclasses; pyroute2's own seg6local class is unchanged
    and "srl2" is added through its link-kind registry."""
    names = [n for n, *_ in rtmsg.seg6local_encap_info.nla_map]
    assert "SEG6_LOCAL_L2DEV" not in names and "SEG6_LOCAL_COUNTERS" not in names
    assert rtmsg.encaps[seg6.LWTUNNEL_ENCAP_SEG6_LOCAL] is rtmsg.seg6local_encap_info
    assert nla.rtmsg_srv6.encaps[seg6.LWTUNNEL_ENCAP_SEG6_LOCAL] is nla.seg6local_encap
    assert ifinfmsg.ifinfo.data_map["srl2"] is nla.srl2_data


def test_seg6local_encap_matches_iproute2():
    """What iproute2 6.1 sends for
    `ip -6 route add fcff::d2/128 encap seg6local action End.DX2 oif v0 count dev v0 table 90`
    (v0 = ifindex 3), captured once with `strace -e sendmsg -xx`: the same
    rtmsg and the same RTA_DST and RTA_ENCAP bytes.  iproute2 orders
    RTA_ENCAP before RTA_ENCAP_TYPE and sends no RTA_TABLE below 256; the
    kernel reads attributes by type, so neither matters."""
    iproute2_rtmsg = bytes.fromhex("0a800000" "5a030001" "00000000")  # inet6 /128, table 90, boot, unicast
    iproute2_dst = bytes.fromhex("14000100" "fcff00000000000000000000000000d2")
    iproute2_encap = bytes.fromhex(
        "3c001680"                                 # RTA_ENCAP, nested, len 60
        "08000100" "04000000"                      # ACTION End.DX2
        "08000700" "03000000"                      # OIF 3
        "28000a80"                                 # COUNTERS, nested, len 40
        "0c000200" "0000000000000000"              # PACKETS 0
        "0c000300" "0000000000000000"              # BYTES 0
        "0c000400" "0000000000000000"              # ERRORS 0
    )
    ours = nla.to_bytes(nla.seg6local_route("fcff::d2/128", "End.DX2", oif=3, dev=3, count=True, table=90),
                        RTM_NEWROUTE, seq=SEQ, pid=PID)
    assert ours[16:28] == iproute2_rtmsg
    assert iproute2_dst in ours[28:]
    assert iproute2_encap in ours[28:]
