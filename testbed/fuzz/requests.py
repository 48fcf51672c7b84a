"""What a step sends, as bytes: the raw rtnetlink requests of srl2 steps
for the revision under test (through testbed.srv6.nla, with SRHs no
well-behaved encoder would make) and the frames of packet steps.  Pure:
the executor sends these and the reproducer embeds the same bytes as hex."""
from __future__ import annotations

from ipaddress import IPv6Address

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWLINK

from testbed import revisions
from testbed.fuzz import frames, mix
from testbed.fuzz.lab import HS_MAC, RT_UP_MAC, UP_MAC
from testbed.fuzz.steps import Step
from testbed.revisions import Revision
from testbed.srv6 import nla
from testbed.srv6.srh import MAX_SEGMENTS

IFF_UP = 1
FIRST = revisions.get(revisions.NAMES[0])  # what a step means without a revision: the first one's device
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


def srl2_message(step: Step, revision: Revision = FIRST) -> tuple[object, int, int]:
    """(pyroute2 message, type, flags) of srl2_add / srl2_change for a
    device of `revision`: its link kind and attributes (nla.l2_link); a
    change goes by name (the same bytes on every replay)."""
    a = step.args
    msg = l2_message(revision, a["name"], a["segs"], a.get("edit"), mode=a.get("mode"), table=a.get("table"),
                     hmac=a.get("hmac"), mtu=u32(a.get("mtu")) if step.op == "srl2_add" else None,
                     address=mac_of(a.get("mac")) if step.op == "srl2_add" else None)
    if step.op == "srl2_add":
        if a.get("up"):  # `ip link add NAME up type srl2 ...`: created administratively up
            msg["flags"] = msg["change"] = IFF_UP
        return msg, RTM_NEWLINK, nla.NLM_F_CREATE_EXCL
    return msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK


def l2_message(revision: Revision, name: str, segs: int, edit=None, *, mode: str | None = None,
               table: int | None = None, hmac: int | None = None, mtu: int | None = None,
               address: str | None = None):
    """RTM_NEWLINK of a fuzzed device of `revision`.  mode None: no mode
    attribute at all (sr6 refuses that at creation, and keeps the device's
    mode on a change), which nla.l2_link never makes by itself."""
    if hmac is not None and not revision.hmac:
        raise ValueError(f"revision {revision.name} has no HMAC")
    srh = frames.device_srh(segs, edit, hmac)
    if not mix.has_modes(revision):
        return nla.l2_link(revision, name, srh, mode=mode, table=table, mtu=mtu, address=address)
    msg = nla.l2_link(revision, name, srh, mode=mode or revision.modes[0], table=table, mtu=mtu, address=address)
    if mode is None:
        drop = f"IFLA_{revision.kind.upper()}_{mix.MODE_ATTR}"
        info = dict(msg["attrs"])["IFLA_LINKINFO"]
        data = dict(info["attrs"])["IFLA_INFO_DATA"]
        data["attrs"] = [x for x in data["attrs"] if x[0] != drop]
    return msg


def srl2_bytes(step: Step, revision: Revision = FIRST) -> bytes:
    msg, mtype, flags = srl2_message(step, revision)
    return nla.to_bytes(msg, mtype, flags)


def swap_messages(step: Step, revision: Revision) -> list:
    """The changelinks of a change_flowing step: to (segs, mode) and
    (segs2, mode2) alternately, `swaps` in all."""
    a = step.args
    ends = [l2_message(revision, a["name"], a["segs"], mode=a.get("mode")),
            l2_message(revision, a["name"], a["segs2"], mode=a.get("mode2"))]
    return [ends[i % 2] for i in range(max(1, a.get("swaps", 1)))]


def swap_bytes(step: Step, revision: Revision) -> list[bytes]:
    return [nla.to_bytes(m, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK) for m in swap_messages(step, revision)[:2]]


# iproute2 builds `ip link add` in a 1 KiB buffer ("addattr_l ERROR: message
# exceeded bound of 1024"): about 58 segments at most (sr6: 59, 56 with an HMAC TLV).
IP_REQUEST_MAX = 1024


def plain_srl2(step: Step, revision: Revision = FIRST) -> bool:
    """True when `ip link add|set ... type KIND [mode M] segs ...` says the
    same as the raw request (and iproute2 can hold it).  Not: an SRH edit;
    a count outside 1..127; no mode at creation (iproute2 insists on one);
    a change of a revision without changelink (the first revision's
    change requests stay raw, as they always were)."""
    a = step.args
    if step.op == "srl2_change" and not revision.changelink:
        return False
    if step.op == "srl2_add" and mix.has_modes(revision) and a.get("mode") is None:
        return False
    return (not a.get("edit") and 1 <= a["segs"] <= MAX_SEGMENTS
            and len(srl2_bytes(step, revision)) <= IP_REQUEST_MAX)


def plain_swap(step: Step, revision: Revision) -> bool:
    """True when both ends of a change_flowing step can be said with `ip link set`."""
    a = step.args
    return all(1 <= n <= MAX_SEGMENTS for n in (a["segs"], a["segs2"])) and \
        max(len(b) for b in swap_bytes(step, revision)) <= IP_REQUEST_MAX


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
                             frags=a.get("frags", 0), cut=a.get("cut"), red=a.get("red"))
    return one * max(1, a.get("count", 1))


def l2_frames(step: Step) -> list[bytes]:
    """The frames node `hs` sends into the bridge for an l2 / delete_flowing step."""
    a = step.args
    frame = frames.inner_frame(a.get("kind", "bcast"), a.get("size", 64), a.get("vlans", 0))
    frame = frame[:6] + HS_MAC + frame[12:] if len(frame) >= 12 else frame
    return [frame] * max(1, a.get("count", 1))


def flood_frames() -> list[bytes]:
    """What the "flowing" steps send over and over while they change something."""
    return l2_frames(Step("l2", {"kind": "bcast", "size": 200, "count": 32}))


__all__ = ["srl2_message", "srl2_bytes", "plain_srl2", "l2_message", "swap_messages", "swap_bytes", "plain_swap",
           "srv6_frames", "l2_frames", "flood_frames", "srv6_dst", "mac_of", "FIRST"]
