"""What a step sends, as bytes: the raw rtnetlink requests of srl2 steps
(through testbed.srv6.nla, with SRHs no well-behaved encoder would make)
and the frames of packet steps.  Pure: the executor sends these and the
reproducer embeds the same bytes as hex."""
from __future__ import annotations

from ipaddress import IPv6Address

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWLINK

from testbed.fuzz import frames
from testbed.fuzz.lab import HS_MAC, RT_UP_MAC, UP_MAC
from testbed.fuzz.steps import Step
from testbed.srv6 import nla
from testbed.srv6.srh import MAX_SEGMENTS

IFF_UP = 1
RT_ADDRESS = IPv6Address("fc00:1::1")
NOT_LOCAL = IPv6Address("fc00:9::1")


def mac_of(n) -> str | None:
    """A step's MAC parameter (int or None) as text."""
    if n is None:
        return None
    return ":".join(f"{x:02x}" for x in int(n).to_bytes(6, "big"))


def u32(n: int | None) -> int | None:
    """An MTU as the u32 IFLA_MTU carries it: "around the computed MTU" of a
    long segment list is below zero, i.e. the kernel's own wrapped value."""
    return None if n is None else n & 0xFFFFFFFF


def srl2_message(step: Step) -> tuple[object, int, int]:
    """(pyroute2 message, type, flags) of srl2_add / srl2_change."""
    a = step.args
    srh = frames.device_srh(a["segs"], a.get("edit"))
    if step.op == "srl2_add":
        msg = nla.srl2_link(a["name"], srh, mtu=u32(a.get("mtu")), address=mac_of(a.get("mac")))
        if a.get("up"):  # `ip link add NAME up type srl2 ...`: created administratively up
            msg["flags"] = msg["change"] = IFF_UP
        return msg, RTM_NEWLINK, nla.NLM_F_CREATE_EXCL
    msg = nla.srl2_link(a["name"], srh)
    return msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK


def srl2_bytes(step: Step) -> bytes:
    msg, mtype, flags = srl2_message(step)
    return nla.to_bytes(msg, mtype, flags)


# iproute2 builds `ip link add` in a 1 KiB buffer ("addattr_l ERROR: message
# exceeded bound of 1024"): about 58 segments at most.
IP_REQUEST_MAX = 1024


def plain_srl2(step: Step) -> bool:
    """True when `ip link add ... type srl2 segs ...` says the same as the raw
    request (and iproute2 can hold it)."""
    a = step.args
    return (step.op == "srl2_add" and not a.get("edit") and 1 <= a["segs"] <= MAX_SEGMENTS
            and len(srl2_bytes(step)) <= IP_REQUEST_MAX)


def srv6_dst(k: int) -> IPv6Address:
    """Destination of an srv6 step: SID k (1..3), rt's own address (0), or
    an address nobody has (4)."""
    if k == 0:
        return RT_ADDRESS
    if k >= 4:
        return NOT_LOCAL
    return frames.sid(k)


def inner_of(a: dict) -> bytes:
    return frames.inner_frame(a.get("kind", "ipv4"), a.get("size", 64), a.get("vlans", 0))


def srv6_frames(step: Step) -> list[bytes]:
    """The frames node `up` sends for an srv6 step (one packet, `count` times)."""
    a = step.args
    one = frames.srv6_frames(RT_UP_MAC, UP_MAC, srv6_dst(a["k"]), nsegs=a.get("nsegs", 1),
                             sl=a.get("sl"), edit=a.get("edit"), inner=inner_of(a),
                             nested=a.get("nested", False), reduced=a.get("reduced", False),
                             frags=a.get("frags", 0), cut=a.get("cut"))
    return one * max(1, a.get("count", 1))


def l2_frames(step: Step) -> list[bytes]:
    """The frames node `hs` sends into the bridge for an l2 / delete_flowing step."""
    a = step.args
    frame = frames.inner_frame(a.get("kind", "bcast"), a.get("size", 64), a.get("vlans", 0))
    frame = frame[:6] + HS_MAC + frame[12:] if len(frame) >= 12 else frame
    return [frame] * max(1, a.get("count", 1))


__all__ = ["srl2_message", "srl2_bytes", "plain_srl2", "srv6_frames", "l2_frames", "srv6_dst", "mac_of"]
