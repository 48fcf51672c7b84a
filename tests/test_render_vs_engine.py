"""`testbed render` and `testbed up` build the same lab: run the rendered
script, hold it up, and compare what it made with what the engine makes from
the same file, node by node (links, addresses, routes in all tables, rules,
VLANs; tests/netsnap.py says what is left out and why).

mesh4 and small() need the host kernel's seg6 lwtunnels (route-based encap
seg6, seg6local SIDs): they skip, with the reason, where it has none;
small() without its seg6 routes is compared on every host."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.netsnap import snapshot
from tests.test_render import _read_until, host_seg6_missing, lab_vars, seg6_skip_reason, small, without_seg6, write
from testbed import topology
from testbed.render import ns_variables, render_script

pytestmark = pytest.mark.usefixtures("need_root")


def script_snapshot(tmp_path, topo) -> dict:
    """Snapshot of every node of the lab the rendered script builds."""
    path = write(tmp_path, render_script(topo))
    fifo = str(tmp_path / "hold")
    os.mkfifo(fifo)
    proc = subprocess.Popen(["bash", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "TESTBED_RENDER_HOLD": fifo})
    try:
        last = ns_variables(topo)[list(topo.nodes)[-1]]
        out = _read_until(proc, rf"^{last}=\S+", timeout=120)
        got = lab_vars(out)
        v = ns_variables(topo)
        assert all(v[n] in got for n in topo.nodes), (out, proc.stderr.read1().decode())
        snap = {node: snapshot(got[v[node]]) for node in topo.nodes}
        with open(fifo, "w") as f:
            f.write("\n")
        assert proc.wait(timeout=60) == 0
        return snap
    finally:
        if proc.poll() is None:
            proc.terminate()  # its TERM trap tears the lab down
            proc.wait(timeout=60)


@pytest.mark.parametrize("source", ["topologies/mesh4.yaml", "small", "small-without-seg6"])
def test_script_and_engine_make_the_same_objects(tmp_path, make_lab, source, monkeypatch):
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), ".."))
    if source == "small-without-seg6":
        topo = without_seg6(small())
    else:
        missing = host_seg6_missing()
        if missing:
            pytest.skip(seg6_skip_reason(missing))
        topo = small() if source == "small" else topology.load(source)
    lab = make_lab(topo, datapath="kernel")
    engine = {node: snapshot(lab.node(node).name) for node in topo.nodes}
    script = script_snapshot(tmp_path, topo)
    for node in topo.nodes:
        assert script[node] == engine[node], node
    # the comparison is not vacuous: every node has links, routers have routes
    assert all(engine[n]["links"] for n in topo.nodes)
    assert any(engine[n]["routes"] for n in topo.nodes)
