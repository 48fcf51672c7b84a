"""L — loops and route errors of srl2 (docs/catalogue.md, L1-L5).

The labs are quiet (tests/test_ref_labs.py QUIET: hosts without IPv6
link-local addresses, no IPv6 on the routers' br0, no multicast snooping),
so what the bridge hands to srl2-0 is, but for the node's own rare
frames, what hs-1 sends.  Counters are checked per frame handed to the
device, counted on a capture of srl2-0 itself: robust to a frame of the
node's own (MLD after IPv6 is turned on), exact otherwise.

    hs-1 ---- rt-1 ===== fcf0:0:1:2::/64 ===== rt-2 ---- hs-2
              br0 = veth-hs + srl2-0 (segs fcff:2::d20, route in table 90)
"""
from __future__ import annotations

import textwrap
import threading
import time

import pytest

from testbed import defaults
from testbed.capture import Frame
from testbed.casekit import counter_delta, fresh_marker, leaving
from testbed.kmsg import problem
from testbed.packets import is_srv6, send_frames
from testbed.wait import until

FIRST_SID = "fcff:2::d20"
RT2 = "fcf0:0:1:2::2"

_QUIET_HOST = "{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.all.addr_gen_mode: 1}"

QUIET = textwrap.dedent(f"""\
    name: loops
    nodes:
      hs-1:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: [10.0.0.1/24], mac: "02:00:00:00:01:01"}}
      rt-1:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.br0.disable_ipv6: 1}}
        interfaces:
          veth-rt2: {{addresses: ["fcf0:0:1:2::1/64"]}}
        bridges:
          br0: {{ports: [veth-hs], mcast_snooping: false}}
        srl2:
          srl2-0: {{segs: ["{FIRST_SID}"], bridge: br0}}
        routes:
          - {{dst: "fcff:2::/32", via: "{RT2}", table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      rt-2:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.br0.disable_ipv6: 1}}
        interfaces:
          veth-rt1: {{addresses: ["{RT2}/64"]}}
        bridges:
          br0: {{ports: [veth-hs], mcast_snooping: false}}
        srl2:
          srl2-0: {{segs: ["fcff:1::d20"], bridge: br0}}
        sids:
          - {{sid: "{FIRST_SID}", action: End.DT2U, l2dev: srl2-0, table: 90}}
        routes:
          - {{dst: "fcff:1::/32", via: "fcf0:0:1:2::1", table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      hs-2:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: [10.0.0.2/24]}}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
      - [rt-2:veth-hs, hs-2:veth0]
    """)

def frames(mark: bytes, n: int, dst: bytes = b"\xff" * 6) -> list[bytes]:
    """N frames of a local experimental ethertype from hs-1, each carrying
    MARK and its number; broadcast by default (flooded to srl2-0 once)."""
    src = bytes.fromhex("020000000101")
    return [dst + src + b"\x88\xb5" + mark + f"{i:05d}".encode().ljust(40, b".") for i in range(n)]


def handed(cap) -> list[Frame]:
    """Frames the node handed to the srl2 device (captured on it, outgoing)
    that are not SRv6 themselves: what the device had to transmit."""
    return [f for f in cap.frames if f.outgoing and not is_srv6(f.data)]


def route_into_self(lab_) -> None:
    """rt-1's route to the first SID points into srl2-0 itself.  A bridge
    port has IPv6 off (testbed.defaults.port_without_ipv6) and a route
    needs it on its device: turn it on, without a link-local address."""
    rt1 = lab_.node("rt-1")
    rt1.write_proc("/proc/sys/net/ipv6/conf/srl2-0/addr_gen_mode", "1")
    rt1.write_proc(defaults.disable_ipv6_path("srl2-0"), "0")
    rt1.ipr.route("replace", dst="fcff:2::/32", oif=lab_.ifindex("rt-1", "srl2-0"), table=90, family=10)


