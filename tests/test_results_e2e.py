"""The record, the reports and the comparison on real cases: a small
selection of the suite on the reference datapath, once as it is and once
deliberately broken (--ref-fault copy_inner_hoplimit: the outer hop limit
copied from an IPv6 header inside the frame, an H5 deviation)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from testbed.results.record import read

pytestmark = pytest.mark.usefixtures("need_root")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELECTION = ["cases/test_headers.py::test_hop_limit_of_the_underlay_device",
             "cases/test_sid_order.py::test_one_sid_still_pushes_an_srh"]
H5_CASE = "cases/test_headers.py::test_hop_limit_of_the_underlay_device[ref]"


def run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def suite_run(tmp_path, name, *extra):
    path = tmp_path / f"{name}.jsonl"
    p = run("-m", "pytest", *SELECTION, "-p", "no:cacheprovider", "--datapath", "ref",
            "--record", str(path), "--results", str(tmp_path / name), *extra)
    return path, p


def cli(*args):
    return run("-m", "testbed.cli", *args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    good, p = suite_run(tmp, "good")
    assert p.returncode == 0, p.stdout + p.stderr
    bad, p = suite_run(tmp, "bad", "--ref-fault", "copy_inner_hoplimit")
    assert p.returncode == 1, p.stdout + p.stderr
    return tmp, str(good), str(bad)


def test_the_record_has_every_case_with_its_verdict(runs):
    _, good, bad = runs
    rec = read(good)
    assert rec.header.datapaths == ["ref"] and rec.header.release == os.uname().release
    assert [(c.nodeid, c.outcome, c.datapath) for c in rec.cases] == [
        (H5_CASE, "passed", "ref"), ("cases/test_sid_order.py::test_one_sid_still_pushes_an_srh[ref]", "passed", "ref")]
    case = read(bad).by_nodeid()[H5_CASE]
    assert case.outcome == "failed" and "H5" in case.ids and re.search(r"expected 33, (got|seen) 1", case.message)
    assert case.pcaps and all(os.path.getsize(p) > 24 for p in case.pcaps)  # more than a pcap header
    assert case.labs and "rt-1" in case.labs[0]["picture"]


def test_report_writes_text_html_junit_ktap(runs):
    tmp, good, bad = runs
    html, xml, tap = tmp / "page" / "r.html", tmp / "r.xml", tmp / "r.tap"
    p = cli("report", bad, "--text", "--html", str(html), "--junit", str(xml), "--ktap", str(tmp / "r.tap"))
    assert p.returncode == 1, p.stderr  # the run has a failure: a CI step goes red
    assert "Deviations (1):" in p.stdout and f"case: {H5_CASE}" in p.stdout
    page = html.read_text()
    links = re.findall(r'<a href="([^"#]+\.pcap)">', page)
    assert links and all(os.path.exists(html.parent / link) for link in links)  # relative, and they resolve
    failure = ET.parse(xml).getroot().find(".//testcase[@name='test_hop_limit_of_the_underlay_device[ref]']/failure")
    assert failure is not None and re.search(r"expected 33, (got|seen) 1", failure.get("message"))
    assert re.search(r"^not ok 1 cases/test_headers.py::test_hop_limit_of_the_underlay_device\[ref\]$",
                     tap.read_text(), re.M)
    assert tap.read_text().splitlines()[-1] == "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0"
    assert cli("report", good, "--ktap", str(tmp / "good.tap")).returncode == 0  # a clean run: green


def test_compare_a_run_with_itself_and_with_a_regression(runs):
    _, good, bad = runs
    same = cli("compare", good, good)
    assert same.returncode == 0 and "nothing newly failing" in same.stdout
    worse = cli("compare", good, bad)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    section = worse.stdout.split("Newly failing (1):")[1].split("Fixed")[0]
    assert f"H5 {H5_CASE}: PASS -> FAIL" in section
    better = cli("compare", bad, good, "--json")
    assert better.returncode == 0
    assert '"id": "H5"' in better.stdout.split('"fixed"')[1].split('"unchanged"')[0]
