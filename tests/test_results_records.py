"""Records are files anyone may hand to `testbed report` or `testbed compare`:
a malformed one is one error naming the file and the line (and what was
expected), exit status 1, never a traceback, whichever verb reads it; a
record that ran nothing or lost cases does not pass for a clean run; and
the exit statuses and JSON a CI step reads."""
from __future__ import annotations

import json
import os

import pytest

from testbed.cli import main
from testbed.results import ktap
from testbed.results.record import Case, RecordError, read
from tests.results_sample import CRASH, RELEASE, sample, write_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "baselines", "srl2-rfc-6.12.jsonl")

HEADER = '{"type": "header", "format": "srl2-testbed-record", "version": 1, "boot": 1, "release": "6.12"}'
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
FIRST = '{"type": "header", "format": "srl2-testbed-record", ...}'


def case_line(**fields) -> str:
    return json.dumps({"type": "case", "nodeid": "cases/test_a.py::test_a[kernel]", "outcome": "passed",
                       **fields})


# (record file's bytes, the error after "FILE:")
MALFORMED = {
    "nodeid of the wrong type": (
        f"{HEADER}\n{case_line(nodeid=5)}\n", '2: case field "nodeid": expected a string, found 5'),
    "no nodeid": (
        HEADER + '\n{"type": "case", "outcome": "failed"}\n',
        '2: case field "nodeid": expected a string, found nothing'),
    "outcome not one of the five": (
        f"{HEADER}\n{case_line(outcome='ok')}\n",
        '2: case field "outcome": expected one of "passed", "failed", "skipped", "crashed", "error", found "ok"'),
    "ids a string": (
        f"{HEADER}\n{case_line(ids='H5')}\n", '2: case field "ids": expected a list of strings, found "H5"'),
    "a check's verdict": (
        f"{HEADER}\n{case_line(checks=[{'id': 'H5', 'verdict': 'pass'}, {'id': 'H5', 'verdict': 1}])}\n",
        '2: case field "checks[1].verdict": expected one of "pass", "fail", "note", found 1'),
    "a check not an object": (
        f"{HEADER}\n{case_line(checks=['H5 failed'])}\n",
        '2: case field "checks[0]": expected an object, found "H5 failed"'),
    "the crash's trace": (
        f"{HEADER}\n{case_line(outcome='crashed', crash={'kind': 'BUG', 'trace': 'skb_put'})}\n",
        '2: case field "crash.trace": expected a list of strings, found "skb_put"'),
    "duration a string": (
        f"{HEADER}\n{case_line(duration='2 s')}\n", '2: case field "duration": expected a number, found "2 s"'),
    "a long value is cut": (
        f"{HEADER}\n{case_line(message=['x' * 80])}\n",
        '2: case field "message": expected a string, found ["' + "x" * 35 + "..."),
    "no header": (
        f"{case_line()}\n", f"1: expected the header line first ({FIRST}), found a case line"),
    "version 99": (
        HEADER.replace('"version": 1', '"version": 99') + "\n", '1: header field "version": expected 1, found 99'),
    "no version": (
        HEADER.replace('"version": 1, ', "") + "\n", '1: header field "version": expected 1, found nothing'),
    "another format": (
        HEADER.replace("srl2-testbed-record", "junit") + "\n",
        '1: header field "format": expected "srl2-testbed-record", found "junit"'),
    "a later header's boot": (
        f"{HEADER}\n{case_line()}\n" + HEADER.replace('"boot": 1', '"boot": "2"') + "\n",
        '3: header field "boot": expected an integer, found "2"'),
    "PNG bytes": (PNG, "1: binary data, not a line of text: not a run record"),
    "one line of binary": (b"\x00\x01\xff\xfe", "1: binary data, not a line of text: not a run record"),
    "a last line that is no JSON": (f"{HEADER}\n{case_line()}\nhello", "3: not a JSON line of a run record"),
    "a broken line then a newline": (
        f"{HEADER}\n{case_line()[:30]}\n", "2: not a JSON line of a run record"),
    "a JSON array": (f"{HEADER}\n[1, 2]\n", "2: expected a JSON object (a header or a case line), found [1, 2]"),
    "another type": (
        HEADER + '\n{"type": "summary"}\n',
        '2: a line that is neither a header nor a case: expected "type": "header" or "case", found "summary"'),
    "only a header cut short": ('{"type": "header", "form', f"1: expected the header line first ({FIRST}), "
                                                            "found a line cut short"),
    "empty": (b"", "1: empty file: expected the header line of a run record"),
    "blank lines": (b"\n \n", "1: empty file: expected the header line of a run record"),
}


