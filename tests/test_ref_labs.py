"""The reference datapath in real labs built from topologies/: the p2p
pseudowire carries ARP and ND (no static neighbours), the chain carries
frames over 3 SIDs through two transit End routers, and the loop / no-route
cases count what CONFORMANCE L1-L3 say (collisions, tx_carrier_errors,
tx_dropped), with nothing leaving the node."""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed import defaults, linux, state, status
from testbed.capture import Capture
from testbed.packets import is_srv6, send_frames, srv6_of
from testbed.pytest_plugin import unique_lab_name
from testbed.wait import until

pytestmark = pytest.mark.usefixtures("need_root")


def ping(lab, node: str, dst: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.node(node).name, "ping", "-c1", "-W5", dst],
                          capture_output=True, text=True)


def neighbours(lab, node: str) -> str:
    return subprocess.run(["ip", "-n", lab.node(node).name, "neigh", "show"],
                          capture_output=True, text=True, check=True).stdout


def test_p2p_ref_arp_and_nd_cross_the_pseudowire(make_lab):
    """T1/T2: no static neighbours; ARP and ND resolve across srl2; ping both ways."""
    lab = make_lab("topologies/p2p.yaml", datapath="ref")
    assert lab.record.datapath == "ref"
    assert "PERMANENT" not in neighbours(lab, "hs-1") + neighbours(lab, "hs-2")
    before = lab.counters("rt-1", "srl2-0")
    shown_before = status.collect(lab)["nodes"]["rt-1"]["srl2"]["srl2-0"]
    for src, dst in [("hs-1", "10.0.0.2"), ("hs-2", "10.0.0.1"), ("hs-1", "cafe::2"), ("hs-2", "cafe::1")]:
        p = ping(lab, src, dst)
        assert p.returncode == 0, (src, dst, p.stdout, p.stderr)
    hs2_mac = subprocess.run(["ip", "-n", lab.node("hs-2").name, "-br", "link", "show", "veth0"],
                             capture_output=True, text=True).stdout.split()[2]
    learned = neighbours(lab, "hs-1")
    assert f"10.0.0.2 dev veth0 lladdr {hs2_mac}" in learned
    assert f"cafe::2 dev veth0 lladdr {hs2_mac}" in learned
    after = lab.counters("rt-1", "srl2-0")
    # at least ARP request + echo request + NS + echo request went out, and their replies came in
    assert after["tx_packets"] - before["tx_packets"] >= 4
    assert after["rx_packets"] - before["rx_packets"] >= 4
    assert after["tx_bytes"] > before["tx_bytes"]
    # `testbed status` shows them moving, with the SIDs of the reference
    info = status.collect(lab)["nodes"]["rt-1"]
    assert info["srl2"]["srl2-0"]["tx_packets"] >= shown_before["tx_packets"] + 4
    assert {"sid": "fcff:1::d20/128", "action": "End.DT2U", "table": 90, "datapath": "ref",
            "l2dev": "srl2-0"} in info["sids"]
    assert "srl2   srl2-0 (ref): " in status.format_text(status.collect(lab))


def test_chain_three_sids_through_two_transit_end_routers(make_lab):
    """S2 through the lab: on each underlay link the DA is the next SID and
    Segments Left counts down; the segment list never changes."""
    lab = make_lab("topologies/chain.yaml", datapath="ref")
    links = {"rt-2": "veth-rt1", "rt-3": "veth-rt2", "rt-4": "veth-rt3"}
    caps = {node: Capture(lab.node(node), ifname) for node, ifname in links.items()}
    try:
        p = ping(lab, "hs-1", "10.0.0.2")
        assert p.returncode == 0, p.stdout
        wire = [ipaddress.IPv6Address(a) for a in ("fcff:4::d20", "fcff:3::e", "fcff:2::e")]
        for node, (da, sl) in {"rt-2": ("fcff:2::e", 2), "rt-3": ("fcff:3::e", 1),
                               "rt-4": ("fcff:4::d20", 0)}.items():
            seen = caps[node].wait_for(lambda f: (s := srv6_of(f.data)) is not None and not f.outgoing
                                       and s[0] == ipaddress.IPv6Address(da))
            assert seen, f"no SRv6 packet to {da} arrived at {node}"
            dst, srh = srv6_of(seen[0].data)
            assert (srh.segments_left, srh.last_entry, srh.nexthdr) == (sl, 2, 143)
            assert list(srh.segments) == wire
    finally:
        for cap in caps.values():
            cap.close()


