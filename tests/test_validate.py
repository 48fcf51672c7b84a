"""Checks in topologies (docs/topology.md "Checks"): the `validate:` section
read into the model, the probes and their judges, `testbed validate` against
real labs (every shipped topology passes on this machine's datapath; labs
broken on purpose fail with a clear line), and the checks in the rendered
selftest script.  Golden errors of the section are in tests/errors/checks*.
"""
from __future__ import annotations

import ipaddress as ia
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from testbed import checkmodel as cm
from testbed import linux, topology
from testbed.datapaths.select import host_lacks
from testbed.render import KSFT_SKIP, render_script
from testbed.validate import frames, plan
from testbed.validate.run import PingSeen, judge_counters, judge_ping, parse_ping
from tests.test_render import run_isolated, write

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "topologies").glob("*.yaml"))

TWO_HOSTS = """\
name: two
nodes:
  h1: {interfaces: {e0: {addresses: [10.9.0.1/24, "fd00:9::1/64"]}}}
  h2: {interfaces: {e0: {addresses: [10.9.0.2/24, "fd00:9::2/64"]}}}
links: [[h1:e0, h2:e0]]
validate:
  reach: {ping: {from: h1, to: h2, af: ipv4}}
  wrongly-isolated: {no_ping: {from: h1, to: 10.9.0.2}}
  raw: {frame: {from: h1:e0, to: h2:e0, ethertype: 0x88b6, vlan: 7}}
"""


# ---------------------------------------------------------------- the model

def test_shipped_topologies_carry_checks():
    for name in ("p2p", "chain", "dx2", "isolation", "mesh4", "quiet"):
        topo = topology.load(ROOT / "topologies" / f"{name}.yaml")
        assert topo.checks, name
        kinds = {c.kind for c in topo.checks}
        assert "frame" in kinds, name
    p2p = topology.load(ROOT / "topologies" / "p2p.yaml")
    titles = [p.title for p in plan.probes(p2p)]
    # what the series' selftest checks: pings both ways, IPv4 and IPv6, across the pseudowire
    for t in ("ping hs-1 -> hs-2 (IPv4 10.0.0.2)", "ping hs-2 -> hs-1 (IPv4 10.0.0.1)",
              "ping hs-1 -> hs-2 (IPv6 cafe::2)", "ping hs-2 -> hs-1 (IPv6 cafe::1)"):
        assert t in titles
    assert "frame arp hs-1:veth0 -> hs-2:veth0" in titles
    assert "frame nd hs-2:veth0 -> hs-1:veth0" in titles
    assert titles[-1].startswith("counters rt-2 srl2-0")


def test_parsed_checks_and_their_probes():
    topo = topology.loads(TWO_HOSTS, "two.yaml")
    reach, iso, raw = topo.checks
    assert (reach.name, reach.kind, reach.where.line) == ("reach", "ping", 7)
    assert reach.spec == cm.Ping(src="h1", dst="h2", families=(4,), both_ways=True, count=3, timeout=5)
    assert iso.spec == cm.Ping(src="h1", address=ia.ip_address("10.9.0.2"), families=(4,), both_ways=False,
                               count=3, timeout=2, expect_replies=False)
    assert isinstance(raw.spec, cm.Frame)
    assert (raw.spec.ethertype, raw.spec.vlan, str(raw.spec.src), [str(e) for e in raw.spec.to]) == \
        (0x88B6, 7, "h1:e0", ["h2:e0"])
    assert [p.title for p in plan.probes(topo)] == [
        "ping h1 -> h2 (IPv4 10.9.0.2)", "ping h2 -> h1 (IPv4 10.9.0.1)",
        "no_ping h1 -> 10.9.0.2 (IPv4)", "frame ethertype 0x88b6 vlan 7 h1:e0 -> h2:e0"]
    assert [p.check for p in plan.probes(topo, ["raw"])] == ["raw"]


def test_ping_families_default_to_what_both_ends_have():
    text = TWO_HOSTS.replace('"fd00:9::2/64"', "10.9.1.2/24").replace(", af: ipv4", "")
    (reach,) = [c for c in topology.loads(text, "two.yaml").checks if c.name == "reach"]
    assert reach.spec.families == (4,)