@pytest.mark.parametrize("content, error", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_record_is_one_error_naming_file_and_line(tmp_path, capsys, content, error):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    good = write_record(tmp_path / "good.jsonl", sample())
    with pytest.raises(RecordError) as e:
        read(str(bad))
    assert str(e.value) == f"{bad}:{error}"
    for argv in (["report", str(bad)], ["report", str(bad), "--junit", str(tmp_path / "j.xml"), "--json"],
                 ["report", str(bad), "--html", str(tmp_path / "r.html"), "--ktap", str(tmp_path / "k.tap")],
                 ["compare", good, str(bad)], ["compare", str(bad), good, "--allow-missing"]):
        assert main(argv) == 1, argv
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"testbed: error: {bad}:{error}\n"), argv
    assert not (tmp_path / "j.xml").exists() and not (tmp_path / "r.html").exists()


def test_a_record_that_is_a_directory_or_unreadable(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"testbed: error: {tmp_path}: a directory, not a record\n"


def test_a_last_line_cut_by_a_crash_is_reported_and_fails_the_report(tmp_path, capsys):
    path = write_record(tmp_path / "r.jsonl", sample_passing())  # only the cut line can make the status 1
    with open(path, "a") as f:
        f.write('{"type":"case","nodeid":"cases/test_x.py::test_half')  # the guest died mid-write
    assert read(path).cut_line == 4
    cut = (f"testbed report: {path}:4: the last line is cut short (the run was interrupted while writing it); "
           "that case is not in the report\n")
    assert main(["report", path]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("srl2 conformance findings") and err == cut
    assert main(["report", path, "--exit-zero"]) == 0
    assert capsys.readouterr().err == cut


def test_a_cut_that_splits_a_character_is_a_cut_not_binary(tmp_path):
    path = write_record(tmp_path / "r.jsonl", sample_passing())
    with open(path, "ab") as f:
        f.write('{"type":"case","nodeid":"x","checks":[{"clause":"RFC 2473 §'.encode()[:-1])
    rec = read(path)
    assert rec.cut_line == 4 and len(rec.cases) == 2


def sample_passing():
    rec = sample()
    rec.cases = [Case("cases/test_a.py::test_a[kernel]", "passed", ["H1"], "kernel"),
                 Case("cases/test_a.py::test_b[kernel]", "skipped", ["H2"], "kernel", skip_reason="kernel-only")]
    return rec


def test_a_cut_line_in_the_middle_or_a_garbage_one_at_the_end_is_not_a_crash(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(f"{HEADER}\n{case_line()[:20]}\n{case_line()}\n")
    with pytest.raises(RecordError, match=rf"^{path}:2: not a JSON line of a run record$"):
        read(str(path))


# ---- testbed compare: a run that lost cases is not a pass ------------------------------------


def test_compare_fails_when_the_new_run_has_no_case_at_all(tmp_path, capsys):
    base = write_record(tmp_path / "base.jsonl", sample())
    empty = tmp_path / "new.jsonl"
    empty.write_text(HEADER + "\n")
    assert main(["compare", base, str(empty)]) == 1
    out, err = capsys.readouterr()
    assert err == (f"testbed compare: 7 cases of the baseline missing from {empty}: "
                   "cases/test_headers.py::test_hop_limit[kernel], cases/test_sid_order.py::test_127_sids[kernel], "
                   "cases/test_netlink.py::test_srh_read_back[kernel] and 4 more; "
                   "--allow-missing compares what ran\n")
    assert "Cases missing from the new run (7):" in out
    assert out.rstrip().endswith("verdict: 7 cases of the baseline missing, no case in the new run (exit status 1)")
    # a run of nothing compares with nothing, even when missing cases are allowed
    assert main(["compare", base, str(empty), "--allow-missing", "--json"]) == 1
    out, err = capsys.readouterr()
    assert err == f"testbed compare: {empty}: no case in the new run: nothing to compare\n"
    data = json.loads(out)
    assert data["exit_status"] == 1 and len(data["missing"]) == 7 and data["allow_missing"] is True


def test_compare_fails_on_missing_cases_unless_allowed(tmp_path, capsys):
    base = write_record(tmp_path / "base.jsonl", sample())
    part = sample()
    del part.cases[2:]
    new = write_record(tmp_path / "new.jsonl", part)
    assert main(["compare", base, new]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"testbed compare: 5 cases of the baseline missing from {new}: ")
    assert err.endswith(" and 2 more; --allow-missing compares what ran\n")
    assert main(["compare", base, new, "--allow-missing"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Cases missing from the new run (5):" in out
    assert out.rstrip().endswith("verdict: nothing newly failing, no new crash (exit status 0)")
    one, two = sample_passing(), sample_passing()
    del one.cases[1:]
    assert main(["compare", write_record(tmp_path / "one.jsonl", one),
                 write_record(tmp_path / "two.jsonl", two)]) == 0  # more cases in the new run: none missing
    assert capsys.readouterr().err == ""


def test_compare_a_new_record_cut_short(tmp_path, capsys):
    base = write_record(tmp_path / "base.jsonl", sample())
    new = write_record(tmp_path / "new.jsonl", sample())
    with open(new, "a") as f:
        f.write('{"type":"case","nodeid":"cases/test_x.py::te')
    assert main(["compare", base, new]) == 1
    out, err = capsys.readouterr()
    assert err == (f"testbed compare: {new}:9: the last line is cut short (the run was interrupted while "
                   "writing it); that case is not compared; --allow-missing compares what ran\n")
    assert main(["compare", base, new, "--allow-missing"]) == 0
    assert capsys.readouterr().err.startswith(f"testbed compare: {new}:9: the last line is cut short")


def test_the_committed_baseline_reads_and_compares_with_itself(capsys):
    assert main(["compare", BASELINE, BASELINE]) == 0
    assert capsys.readouterr().err == ""


# ---- testbed report: exit statuses and the JSON summary ---------------------------------------


def test_report_exit_status_is_1_on_failures_crashes_errors_unless_exit_zero(tmp_path, capsys):
    bad = write_record(tmp_path / "bad.jsonl", sample())
    good = write_record(tmp_path / "good.jsonl", sample_passing())
    empty = tmp_path / "empty.jsonl"
    empty.write_text(HEADER + "\n")
    assert main(["report", bad]) == 1
    assert main(["report", bad, "--exit-zero", "--ktap", str(tmp_path / "k.tap")]) == 0
    assert main(["report", good]) == 0
    assert main(["report", str(empty)]) == 1  # a run of nothing is not a clean run
    assert main(["report", str(empty), "--exit-zero"]) == 0
    capsys.readouterr()
    crashed = sample_passing()
    crashed.cases.append(Case("cases/test_b.py::test_c[kernel]", "crashed", ["S3"], "kernel", crash=CRASH))
    assert main(["report", write_record(tmp_path / "crashed.jsonl", crashed)]) == 1


def test_report_json_is_a_machine_summary(tmp_path, capsys):
    path = write_record(tmp_path / "r.jsonl", sample())
    assert main(["report", path, "--json", "--html", str(tmp_path / "r.html")]) == 1
    out, err = capsys.readouterr()
    assert err == f"testbed report: wrote {tmp_path / 'r.html'}\n"  # stdout is the JSON alone
    assert json.loads(out) == {
        "record": path, "release": RELEASE, "boots": 2, "datapaths": ["kernel"], "cases": 7,
        "counts": {"passed": 2, "failed": 2, "skipped": 1, "crashed": 1, "error": 1},
        "failing": ["cases/test_headers.py::test_hop_limit[kernel]", "cases/test_sid_order.py::test_127_sids[kernel]",
                    "cases/test_netlink.py::test_mtu_at_creation[kernel]",
                    "cases/test_loops.py::test_route_into_itself[kernel]"],
        "failing_ids": ["H5", "S3", "L1", "N4"],
        "crashes": [{"nodeid": "cases/test_sid_order.py::test_127_sids[kernel]", "kind": "BUG",
                     "title": "kernel BUG at net/core/skbuff.c:209!", "boot": 1, "release": RELEASE}],
        "cut_line": None, "exit_status": 1}
    assert main(["report", path, "--json", "--exit-zero"]) == 0
    assert json.loads(capsys.readouterr().out)["exit_status"] == 0


def test_report_json_excludes_text_and_catalogue(tmp_path, capsys):
    path = write_record(tmp_path / "r.jsonl", sample())
    assert main(["report", path, "--json", "--catalogue"]) == 2
    assert "testbed: error: --json prints the summary alone: not with --text or --catalogue" in capsys.readouterr().err


# ---- KTAP ends with kselftest's totals -------------------------------------------------------


def test_ktap_ends_with_kselftests_totals_line():
    lines = ktap.ktap(sample()).splitlines()
    assert lines[-1] == "# Totals: pass:2 fail:4 xfail:0 xpass:0 skip:1 error:0"
    assert sum(ln.startswith("not ok ") for ln in lines) == 4 and sum("# SKIP" in ln for ln in lines) == 1
    empty = sample()
    empty.cases = []
    assert ktap.ktap(empty).splitlines() == ["KTAP version 1", "1..0",
                                             "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0"]