def repair(lab_) -> None:
    lab_.node("rt-1").ipr.route("replace", dst="fcff:2::/32", gateway=RT2, table=90, family=10)


def kernel_problems(lines: list[str]) -> list[str]:
    """The kernel messages that report a problem (testbed.kmsg.problem):
    a WARNING, a dead loop, ...; not a bridge port changing state."""
    return [ln for ln in lines if problem(ln)]


def all_captures(lab_, capture, node: str) -> dict:
    """A capture on every interface of NODE (lo, veths, bridges, srl2 and
    the reference's SID TUN, whatever exists)."""
    names = sorted(m.get_attr("IFLA_IFNAME") for m in lab_.node(node).ipr.get_links())
    return {name: capture(lab_, node, name) for name in names}


# ---- L1 ----------------------------------------------------------------


@pytest.mark.conformance("L1", "L3")
@pytest.mark.needs("srl2", "End.DT2U")
def test_route_into_the_device_itself_is_dropped_and_counted(lab, capture, datapath, kernel_log, checks, revision):
    """L1 (srl2 patch: a route to the first SID whose device is the srl2
    device itself is a loop: drop, collisions++ and tx_dropped++; sr6:
    collisions++ and tx_errors++, the revision's `counters.loop`): with the
    route to fcff:2::d20 pointing into srl2-0, each frame the bridge hands
    to srl2-0 adds exactly 1 to each of those counters, nothing else;
    no SRv6 packet appears on any interface of rt-1 (captured on all of
    them: no storm through srl2-0 itself), none of our frames leaves any
    other interface, and (kernel) the kernel logs no problem (a WARNING,
    a dead loop, ...; a bridge port changing state is not one).  Then L3:
    the route repaired, the next frame goes out (the loop verdict was not
    cached)."""
    lab_ = lab(QUIET)
    route_into_self(lab_)
    caps = all_captures(lab_, capture, "rt-1")
    dev = caps["srl2-0"]
    n = 5
    mark = fresh_marker("L1")
    before = lab_.counters("rt-1", "srl2-0")
    send_frames(lab_.node("hs-1"), "veth0", frames(mark, n))
    ours = dev.wait_for(leaving(mark), n)
    assert len(ours) == n, f"the bridge handed {len(ours)} of {n} frames to srl2-0 (the lab, not L1)"
    first, second = revision.counters.loop
    until(lambda: counter_delta(lab_, "rt-1", "srl2-0", before)[first] >= n)
    d = counter_delta(lab_, "rt-1", "srl2-0", before)
    # Every frame counted was captured on srl2-0 before the device saw it:
    # drained after the read, the capture holds at least what was counted.
    for cap in caps.values():
        cap.settle()
    count = len(handed(dev))  # ours, and any frame of rt-1's own sent into srl2-0
    checks.check("L1", f"{first} and {second} per frame handed to srl2-0 ({revision.name})",
                 n <= d[first] == d[second] <= count, f"+1 each per frame ({count} handed, {n} ours)",
                 f"{first} +{d[first]}, {second} +{d[second]}")
    others = {k: d[k] for k in ("tx_packets", "tx_bytes", "tx_carrier_errors", "tx_errors", "tx_dropped")
              if k not in revision.counters.loop}
    checks.equal("L1", "other tx counters of srl2-0", {k: 0 for k in others}, others)
    srv6 = {name: n_ for name, cap in caps.items() if (n_ := sum(1 for f in cap.frames if is_srv6(f.data)))}
    checks.equal("L1", "SRv6 packets on rt-1's interfaces (the loop stopped)", {}, srv6)
    out = {name: n_ for name, cap in caps.items()
           if name != "srl2-0" and (n_ := sum(1 for f in cap.frames if leaving(mark)(f)))}
    checks.equal("L1", "the frames leaving rt-1 on other interfaces", {}, out)
    checks.equal("L1", "times each frame was seen on srl2-0 (no storm)", n,
                 len([f for f in dev.frames if mark in f.data]))
    if datapath == "kernel":
        checks.equal("L1", "kernel problems logged for a route into srl2 itself", [],
                     kernel_problems(kernel_log.messages()))

    # L3: repaired, the next frame goes out
    underlay = caps["veth-rt2"]
    repair(lab_)
    mark = fresh_marker("L1-L3")
    send_frames(lab_.node("hs-1"), "veth0", frames(mark, 1))
    out3 = underlay.wait_for(lambda f: f.outgoing and mark in f.data and is_srv6(f.data))
    checks.equal("L3", "SRv6 packets leaving rt-1 for the next frame once the route is repaired", 1, len(out3))