QUIET = "topologies/quiet.yaml"  # no background traffic through the pseudowire


def frames(n: int) -> list[bytes]:
    """Broadcast frames of a local experimental ethertype: the bridge floods
    each one to srl2-0 exactly once."""
    src = bytes.fromhex("020000000101")
    return [b"\xff" * 6 + src + b"\x88\xb5" + f"srl2 testbed frame {i}".encode().ljust(46, b".")
            for i in range(n)]


@pytest.fixture
def quiet(make_lab):
    return make_lab(QUIET, datapath="ref")


def deltas(lab, before: dict) -> dict:
    now = lab.counters("rt-1", "srl2-0")
    return {k: now[k] - before[k] for k in now}


def test_route_back_into_the_device_counts_collisions(quiet):
    """L1: the route to the first SID points into srl2-0 itself: every frame
    dropped, collisions +1 and tx_dropped +1 each, nothing leaves rt-1."""
    lab = quiet
    rt1 = lab.node("rt-1")
    srl2 = lab.ifindex("rt-1", "srl2-0")
    # Bridge ports have IPv6 off by default, and a route needs it on its
    # device: turn it on, without a link-local address.
    rt1.write_proc("/proc/sys/net/ipv6/conf/srl2-0/addr_gen_mode", "1")
    rt1.write_proc(defaults.disable_ipv6_path("srl2-0"), "0")
    rt1.ipr.route("replace", dst="fcff:2::/32", oif=srl2, table=90, family=10)
    with Capture(rt1, "veth-rt2") as underlay, Capture(rt1, "srl2-0") as into_dev:
        before = lab.counters("rt-1", "srl2-0")
        send_frames(lab.node("hs-1"), "veth0", frames(5))
        assert len(into_dev.wait_for(lambda f: f.outgoing and f.data[12:14] == b"\x88\xb5", 5)) == 5
        # The node's own IPv6 stack may add a frame of its own (MLD) at any
        # time: each frame that entered collided and was dropped, ours included.
        d = until(lambda: (x := deltas(lab, before))["collisions"] >= 5 and x)
        assert d["collisions"] == d["tx_dropped"] >= 5
        assert d["tx_packets"] == 0 and d["tx_carrier_errors"] == 0
        assert [f for f in underlay.settle() if is_srv6(f.data)] == []


def test_no_route_counts_carrier_errors_and_repair_is_not_cached(quiet):
    """L2 then L3: no route -> tx_carrier_errors and tx_dropped per frame;
    route back -> the next frames go out (the error was not cached)."""
    lab = quiet
    rt1 = lab.node("rt-1")
    rt1.ipr.route("del", dst="fcff:2::/32", table=90, family=10)
    before = lab.counters("rt-1", "srl2-0")
    with Capture(rt1, "veth-rt2") as underlay:
        send_frames(lab.node("hs-1"), "veth0", frames(4))
        d = until(lambda: (x := deltas(lab, before))["tx_carrier_errors"] >= 4 and x)
        assert d["tx_carrier_errors"] == d["tx_dropped"] >= 4 and d["tx_packets"] == 0
        assert [f for f in underlay.settle() if is_srv6(f.data)] == []

        rt1.ipr.route("add", dst="fcff:2::/32", gateway="fcf0:0:1:2::2", table=90, family=10)
        before = lab.counters("rt-1", "srl2-0")
        send_frames(lab.node("hs-1"), "veth0", frames(3))
        sent = underlay.wait_for(lambda f: f.outgoing and is_srv6(f.data), 3)
        assert len(sent) == 3
        d = until(lambda: (x := deltas(lab, before))["tx_packets"] >= 3 and x)
        assert d["tx_dropped"] == 0 and d["tx_carrier_errors"] == 0


OWNER = """
import sys
from testbed import topology
from testbed.lab import Lab
lab = Lab.up(topology.load(sys.argv[1]), name=sys.argv[2], datapath="ref")
print(" ".join(str(p.pid) for p in lab.record.procs), flush=True)
sys.stdin.read()
"""


