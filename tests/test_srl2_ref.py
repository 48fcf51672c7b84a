"""The reference datapath (srl2_ref) on real namespaces.

    h1 --- a[br0: veth-h + srl2-0(ref)]  eth-b ==== eth-a  b[br0: veth-h2 + srl2-0(ref)] --- h2
                                                           b: veth-h3 --- h3 (End.DX2 oif)

a: srl2-0 segs fcff:2::d20, SID fcff:1::d20 End.DT2U;  underlay fc00:12::1/64
b: srl2-0 segs fcff:1::d20, SIDs fcff:2::d20 End.DT2U, fcff:2::d2 End.DX2 oif veth-h3;  fc00:12::2/64
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv6Address

import pytest

from srl2_ref.control import query
from testbed import capture
from testbed.linux import Netns, create_netns, delete_netns, enter_for_exec, is_root_capable
from testbed.srv6.srh import decode_srh, encode_srh, mtu_for
from testbed.wait import until

pytestmark = pytest.mark.skipif(is_root_capable() is not None or not os.path.exists("/dev/net/tun"),
                                reason="needs root and /dev/net/tun")

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
NODAD = 0x02
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SID_A, SID_B, SID_DX2 = "fcff:1::d20", "fcff:2::d20", "fcff:2::d2"
UA, UB = "fc00:12::1", "fc00:12::2"
HOST1_MAC, HOST2_MAC = "02:00:00:00:01:01", "02:00:00:00:02:02"


def wait_for(cond, timeout=5.0, what="condition"):
    value = until(cond, timeout)
    if not value:
        raise AssertionError(f"timed out waiting for {what}")
    return value


class Capture(capture.Capture):
    """testbed's capture with a consuming `until`; `proto` keeps only the
    frames a packet socket bound to that ethertype would see (incoming)."""

    def __init__(self, ns: Netns, ifname: str, proto: int = ETH_P_ALL):
        super().__init__(ns, ifname)
        self.proto = proto

    def _kept(self, f) -> bool:
        return self.proto == ETH_P_ALL or (not f.outgoing and int.from_bytes(f.data[12:14], "big") == self.proto)

    def until(self, pred, timeout=5.0) -> tuple[bytes, list[bytes]]:
        """Frames until one satisfies pred: (that frame, everything seen before it)."""
        found = self.wait_for(lambda f: self._kept(f) and pred(f.data), 1, timeout)
        if not found:
            raise AssertionError(f"frame not captured; saw {len([f for f in self.frames if self._kept(f)])} others")
        i = self.frames.index(found[0])
        seen = [f.data for f in self.frames[:i] if self._kept(f)]
        del self.frames[:i + 1]
        return found[0].data, seen


class Ref:
    def __init__(self, ns: str, cfg: dict, tmp, blocked: set[int] = frozenset()):
        self.path = os.path.join(tmp, f"{ns}.json")
        self.sock = os.path.join(tmp, f"{ns}.sock")
        cfg = dict(cfg, control=self.sock)
        with open(self.path, "w") as f:
            json.dump(cfg, f)
        r, w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "srl2_ref", "--config", self.path, "--ready-fd", str(w)],
                                     pass_fds=(w,), preexec_fn=lambda: _start_in(ns, blocked), cwd=ROOT,
                                     stderr=subprocess.PIPE)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 15)
            self.ready = os.read(r, 4096).decode() if ready else "timeout"
        finally:
            os.close(r)

    def counters(self):
        return query(self.sock, "counters")

    def dev(self, name="srl2-0"):
        return self.counters()["devices"][name]

    def sid(self, sid):
        return self.counters()["sids"][sid]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


def _start_in(ns: str, blocked: set[int]) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # as a careless parent might leave it
    enter_for_exec(ns)


def veth(a: Netns, an: str, b: Netns, bn: str) -> tuple[int, int]:
    a.ipr.link("add", ifname=an, kind="veth", peer={"ifname": bn, "net_ns_fd": b.path})
    ia, ib = a.ipr.link_lookup(ifname=an)[0], b.ipr.link_lookup(ifname=bn)[0]
    a.ipr.link("set", index=ia, state="up")
    b.ipr.link("set", index=ib, state="up")
    return ia, ib


def bridge(ns: Netns, ports: list[str]) -> int:
    ns.ipr.link("add", ifname="br0", kind="bridge")
    br = ns.ipr.link_lookup(ifname="br0")[0]
    for p in ports:
        ns.ipr.link("set", index=ns.ipr.link_lookup(ifname=p)[0], master=br, state="up")
    ns.ipr.link("set", index=br, state="up")
    return br


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ref"))
    prefix = f"tref{os.getpid() % 100000}"
    names = {k: f"{prefix}{k}" for k in ("h1", "a", "b", "h2", "h3")}
    made, nss, refs = [], {}, []
    try:
        for k, n in names.items():
            create_netns(n)
            made.append(n)
            nss[k] = Netns(n)
        h1, a, b, h2, h3 = (nss[k] for k in ("h1", "a", "b", "h2", "h3"))
        for ns in nss.values():
            ns.write_sysctls({"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"})
        veth(h1, "eth0", a, "veth-h")
        ia, ib = veth(a, "eth-b", b, "eth-a")
        veth(h2, "eth0", b, "veth-h2")
        veth(h3, "eth0", b, "veth-h3")
        a.ipr.addr("add", index=ia, address=UA, prefixlen=64, flags=NODAD)
        b.ipr.addr("add", index=ib, address=UB, prefixlen=64, flags=NODAD)
        a.ipr.route("add", dst="fcff:2::", dst_len=32, gateway=UB, family=socket.AF_INET6)
        b.ipr.route("add", dst="fcff:1::", dst_len=32, gateway=UA, family=socket.AF_INET6)
        ra = Ref(names["a"], {"devices": [{"name": "srl2-0", "segs": [SID_B]}],
                              "sids": [{"sid": SID_A + "/128", "action": "End.DT2U", "l2dev": "srl2-0",
                                        "count": True}]}, tmp)
        refs.append(ra)
        rb = Ref(names["b"], {"devices": [{"name": "srl2-0", "segs": [SID_A]}],
                              "sids": [{"sid": SID_B + "/128", "action": "End.DT2U", "l2dev": "srl2-0", "count": True},
                                       {"sid": SID_DX2 + "/128", "action": "End.DX2", "oif": "veth-h3",
                                        "table": 90, "count": True}]}, tmp)
        refs.append(rb)
        assert ra.ready == "ready\n", ra.ready
        assert rb.ready == "ready\n", rb.ready
        # what the lab does after readiness: bridge the srl2 devices and bring them up
        bridge(a, ["veth-h", "srl2-0"])
        bridge(b, ["veth-h2", "srl2-0"])
        # End.DX2's SID lives in table 90; a rule sends SID traffic there
        b.ipr.rule("add", family=socket.AF_INET6, dst=SID_DX2, dst_len=128, table=90, priority=100)
        yield {"ns": nss, "ref_a": ra, "ref_b": rb, "names": names, "tmp": tmp}
    finally:
        for r in refs:
            r.stop()
        for ns in nss.values():
            ns.close()
        for n in made:
            delete_netns(n)


def send_frame(ns: Netns, ifname: str, frame: bytes) -> None:
    s = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((ifname, 0))
        s.send(frame)
    finally:
        s.close()


def ipv6_frame(marker: bytes, hlim=1, fl=0x12345, dst_mac="ff:ff:ff:ff:ff:ff", src_mac=HOST1_MAC) -> bytes:
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    return bytes(Ether(dst=dst_mac, src=src_mac) / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=hlim, fl=fl)
                 / UDP(sport=1000, dport=2000) / marker)


def raw_frame(marker: bytes, src_mac=HOST1_MAC) -> bytes:
    return b"\xff" * 6 + bytes.fromhex(src_mac.replace(":", "")) + b"\x88\xb5" + marker.ljust(46, b"\0")


def carries(marker: bytes):
    return lambda f: marker in f


def test_encap_headers_and_counters(lab):
    """H1 H2 H3 H4 H5 H6(0) S1 N7: outer IPv6 + SRH + the whole frame; hop limit 64
    although the inner IPv6 hop limit is 1; flow label copied from the inner header."""
    b = lab["ns"]["b"]
    ref = lab["ref_a"]
    before = ref.dev()
    marker = b"H-encap-%d" % time.monotonic_ns()
    frame = ipv6_frame(marker)
    cap = Capture(b, "eth-a", ETH_P_IPV6)
    try:
        send_frame(lab["ns"]["h1"], "eth0", frame)
        got, _ = cap.until(carries(marker))
    finally:
        cap.close()
    outer = got[14:]
    assert outer[0] >> 4 == 6                                    # H1 version
    assert ((outer[0] & 0x0F) << 4 | outer[1] >> 4) == 0         # H5 traffic class 0
    assert int.from_bytes(outer[1:4], "big") & 0xFFFFF == 0x12345  # H6 seg6_flowlabel=0: copied
    srh = encode_srh([SID_B])
    assert int.from_bytes(outer[4:6], "big") == len(srh) + len(frame)  # H1 payload length
    assert outer[6] == 43                                        # H1 next header routing
    assert outer[7] == 64                                        # H5: not the inner hop limit 1
    assert IPv6Address(outer[8:24]) == IPv6Address(UA)           # H2: the route's source
    assert IPv6Address(outer[24:40]) == IPv6Address(SID_B)       # H1/S1 DA = first SID
    assert outer[40:40 + len(srh)] == srh                        # H3
    s = decode_srh(outer[40:])
    assert (s.segments_left, s.last_entry, s.nexthdr, s.flags, s.tag) == (0, 0, 143, 0, 0)
    assert outer[40 + len(srh):] == frame                        # H4 byte for byte
    after = wait_for(lambda: (c := ref.dev())["tx_packets"] > before["tx_packets"] and c, what="tx counters")
    assert after["tx_packets"] - before["tx_packets"] >= 1
    assert (after["tx_bytes"] - before["tx_bytes"]) % 1 == 0 and after["tx_bytes"] - before["tx_bytes"] >= len(frame)
    assert after["tx_dropped"] == before["tx_dropped"]


def test_dt2u_delivers_into_bridge_and_learns(lab):
    """E1 E2 E8: the frame crosses a -> b, is flooded to h2 unchanged, and b's
    bridge learns the source MAC on srl2-0."""
    b, h2 = lab["ns"]["b"], lab["ns"]["h2"]
    rb = lab["ref_b"]
    sid_before = rb.sid(SID_B)
    marker = b"E-dt2u-%d" % time.monotonic_ns()
    frame = raw_frame(marker)
    cap = Capture(h2, "eth0")
    try:
        send_frame(lab["ns"]["h1"], "eth0", frame)
        got, _ = cap.until(carries(marker))
    finally:
        cap.close()
    assert got == frame
    port = b.ipr.link_lookup(ifname="srl2-0")[0]

    def learned():
        for e in b.ipr.fdb("dump"):
            if e.get_attr("NDA_LLADDR") == HOST1_MAC and e["ifindex"] == port:
                return True
        return False
    wait_for(learned, what="fdb entry on srl2-0")
    after = wait_for(lambda: (c := rb.sid(SID_B))["packets"] > sid_before["packets"] and c, what="SID counters")
    assert after["bytes"] > sid_before["bytes"] and after["errors"] == sid_before["errors"]
    assert rb.dev()["rx_packets"] >= 1


def _srv6_packet(sid: str, segs: list[str], frame: bytes, sl=None, nexthdr=143) -> bytes:
    srh = bytearray(encode_srh(segs, nexthdr=nexthdr))
    if sl is not None:
        srh[3] = sl
    payload = bytes(srh) + frame
    return (bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([43, 64])
            + IPv6Address(UA).packed + IPv6Address(sid).packed + payload)


def _inject(ns: Netns, pkt: bytes) -> None:
    s = ns.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        s.sendto(pkt, (str(IPv6Address(pkt[24:40])), 0))
    finally:
        s.close()


def test_dx2_sends_frame_out_of_oif(lab):
    """E7: End.DX2 (SID in table 90, reached by a rule) sends the inner frame
    out of oif unchanged."""
    a, h3 = lab["ns"]["a"], lab["ns"]["h3"]
    marker = b"E7-dx2-%d" % time.monotonic_ns()
    frame = ipv6_frame(marker, dst_mac="02:00:00:00:03:03")
    cap = Capture(h3, "eth0")
    try:
        _inject(a, _srv6_packet(SID_DX2, [SID_DX2], frame))
        got, _ = cap.until(carries(marker))
    finally:
        cap.close()
    assert got == frame
    assert lab["ref_b"].sid(SID_DX2)["packets"] >= 1


def test_decap_checks_drop(lab):
    """E3 (segments left 1 at End.DT2U) and E4 (next header not 143): dropped and
    counted as SID errors; a good packet sent after them is the first to arrive."""
    a, h2 = lab["ns"]["a"], lab["ns"]["h2"]
    rb = lab["ref_b"]
    before = rb.sid(SID_B)
    bad_sl, bad_nh, good = (b"E3-%d" % time.monotonic_ns(), b"E4-%d" % time.monotonic_ns(),
                            b"E-ok-%d" % time.monotonic_ns())
    cap = Capture(h2, "eth0")
    try:
        _inject(a, _srv6_packet(SID_B, [SID_B, "fcff:9::1"], raw_frame(bad_sl), sl=1))
        _inject(a, _srv6_packet(SID_B, [SID_B], raw_frame(bad_nh), nexthdr=59))
        wait_for(lambda: rb.sid(SID_B)["errors"] >= before["errors"] + 2, what="SID errors")
        _inject(a, _srv6_packet(SID_B, [SID_B], raw_frame(good)))
        _, seen = cap.until(carries(good))
    finally:
        cap.close()
    assert not any(bad_sl in f or bad_nh in f for f in seen)


def test_l1_route_into_itself_counts_collisions(lab):
    """L1: the route to the first SID leaves through the srl2 device itself:
    dropped, collisions +1 and tx_dropped +1 per frame, nothing on the underlay."""
    a, b = lab["ns"]["a"], lab["ns"]["b"]
    ref = lab["ref_a"]
    tap = a.ipr.link_lookup(ifname="srl2-0")[0]
    dropped, sentinel = b"L1-%d" % time.monotonic_ns(), b"L1-ok-%d" % time.monotonic_ns()
    cap = Capture(b, "eth-a", ETH_P_IPV6)
    try:
        a.ipr.route("add", dst=SID_B, dst_len=128, oif=tap, family=socket.AF_INET6)
        try:
            before = ref.dev()
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(dropped))
            after = wait_for(lambda: (c := ref.dev())["collisions"] >= before["collisions"] + 1 and c,
                             what="collisions")
            assert after["tx_dropped"] - before["tx_dropped"] == after["collisions"] - before["collisions"]
            assert after["tx_packets"] == before["tx_packets"]
        finally:
            a.ipr.route("del", dst=SID_B, dst_len=128, oif=tap, family=socket.AF_INET6)
        send_frame(lab["ns"]["h1"], "eth0", raw_frame(sentinel))
        _, seen = cap.until(carries(sentinel))
    finally:
        cap.close()
    assert not any(dropped in f for f in seen)


@pytest.mark.parametrize("kind", ["none", "unreachable", "prohibit", "blackhole"])
def test_l2_no_route_then_repair(lab, kind):
    """L2 + L3: no usable route -> tx_carrier_errors +1 and tx_dropped +1; once
    the route is back the next frame goes out (errors are not cached)."""
    a, b = lab["ns"]["a"], lab["ns"]["b"]
    ref = lab["ref_a"]
    dropped, sentinel = b"L2-%s-%d" % (kind.encode(), time.monotonic_ns()), b"L3-%d" % time.monotonic_ns()
    cap = Capture(b, "eth-a", ETH_P_IPV6)
    try:
        a.ipr.route("del", dst="fcff:2::", dst_len=32, gateway=UB, family=socket.AF_INET6)
        try:
            if kind != "none":
                a.ipr.route("add", dst="fcff:2::", dst_len=32, type=kind, family=socket.AF_INET6)
            before = ref.dev()
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(dropped))
            after = wait_for(lambda: (c := ref.dev())["tx_carrier_errors"] >= before["tx_carrier_errors"] + 1 and c,
                             what="tx_carrier_errors")
            # (a name of its own: `dropped` is the marker the capture looks for below)
            n_dropped = after["tx_dropped"] - before["tx_dropped"]
            assert n_dropped == after["tx_carrier_errors"] - before["tx_carrier_errors"]
        finally:
            if kind != "none":
                a.ipr.route("del", dst="fcff:2::", dst_len=32, type=kind, family=socket.AF_INET6)
            a.ipr.route("add", dst="fcff:2::", dst_len=32, gateway=UB, family=socket.AF_INET6)
        send_frame(lab["ns"]["h1"], "eth0", raw_frame(sentinel))
        _, seen = cap.until(carries(sentinel))
    finally:
        cap.close()
    assert not any(dropped in f for f in seen)


def test_device_shape_and_control(lab):
    """N1-ish: TAP named as configured, MTU = mtu_for(1); control: ping, info."""
    a = lab["ns"]["a"]
    link = a.ipr.get_links(a.ipr.link_lookup(ifname="srl2-0")[0])[0]
    assert link.get_attr("IFLA_MTU") == mtu_for(1) == 1422
    mac = link.get_attr("IFLA_ADDRESS")
    assert int(mac[:2], 16) & 3 == 2  # unicast, locally administered
    assert query(lab["ref_a"].sock, "ping") == "pong"
    info = query(lab["ref_a"].sock, "info")
    assert info["devices"]["srl2-0"]["srh"] == encode_srh([SID_B]).hex()


def test_config_error_reported_on_ready_fd(tmp_path):
    """A bad config: one 'error:' line on the ready fd and exit status 1."""
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"devices": [{"name": "srl2-0", "segs": ["not-an-address"]}]}))
    r, w = os.pipe()
    proc = subprocess.run([sys.executable, "-m", "srl2_ref", "--config", str(p), "--ready-fd", str(w)],
                          pass_fds=(w,), cwd=ROOT, capture_output=True, timeout=30)
    os.close(w)
    line = os.read(r, 4096).decode()
    os.close(r)
    assert proc.returncode == 1
    assert line.startswith("error: devices[0].segs[0]: 'not-an-address' is not an IPv6 address")


@pytest.mark.parametrize("blocked", [(), (signal.SIGTERM, signal.SIGINT)],
                         ids=["", "started-with-sigterm-blocked"])
def test_sigterm_exits_and_removes_socket(tmp_path, blocked):
    """SIGTERM: clean exit, control socket removed, TAP gone with the process;
    also when its parent started it with SIGTERM blocked (a signal mask
    survives exec: the daemon unblocks its stop signals itself)."""
    name = f"tref{os.getpid() % 100000}x"
    create_netns(name)
    ns = Netns(name)
    try:
        ref = Ref(name, {"devices": [{"name": "srl2-9", "segs": [SID_B, SID_A], "mac": "02:11:22:33:44:55"}]},
                  str(tmp_path), set(blocked))
        try:
            assert ref.ready == "ready\n"
            link = ns.ipr.get_links(ns.ipr.link_lookup(ifname="srl2-9")[0])[0]
            assert link.get_attr("IFLA_MTU") == mtu_for(2) == 1406
            assert link.get_attr("IFLA_ADDRESS") == "02:11:22:33:44:55"
            ref.proc.send_signal(signal.SIGTERM)
            assert ref.proc.wait(5) == 0
            assert not os.path.exists(ref.sock)
            assert ns.ipr.link_lookup(ifname="srl2-9") == []
        finally:
            ref.stop()
    finally:
        ns.close()
        delete_netns(name)


def test_e5_l2dev_down_drops(lab):
    """E5: End.DT2U into an l2dev that is down: dropped (rx_dropped, SID errors)."""
    a, b, h2 = lab["ns"]["a"], lab["ns"]["b"], lab["ns"]["h2"]
    rb = lab["ref_b"]
    port = b.ipr.link_lookup(ifname="srl2-0")[0]
    dropped, sentinel = b"E5-%d" % time.monotonic_ns(), b"E5-ok-%d" % time.monotonic_ns()
    cap = Capture(h2, "eth0")
    try:
        b.ipr.link("set", index=port, state="down")
        try:
            before = rb.counters()
            _inject(a, _srv6_packet(SID_B, [SID_B], raw_frame(dropped)))
            wait_for(lambda: rb.sid(SID_B)["errors"] > before["sids"][SID_B]["errors"], what="SID errors")
            assert rb.dev()["rx_dropped"] == before["devices"]["srl2-0"]["rx_dropped"] + 1
        finally:
            b.ipr.link("set", index=port, state="up")
        # the bridge port needs to be forwarding again before the sentinel can pass
        wait_for(lambda: b.ipr.get_links(port)[0].get_nested("IFLA_PROTINFO", "IFLA_BRPORT_STATE") in (3, None),
                 what="port forwarding")
        _inject(a, _srv6_packet(SID_B, [SID_B], raw_frame(sentinel)))
        _, seen = cap.until(carries(sentinel))
    finally:
        cap.close()
    assert not any(dropped in f for f in seen)