# ---- L2, L3 ------------------------------------------------------------

RTN = {"unreachable": 7, "prohibit": 8, "blackhole": 6}


@pytest.mark.conformance("L2", "L3")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.parametrize("kind", ["none", "unreachable", "prohibit", "blackhole"])
def test_no_usable_route_counts_carrier_errors_and_repair_is_not_cached(lab, capture, kind, checks, revision):
    """L2 (srl2 patch: the route lookup to the first SID fails or yields a
    reject route: drop, tx_carrier_errors++ and tx_dropped++; sr6:
    tx_carrier_errors++ and tx_errors++, the revision's `counters.no_route`):
    with no route to fcff:2::d20 at all (table 90 empty and nothing in
    main) or an unreachable / prohibit / blackhole route, each frame handed
    to srl2-0 adds exactly 1 to each of those counters, none is sent,
    and nothing leaves rt-1 on the underlay.  L3: the route put back, the
    very next frame goes out (the error was not cached)."""
    lab_ = lab(QUIET)
    rt1 = lab_.node("rt-1")
    if kind == "none":
        rt1.ipr.route("del", dst="fcff:2::/32", table=90, family=10)
    else:
        rt1.ipr.route("replace", dst="fcff:2::/32", type=RTN[kind], table=90, family=10)
    underlay = capture(lab_, "rt-1", "veth-rt2")
    dev = capture(lab_, "rt-1", "srl2-0")
    n = 4
    mark = fresh_marker(f"L2{kind}")
    before = lab_.counters("rt-1", "srl2-0")
    send_frames(lab_.node("hs-1"), "veth0", frames(mark, n))
    assert len(dev.wait_for(leaving(mark), n)) == n, "the bridge did not hand the frames to srl2-0 (the lab)"
    # The revision's counters for this cause: no route at all, or a reject route.
    counted = revision.counters.no_route if kind == "none" else revision.counters.reject
    first = counted[0]
    until(lambda: counter_delta(lab_, "rt-1", "srl2-0", before)[first] >= n)
    d = counter_delta(lab_, "rt-1", "srl2-0", before)
    dev.settle()  # after the read: holds every frame counted (see the L1 case)
    count = len(handed(dev))
    names = " and ".join(counted)
    checks.check("L2", f"route {kind}: {names} per frame handed to srl2-0 ({revision.name})",
                 n <= d[first] <= count and all(d[c] == d[first] for c in counted),
                 f"+1 each per frame ({count} handed, {n} ours)",
                 ", ".join(f"{c} +{d[c]}" for c in counted))
    others = {k: d[k] for k in ("tx_packets", "tx_bytes", "collisions", "tx_dropped", "tx_carrier_errors")
              if k not in counted}
    checks.equal("L2", f"route {kind}: other tx counters of srl2-0", {k: 0 for k in others}, others)
    sent = [f for f in underlay.settle() if f.outgoing and (is_srv6(f.data) or mark in f.data)]
    checks.equal("L2", f"route {kind}: packets leaving rt-1 on the underlay", 0, len(sent))

    repair(lab_)
    mark = fresh_marker(f"L3{kind}")
    before = lab_.counters("rt-1", "srl2-0")
    send_frames(lab_.node("hs-1"), "veth0", frames(mark, 1))
    out = underlay.wait_for(lambda f: f.outgoing and mark in f.data and is_srv6(f.data))
    checks.equal("L3", f"route {kind} repaired: SRv6 packets leaving rt-1 for the next frame", 1, len(out))
    until(lambda: counter_delta(lab_, "rt-1", "srl2-0", before)["tx_packets"] >= 1)
    d = counter_delta(lab_, "rt-1", "srl2-0", before)
    checks.check("L3", f"route {kind} repaired: srl2-0 counters for the next frame",
                 d["tx_packets"] >= 1 and all(d[c] == 0 for c in counted),
                 f"tx_packets +1 or more, no {' and no '.join(counted)}",
                 f"tx_packets +{d['tx_packets']}, " + ", ".join(f"{c} +{d[c]}" for c in counted))


