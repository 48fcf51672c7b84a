"""The reference datapath as the series' second revision (sr6) on real
namespaces: what it puts on the wire is what the sr6 kernel sent for the
same frames (tests/test_ref_revisions.py KERNEL), reduced packets cross
End and End.DT2U, the post-encapsulation table, the revision's counters,
MTUs, HMAC checked at the far end, rx counted on the l2dev.

    h1 --- a[br0: veth-h + each test's devices (its own srl2_ref)]  eth-b ==== eth-a  b[br0: veth-h2 + sr6-b] --- h2

a: fc00:12::1/64, fcff::/16 via b.  b (srl2_ref, revision sr6): fcff:2::1 and
fcff:3::d20 End.DT2U into sr6-b, fcff:2::e End; HMAC keys 1, 2 as the kernel
run's, 3 with another secret than a's.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from ipaddress import IPv6Address

import pytest

from testbed.linux import Netns, create_netns, delete_netns, is_root_capable
from tests.test_ref_revisions import FRAME, KERNEL
from tests.test_srl2_ref import ETH_P_IPV6, NODAD, Capture, Ref, bridge, raw_frame, send_frame, veth, wait_for

pytestmark = pytest.mark.skipif(is_root_capable() is not None or not os.path.exists("/dev/net/tun"),
                                reason="needs root and /dev/net/tun")

UA, UB = "fc00:12::1", "fc00:12::2"
KEYS = {"1": {"secret": "s3cr3t-one", "algorithm": "sha256"}, "2": {"secret": "another-secret", "algorithm": "sha1"}}
A_KEYS = {**KEYS, "3": {"secret": "a-side", "algorithm": "sha256"}}
B_KEYS = {**KEYS, "3": {"secret": "b-side", "algorithm": "sha256"}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("sr6"))
    prefix = f"tsr6{os.getpid() % 100000}"
    names = {k: f"{prefix}{k}" for k in ("h1", "a", "b", "h2")}
    made, nss, refs = [], {}, []
    try:
        for k, n in names.items():
            create_netns(n)
            made.append(n)
            nss[k] = Netns(n)
        h1, a, b, h2 = (nss[k] for k in ("h1", "a", "b", "h2"))
        for ns in nss.values():
            ns.write_sysctls({"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"})
        veth(h1, "eth0", a, "veth-h")
        ia, ib = veth(a, "eth-b", b, "eth-a")
        veth(h2, "eth0", b, "veth-h2")
        a.ipr.addr("add", index=ia, address=UA, prefixlen=64, flags=NODAD)
        b.ipr.addr("add", index=ib, address=UB, prefixlen=64, flags=NODAD)
        a.ipr.route("add", dst="fcff::", dst_len=16, gateway=UB, family=socket.AF_INET6)
        # Only the frames a test sends reach a's devices, so counters move by
        # exactly what was sent: no IPv6 of their own (router solicitations,
        # MLD reports) from h1, a's bridge or the devices the tests make, and
        # a bridge without multicast snooping (with it, the bridge joins the
        # all-snoopers groups: IGMP and MLD reports flooded to every port).
        h1.write_sysctls({"net.ipv6.conf.all.disable_ipv6": "1"})
        a.write_sysctls({"net.ipv6.conf.default.disable_ipv6": "1"})
        a.ipr.link("add", ifname="br0", kind="bridge", br_mcast_snooping=0)
        br = a.ipr.link_lookup(ifname="br0")[0]
        a.ipr.link("set", index=a.ipr.link_lookup(ifname="veth-h")[0], master=br)
        a.ipr.link("set", index=br, state="up")
        rb = Ref(names["b"], {"revision": "sr6", "hmac_keys": B_KEYS,
                              "devices": [{"name": "sr6-b", "segs": ["fcff:1::d20"], "mode": "full"}],
                              "sids": [{"sid": "fcff:2::1/128", "action": "End.DT2U", "l2dev": "sr6-b", "count": True},
                                       {"sid": "fcff:3::d20/128", "action": "End.DT2U", "l2dev": "sr6-b",
                                        "count": True},
                                       {"sid": "fcff:2::e/128", "action": "End", "count": True}]}, tmp)
        refs.append(rb)
        assert rb.ready == "ready\n", rb.ready
        bridge(b, ["veth-h2", "sr6-b"])
        yield {"ns": nss, "ref_b": rb, "names": names, "tmp": tmp}
    finally:
        for r in refs:
            r.stop()
        for ns in nss.values():
            ns.close()
        for n in made:
            delete_netns(n)


@contextlib.contextmanager
def devices_on_a(lab, devices: list[dict], faults=(), keys=A_KEYS):
    """An srl2_ref of revision sr6 in a with `devices`, bridged with h1."""
    a = lab["ns"]["a"]
    ref = Ref(lab["names"]["a"], {"revision": "sr6", "devices": devices, "hmac_keys": keys,
                                  "faults": list(faults)}, lab["tmp"])
    try:
        assert ref.ready == "ready\n", ref.ready
        br = a.ipr.link_lookup(ifname="br0")[0]
        for d in devices:
            a.ipr.link("set", index=a.ipr.link_lookup(ifname=d["name"])[0], master=br, state="up")
        yield ref
    finally:
        ref.stop()


def marked(marker: bytes):
    return lambda f: marker in f.data and not f.outgoing and f.data[12:14] == b"\x86\xdd"


def delta(ref, before: dict, name: str) -> dict:
    now = ref.dev(name)
    return {k: now[k] - before[name][k] for k in now if now[k] != before[name][k]}


def across(lab, frame: bytes, marker: bytes) -> tuple[dict, bytes, bytes]:
    """Send `frame` from h1 with captures armed on b's underlay and on h2:
    (b's counters before, the packet on the wire, the frame h2 got)."""
    wire, h2 = Capture(lab["ns"]["b"], "eth-a", ETH_P_IPV6), Capture(lab["ns"]["h2"], "eth0")
    try:
        before = lab["ref_b"].counters()
        send_frame(lab["ns"]["h1"], "eth0", frame)
        pkt, _ = wire.until(lambda f: marker in f)
        got, _ = h2.until(lambda f: marker in f)
    finally:
        wire.close()
        h2.close()
    return before, pkt, got


def test_wire_bytes_are_the_sr6_kernels(lab):
    """R1/R4 differential: one broadcast frame flooded into nine devices
    (full and reduced, 1-3 SIDs, HMAC SHA-256 and SHA-1) leaves as the nine
    outer packets the sr6 kernel sent for it, byte for byte from the IPv6
    header on (the same source, SIDs, keys and frame)."""
    devs = [{"name": f"d-{name}", "segs": segs, "mode": mode, "hmac": keyid}
            for name, (segs, mode, keyid, _) in sorted(KERNEL.items())]
    with devices_on_a(lab, devs):
        cap = Capture(lab["ns"]["b"], "eth-a")
        try:
            send_frame(lab["ns"]["h1"], "eth0", FRAME)
            got = cap.wait_for(marked(b"SR6PROBE"), len(devs))
        finally:
            cap.close()
    assert sorted(f.data[14:].hex() for f in got) == sorted(head + FRAME.hex() for *_, head in KERNEL.values())


def test_reduced_one_sid_crosses_dt2u_and_counts_rx_on_the_sr6_l2dev(lab):
    """R1 + E1 (sr6): no SRH on the wire (next header 143, payload = the
    frame); b's End.DT2U takes it (Segments Left 0 by definition) into its
    bridge: h2 gets the frame unchanged, sr6-b counts rx +1 packet, + the
    frame's length (measured on the sr6 kernel)."""
    rb = lab["ref_b"]
    marker = b"R1-red1-%d" % time.monotonic_ns()
    frame = raw_frame(marker)
    with devices_on_a(lab, [{"name": "d-red1", "segs": ["fcff:2::1"], "mode": "reduced"}]):
        before, pkt, got = across(lab, frame, marker)
    ip6 = pkt[14:]
    assert (ip6[6], int.from_bytes(ip6[4:6], "big"), IPv6Address(ip6[24:40])) == (143, len(frame),
                                                                                  IPv6Address("fcff:2::1"))
    assert ip6[40:] == frame and got == frame
    after = wait_for(lambda: (c := rb.counters())["devices"]["sr6-b"]["rx_packets"]
                     > before["devices"]["sr6-b"]["rx_packets"] and c, what="rx on sr6-b")
    rx = {k: after["devices"]["sr6-b"][k] - before["devices"]["sr6-b"][k] for k in ("rx_packets", "rx_bytes")}
    assert rx == {"rx_packets": 1, "rx_bytes": len(frame)}
    assert after["sids"]["fcff:2::1"]["packets"] == before["sids"]["fcff:2::1"]["packets"] + 1


def test_reduced_srh_crosses_a_transit_end(lab):
    """R1 + S2: reduced [fcff:2::e, fcff:3::d20] sends DA fcff:2::e and an
    SRH of fcff:3::d20 alone with Segments Left 1 = Last Entry + 1; b's End
    takes that SRH (as Linux, which validates SRHs as possibly reduced),
    moves fcff:3::d20 into the DA, and its End.DT2U delivers the frame."""
    rb = lab["ref_b"]
    marker = b"R1-end-%d" % time.monotonic_ns()
    frame = raw_frame(marker)
    with devices_on_a(lab, [{"name": "d-red-end", "segs": ["fcff:2::e", "fcff:3::d20"], "mode": "reduced"}]):
        before, pkt, got = across(lab, frame, marker)
    assert IPv6Address(pkt[38:54]) == IPv6Address("fcff:2::e")
    srh = pkt[54:54 + 24]
    assert (srh[0], srh[1], srh[3], srh[4]) == (143, 2, 1, 0) and IPv6Address(srh[8:24]) == IPv6Address("fcff:3::d20")
    assert got == frame
    after = rb.counters()["sids"]
    assert after["fcff:2::e"]["packets"] == before["sids"]["fcff:2::e"]["packets"] + 1
    assert after["fcff:3::d20"]["packets"] == before["sids"]["fcff:3::d20"]["packets"] + 1


def test_hmac_is_checked_at_the_far_end(lab):
    """R4 with the far end: b's End.DT2U checks HMAC TLVs with its keys
    (seg6_require_hmac 0: when there is one).  One frame through two
    devices to the same SID: key 1 (the same secret on both sides) is
    delivered, key 3 (another secret at b) is dropped as a SID error; h2
    sees the frame once before a sentinel sent after it."""
    rb = lab["ref_b"]
    frame, sentinel = b"R4-%d" % time.monotonic_ns(), b"R4-sentinel-%d" % time.monotonic_ns()
    devs = [{"name": "d-key1", "segs": ["fcff:3::d20"], "hmac": 1},
            {"name": "d-key3", "segs": ["fcff:3::d20"], "hmac": 3}]
    with devices_on_a(lab, devs):
        h2 = Capture(lab["ns"]["h2"], "eth0")
        try:
            before = rb.sid("fcff:3::d20")
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(frame))
            after = wait_for(lambda: (c := rb.sid("fcff:3::d20"))["errors"] > before["errors"]
                             and c["packets"] > before["packets"] and c, what="one HMAC refused, one taken")
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(sentinel))
            _, seen = h2.until(lambda f: sentinel in f)
        finally:
            h2.close()
    assert (after["errors"] - before["errors"], after["packets"] - before["packets"]) == (1, 1)
    assert sum(frame in f for f in seen) == 1


