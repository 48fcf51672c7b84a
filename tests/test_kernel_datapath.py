"""The kernel datapath against the running kernel, in namespaces of its own.

Needs root.  Every namespace is made by a fixture that removes it on the way
out, also when the test fails.  On a kernel without the srl2 series, srl2 and
End.DT2U must be reported missing with a reason; End and End.DX2 must work and
End.DX2 must really forward.  On a kernel without seg6 lwtunnel
(CONFIG_IPV6_SEG6_LWTUNNEL unset) every SID and `encap seg6` must be reported
missing with that option named, and a SID refused with it; what needs seg6
SKIPs there with the probe's reason.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import select
import socket
import time

import pytest

from testbed import linux, state
from testbed.srv6 import seg6
from testbed.datapaths import COUNTERS, DatapathError
from testbed.datapaths import kernel as kdp
from testbed.datapaths.kernel import KernelDatapath
from testbed.model import Sid, Srl2, Where

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
HERE = Where("test.yaml", 3, 5)


def require_kernel(*features: str) -> None:
    """SKIP with the probe's reason (the missing option, and that `testbed
    vm` with a kernel that has it runs the test) unless the kernel has all."""
    reason = KernelDatapath.probe().reason(features)
    if reason:
        pytest.skip(reason)


def mine(prefix: str) -> set[str]:
    return {n for n in linux.list_netns() if n.startswith(prefix)}


@pytest.fixture
def netns():
    """make(role) -> Netns; all of them are deleted at teardown."""
    made: list[linux.Netns] = []
    tag = f"tbk-{os.getpid()}-{secrets.token_hex(2)}"

    def make(role: str) -> linux.Netns:
        name = f"{tag}-{role}"
        linux.create_netns(name)
        ns = linux.Netns(name)
        made.append(ns)
        ns.ipr.link("set", index=1, state="up")
        return ns

    yield make
    for ns in made:
        ns.close()
        linux.delete_netns(ns.name)
    assert not mine(tag), "a namespace survived its fixture"


@pytest.fixture
def fresh_probe(monkeypatch, tmp_path):
    """A real probe: no process cache, the file cache in a private dir."""
    monkeypatch.setattr(KernelDatapath, "_probe", None)
    monkeypatch.setattr(state, "STATE_DIR", str(tmp_path))
    yield tmp_path
    KernelDatapath._probe = None


def veth(a: linux.Netns, a_name: str, b: linux.Netns, b_name: str) -> tuple[int, int]:
    fd = b.fd()
    try:
        a.ipr.link("add", ifname=a_name, kind="veth", peer={"ifname": b_name, "net_ns_fd": fd})
    finally:
        os.close(fd)
    return a.ipr.link_lookup(ifname=a_name)[0], b.ipr.link_lookup(ifname=b_name)[0]


def mac_of(ns: linux.Netns, ifname: str) -> str:
    (link,) = ns.ipr.link("get", ifname=ifname)
    return link.get_attr("IFLA_ADDRESS")


# ---------------------------------------------------------------------------
# probe
# ---------------------------------------------------------------------------

def test_probe_on_this_kernel(fresh_probe):
    """probe() says what this kernel has; what it lacks comes with a reason a
    user can act on.  End, End.X and End.DX2 are upstream since 4.14."""
    ours = f"tbprobe-{os.getpid()}-"  # other pytest workers probe too
    start = time.monotonic()
    p = KernelDatapath.probe()
    assert time.monotonic() - start < 5 * float(os.environ.get("TESTBED_TIME_SCALE", "1"))
    assert not mine(ours), "probe left its scratch namespace behind"
    assert p.datapath == "kernel"
    # End, End.X, End.DX2 and route-based encap come with seg6 lwtunnel, all
    # or none; without it each names the option and what to do.
    lwt = ("End", "End.X", "End.DX2", "encap seg6")
    assert len({p.has(f) for f in lwt}) == 1, p.missing
    if not p.has("End"):
        for f in lwt + ("End.DT2U",):
            r = p.missing[f]
            assert "CONFIG_IPV6_SEG6_LWTUNNEL" in r and "(EOPNOTSUPP)" in r and "testbed vm" in r, r
    if not p.has("srl2"):
        r = p.missing["srl2"]
        assert "has no srl2 link kind" in r and "(EOPNOTSUPP)" in r and "srl2 series" in r, r
        assert p.reason(["srl2", "End"]) == f"kernel datapath: {r}"  # the first missing one
    if p.has("End") and not p.has("End.DT2U"):
        r = p.missing["End.DT2U"]
        assert f"has no End.DT2U (seg6local action {seg6.SEG6_LOCAL_ACTION_END_DT2U} rejected: " in r, r
    # This kernel (6.18 without the series) lacks both: the configuration the
    # suite was written on.  A patched kernel has both or neither.
    assert p.has("srl2") == p.has("End.DT2U")


def test_probe_cache(fresh_probe):
    """One probe per process; a file keyed by release and boot id for the
    next process; a stale key is ignored."""
    p1 = KernelDatapath.probe()
    path = kdp.cache_path()
    assert path.startswith(str(fresh_probe)) and os.path.dirname(path).endswith("/cache")
    with open(path) as f:
        data = json.load(f)
    assert data["key"]["release"] == os.uname().release
    assert data["key"]["end_dt2u"] == seg6.SEG6_LOCAL_ACTION_END_DT2U
    assert data["probe"]["missing"] == p1.missing

    # the process cache answers without touching the file; callers get copies
    os.unlink(path)
    p2 = KernelDatapath.probe()
    assert p2.missing == p1.missing and p2 is not KernelDatapath._probe
    p2.missing["End"] = "mutated"
    assert KernelDatapath.probe().missing == p1.missing

    # a "new process" reads the file
    data["probe"]["missing"] = {"End.X": "from the cache file"}
    with open(path, "w") as f:
        json.dump(data, f)
    KernelDatapath._probe = None
    assert KernelDatapath.probe().missing == {"End.X": "from the cache file"}

    # another boot: the file is not trusted, the kernel is probed again
    data["key"]["boot_id"] = "another-boot"
    with open(path, "w") as f:
        json.dump(data, f)
    KernelDatapath._probe = None
    assert KernelDatapath.probe().missing == p1.missing


# ---------------------------------------------------------------------------
# start_node: what this kernel refuses, and how that is reported
# ---------------------------------------------------------------------------

def test_srl2_device(netns):
    """Without the series: a DatapathError with the probe's reason, not a
    traceback.  With it: the device exists, down, with the SRH as given."""
    ns = netns("n")
    dev = Srl2("srl2-0", [ipaddress.IPv6Address("fc00::a"), ipaddress.IPv6Address("fc00::b")],
               mac="02:00:00:00:5e:01", where=HERE)
    dp = KernelDatapath()
    if not KernelDatapath.probe().has("srl2"):
        with pytest.raises(DatapathError) as exc:
            dp.start_node(ns, [dev], [])
        text = str(exc.value)
        assert text.startswith("srl2 srl2-0: kernel datapath: kernel ")
        assert "has no srl2 link kind (rtnetlink: Unknown device type (EOPNOTSUPP))" in text
        assert "Traceback" not in text and exc.value.where is HERE
        assert not ns.ipr.link_lookup(ifname="srl2-0")
        return
    from testbed.srv6 import nla
    from testbed.srv6.srh import encode_srh

    dp.start_node(ns, [dev], [])
    (link,) = ns.ipr.link("get", ifname="srl2-0")
    assert nla.srl2_srh_of(link) == encode_srh(dev.segs)
    assert not link["flags"] & 1 and link.get_attr("IFLA_MASTER") is None
    assert link.get_attr("IFLA_ADDRESS") == dev.mac
    assert set(dp.counters(ns, "srl2-0")) == set(COUNTERS)


def test_end_dt2u_sid(netns):
    ns = netns("n")
    ns.ipr.link("add", ifname="br0", kind="bridge")
    ns.ipr.link("add", ifname="p0", kind="veth", peer="p1")
    ns.ipr.link("set", index=ns.ipr.link_lookup(ifname="p0")[0],
                master=ns.ipr.link_lookup(ifname="br0")[0])
    sid = Sid(ipaddress.IPv6Network("fcff:1::d20/128"), "End.DT2U", l2dev="p0", table=90, where=HERE)
    dp = KernelDatapath()
    if not KernelDatapath.probe().has("End.DT2U"):
        with pytest.raises(DatapathError) as exc:
            dp.start_node(ns, [], [sid])
        assert str(exc.value).startswith("SID fcff:1::d20/128 (End.DT2U): kernel datapath: kernel ")
        if KernelDatapath.probe().has("End"):  # seg6local without the series' action
            assert "has no End.DT2U (seg6local action 17 rejected: Invalid argument (EINVAL))" in str(exc.value)
        else:  # no seg6local at all
            assert ("has no seg6local routes, so no End.DT2U (encap seg6local rejected: "
                    "lwt encapsulation type not supported (EOPNOTSUPP)); needs CONFIG_IPV6_SEG6_LWTUNNEL"
                    in str(exc.value)), str(exc.value)
        assert exc.value.where is HERE
        return
    dp.start_node(ns, [], [sid])
    from testbed.srv6 import nla

    (route,) = [r for r in nla.dump_seg6local(ns.ipr) if r.get_attr("RTA_TABLE") == 90]
    assert nla.seg6local_of(route)["l2dev"] == ns.ipr.link_lookup(ifname="p0")[0]


def test_sids_refused_without_seg6local(netns):
    """On a kernel without seg6 lwtunnel, a SID is a DatapathError at its
    YAML place with the probe's reason (the option to enable), never the
    bare 'lwt encapsulation type not supported'."""
    if KernelDatapath.probe().has("End"):
        pytest.skip(f"kernel {os.uname().release} has seg6local (test_sid_errors_carry_kernel_text_and_place "
                    "runs instead); boot one without it: testbed vm --kernel ../shared/kernels/no-seg6-6.12/bzImage")
    ns = netns("n")
    for sid in (Sid(ipaddress.IPv6Network("fcff::e/128"), "End", where=HERE),
                Sid(ipaddress.IPv6Network("fcff::d2/128"), "End.DX2", oif="lo", where=HERE)):
        with pytest.raises(DatapathError) as exc:
            KernelDatapath().start_node(ns, [], [sid])
        assert str(exc.value) == (f"SID {sid.sid} ({sid.action}): kernel datapath: "
                                  f"{KernelDatapath.probe().missing[sid.action]}")
        assert "CONFIG_IPV6_SEG6_LWTUNNEL" in str(exc.value) and exc.value.where is HERE


def test_sid_errors_carry_kernel_text_and_place(netns):
    require_kernel("End", "End.X", "End.DX2")
    ns = netns("n")
    dp = KernelDatapath()
    end = Sid(ipaddress.IPv6Network("fcff::e/128"), "End", where=HERE)
    dp.start_node(ns, [], [end])
    with pytest.raises(DatapathError) as exc:  # the same SID again
        dp.start_node(ns, [], [end])
    assert str(exc.value) == "SID fcff::e/128 (End): File exists (EEXIST)" and exc.value.where is HERE
    with pytest.raises(DatapathError, match=r"oif 'nope': no such interface"):
        dp.start_node(ns, [], [Sid(ipaddress.IPv6Network("fcff::d2/128"), "End.DX2", oif="nope")])
    with pytest.raises(DatapathError, match="End.X needs nh6"):
        dp.start_node(ns, [], [Sid(ipaddress.IPv6Network("fcff::f/128"), "End.X")])


# ---------------------------------------------------------------------------
# End.DX2 forwards, and its counters count
# ---------------------------------------------------------------------------

def test_end_dx2_forwards_inner_frame(netns):
    """hs-a --a0/r0-- rt --r1/b0-- hs-b.  hs-a sends IPv6 + SRH (segments
    left 0, next header 143) + an Ethernet frame to rt's End.DX2 SID (oif r1);
    the inner frame, byte for byte, is what arrives on hs-b (RFC 8986 §4.9).
    The SID's `count` counters and r1's device counters move by exactly the
    frames sent."""
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from testbed.srv6.srh import encode_srh

    require_kernel("End", "End.X", "End.DX2")
    a, rt, b = netns("hs-a"), netns("rt"), netns("hs-b")
    veth(a, "a0", rt, "r0")
    veth(rt, "r1", b, "b0")
    # Quiet interfaces, so that every frame on r1/b0 is a decapsulated one:
    # r1 keeps IPv6 (the kernel refuses a route via a device without it) but
    # gets no link-local address, hence no DAD, MLD or RS; b0 has no IPv6.
    rt.write_sysctls({"net.ipv6.conf.r1.addr_gen_mode": "1"})
    b.write_sysctls({"net.ipv6.conf.b0.disable_ipv6": "1"})
    a.write_sysctls({"net.ipv6.conf.a0.disable_ipv6": "1"})
    for ns, ifname in ((a, "a0"), (rt, "r0"), (b, "b0")):
        ns.ipr.link("set", index=ns.ipr.link_lookup(ifname=ifname)[0], state="up")
    sid = Sid(ipaddress.IPv6Network("fcff:2::d2/128"), "End.DX2", oif="r1", count=True, where=HERE)
    end = Sid(ipaddress.IPv6Network("fcff:2::e/128"), "End", count=True)
    endx = Sid(ipaddress.IPv6Network("fcff:2::e1/128"), "End.X", nh6=ipaddress.IPv6Address("fd00:b::2"))
    dp = KernelDatapath()
    dp.start_node(rt, [], [sid, end, endx])  # r1 is down: start_node brings the SID's device up
    assert dp.sid_counters(rt, sid) == {"packets": 0, "bytes": 0, "errors": 0}
    assert dp.sid_counters(rt, end) == {"packets": 0, "bytes": 0, "errors": 0}
    assert dp.sid_counters(rt, endx) is None  # no `count`

    inners = [
        bytes(Ether(dst="02:00:00:00:0b:01", src="02:00:00:00:0a:01", type=0x88B5)
              / Raw(f"srl2 testbed End.DX2 frame {i} ".encode() * (i + 2)))
        for i in range(3)
    ]
    outers = [
        bytes(Ether(dst=mac_of(rt, "r0"), src=mac_of(a, "a0"))
              / IPv6(src="fd00:a::1", dst=str(sid.sid.network_address), nh=43, hlim=64)
              / Raw(encode_srh([sid.sid.network_address], nexthdr=143) + inner))
        for inner in inners
    ]
    assert outers[0][14 + 40 + 3] == 0  # segments left 0

    before_dev = dp.counters(rt, "r1")
    cap = b.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    tx = a.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        cap.bind(("b0", ETH_P_ALL))  # armed before anything is sent
        tx.bind(("a0", 0))
        for outer in outers:
            tx.send(outer)
        got = []
        deadline = time.monotonic() + 3
        while len(got) < len(inners):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([cap], [], [], left)[0]:
                break
            data, addr = cap.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                got.append(data)
    finally:
        cap.close()
        tx.close()
    assert got == inners

    counted = dp.sid_counters(rt, sid)
    assert counted["packets"] == len(inners) and counted["errors"] == 0
    # bytes: the IPv6 packet as it entered the behaviour (outer header, SRH, frame)
    assert counted["bytes"] == sum(len(o) - 14 for o in outers)
    assert dp.sid_counters(rt, end)["packets"] == 0
    after_dev = dp.counters(rt, "r1")
    assert set(after_dev) == set(COUNTERS)
    assert after_dev["tx_packets"] - before_dev["tx_packets"] == len(inners)
    assert after_dev["tx_bytes"] - before_dev["tx_bytes"] == sum(map(len, inners))


def test_a_sigkilled_probe_leaves_no_namespace():
    """The probe's scratch namespace has no name, so a SIGKILL at any moment
    of a probe leaves nothing in /run/netns (a named one did: the rare leak
    of tests/test_interrupt.py, where every run probes with a fresh cache).
    Probes run back to back in a mount namespace whose /run/netns is a
    fresh tmpfs; each of 8 is SIGKILLed mid-probe, then /run/netns is read."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs probe-test /run/netns && echo ready && exec sleep 600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    enter = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", f"--root=/proc/{holder.pid}/root", "--"]
    loop = ("from testbed.datapaths.kernel import probe_kernel\n"
            "probe_kernel()\nprint('probing', flush=True)\nwhile True: probe_kernel()\n")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        for i in range(8):
            proc = subprocess.Popen(enter + [sys.executable, "-c", loop], cwd=root, stdout=subprocess.PIPE,
                                    text=True, env={**os.environ, "PYTHONPATH": root})
            assert proc.stdout is not None and proc.stdout.readline() == "probing\n"
            time.sleep(0.05 + 0.03 * i)  # the moment of the kill within the back-to-back probes
            proc.kill()
            proc.wait()
            proc.stdout.close()
        left = subprocess.run(enter + ["ls", "-A", "/run/netns"], capture_output=True, text=True, check=True)
        assert left.stdout.split() == []
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