def test_ref_processes_die_with_a_sigkilled_owner(need_root):
    """No orphans: the reference processes exit when the lab's owner is
    SIGKILLed (PR_SET_PDEATHSIG), and stale reaping removes the rest."""
    import sys

    from testbed import state
    from testbed.pytest_plugin import unique_lab_name

    name = unique_lab_name("o")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "topologies/p2p.yaml", name],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2  # rt-1 and rt-2
        owner.kill()
        owner.wait()
        assert all(state.wait_exit(pid, 10) for pid in pids)
    finally:
        owner.kill()
        state.reap_stale()
    assert not any(ns.startswith(f"{name}-") for ns in os.listdir("/run/netns"))


# ---- teardown: daemons stop on SIGTERM, not after a SIGKILL timeout ---------

P2P = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "topologies", "p2p.yaml")
SIGNAL_BITS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def blocked_signals(pid: int) -> set[int]:
    """The signals blocked in PID's main thread (SigBlk of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line.split()[1] for line in f if line.startswith("SigBlk:")), 16)
    return {s for s in range(1, 65) if mask >> (s - 1) & 1}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_down_of_a_ref_lab_stops_its_daemons_by_sigterm(tmp_path):
    """The keeper sigwait()s for its stop signals with them blocked; the
    srl2_ref processes it starts must not inherit that mask (they would
    ignore SIGTERM and be SIGKILLed after a timeout: a 10 s `down`)."""
    name = unique_lab_name("d")
    up = run_cli("up", P2P, "--name", name, "--datapath", "ref")
    assert up.returncode == 0, up.stderr
    try:
        rec = state.load(name)
        assert rec.owner.what == "keeper" and len(rec.procs) == 2
        for proc in rec.procs:
            assert blocked_signals(proc.pid) & SIGNAL_BITS == set(), proc
        t = time.monotonic()
        down = run_cli("down", name)
        took = time.monotonic() - t
        assert down.returncode == 0, down.stderr
        # SIGTERM + exit is milliseconds (the CLI's start-up dominates); the
        # old SIGKILL fallback waited 5 s per daemon, 10 s here.  The bound
        # leaves room for a heavily loaded machine.
        assert took < 7.0, f"testbed down took {took:.1f} s"
        assert not any(p.alive() for p in rec.procs)
    finally:
        run_cli("down", name)
    assert not [ns for ns in linux.list_netns() if ns.startswith(f"{name}-")]


def test_kernel_refused_ref_up_fails_fast_and_leaves_nothing(tmp_path):
    """A refusal after the reference daemons started: the error comes back
    in well under the SIGKILL fallback, and the partial lab is gone."""
    bad = tmp_path / "bad.yaml"
    text = open(P2P).read().replace(
        '      - {dst: "fcff:1::/32", via: "fcf0:0:1:2::1", table: 90}',
        '      - {dst: "fcff:1::/32", via: "fcf0:0:9::1", table: 90}')
    bad.write_text(text)
    name = unique_lab_name("d")
    t = time.monotonic()
    up = run_cli("up", str(bad), "--name", name, "--datapath", "ref")
    took = time.monotonic() - t
    assert up.returncode == 1 and "kernel said" in up.stderr and "Traceback" not in up.stderr, up.stderr
    # The same lab without the bad route, up and down, for scale: the
    # refusal costs no more (the old SIGKILL fallback added 10 s; the bound
    # leaves room for a heavily loaded machine).
    t = time.monotonic()
    good = run_cli("up", P2P, "--name", name, "--datapath", "ref")
    assert good.returncode == 0, good.stderr
    assert run_cli("down", name).returncode == 0
    took_good = time.monotonic() - t
    assert took < took_good + 7.0, f"a refused up took {took:.1f} s, a good up + down {took_good:.1f} s"
    assert not [ns for ns in linux.list_netns() if ns.startswith(f"{name}-")]
    assert state.load(name) is None


@pytest.mark.needs("srl2")
def test_fresh_lab_has_no_tx_errors_before_any_traffic(lab):
    """A new lab's srl2 devices show no error counts: they come up only once
    the route to their first SID exists (else what the bridge hands them
    during bring-up, MLD and ND of the node itself, counts as
    tx_carrier_errors / tx_dropped, and reads as a fault)."""
    p2p = lab("topologies/p2p.yaml")
    for node in ("rt-1", "rt-2"):
        c = p2p.counters(node, "srl2-0")
        assert (c["tx_carrier_errors"], c["tx_dropped"], c["tx_errors"]) == (0, 0, 0), (node, c)
