"""`testbed graph LAB` and `testbed list` on real labs: the picture is read
back from the kernel (veth pairs, srl2 segment lists, route-based l2encap
pseudowires, counters), and drawing it is a pure function of that data."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from testbed.render import live

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)


def ping(lab, src: str, dst: str) -> None:
    p = subprocess.run(["ip", "netns", "exec", lab.node(src).name, "ping", "-c1", "-W5", dst],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def pw_label(dot: str, a: str, b: str, color: str) -> str:
    m = re.search(rf'"{a}" -- "{b}" \[style=dashed, dir=forward, color={color}, fontcolor={color}, '
                  rf'label="([^"]*)"', dot)
    assert m, f"no {color} pseudowire {a} -> {b} in:\n{dot}"
    return m.group(1)


@pytest.mark.usefixtures("need_root")
@pytest.mark.parametrize("dp", ["ref", "kernel"])
def test_p2p_picture_has_pairs_segments_and_moving_counters(private_state, make_lab, dp):
    """On the kernel datapath the segments come from IFLA_SRL2_SRH, on the
    reference from its process; both must read the same."""
    if dp == "kernel":
        from testbed.datapaths.kernel import KernelDatapath

        reason = KernelDatapath.probe().reason(["srl2", "End.DT2U"])
        if reason:
            pytest.skip(reason)
    lab = make_lab("topologies/p2p.yaml", datapath=dp)
    before = live.read(lab)
    ping(lab, "hs-1", "10.0.0.2")
    info = live.read(lab)
    pairs = {frozenset({(link["a"], link["a_if"]), (link["b"], link["b_if"])}) for link in info["links"]}
    assert pairs == {frozenset({("hs-1", "veth0"), ("rt-1", "veth-hs")}),
                     frozenset({("rt-1", "veth-rt2"), ("rt-2", "veth-rt1")}),
                     frozenset({("rt-2", "veth-hs"), ("hs-2", "veth0")})}
    assert info["nodes"]["rt-1"]["segs"] == {"srl2-0": ["fcff:2::d20"]}
    assert info["nodes"]["rt-2"]["segs"] == {"srl2-0": ["fcff:1::d20"]}
    assert [info["nodes"][n]["router"] for n in ("hs-1", "rt-1", "rt-2", "hs-2")] == [False, True, True, False]
    tx0 = before["nodes"]["rt-1"]["srl2"]["srl2-0"]["tx_packets"]
    tx1 = info["nodes"]["rt-1"]["srl2"]["srl2-0"]["tx_packets"]
    assert tx1 >= tx0 + 2  # ARP request and echo request at least
    dot = live.render_live_dot(info)
    label = pw_label(dot, "rt-1", "rt-2", "blue")
    assert label.startswith(f"srl2-0: fcff:2::d20\\ntx {tx1} rx "), label
    assert pw_label(dot, "rt-2", "rt-1", "blue").startswith("srl2-0: fcff:1::d20\\ntx ")
    assert '"rt-1" [shape=ellipse, label="rt-1\\nbridge br0 [' in dot
    assert "sid fcff:1::d20 End.DT2U srl2-0" in dot
    assert '"hs-1" -- "rt-1" [taillabel="veth0\\n10.0.0.1/24\\ncafe::1/64\\ntx ' in dot \
        or '"rt-1" -- "hs-1" [taillabel="veth-hs' in dot


@pytest.mark.usefixtures("need_root")
def test_mesh4_route_based_pseudowires(private_state, make_lab):
    lab = make_lab("topologies/mesh4.yaml")
    info = live.read(lab)
    assert len(info["links"]) == 8
    dot = live.render_live_dot(info)
    assert pw_label(dot, "rt-1", "rt-2", "darkgreen").endswith("seg6 l2encap.red: fcff:2::d2\\l")
    back = pw_label(dot, "rt-2", "rt-1", "darkgreen")
    assert back.endswith("seg6 l2encap.red: fcff:4::e, fcff:3::e, fcff:1::d2\\l"), back
    assert "cafe::1/128" in back and "10.0.0.1/32" in back


@pytest.mark.usefixtures("need_root")
def test_cli_graph_of_a_lab_and_list(private_state, make_lab, tmp_path):
    lab = make_lab("topologies/p2p.yaml", datapath="ref")
    p = cli("graph", lab.name, "-o", str(tmp_path / "lab.dot"))
    assert p.returncode == 0, p.stderr
    dot = (tmp_path / "lab.dot").read_text()
    assert f'graph "{lab.name}"' in dot and "srl2-0: fcff:2::d20" in dot
    if shutil.which("dot"):
        p = cli("graph", lab.name, "-o", str(tmp_path / "lab.svg"))
        assert p.returncode == 0, p.stderr
        svg = (tmp_path / "lab.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "srl2&#45;0: fcff:2::d20" in svg  # graphviz escapes "-"
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    line = next((row for row in listed.stdout.splitlines() if row.split()[:1] == [lab.name]), None)
    assert line is not None, listed.stdout
    assert line.split()[1:3] == ["ref", "4"] and line.rstrip().endswith("topologies/p2p.yaml")
    assert "(stale)" not in line
    rows = json.loads(cli("list", "--json").stdout)
    mine = next(r for r in rows if r["name"] == lab.name)
    assert mine["datapath"] == "ref" and mine["nodes"] == 4 and mine["owner"]["pid"] == os.getpid()
    assert mine["owner"]["alive"] is True and mine["age"] >= 0


def test_graph_of_neither_file_nor_lab_is_one_line():
    p = cli("graph", "no-such-lab-viz")
    assert p.returncode == 1
    assert p.stderr.strip() == ("testbed: error: no topology file and no running lab named 'no-such-lab-viz' "
                                "(see: testbed list)")


def test_unknown_sid_owner_is_drawn_in_red_and_longest_prefix_wins():
    info = {"lab": "x", "datapath": "kernel", "topology": "t.yaml", "read_at": 0, "links": [], "nodes": {
        "a": {"interfaces": [], "routes": [], "router": True, "stats": {}, "segs": {"srl2-0": ["fc00::9"]},
              "sids": [{"sid": "fcff:1::/32", "action": "End"}]},
        "b": {"interfaces": [], "routes": [], "router": True, "stats": {}, "segs": {"srl2-0": ["fcff:1::d20"]},
              "sids": [{"sid": "fcff:1::d20/128", "action": "End.DT2U", "l2dev": "srl2-0",
                        "counters": {"packets": 3, "bytes": 300, "errors": 0}}]},
    }}
    assert live.sid_owner(info, "fcff:1::d20") == "b"
    assert live.sid_owner(info, "fcff:1::e") == "a"
    assert live.sid_owner(info, "fc00::9") is None
    dot = live.render_live_dot(info)
    assert '"?fc00::9" [shape=plaintext, fontcolor=red, label="fc00::9?"]' in dot
    assert '"a" -- "?fc00::9" [style=dashed' in dot
    assert pw_label(dot, "b", "b", "blue") == "srl2-0: fcff:1::d20"
    assert "sid fcff:1::d20 End.DT2U srl2-0  packets 3 errors 0" in dot


def test_list_formats_age_and_stale_owner():
    from testbed.cli.list import age, format_rows

    assert [age(s) for s in (3.7, 252, 7500, 3 * 86400 + 4 * 3600)] == ["3s", "4m12s", "2h05m", "3d04h"]
    text = format_rows([{"name": "p2p", "datapath": "ref", "nodes": 4, "age": 75.0, "topology": "topologies/p2p.yaml",
                         "owner": {"pid": 42, "kind": "keeper", "user": "alice", "alive": False}}])
    assert text.splitlines() == [
        "LAB  DATAPATH  NODES  OWNER              USER   AGE    TOPOLOGY",
        "p2p  ref       4      keeper 42 (stale)  alice  1m15s  topologies/p2p.yaml"]