def test_post_encapsulation_table(lab):
    """R2: the route to fcff::/16 is in table 100 only and main has a
    blackhole for fcff:2::1.  The devices with table 100 (full and reduced)
    send; without a table (main: the blackhole) tx_errors alone, as for a
    table that does not exist (200); a table that exists without a route
    for the SID (300) is no route: tx_carrier_errors + tx_errors.  While
    they run one rule per table steers their packets; none is left after."""
    a = lab["ns"]["a"]
    eth = a.ipr.link_lookup(ifname="eth-b")[0]
    marker = b"R2-%d" % time.monotonic_ns()
    routes = [dict(dst="fcff::", dst_len=16, gateway=UB, oif=eth, table=100),
              dict(dst="fcff:2::1", dst_len=128, type="blackhole"),
              dict(dst="2001:db8:300::", dst_len=64, oif=eth, table=300)]
    for r in routes:
        a.ipr.route("add", family=socket.AF_INET6, **r)
    devs = [{"name": "t-100", "segs": ["fcff:2::1"], "table": 100},
            {"name": "t-red", "segs": ["fcff:2::1", "fcff:3::2", "fcff:4::3"], "mode": "reduced", "table": 100},
            {"name": "t-main", "segs": ["fcff:2::1"]},
            {"name": "t-200", "segs": ["fcff:2::1"], "table": 200},
            {"name": "t-300", "segs": ["fcff:2::1"], "table": 300}]
    try:
        with devices_on_a(lab, devs) as ref:
            assert sorted(r.get_attr("FRA_TABLE") or r["table"] for r in a.ipr.get_rules(family=socket.AF_INET6)
                          if r.get_attr("FRA_FWMARK")) == [100, 200, 300]
            cap = Capture(lab["ns"]["b"], "eth-a")
            try:
                before = ref.counters()["devices"]
                send_frame(lab["ns"]["h1"], "eth0", raw_frame(marker))
                got = cap.wait_for(marked(marker), 2)
                wait_for(lambda: all(ref.dev(d)["tx_errors"] > before[d]["tx_errors"]
                                     for d in ("t-main", "t-200", "t-300")), what="lookup errors")
            finally:
                cap.close()
            shapes = sorted((f.data[20], f.data[58]) for f in got)  # next header, last entry
            assert shapes == [(43, 0), (43, 1)]  # t-100: full, one SID; t-red: reduced, three
            assert delta(ref, before, "t-main") == {"tx_errors": 1}
            assert delta(ref, before, "t-200") == {"tx_errors": 1}
            assert delta(ref, before, "t-300") == {"tx_errors": 1, "tx_carrier_errors": 1}
            assert delta(ref, before, "t-100") == {"tx_packets": 1, "tx_bytes": 60}
        assert not [r for r in a.ipr.get_rules(family=socket.AF_INET6) if r.get_attr("FRA_FWMARK")]
        with devices_on_a(lab, devs[:1], faults=["table_ignored"]) as ref:  # the fault looks in main
            before = ref.counters()["devices"]
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(marker))
            wait_for(lambda: ref.dev("t-100")["tx_errors"] > before["t-100"]["tx_errors"], what="main's blackhole")
    finally:
        for r in routes:
            a.ipr.route("del", family=socket.AF_INET6, **r)


