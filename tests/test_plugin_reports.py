"""The suite's reporting, run as kernel CI would: a failing case keeps the
pcaps of its captures (path printed), KTAP and JUnit come out with one
entry per case and the skip reasons, the exit status says it failed, and
Ctrl-C in the middle of a case leaves no namespace or process behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from testbed import linux

pytestmark = pytest.mark.usefixtures("need_root")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = textwrap.dedent('''\
    import os, sys, pytest
    from testbed.packets import send_frames

    FRAME = b"\\xff" * 6 + b"\\x02\\x00\\x00\\x00\\x01\\x01" + b"\\x88\\xb5" + b"plugin-report".ljust(46, b".")

    @pytest.mark.conformance("H4")
    @pytest.mark.needs("srl2", "End.DT2U")
    def test_fails_after_capturing(lab, capture):
        lab_ = lab("topologies/p2p.yaml")
        cap = capture(lab_, "rt-1", "veth-rt2")
        send_frames(lab_.node("hs-1"), "veth0", [FRAME])
        assert cap.wait_for(lambda f: b"plugin-report" in f.data)
        assert False, "deliberate failure"

    @pytest.mark.conformance("N2")
    @pytest.mark.kernel_only("reads what only rtnetlink has")
    def test_kernel_only(datapath):
        pass

    def test_waits_to_be_interrupted(lab):
        lab_ = lab("topologies/p2p.yaml")
        print("lab-is-up", *lab_.record.netns.values(), file=sys.stderr, flush=True)
        sys.stdin.read()
    ''')


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "test_plugin_cases.py"
    path.write_text(CASES)
    return path


def run_pytest(suite, tmp_path, *args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-p", "testbed.pytest_plugin",
         "--rootdir", ROOT,
         "-c", os.path.join(ROOT, "pyproject.toml"), "--datapath", "ref", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, **kw)


def test_failure_keeps_pcaps_and_reports_ktap_and_junit(suite, tmp_path):
    results, ktap, junit = tmp_path / "results", tmp_path / "out.ktap", tmp_path / "out.xml"
    p = run_pytest(suite, tmp_path, "-k", "not interrupted", "--results", str(results),
                   "--ktap", str(ktap), "--junitxml", str(junit), "--catalogue")
    assert p.returncode == 1, p.stdout + p.stderr

    # the pcap of the failing case, named in the report, holding the frame
    paths = re.findall(r"^(\S+\.pcap)$", p.stdout, re.M)
    assert len(paths) == 1, p.stdout
    assert paths[0].startswith(str(results)) and "rt-1-veth-rt2" in paths[0]
    with open(paths[0], "rb") as f:
        pcap = f.read()
    assert pcap[:4] == bytes.fromhex("d4c3b2a1") and b"plugin-report" in pcap

    lines = ktap.read_text().splitlines()
    assert lines[:2] == ["KTAP version 1", "1..2"]
    assert re.fullmatch(r"not ok 1 \S*::test_fails_after_capturing\[ref\]", lines[2])
    assert re.fullmatch(r"ok 2 \S*::test_kernel_only\[ref\] # SKIP kernel-only: reads what only rtnetlink has",
                        lines[3])

    cases = ET.parse(junit).getroot().iter("testcase")
    outcome = {c.get("name"): [x.tag for x in c] for c in cases}
    assert "failure" in outcome["test_fails_after_capturing[ref]"]
    assert "skipped" in outcome["test_kernel_only[ref]"]

    table = p.stdout[p.stdout.index("conformance catalogue"):]
    assert re.search(r"^\s+H4\s+FAIL\s", table, re.M) and re.search(r"^\s+N2\s+SKIP\s", table, re.M)
    assert re.search(r"^\s+H1\s+-\s", table, re.M)


def test_ctrl_c_in_a_case_leaves_nothing(suite, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-p", "testbed.pytest_plugin",
         "--rootdir", ROOT,
         "-c", os.path.join(ROOT, "pyproject.toml"), "--datapath", "ref", "-k", "interrupted", "-s"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made: set[str] = set()
        for line in proc.stderr:  # handshake: the case's lab is up, and its namespaces
            if line.startswith("lab-is-up"):
                made = set(line.split()[1:])
                break
        assert made and made <= set(linux.list_netns()), "the case made no namespace"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not made & set(linux.list_netns()), "namespaces left after Ctrl-C"
    left = subprocess.run(["pgrep", "-f", "srl2_ref"], capture_output=True, text=True).stdout.split()
    mine = [pid for pid in left if any(ns in open(f"/proc/{pid}/cmdline").read() for ns in made)
            if os.path.exists(f"/proc/{pid}/cmdline")]
    assert mine == []