# ---- L4 ----------------------------------------------------------------

# Two underlay links rt-1 -- rt-2 (a: fcf0:0:1:2::/64, b: fcf0:0:2:2::/64);
# rt-2 is a host that owns both addresses and drops what it receives.
TWO_PATHS = textwrap.dedent(f"""\
    name: twopaths
    nodes:
      hs-1:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth0: {{addresses: [10.0.0.1/24], mac: "02:00:00:00:01:01"}}
      rt-1:
        kind: router
        sysctls: {{net.ipv6.conf.default.addr_gen_mode: 1, net.ipv6.conf.br0.disable_ipv6: 1}}
        interfaces:
          veth-a: {{addresses: ["fcf0:0:1:2::1/64"]}}
          veth-b: {{addresses: ["fcf0:0:2:2::1/64"]}}
        bridges:
          br0: {{ports: [veth-hs], mcast_snooping: false}}
        srl2:
          srl2-0: {{segs: ["{FIRST_SID}"], bridge: br0}}
        routes:
          - {{dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}}
        rules:
          - {{to: "fcff::/16", lookup: 90, prio: 999}}
      rt-2:
        sysctls: {_QUIET_HOST}
        interfaces:
          veth-a: {{addresses: ["fcf0:0:1:2::2/64"]}}
          veth-b: {{addresses: ["fcf0:0:2:2::2/64"]}}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-a, rt-2:veth-a]
      - [rt-1:veth-b, rt-2:veth-b]
    """)


def seqno(mark: bytes, data: bytes) -> int | None:
    at = data.find(mark)
    if at < 0:
        return None
    return int(data[at + len(mark):at + len(mark) + 5])