def test_counters_per_revision(lab):
    """L1, L2 and R as the sr6 kernel counts them (measured): a route back
    into the device: collisions + tx_errors; no route: tx_carrier_errors +
    tx_errors; a blackhole: tx_errors; no key for the HMAC, or 15 SIDs with
    an HMAC (Linux's text holds 14): tx_errors.  tx_dropped never moves;
    tx_bytes counts the frame (60 bytes) where one is sent.  (c-loop needs
    IPv6 for its route, so it may also loop frames of its own: its counts
    are compared with each other.)"""
    a = lab["ns"]["a"]
    many = [f"fcff:{k:x}::1" for k in range(2, 17)]
    devs = [{"name": "c-loop", "segs": ["fcff:9::1"]}, {"name": "c-none", "segs": ["2001:db9::1"]},
            {"name": "c-black", "segs": ["fcff:c::1"]}, {"name": "c-nokey", "segs": ["fcff:2::1"], "hmac": 9},
            {"name": "c-15h", "segs": many, "hmac": 1}, {"name": "c-14h", "segs": many[:14], "hmac": 1}]
    a.ipr.route("add", family=socket.AF_INET6, dst="fcff:c::", dst_len=32, type="blackhole")
    try:
        with devices_on_a(lab, devs) as ref:
            a.write_sysctls({"net.ipv6.conf.c-loop.disable_ipv6": "0"})
            loop = dict(dst="fcff:9::", dst_len=32, oif=a.ipr.link_lookup(ifname="c-loop")[0])
            a.ipr.route("add", family=socket.AF_INET6, **loop)
            before = ref.counters()["devices"]
            send_frame(lab["ns"]["h1"], "eth0", raw_frame(b"counters-%d" % time.monotonic_ns()))
            wait_for(lambda: ref.dev("c-14h")["tx_packets"] > before["c-14h"]["tx_packets"]
                     and all(ref.dev(d["name"])["tx_errors"] > before[d["name"]]["tx_errors"] for d in devs[:5]),
                     what="counters")
            looped = delta(ref, before, "c-loop")
            assert looped["collisions"] == looped["tx_errors"] >= 1 and set(looped) == {"collisions", "tx_errors"}
            assert delta(ref, before, "c-none") == {"tx_carrier_errors": 1, "tx_errors": 1}
            for d in ("c-black", "c-nokey", "c-15h"):
                assert delta(ref, before, d) == {"tx_errors": 1}, d
            assert delta(ref, before, "c-14h") == {"tx_packets": 1, "tx_bytes": 60}
    finally:
        a.ipr.route("del", family=socket.AF_INET6, dst="fcff:c::", dst_len=32, type="blackhole")


