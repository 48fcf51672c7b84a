"""A hand-made record of a run, for the tests of testbed/results: every
outcome, per-ID checks (one failing, one note), a crash with its kernel
lines, a lab picture and a pcap."""
from __future__ import annotations

from testbed.results.record import Case, Crash, Header, Record, RecordWriter

RELEASE = "6.12.117-srl2rfc"

CRASH = Crash(kind="BUG", title="kernel BUG at net/core/skbuff.c:209!", rip="RIP: 0010:skb_panic+0x4c/0x50",
              trace=["skb_put+0x3f/0x40", "add_grec+0x1a2/0x3c0", "mld_send_initial_cr+0x7a/0xb0",
                     "addrconf_dad_completed+0x110/0x3a0"],
              lines=["skbuff: skb_over_panic: text:ffffffff81 len:1540 put:20 dev:srl2-0",
                     "------------[ cut here ]------------", "kernel BUG at net/core/skbuff.c:209!",
                     "RIP: 0010:skb_panic+0x4c/0x50", "Call Trace:", " <TASK>", " skb_put+0x3f/0x40",
                     " add_grec+0x1a2/0x3c0"],
              boot=1, release=RELEASE)

H5_CLAUSE = "RFC 2473 §6.3; srl2 patch"


def checks_h() -> list[dict]:
    return [
        {"id": "H1", "clause": "RFC 8754 §2", "verdict": "pass", "what": "outer next header",
         "expected": "43", "seen": "43"},
        {"id": "H3", "clause": "RFC 8754 §2", "verdict": "pass", "what": "SRH segments left",
         "expected": "0", "seen": "0"},
        {"id": "H5", "clause": H5_CLAUSE, "verdict": "fail",
         "what": "outer hop limit of a frame carrying IPv6 hop limit 1", "expected": "64", "seen": "1"},
    ]


def sample(nodeprefix: str = "cases/", datapath: str = "kernel") -> Record:
    def nid(name: str) -> str:
        return f"{nodeprefix}{name}[{datapath}]"

    cases = [
        Case(nid("test_headers.py::test_hop_limit"), "failed", ["H1", "H3", "H5"], datapath,
             message="Failed: H5 [RFC 2473 §6.3; srl2 patch] outer hop limit of a frame carrying IPv6 "
                     "hop limit 1: expected 64, seen 1",
             checks=checks_h(), pcaps=["/tmp/out/pcaps/x/t1-rt-1-veth-rt2.pcap"],
             labs=[{"name": "t1", "source": "topologies/p2p.yaml",
                    "picture": "+------+      +------+\n| [a] |v0--v1| (b) |\n+------+      +------+"}],
             duration=2.5),
        Case(nid("test_sid_order.py::test_127_sids"), "crashed", ["S3"], datapath,
             message="kernel BUG while this case ran", crash=CRASH, boot=2),
        Case(nid("test_netlink.py::test_srh_read_back"), "skipped", ["S4"], datapath,
             skip_reason="kernel-only: the reference datapath has no srl2 link kind"),
        Case(nid("test_netlink.py::test_moving"), "passed", ["N6"], datapath,
             checks=[{"id": "N6", "clause": "srl2 patch", "verdict": "note", "what": "device moved to another netns",
                      "expected": "refused (later revisions)", "seen": "moved"}]),
        Case(nid("test_netlink.py::test_mtu_at_creation"), "error", ["N4"], datapath,
             message="testbed.errors.LabError: srl2 srl2-9: mtu greater than device maximum (EINVAL)"),
        Case(nid("test_loops.py::test_route_into_itself"), "failed", ["L1"], datapath,
             message="AssertionError: L1 tx_dropped of srl2-0: expected 1, seen 0\nassert 0 == 1",
             kernel_problems=[{"kind": "WARNING", "line": "WARNING: CPU: 1 PID: 7 at net/ipv6/seg6.c:1 x"}]),
        Case(nid("test_transparency.py::test_arp"), "passed", ["T1"], datapath, duration=1.0),
    ]
    header = Header(boot=1, release=RELEASE, machine="guest", hostname="vm", datapath=datapath,
                    datapaths=[datapath], spec="linux", started="2026-12-02T08:00:00Z")
    return Record(headers=[header, Header(boot=2, release=RELEASE, machine="guest")], cases=cases,
                  path="sample.jsonl")


def write_record(path, record) -> str:
    """`record` written to `path` as a run writes it; the path as a string."""
    w = RecordWriter(str(path), record.headers[0])
    for case in record.cases:
        w.write(case)
    w.close()
    return str(path)
