"""testbed.checks and its pytest side: every check runs, only failed IDs
fail, one pasteable line per failed check, notes do not fail, and the
checks reach the controller (also under xdist) and the JUnit file."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from testbed.catalogue import CATALOGUE, CLAUSES
from testbed.checks import Checks, from_properties

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_catalogue_id_has_a_clause():
    assert set(CLAUSES) == set(CATALOGUE)
    assert all(CLAUSES[i].strip() for i in CLAUSES)


def test_checks_record_verdicts_and_fail_lines():
    c = Checks(["H1", "H5", "N6"])
    assert c.equal("H1", "outer next header", 43, 43)
    assert not c.equal("H5", "outer hop limit of a frame carrying IPv6 hop limit 1", 64, 1)
    c.note("N6", "moving the device to another netns", "allowed; it then routes in the new netns")
    assert [x.verdict for x in c.items] == ["pass", "fail", "note"]
    assert c.message() == ("H5 [RFC 2473 §6.3; srl2 patch] outer hop limit of a frame carrying IPv6 hop "
                           "limit 1: expected 64, seen 1")
    assert (c.verdict("H1"), c.verdict("H5"), c.verdict("N6")) == ("pass", "fail", None)
    name, value = c.property()
    assert name == "testbed_checks" and value[1] == {
        "id": "H5", "clause": "RFC 2473 §6.3; srl2 patch", "verdict": "fail",
        "what": "outer hop limit of a frame carrying IPv6 hop limit 1", "expected": "64", "seen": "1"}
    assert from_properties([("other", 1), (name, value)]) == c.items


def test_expect_block_turns_an_assert_into_a_failed_check_and_goes_on():
    c = Checks(["T7"])
    with c.expect("T7", "the burst at hs-2", "2000 frames once, in order"):
        assert 1999 == 2000, "1999 frames arrived"
    with c.expect("T7", "nothing changed", "no frame changed"):
        pass
    assert [(x.verdict, x.seen) for x in c.items] == [("fail", "1999 frames arrived"),
                                                      ("pass", "no frame changed")]


def test_ids_outside_the_catalogue_or_the_marker_are_refused():
    with pytest.raises(ValueError, match="unknown catalogue ID 'Z9'"):
        Checks().equal("Z9", "x", 1, 1)
    with pytest.raises(ValueError, match="does not name"):
        Checks(["H1"]).equal("H5", "x", 1, 1)


CASES = textwrap.dedent('''\
    import pytest

    @pytest.mark.conformance("H1", "H3", "H5")
    def test_hop_limit_wrong_only(checks):
        checks.equal("H1", "outer next header", 43, 43)
        checks.equal("H5", "outer hop limit", 64, 1)
        checks.equal("H3", "SRH type", 4, 4)
        checks.equal("H5", "outer traffic class", 0, 184)

    @pytest.mark.conformance("N6")
    def test_note_only(checks):
        checks.note("N6", "moving srl2 to another netns", "allowed")

    @pytest.mark.conformance("T6")
    def test_single_id_plain_assert():
        got = ["A-bcast"]
        assert got == [], "frames leaked to hs-b2"

    @pytest.mark.conformance("T7", "N7")
    def test_stops_on_an_error_after_a_failed_check(checks):
        checks.equal("N7", "tx_bytes", 60, 222)
        raise RuntimeError("lab broke")
    ''')


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_the_fixture_fails_a_case_by_its_failed_checks_only(tmp_path, xdist):
    (tmp_path / "test_c.py").write_text(CASES)
    junit = tmp_path / "j.xml"
    cmd = [sys.executable, "-m", "pytest", str(tmp_path / "test_c.py"), "-p", "no:cacheprovider",
           "-p", "testbed.pytest_plugin", "-p", "testbed.pytest_checks", "--rootdir", ROOT,
           "-c", os.path.join(ROOT, "pyproject.toml"), "-o", "addopts=", f"--junitxml={junit}", "-rf"]
    if xdist:
        cmd += ["-n", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "PYTHONPATH": ROOT})
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert ("H5 [RFC 2473 §6.3; srl2 patch] outer hop limit: expected 64, seen 1\n"
            "H5 [RFC 2473 §6.3; srl2 patch] outer traffic class: expected 0, seen 184") in out, out
    assert "H1 [" not in out and "H3 [" not in out, out
    assert "N7 [srl2 patch (xmit stats); struct rtnl_link_stats64] tx_bytes: expected 60, seen 222" in out, out
    assert "RuntimeError: lab broke" in out
    assert "findings noted by cases" in out and "N6 [srl2 patch (netns move)] moving srl2 to another netns: " \
        "allowed  (" in out, out
    cases = {tc.get("name"): tc for tc in ET.parse(junit).getroot().iter("testcase")}
    assert cases["test_note_only"].find("failure") is None
    assert cases["test_hop_limit_wrong_only"].find("failure") is not None
    single = {p.get("name"): p.get("value") for p in cases["test_single_id_plain_assert"].iter("property")}
    assert ast.literal_eval(single["testbed_checks"]) == [{
        "id": "T6", "clause": "srl2 patch (one segment list per device); RFC 8986 §4.11", "verdict": "fail",
        "what": "frames leaked to hs-b2", "expected": "[]", "seen": "['A-bcast']"}]
    props = {p.get("name"): p.get("value") for p in cases["test_hop_limit_wrong_only"].iter("property")}
    got = ast.literal_eval(props["testbed_checks"])
    assert [(c["id"], c["verdict"]) for c in got] == [("H1", "pass"), ("H5", "fail"), ("H3", "pass"),
                                                      ("H5", "fail")]


def test_a_plain_assert_of_a_single_id_case_becomes_its_failed_check():
    from testbed.pytest_checks import check_of_assert

    c = check_of_assert("T6", AssertionError("frames leaked to hs-b2\nassert ['A-bcast'] == []\n  extra"))
    assert c.line() == "T6 [srl2 patch (one segment list per device); RFC 8986 §4.11] frames leaked to hs-b2: " \
        "expected [], seen ['A-bcast']"
    c = check_of_assert("L4", AssertionError("frames went back to the old path"))
    assert (c.expected, c.seen) == ("the assertion to hold", "it did not")
