"""N — configuration through rtnetlink (docs/catalogue.md, N1-N7).

What an srl2 device looks like once made (N1), what RTM_NEWLINK refuses and
with which extack text (N2, N3), MTU changes (N4), deleting the device or
the whole lab while frames flow (N5), moving the device to another netns
(N6) and what tx_packets / tx_bytes count (N7).

The reference datapath makes its devices from a JSON configuration (a TAP
per device), not from RTM_NEWLINK: the request-validation cases (N2, N3)
and what only the kernel's own device can have (its link kind, its max MTU,
netns moves) are kernel-only, each with its reason.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import textwrap
import threading
import time

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from testbed import linux
from testbed.casekit import counters_reach, l2frame
from testbed.casekit import marker as marked
from testbed.errors import LabError
from testbed.packets import assert_packet, is_srv6, scapy, send_frames
from testbed.srv6 import nla
from testbed.srv6 import srh as srhlib
from testbed.wait import until

P2P = "topologies/p2p.yaml"
ISOLATION = "topologies/isolation.yaml"
SRC = "02:5e:00:00:01:01"  # no node uses it: frames from it are the case's own
ARPHRD_ETHER = 1
MIN_MTU = 68
REFUSAL_TEXT_MIN = "mtu less than device minimum"  # dev_validate_mtu (net/core/dev.c)
REFUSAL_TEXT_MAX = "mtu greater than device maximum"
TAP_IS_NOT_SRL2 = ("the reference's device is a TAP: its link kind is tun and its max MTU is the tun "
                   "driver's (65535 - 14), which userspace cannot change")
NOT_FROM_NETLINK = ("the reference makes its devices from a JSON configuration, not from RTM_NEWLINK: "
                    "there is no request for it to validate")


# ---- helpers -------------------------------------------------------------------

def frame(tag: str, size: int = 100, dst: str = "ff:ff:ff:ff:ff:ff", vlans=()) -> bytes:
    """A frame of `size` bytes from SRC, ethertype 0x88b5, with a marker."""
    return l2frame(dst, marked(tag), src=SRC, size=size, vlans=vlans)


def link(lab_, node: str, dev: str):
    return lab_.node(node).ipr.get_links(lab_.ifindex(node, dev))[0]


def refusal(fn) -> tuple[int, str]:
    """(errno, extack text) of the kernel's refusal of fn(); fails if accepted."""
    try:
        fn()
    except NetlinkError as e:
        code = abs(e.code) if isinstance(e.code, int) else 0
        return code, e.args[1] if len(e.args) > 1 else ""
    pytest.fail("the kernel accepted a request it must refuse")


class Sender(threading.Thread):
    """Sends `frame` out of NETNS:IFNAME at a moderate rate (about 1000
    frames/s: bursts of 5, then a 5 ms pause; this paces traffic, it does not
    wait for state) until stopped or until the interface or its netns is gone;
    `error` says how it ended."""

    def __init__(self, ns: linux.Netns, ifname: str, frame_: bytes):
        super().__init__(daemon=True)
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.bind((ifname, 0))
        self.frame = frame_
        self.sent = 0
        self.error: OSError | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                for _ in range(5):
                    try:
                        self.sock.send(self.frame)
                    except OSError as e:
                        if e.errno != errno.ENOBUFS:  # a full queue (a loaded machine) passes; the rest ends
                            raise
                        break
                    self.sent += 1
                self.halt.wait(0.005)
        except OSError as e:
            self.error = e
        finally:
            self.sock.close()  # the socket pins its netns: let it go

    def stop(self, timeout: float = 5.0) -> None:
        self.halt.set()
        self.join(timeout)