def test_no_checks_means_no_validate_section():
    assert topology.loads(TWO_HOSTS.split("validate:")[0], "two.yaml").checks == []
    assert topology.loads(TWO_HOSTS.split("validate:")[0] + "validate:\n", "two.yaml").checks == []


# ---------------------------------------------------------------- judges

PING_OK = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n" \
          "3 packets transmitted, 3 received, 0% packet loss, time 402ms\n"
PING_LOST = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n" \
            "25 packets transmitted, 0 received, 100% packet loss, time 4990ms\n"


def _ping_probe(expect: bool) -> plan.PingProbe:
    return plan.PingProbe("c", "hs-1", "hs-2", ia.ip_address("10.0.0.2"), 3, 5, expect)


def test_judge_ping():
    assert judge_ping(_ping_probe(True), parse_ping(0, PING_OK)) == (True, "3/3 replies")
    assert judge_ping(_ping_probe(True), parse_ping(1, PING_LOST)) == \
        (False, "0/3 replies (hs-1: 100% packet loss)")
    assert judge_ping(_ping_probe(True), PingSeen(2, 0, 0, "ping: connect: Network is unreachable")) == \
        (False, "0/3 replies (hs-1: ping: connect: Network is unreachable)")
    assert judge_ping(_ping_probe(False), parse_ping(1, PING_LOST)) == (True, "0/3 replies, as expected")
    assert judge_ping(_ping_probe(False), parse_ping(0, PING_OK)) == \
        (False, "3/3 replies: hs-1 reaches 10.0.0.2, which it must not")
    # no route from the host: the kernel's own "cannot reach"
    assert judge_ping(_ping_probe(False), PingSeen(2, 0, 0, "ping: connect: Network is unreachable")) == \
        (True, "0/3 replies, as expected")
    # ping never ran (seen in a chroot whose / is no mount point): no evidence
    assert judge_ping(_ping_probe(False), PingSeen(255, 0, 0, '"mount --make-rslave /" failed: Invalid argument')) \
        == (False, 'ping sent nothing in hs-1 ("mount --make-rslave /" failed: Invalid argument)')


def test_judge_counters():
    probe = plan.CountersProbe("c", cm.Counters("rt-1", dev="srl2-0", moved=["tx_packets"],
                                                unmoved=["tx_carrier_errors"]))
    assert judge_counters(probe, {"tx_packets": 1, "tx_carrier_errors": 0},
                          {"tx_packets": 9, "tx_carrier_errors": 0}) == \
        (True, "tx_packets 1 -> 9; tx_carrier_errors 0 -> 0")
    assert judge_counters(probe, {"tx_packets": 9, "tx_carrier_errors": 0},
                          {"tx_packets": 9, "tx_carrier_errors": 4}) == \
        (False, "tx_packets did not move (9 -> 9); tx_carrier_errors moved (0 -> 4)")


def test_frames_are_what_they_claim():
    mac, marker = b"\x02\x00\x00\x00\x00\x01", frames.new_marker()
    arp = Ether(frames.build("arp", mac, marker, "10.0.0.1", "10.0.0.2"))
    assert arp.dst == "ff:ff:ff:ff:ff:ff" and arp[ARP].op == 1
    assert (arp[ARP].psrc, arp[ARP].pdst, arp[ARP].hwsrc) == ("10.0.0.1", "10.0.0.2", "02:00:00:00:00:01")
    raw = frames.build("nd", mac, marker, "cafe::1", "cafe::2")
    nd = Ether(raw)
    assert nd.dst == "33:33:ff:00:00:02" and nd[IPv6].dst == "ff02::1:ff00:2" and nd[IPv6].hlim == 255
    assert nd[ICMPv6ND_NS].tgt == "cafe::2" and marker in raw
    sent_sum = nd[ICMPv6ND_NS].cksum
    del nd[ICMPv6ND_NS].cksum
    assert Ether(bytes(nd))[ICMPv6ND_NS].cksum == sent_sum  # a valid checksum: bridges drop others
    tagged = Ether(frames.build("raw", mac, marker, ethertype=0x88B5, vlan=10))
    assert tagged[Dot1Q].vlan == 10 and tagged[Dot1Q].type == 0x88B5 and len(tagged) >= 64
    assert frames.vlan_of(bytes(tagged)) == 10