def test_default_mtus(tmp_path, need_root):
    """N1/T4/S3 for sr6: 1422 (full, 1 SID), 1446 (reduced, 1), 1390
    (full, 3), 1406 (reduced, 3), 1382 (full, 1, HMAC); 127 SIDs: 68, the
    minimum (clamped); an MTU given at creation is applied."""
    name = f"tsr6{os.getpid() % 100000}m"
    create_netns(name)
    ns = Netns(name)
    s127 = [f"fcff:{k:x}::1" for k in range(2, 129)]
    devs = {"m-f1": (["fcff:2::1"], "full", None, None, 1422), "m-r1": (["fcff:2::1"], "reduced", None, None, 1446),
            "m-f3": (s127[:3], "full", None, None, 1390), "m-r3": (s127[:3], "reduced", None, None, 1406),
            "m-f1h": (["fcff:2::1"], "full", 1, None, 1382), "m-f127": (s127, "full", None, None, 68),
            "m-r127": (s127, "reduced", None, None, 68), "m-9000": (["fcff:2::1"], "full", None, 9000, 9000)}
    try:
        ref = Ref(name, {"revision": "sr6", "hmac_keys": KEYS,
                         "devices": [{"name": n, "segs": segs, "mode": mode, "hmac": keyid, "mtu": mtu}
                                     for n, (segs, mode, keyid, mtu, _) in devs.items()]}, str(tmp_path))
        try:
            assert ref.ready == "ready\n", ref.ready
            got = {n: ns.ipr.get_links(ns.ipr.link_lookup(ifname=n)[0])[0].get_attr("IFLA_MTU") for n in devs}
        finally:
            ref.stop()
    finally:
        ns.close()
        delete_netns(name)
    assert got == {n: v[-1] for n, v in devs.items()}