@pytest.fixture
def senders():
    made: list[Sender] = []

    def make(ns, ifname, frame_) -> Sender:
        s = Sender(ns, ifname, frame_)
        made.append(s)
        s.start()
        return s

    yield make
    for s in made:
        s.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (utime and stime of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- N1: the created device --------------------------------------------------------

DEVICES = textwrap.dedent("""\
    name: devices
    nodes:
      rt-1:
        kind: router
        srl2:
          srl2-1: {segs: ["fcff:2::d20"]}
          srl2-2: {segs: ["fcff:2::e", "fcff:3::d20"]}
    """)


@pytest.mark.conformance("N1", "T4")
@pytest.mark.needs("srl2")
def test_created_device_is_a_queueless_ethernet_device_with_a_random_mac(lab, checks, revision):
    """N1 (srl2 patch: ether_setup, IFF_NO_QUEUE, eth_hw_addr_random; MTU as
    T4): each device is ARPHRD_ETHER, has qdisc noqueue, a MAC that is
    unicast, locally administered and not the other device's (random), MTU
    1500 - 40 - (8 + 16n) - 14 (1422 for one SID, 1406 for two) and min MTU
    68.  The reference sets noqueue itself (a TAP would get the default
    qdisc); its MAC is the TAP's random one."""
    lab_ = lab(DEVICES)
    assert revision.default_mtu(1) == 1422 and revision.default_mtu(2) == 1406  # the formula itself (full mode)
    macs = set()
    for n in (1, 2):
        m = link(lab_, "rt-1", f"srl2-{n}")
        checks.equal("N1", f"link type of srl2-{n}", ARPHRD_ETHER, m["ifi_type"])
        checks.equal("N1", f"qdisc of srl2-{n}", "noqueue", m.get_attr("IFLA_QDISC"))
        mac = bytes.fromhex(m.get_attr("IFLA_ADDRESS").replace(":", ""))
        checks.check("N1", f"MAC of srl2-{n}", not mac[0] & 1 and mac[0] & 2 and mac != bytes(6),
                     "unicast, locally administered (random)", mac.hex(":"))
        macs.add(mac)
        checks.equal("N1", f"min MTU of srl2-{n}", MIN_MTU, m.get_attr("IFLA_MIN_MTU"))
        checks.equal("T4", f"MTU of srl2-{n} ({n} SIDs)", revision.default_mtu(n), m.get_attr("IFLA_MTU"))
    checks.equal("N1", "distinct MACs of the two devices (random)", 2, len(macs))


@pytest.mark.conformance("N1")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(TAP_IS_NOT_SRL2)
def test_created_device_is_of_kind_srl2_with_max_mtu_for_its_srh(lab, revision):
    """N1 (srl2 patch: max_mtu = 65535 - 40 - SRH - 14): the link kind read
    back is the revision's ("srl2", "sr6") and IFLA_MAX_MTU is 65457 for one
    SID, 65441 for two (sr6, full mode: the same overhead)."""
    lab_ = lab(DEVICES)
    for n in (1, 2):
        m = link(lab_, "rt-1", f"srl2-{n}")
        assert m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == revision.kind
        assert m.get_attr("IFLA_MAX_MTU") == revision.max_mtu(n) == 65535 - 40 - (8 + 16 * n) - 14


# ---- N2, N3: refused requests ------------------------------------------------------

ONE_NODE = textwrap.dedent("""\
    name: scratch
    nodes:
      n: {}
    """)


def srl2_link_without_srh(kind: str, ifname: str, empty_data: bool) -> ifinfmsg:
    """`ip link add IFNAME type KIND` with no SRH attribute: IFLA_LINKINFO
    with the kind only, or with an empty IFLA_INFO_DATA."""
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    info = [("IFLA_INFO_KIND", kind)]
    if empty_data:
        info.append(("IFLA_INFO_DATA", {"attrs": []}))
    msg["attrs"] = [("IFLA_IFNAME", ifname), ("IFLA_LINKINFO", {"attrs": info})]
    return msg


@pytest.mark.conformance("N2")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(NOT_FROM_NETLINK)
def test_missing_srh_is_refused_with_its_extack(lab, revision):
    """N2 (srl2 patch, newlink): an srl2 link without IFLA_SRL2_SRH, with no
    link data at all or with empty link data, is refused with EINVAL and the
    extack "SRH with segment list is required"; no device is left."""
    ipr = lab(ONE_NODE).node("n").ipr
    for i, empty in enumerate((False, True)):
        name = f"srl2-n2-{i}"
        code, text = refusal(lambda: nla.send(ipr, srl2_link_without_srh(revision.kind, name, empty), RTM_NEWLINK))
        assert (code, text) == (errno.EINVAL, "SRH with segment list is required"), f"link data empty={empty}"
        assert ipr.link_lookup(ifname=name) == []


def srh_bytes(nsegs: int, *, hdrlen=None, rtype=4, sl=None, last=None, extra: bytes = b"") -> bytes:
    """An SRH with `nsegs` segments whose fixed fields can be set wrong."""
    segs = b"".join(bytes([0xFC, 0xFF, 0, i + 2] + [0] * 11 + [0x20]) for i in range(nsegs))
    n1 = max(nsegs - 1, 0)
    head = struct.pack("!BBBBBBH", 143, 2 * nsegs if hdrlen is None else hdrlen, rtype,
                       n1 if sl is None else sl, n1 if last is None else last, 0, 0)
    return head + segs + extra


TOO_SHORT = {
    "fixed part only": srh_bytes(0),
    "fixed part and half a segment": srh_bytes(0, hdrlen=2) + bytes(8),
    "one byte short of a segment": srh_bytes(1)[:-1],
}
INVALID = {
    "routing type 2, not 4": srh_bytes(1, rtype=2),
    "hdrlen 4 for one segment (declares 40 bytes, 24 given)": srh_bytes(1, hdrlen=4),
    "hdrlen 2 for two segments (declares 24 bytes, 40 given)": srh_bytes(2, hdrlen=2),
    "segments left 1 beyond last entry 0": srh_bytes(1, sl=1),
    "segments left 2 beyond last entry 1": srh_bytes(2, sl=2),
    "last entry 1 with one segment in the list": srh_bytes(1, sl=0, last=1),
    "last entry 2 with two segments in the list": srh_bytes(2, sl=1, last=2),
}


@pytest.mark.conformance("N3", "S3")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(NOT_FROM_NETLINK)
@pytest.mark.parametrize("what,srh,text", [
    *[(k, v, "SRH too short") for k, v in TOO_SHORT.items()],
    *[(k, v, "Invalid SRH") for k, v in INVALID.items()],
], ids=[*TOO_SHORT, *INVALID])
def test_bad_srh_is_refused_with_its_extack(lab, what, srh, text, checks, revision):
    """N3 (srl2 patch, newlink; the checks of seg6_validate_srh): an SRH
    shorter than one segment -> EINVAL "SRH too short"; type != 4, hdrlen
    not matching the attribute, segments left beyond the last entry, last
    entry beyond the list -> EINVAL "Invalid SRH"; no device is left.  The
    same request with a good SRH is accepted (the control)."""
    ipr = lab(ONE_NODE).node("n").ipr
    cid = "S3" if "declares" in what else "N3"  # a length that does not match the attribute: S3's words
    try:
        nla.add_l2(ipr, revision, "srl2-bad", srh)
        seen = "accepted"
    except NetlinkError as e:
        seen = f"{errno.errorcode.get(abs(e.code), e.code)} {e.args[1] if len(e.args) > 1 else ''!r}"
    checks.equal(cid, f"RTM_NEWLINK with an SRH of {what}", f"EINVAL {text!r}", seen)
    checks.equal(cid, f"devices left after the refusal ({what})", [], ipr.link_lookup(ifname="srl2-bad"))
    nla.add_l2(ipr, revision, "srl2-good", srh_bytes(1))
    assert ipr.link_lookup(ifname="srl2-good"), "the control (a good SRH) was not accepted"


# ---- N4: MTU changes ---------------------------------------------------------------

@pytest.mark.conformance("N4")
@pytest.mark.needs("srl2")
def test_mtu_changes_within_range_are_accepted_and_below_min_refused(lab, revision):
    """N4 (srl2 patch: min_mtu 68, max_mtu 65535 - 40 - SRH - 14; the core's
    dev_validate_mtu): 68, 1280, 1422, 9000 and the maximum 65457 are
    accepted and read back; 67 and 0 are refused with EINVAL "mtu less than
    device minimum" and the MTU stays what it was."""
    lab_ = lab(DEVICES)
    ipr, index = lab_.node("rt-1").ipr, lab_.ifindex("rt-1", "srl2-1")
    for mtu in (MIN_MTU, 1280, 1422, 9000, revision.max_mtu(1)):
        ipr.link("set", index=index, mtu=mtu)
        assert link(lab_, "rt-1", "srl2-1").get_attr("IFLA_MTU") == mtu
    ipr.link("set", index=index, mtu=1300)
    for mtu in (MIN_MTU - 1, 0):
        assert refusal(lambda: ipr.link("set", index=index, mtu=mtu)) == (errno.EINVAL, REFUSAL_TEXT_MIN), mtu
        assert link(lab_, "rt-1", "srl2-1").get_attr("IFLA_MTU") == 1300


@pytest.mark.conformance("N4")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only(TAP_IS_NOT_SRL2)
def test_mtu_above_max_is_refused(lab, revision):
    """N4 (srl2 patch: max_mtu = 65535 - 40 - SRH - 14): 65458 on a one-SID
    device, 65442 on a two-SID one, and 65535, are refused with EINVAL "mtu
    greater than device maximum"; the MTU stays what it was."""
    lab_ = lab(DEVICES)
    ipr = lab_.node("rt-1").ipr
    for n in (1, 2):
        index = lab_.ifindex("rt-1", f"srl2-{n}")
        for mtu in (revision.max_mtu(n) + 1, 65535):
            assert refusal(lambda: ipr.link("set", index=index, mtu=mtu)) == (errno.EINVAL, REFUSAL_TEXT_MAX)
            assert link(lab_, "rt-1", f"srl2-{n}").get_attr("IFLA_MTU") == revision.default_mtu(n)


CREATED_WITH_MTU = textwrap.dedent("""\
    name: createdmtu
    nodes:
      rt-1:
        kind: router
        srl2:
          {name}: {{segs: ["fcff:2::d20"], mtu: {mtu}}}
    """)


@pytest.mark.conformance("N4")
@pytest.mark.needs("srl2")
def test_mtu_given_at_creation_is_applied(lab, checks, revision):
    """N4, creation (rtnetlink convention: rtnl_create_link validates and
    applies IFLA_MTU for every link kind before the driver's newlink runs;
    the lab passes a topology's `mtu` that way): a device created with mtu
    1300, below the computed 1422, has MTU 1300, and one created with mtu
    9000 (within its max MTU, 65457) is made and has MTU 9000.  Each is a
    lab of its own, so a refusal of one is a verdict of its own.

    FINDING on the RFC series: newlink overwrites dev->mtu with the computed
    value (1300 is accepted and silently ignored: 1422 wins), and 9000 is
    refused ("mtu greater than device maximum") because rtnetlink checks
    IFLA_MTU against the max MTU ether_setup left (1500) before newlink
    sets the device's own.  Both fail their check, named as such."""
    for name, mtu in (("srl2-0", 1300), ("srl2-9", 9000)):
        what = f"MTU of an srl2 device created with mtu {mtu}"
        try:
            lab_ = lab(CREATED_WITH_MTU.format(name=name, mtu=mtu))
        except LabError as e:
            checks.equal("N4", what, f"{mtu}", f"creation refused: {str(e).split(': ', 1)[-1]}")
            continue
        got = link(lab_, "rt-1", name).get_attr("IFLA_MTU")
        checks.equal("N4", what + ("" if got != revision.default_mtu(1) else " (the computed MTU won)"), mtu, got)


# ---- N5: deletion while frames flow ------------------------------------------------

def arrived(cap, tag: str) -> int:
    cap.drain()  # move what is queued into cap.frames
    return sum(1 for f in cap.frames if not f.outgoing and marked(tag) in f.data)


@pytest.mark.conformance("N5")
@pytest.mark.needs("srl2", "End.DT2U")
def test_deleting_the_device_while_frames_flow(lab, capture, senders, kernel_log):
    """N5 (srl2 patch: the device holds routes, a dst cache and is End.DT2U's
    l2dev): in topologies/isolation.yaml, while VPN A's frames flow both ways,
    rt-1's srl2-a is deleted.  The deletion returns at once (a leaked
    reference makes unregister wait, "waiting for srl2-a to become free"),
    the device and its bridge port are gone, VPN A's frames from rt-2 (to
    End.DT2U with l2dev srl2-a) stop reaching hs-a1 though rt-2 still sends
    them, VPN B keeps working byte for byte, the node's datapath process (if
    any) is alive and idle (no spin on the deleted device), and the kernel
    logs nothing severe."""
    sc = scapy()
    lab_ = lab(ISOLATION)
    rt1 = lab_.node("rt-1")
    at_a1 = capture(lab_, "hs-a1", "veth0")
    at_b1, at_b2 = capture(lab_, "hs-b1", "veth0"), capture(lab_, "hs-b2", "veth0")
    flows = [senders(lab_.node("hs-a1"), "veth0", frame("N5-a1")),
             senders(lab_.node("hs-a2"), "veth0", frame("N5-a2"))]
    assert until(lambda: arrived(at_a1, "N5-a2") >= 20), "VPN A's frames do not flow before the deletion"

    index = lab_.ifindex("rt-1", "srl2-a")
    t = time.monotonic()
    rt1.ipr.link("del", index=index)
    took = time.monotonic() - t
    assert took < 5.0, f"deleting srl2-a took {took:.1f} s (a reference to it was held)"
    assert rt1.ipr.link_lookup(ifname="srl2-a") == []
    ports = [m.get_attr("IFLA_IFNAME") for m in rt1.ipr.get_links() if m.get_attr("IFLA_MASTER")]
    assert "srl2-a" not in ports

    # VPN B is untouched.
    fb = {"N5-b1": frame("N5-b1", 200, dst="02:00:00:00:00:02"), "N5-b2": frame("N5-b2", 200,
                                                                                dst="02:00:00:00:00:01")}
    send_frames(lab_.node("hs-b1"), "veth0", [fb["N5-b1"]])
    send_frames(lab_.node("hs-b2"), "veth0", [fb["N5-b2"]])
    for cap, tag in ((at_b2, "N5-b1"), (at_b1, "N5-b2")):
        got = cap.wait_for(lambda f: not f.outgoing and marked(tag) in f.data)
        assert len(got) == 1, f"VPN B's frame {tag} did not cross after srl2-a was deleted"
        assert_packet(sc.Ether(fb[tag]), got[0].data)

    # VPN A from rt-2: sent on, never delivered (the l2dev is gone).
    before = arrived(at_a1, "N5-a2")
    sent0 = lab_.counters("rt-2", "srl2-a")["tx_packets"]
    assert until(lambda: lab_.counters("rt-2", "srl2-a")["tx_packets"] >= sent0 + 50), \
        "rt-2 stopped sending VPN A's frames"
    assert arrived(at_a1, "N5-a2") == before, "frames reached hs-a1 through a deleted srl2-a"

    procs = lab_.datapath.processes() if lab_.datapath else []
    assert all(linux.pid_alive(p) for p in procs), "a datapath process died when the device was deleted"
    # Idle once traffic stops: a process left polling the deleted device spins.
    for s in flows:
        s.stop()
    cpu0, t0 = {p: cpu_seconds(p) for p in procs}, time.monotonic()
    at_a1.settle(quiet=0.3)
    wall = time.monotonic() - t0
    busy = {p: cpu_seconds(p) - cpu0[p] for p in procs}
    assert all(b < 0.5 * wall for b in busy.values()), f"datapath CPU {busy} s in {wall:.2f} s of quiet"
    assert kernel_log.problems() == []


@pytest.mark.conformance("N5")
@pytest.mark.needs("srl2", "End.DT2U")
def test_removing_the_lab_while_frames_flow(lab, capture, senders, kernel_log):
    """N5 (srl2 patch: device and netns teardown with traffic in flight):
    while frames flow both ways through the p2p pseudowire, the whole lab is
    removed (datapath stopped, every netns deleted).  The datapath
    processes exit cleanly (status 0: neither crashed nor killed after the
    grace period), no namespace or process of the lab is left, the senders
    end with an error instead of hanging, and the kernel logs nothing
    severe."""
    lab_ = lab(P2P)
    at_hs2 = capture(lab_, "hs-2", "veth0")
    s1 = senders(lab_.node("hs-1"), "veth0", frame("N5-1"))
    s2 = senders(lab_.node("hs-2"), "veth0", frame("N5-2"))
    assert until(lambda: arrived(at_hs2, "N5-1") >= 20), "frames do not flow before the removal"
    at_hs2.close()  # the capture's socket would pin hs-2's netns
    procs = dict(lab_.datapath.procs) if lab_.datapath and hasattr(lab_.datapath, "procs") else {}
    assert all(p.poll() is None for p in procs.values()), "a datapath process died before the removal"
    pids = lab_.datapath.processes() if lab_.datapath else []

    lab_.down()
    assert {ns: p.returncode for ns, p in procs.items()} == {ns: 0 for ns in procs}
    assert not any(linux.pid_alive(p) for p in pids)
    left = [ns for ns in linux.list_netns() if ns.startswith(f"{lab_.name}-")]
    assert left == [], f"namespaces left behind: {left}"
    for s in (s1, s2):
        s.join(5.0)
        assert not s.is_alive(), "a sender still runs in a removed lab"
        assert s.error is not None and s.error.errno in (errno.ENXIO, errno.ENODEV, errno.ENETDOWN), s.error
    assert kernel_log.problems() == []


# ---- N6: moving the device to another netns ----------------------------------------

MOVE = textwrap.dedent("""\
    # srl2-0 starts in a; a and b each route fcff:9::/32 to u over their own link.
    name: move
    nodes:
      a:
        kind: router
        interfaces:
          veth-u: {addresses: ["fcf0:0:a::1/64"]}
        srl2:
          srl2-0: {segs: ["fcff:9::d20"]}
        routes:
          - {dst: "fcff:9::/32", via: "fcf0:0:a::9"}
      b:
        kind: router
        interfaces:
          veth-u: {addresses: ["fcf0:0:b::1/64"]}
        routes:
          - {dst: "fcff:9::/32", via: "fcf0:0:b::9"}
      u:
        kind: router
        interfaces:
          veth-a: {addresses: ["fcf0:0:a::9/64"]}
          veth-b: {addresses: ["fcf0:0:b::9/64"]}
    links:
      - [a:veth-u, u:veth-a]
      - [b:veth-u, u:veth-b]
    """)


def carried(cap, tag: str):
    return cap.wait_for(lambda f: not f.outgoing and is_srv6(f.data) and marked(tag) in f.data)


@pytest.mark.conformance("N6")
@pytest.mark.needs("srl2")
@pytest.mark.kernel_only("a reference device is a TAP read by a process that stays in the old netns: "
                         "after a move it would still route there")
def test_moving_the_device_to_another_netns(lab, capture, checks, kernel_log):
    """N6 (RFC series: no NETIF_F_NETNS_LOCAL, the move is allowed; later
    revisions forbid it; either is a finding, noted as N6 without failing).
    If the kernel refuses the move, it does so with an error and the device
    stays in a, still working.  If it allows it, the device is gone from a
    and, in b, frames it transmits are routed by b's routes (out of b with
    b's source address, fcf0:0:b::1) and never by a's (a cached route from
    the old netns would send them out of a)."""
    lab_ = lab(MOVE)
    a, b = lab_.node("a"), lab_.node("b")
    via_a, via_b = capture(lab_, "u", "veth-a"), capture(lab_, "u", "veth-b")
    send_frames(a, "srl2-0", [frame("N6-before")])
    assert carried(via_a, "N6-before"), "srl2-0 does not work in a before the move"

    index = lab_.ifindex("a", "srl2-0")
    fd = b.fd()
    try:
        a.ipr.link("set", index=index, net_ns_fd=fd)
        moved, why = True, ""
    except NetlinkError as e:
        moved, why = False, f"{e.args[1] if len(e.args) > 1 else ''} (errno {abs(e.code)})"
    finally:
        os.close(fd)

    if not moved:
        checks.note("N6", "moving srl2 to another netns", f"refused: {why}")
        assert a.ipr.link_lookup(ifname="srl2-0") == [index]
        send_frames(a, "srl2-0", [frame("N6-refused")])
        assert carried(via_a, "N6-refused"), "srl2-0 stopped working after a refused move"
    else:
        checks.note("N6", "moving srl2 to another netns", "allowed; it then routes in the new netns")
        assert a.ipr.link_lookup(ifname="srl2-0") == [], "srl2-0 still shows in a after the move"
        (new,) = b.ipr.link_lookup(ifname="srl2-0")
        b.ipr.link("set", index=new, state="up")
        send_frames(b, "srl2-0", [frame("N6-after")])
        got = carried(via_b, "N6-after")
        assert got, "after the move, srl2-0's frames do not leave by b's route"
        assert got[0].data[22:38] == socket.inet_pton(socket.AF_INET6, "fcf0:0:b::1")
        assert not any(marked("N6-after") in f.data for f in via_a.settle()), \
            "after the move, srl2-0's frames still leave by a's route"
    assert kernel_log.problems() == []


# ---- N7: counters --------------------------------------------------------------------

QUIET = textwrap.dedent("""\
    # No background traffic through rt-1's srl2-0 (see tests/test_ref_labs.py).
    name: quiet
    nodes:
      hs-1:
        sysctls: {net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.all.addr_gen_mode: 1}
        interfaces:
          veth0: {addresses: [10.0.0.1/24]}
      rt-1:
        kind: router
        sysctls: {net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.br0.disable_ipv6: 1}
        interfaces:
          veth-rt2: {addresses: ["fcf0:0:1:2::1/64"]}
        bridges:
          br0: {ports: [veth-hs], mcast_snooping: false}
        srl2:
          srl2-0: {segs: ["fcff:2::d20"], bridge: br0}
        routes:
          - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
      rt-2:
        kind: router
        sysctls: {net.ipv6.conf.default.addr_gen_mode: 1}
        interfaces:
          veth-rt1: {addresses: ["fcf0:0:1:2::2/64"]}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
    """)


@pytest.mark.conformance("N7")
@pytest.mark.needs("srl2")
def test_tx_counters_move_by_one_frame_and_its_length(lab, capture, checks):
    """N7 (srl2 patch, xmit; struct rtnl_link_stats64): frames of 60, 61,
    100, 1000 and 1436 (MTU + 14) bytes and an 802.1Q-tagged one of 64 are
    sent one at a time; after each, tx_packets has moved by one per SRv6
    packet rt-1 sent and tx_bytes by the length of the frame each carries.

    tx_bytes counts the Ethernet frame the device transmitted (header and
    VLAN tags included, no FCS), not the encapsulated packet: a netdevice
    counts at its own layer, as veth, bridge ports and TAPs do, and the
    outer IPv6 + SRH bytes are counted by the underlay device that sends
    them.  (Counting the outer length would add 40 + 24 per frame.)  The
    reference counts the same.  Robust to any frame of the node's own: the
    expectation is what the capture saw leave rt-1.  One check per frame,
    all run."""
    lab_ = lab(QUIET)
    underlay = capture(lab_, "rt-1", "veth-rt2")
    outer = 14 + 40 + srhlib.srh_len(1)
    base = lab_.counters("rt-1", "srl2-0")
    sizes = [(60, ()), (61, ()), (100, ()), (1000, ()), (srhlib.mtu_for(1) + 14, ()), (64, ((0x8100, 5),))]
    for i, (size, vlans) in enumerate(sizes):
        f = frame(f"N7-{i}", size, vlans=vlans)
        send_frames(lab_.node("hs-1"), "veth0", [f])
        mine = underlay.wait_for(lambda p: p.outgoing and marked(f"N7-{i}") in p.data)
        assert len(mine) == 1 and len(mine[0].data) - outer == size, f"frame {i} was not sent whole (not N7's)"
        sent = [p.data for p in underlay.frames if p.outgoing and is_srv6(p.data)]
        want = {"tx_packets": len(sent), "tx_bytes": sum(len(d) - outer for d in sent)}
        got = counters_reach(lab_, "rt-1", "srl2-0", base, want)
        checks.equal("N7", f"srl2-0 tx counters after frame {i} ({size} bytes), by the SRv6 packets rt-1 sent "
                           "(tx_bytes: the frames they carry)", want, got)