@pytest.mark.conformance("L4")
@pytest.mark.needs("srl2")
def test_route_change_while_frames_flow_is_followed(lab, capture):
    """L4 (srl2 patch: the route to the first SID is cached per device, like
    seg6's dst_cache, and a routing change invalidates it): hs-1 sends a
    numbered stream (one frame per 2 ms); half-way the route to fcff:2::/32
    is replaced from link a to link b.  Every frame leaves on at most one
    link, the switch happens once (all frames on a precede all frames on
    b), frames sent before the change went on a, and every frame sent
    5 frames (10 ms) or more after the replace was acknowledged leaves on b.
    A datapath that keeps the cached route would keep sending on a."""
    lab_ = lab(TWO_PATHS)
    caps = {link: capture(lab_, "rt-1", f"veth-{link}") for link in "ab"}
    mark = fresh_marker("L4")
    stream = frames(mark, 300)
    sent_at_replace: list[int] = []
    first_sent = threading.Event()
    hs1 = lab_.node("hs-1")

    def sender():
        import socket as so
        with hs1.socket(so.AF_PACKET, so.SOCK_RAW, 0) as s:
            s.bind(("veth0", 0))
            t0 = time.monotonic()
            for i, f in enumerate(stream):
                delay = t0 + i * 0.002 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the stream, not waiting for a state
                s.send(f)
                sender.count = i + 1
                if i == 99:
                    first_sent.set()

    sender.count = 0
    t = threading.Thread(target=sender)
    t.start()
    try:
        assert first_sent.wait(10)
        lab_.node("rt-1").ipr.route("replace", dst="fcff:2::/32", gateway="fcf0:0:2:2::2", table=90, family=10)
        sent_at_replace.append(sender.count)
    finally:
        t.join()
    switch = sent_at_replace[0]
    caps["b"].wait_for(lambda f: f.outgoing and seqno(mark, f.data) == len(stream) - 1)
    seen = {}
    for link, cap in caps.items():
        nums = [seqno(mark, f.data) for f in cap.settle() if f.outgoing and is_srv6(f.data) and mark in f.data]
        assert len(nums) == len(set(nums)), f"frames left twice on link {link}"
        seen[link] = set(nums)
    both = seen["a"] & seen["b"]
    assert not both, f"{len(both)} frames left on both links"
    assert seen["a"] and seen["b"], f"frames on a: {len(seen['a'])}, on b: {len(seen['b'])}"
    assert max(seen["a"]) < min(seen["b"]), (
        f"frames went back to the old path: last on a #{max(seen['a'])}, first on b #{min(seen['b'])}")
    assert set(range(min(switch, 90))) <= seen["a"], "frames sent before the change did not all leave on a"
    late = set(range(switch + 5, len(stream)))
    assert late <= seen["b"], (f"{len(late - seen['b'])} frames sent after the route change did not leave on b "
                               f"(first: #{min(late - seen['b'])}; change after #{switch})")


# ---- L5 ----------------------------------------------------------------

# Each encapsulation adds an IPv6 header (40), a one-SID SRH (24) and, when
# the packet is routed into the other srl2 device, an Ethernet header (14):
# a frame circling between two srl2 devices grows by 78 bytes a round until
# it no longer fits the device MTU (1422 for one SID, T4).  So a loop is
# bounded by the MTU: at most this many transmissions per frame that enters.
GROWTH = 40 + 24 + 14
MAX_ROUNDS = 1500 // GROWTH + 1
SETTLE_TIMEOUT = 8.0


def route_into(lab_, node: str, prefix: str, dev: str, neighbour: str, mac: str) -> None:
    """NODE routes PREFIX (table 90) into srl2 device DEV, with a permanent
    neighbour entry for NEIGHBOUR so that packets are sent at once (no ND)."""
    ns = lab_.node(node)
    ns.write_proc(f"/proc/sys/net/ipv6/conf/{dev}/addr_gen_mode", "1")
    ns.write_proc(defaults.disable_ipv6_path(dev), "0")
    index = lab_.ifindex(node, dev)
    ns.ipr.neigh("add", dst=neighbour, lladdr=mac, ifindex=index, state=0x80, family=10)  # NUD_PERMANENT
    ns.ipr.route("replace", dst=prefix, oif=index, table=90, family=10)


# Two nodes: rt-1's srl2-0 goes to fcff:2::1, which rt-2 routes into its own
# srl2-0, whose first SID fcff:1::1 rt-1 routes into its srl2-0: a loop
# through the underlay.
LOOP_TWO_NODES = QUIET.replace(f'segs: ["{FIRST_SID}"]', 'segs: ["fcff:2::1"]') \
                      .replace('segs: ["fcff:1::d20"]', 'segs: ["fcff:1::1"]')
# One node: rt-1's srl2-0 (bridged) goes to fcff:3::1, routed into srl2-1,
# whose first SID fcff:4::1 is routed into srl2-0.
LOOP_ONE_NODE = QUIET.replace(
    f'srl2-0: {{segs: ["{FIRST_SID}"], bridge: br0}}',
    'srl2-0: {segs: ["fcff:3::1"], bridge: br0}\n      srl2-1: {segs: ["fcff:4::1"]}')