def test_frame_judge():
    f = b"x" * 64
    assert frames.judge({"b:e0": [f]}, ["b:e0"], ["c:e0"], None, 3) == \
        (True, "arrived on b:e0 (64 bytes); none on c:e0")
    assert frames.judge({"b:e0": [], "c:e0": [f, f]}, ["b:e0"], ["c:e0"], None, 3) == \
        (False, "not seen on b:e0 within 3 s; leaked to c:e0 (2 frames)")
    assert frames.judge({"b:e0": [f]}, ["b:e0"], [], 10, 3)[0] is False  # the tag got lost


# ---------------------------------------------------------------- testbed validate on real labs

def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


class UpLab:
    """`testbed up FILE --name NAME` ... `testbed down NAME`, whatever happens."""

    def __init__(self, path: str, name: str):
        self.path, self.name = path, name

    def __enter__(self) -> "UpLab":
        why = host_lacks(topology.load(ROOT / self.path))
        if why:  # e.g. mesh4's route-based encap on a kernel without seg6 lwtunnel
            pytest.skip(f"this host cannot build the lab: {why}")
        r = cli("up", self.path, "--name", self.name)
        if r.returncode:
            cli("down", self.name)
            raise AssertionError(r.stderr)
        return self

    def __exit__(self, *exc) -> None:
        r = cli("down", self.name)
        assert r.returncode == 0, r.stderr


def lab_name(topo: str) -> str:
    return f"tv{os.getpid() % 10000}-{topo}"[:20]


@pytest.mark.usefixtures("need_root")
@pytest.mark.parametrize("topo", SHIPPED)
def test_validate_passes_on_every_shipped_topology(topo):
    name = lab_name(topo)
    with UpLab(f"topologies/{topo}.yaml", name):
        r = cli("validate", name)
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines[-1].startswith(f"validate {name}: ") and lines[-1].endswith("all ok")
    probes = plan.probes(topology.load(ROOT / "topologies" / f"{topo}.yaml"))
    assert len(lines) == len(probes) + 1, r.stdout
    for line, probe in zip(lines, probes, strict=False):  # the summary line is extra
        assert line.startswith(f"ok   {probe.title}: "), r.stdout


@pytest.mark.usefixtures("need_root")
def test_validate_fails_when_a_route_is_removed():
    name = lab_name("noroute")
    with UpLab("topologies/p2p.yaml", name):
        ns = linux.Netns(f"{name}-rt-1")  # rt-1 loses its way to rt-2's locator
        try:
            ns.ipr.route("del", dst="fcff:2::/32", table=90, family=10)
        finally:
            ns.close()
        r = cli("validate", name, "--json")
        r2 = cli("validate", name, "--tests", "across", "pw-rt-1")
    assert r.returncode == 1, r.stdout + r.stderr
    results = {x["title"]: x for x in json.loads(r.stdout)["results"]}
    assert results["ping hs-1 -> hs-2 (IPv4 10.0.0.2)"]["ok"] is False
    assert results["ping hs-1 -> hs-2 (IPv4 10.0.0.2)"]["detail"] == "0/3 replies (hs-1: 100% packet loss)"
    assert results["frame arp hs-1:veth0 -> hs-2:veth0"]["detail"] == "not seen on hs-2:veth0 within 3 s"
    rt1 = results["counters rt-1 srl2-0: tx_packets moved; tx_carrier_errors, collisions unmoved"]
    assert not rt1["ok"] and "tx_carrier_errors moved" in rt1["detail"]
    assert results["no_ping hs-1 -> fcf0:0:1:2::2 (IPv6)"]["ok"]  # what does not depend on the route holds
    assert r2.returncode == 1
    assert "FAIL ping hs-1 -> hs-2 (IPv4 10.0.0.2): 0/3 replies (hs-1: 100% packet loss)" in r2.stdout.splitlines()
    assert r2.stdout.splitlines()[-1] == f"validate {name}: 5 checks, 5 FAILED"


@pytest.mark.usefixtures("need_root")
def test_validate_fails_on_wrong_segs(tmp_path):
    text = (ROOT / "topologies" / "p2p.yaml").read_text()
    wrong = text.replace('srl2-0: {segs: ["fcff:2::d20"]', 'srl2-0: {segs: ["fcff:2::d21"]', 1)
    assert wrong != text
    path = tmp_path / "p2p-wrong-segs.yaml"
    path.write_text(wrong)
    name = lab_name("wrongsegs")
    with UpLab(str(path), name):
        r = cli("validate", name, "--tests", "across", "arp", "nd")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "FAIL ping hs-1 -> hs-2 (IPv4 10.0.0.2): 0/3 replies (hs-1: 100% packet loss)" in lines
    assert "FAIL frame arp hs-1:veth0 -> hs-2:veth0: not seen on hs-2:veth0 within 3 s" in lines
    assert any(line.startswith("ok   frame nd hs-2:veth0 -> hs-1:veth0") for line in lines)  # the other way


@pytest.mark.usefixtures("need_root")
def test_validate_usage_errors_exit_3(tmp_path):
    r = cli("validate", "tv-no-such-lab")
    assert (r.returncode, r.stderr.strip()) == (3, "testbed: error: no lab named 'tv-no-such-lab' is up "
                                                   "(see: testbed status)")
    name = lab_name("usage")
    with UpLab("topologies/p2p.yaml", name):
        r = cli("validate", name, "--tests", "acros")
        assert r.returncode == 3 and "has no check 'acros'; did you mean 'across'?" in r.stderr
        r = cli("validate", name, "--list")
        assert r.returncode == 0 and "    ping hs-1 -> hs-2 (IPv4 10.0.0.2)" in r.stdout.splitlines()
        bad = tmp_path / "bad.yaml"
        bad.write_text(TWO_HOSTS.replace("from: h1, to: h2", "from: h1, to: h3"))
        r = cli("validate", name, "--topology", str(bad))
        assert r.returncode == 3 and "bad.yaml:7:32: to 'h3' is neither a node nor an IP address\n" in r.stderr


# ---------------------------------------------------------------- the rendered selftest

@pytest.mark.usefixtures("need_root")
def test_rendered_p2p_selftest_skips_here(tmp_path):
    topo = topology.load(ROOT / "topologies" / "p2p.yaml")
    script = render_script(topo, with_checks=True)
    assert "\necho \"1..13\"\n" in script and "check_frame 'frame nd hs-2:veth0 -> hs-1:veth0'" in script
    rc, out, err, left = run_isolated(write(tmp_path, script))
    if rc != KSFT_SKIP:
        pytest.skip("this kernel has srl2 and `ip` speaks it: the script ran (see the VM run in the README)")
    from testbed.datapaths.kernel import KernelDatapath

    if KernelDatapath.probe().has("srl2"):  # the kernel has it, this `ip` does not (a stock iproute2)
        assert err.strip().startswith("SKIP: ip (iproute2) does not know the srl2 link kind: "), err
    else:
        assert err.strip() == "SKIP: this kernel has no srl2 link kind"
    assert "TAP version" not in out and left == []


@pytest.mark.usefixtures("need_root")
def test_rendered_checks_run_as_ktap(tmp_path):
    """A topology this kernel builds: its checks run in the script, one KTAP
    line each; a check that does not hold makes it exit 1."""
    script = render_script(topology.loads(TWO_HOSTS, "two.yaml"), with_checks=True)
    rc, out, err, left = run_isolated(write(tmp_path, script))
    assert rc == 1, out + err
    assert left == []
    ktap = [line for line in out.splitlines() if re.match(r"(TAP|1\.\.|ok |not ok |# )", line)]
    assert ktap == [
        "TAP version 13", "1..4",
        "# ping h1 -> h2 (IPv4 10.9.0.2): 3/3 replies", "ok 1 ping h1 -> h2 (IPv4 10.9.0.2)",
        "# ping h2 -> h1 (IPv4 10.9.0.1): 3/3 replies", "ok 2 ping h2 -> h1 (IPv4 10.9.0.1)",
        "# no_ping h1 -> 10.9.0.2 (IPv4): 3/3 replies: 10.9.0.2 answers, which it must not",
        "not ok 3 no_ping h1 -> 10.9.0.2 (IPv4)",
        "# frame ethertype 0x88b6 vlan 7 h1:e0 -> h2:e0: arrived on h2:e0 (64 bytes, vlan 7)",
        "ok 4 frame ethertype 0x88b6 vlan 7 h1:e0 -> h2:e0",
        "# Totals: pass:3 fail:1 xfail:0 xpass:0 skip:0 error:0",
    ]