def make_loop(lab_, shape: str) -> list[tuple[str, str]]:
    """Build the loop; the srl2 devices in it as (node, device)."""
    if shape == "two nodes":
        route_into(lab_, "rt-1", "fcff:1::/32", "srl2-0", "fcff:1::1", "02:00:00:00:f1:01")
        route_into(lab_, "rt-2", "fcff:2::/32", "srl2-0", "fcff:2::1", "02:00:00:00:f2:01")
        return [("rt-1", "srl2-0"), ("rt-2", "srl2-0")]
    route_into(lab_, "rt-1", "fcff:3::/32", "srl2-1", "fcff:3::1", "02:00:00:00:f3:01")
    route_into(lab_, "rt-1", "fcff:4::/32", "srl2-0", "fcff:4::1", "02:00:00:00:f4:01")
    return [("rt-1", "srl2-0"), ("rt-1", "srl2-1")]


@pytest.mark.conformance("L5")
@pytest.mark.needs("srl2", "End.DT2U")
@pytest.mark.parametrize("shape", ["two nodes", "one node"])
def test_two_devices_routing_into_each_other_stay_bounded(lab, capture, datapath, kernel_log, shape, checks):
    """L5 (srl2 patch / docs/catalogue.md L5: two srl2 devices whose first SIDs
    route into each other: no hang, no crash, frames dropped, bounded work):
    frames sent into the loop make it die out (no frame on the devices for
    0.3 s within 8 s), the devices transmit at most MAX_ROUNDS packets (in
    all) per frame that entered the loop (the packet grows 78 bytes a round and stops
    at the MTU), the datapath still answers (counters), rtnetlink still
    answers in every node, and the loop delivers nothing to hs-2.  On the
    kernel, a log line about a dead loop or the transmit recursion limit is
    a finding, noted (L5), not failed."""
    lab_ = lab(LOOP_TWO_NODES if shape == "two nodes" else LOOP_ONE_NODE)
    devices = make_loop(lab_, shape)
    caps = {d: capture(lab_, *d) for d in devices}
    far = capture(lab_, "hs-2", "veth0")
    before = {d: lab_.counters(*d) for d in devices}
    n = 10
    mark = fresh_marker("L5")
    start = time.monotonic()
    send_frames(lab_.node("hs-1"), "veth0", frames(mark, n))
    entered = caps[devices[0]].wait_for(lambda f: f.outgoing and mark in f.data and not is_srv6(f.data), n)
    assert len(entered) == n, f"only {len(entered)} of {n} frames entered the loop"
    for cap in caps.values():
        cap.settle(quiet=0.3, timeout=SETTLE_TIMEOUT)
    took = time.monotonic() - start
    assert took < SETTLE_TIMEOUT, f"the loop still ran after {took:.1f} s: unbounded"
    # Chains: every non-SRv6 frame handed to a device of the loop starts one
    # (ours, and the nodes' own MLD once IPv6 is on for the routes).
    starts = sum(len(handed(cap)) for cap in caps.values())
    work = {d: counter_delta(lab_, *d, before[d]) for d in devices}  # the datapath answers
    looped = sum(w["tx_packets"] for w in work.values())
    assert looped >= n, f"the frames were not sent into the loop at all ({work})"
    assert looped <= MAX_ROUNDS * starts, (
        f"L5: {looped} packets sent around the loop for {starts} frames entering it: expected at most "
        f"{MAX_ROUNDS} per frame, seen {looped / starts:.1f} ({work})")
    for node in {d[0] for d in devices} | {"hs-1", "hs-2"}:
        assert lab_.node(node).ipr.get_links(), f"rtnetlink in {node} does not answer"
    assert [f for f in far.settle() if mark in f.data] == [], "the loop delivered a frame to hs-2"
    if datapath == "kernel":
        lines = kernel_problems(kernel_log.messages())
        if lines:
            checks.note("L5", "kernel log while two srl2 devices route into each other",
                        f"{len(lines)} problem line(s), first: {lines[0]}", "no problem logged")
