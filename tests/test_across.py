"""`testbed compare` across revisions, clause by clause
(testbed/results/across.py): the classification on small hand-made
records, the CLI's choice of it and its exit status, and docs/srl2-to-sr6.md
regenerated from the two baselines (this fails when the file is stale:
run `python -m testbed.results.across baselines/srl2-rfc-6.12.jsonl
baselines/sr6-rfc-v2-6.12.jsonl --markdown > docs/srl2-to-sr6.md`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.cli import main
from testbed.results import across
from testbed.results.record import Case, Crash, Header, Record, RecordWriter

ROOT = Path(__file__).resolve().parent.parent


def rec(revision: str, cases: list[Case], path: str = "r.jsonl") -> Record:
    return Record(headers=[Header(release="6.12", datapath="kernel", datapaths=["kernel"], revision=revision)],
                  cases=cases, path=path)


def fail(cid: str, seen: str, name: str = "") -> Case:
    return Case(f"cases/test_x.py::test_{name or cid.lower()}[kernel]", "failed", [cid], "kernel",
                checks=[{"id": cid, "clause": "c", "verdict": "fail", "what": "w", "expected": "1", "seen": seen}])


def ok(cid: str, name: str = "") -> Case:
    return Case(f"cases/test_x.py::test_{name or cid.lower()}[kernel]", "passed", [cid], "kernel")


def crash(cid: str) -> Case:
    return Case(f"cases/test_x.py::test_{cid.lower()}[kernel]", "crashed", [cid], "kernel",
                crash=Crash(kind="BUG", title="kernel BUG at x.c:1!"))


def skip(cid: str) -> Case:
    return Case(f"cases/test_x.py::test_{cid.lower()}[kernel]", "skipped", [cid], "kernel", skip_reason="no")


def by_id(a: across.Across) -> dict[str, across.Clause]:
    return {c.id: c for c in a.clauses}


@pytest.mark.parametrize("older, newer, cls", [
    ("FAIL", "PASS", across.FIXED), ("ERROR", "NOTE", across.FIXED),
    ("FAIL", "FAIL", across.STILL_FAILING), ("FAIL", "ERROR", across.STILL_FAILING),
    ("PASS", "FAIL", across.NEWLY_FAILING), ("-", "FAIL", across.NEWLY_FAILING),
    ("SKIP", "ERROR", across.NEWLY_FAILING), ("NOTE", "FAIL", across.NEWLY_FAILING),
    ("CRASH", "PASS", across.CRASH_GONE), ("CRASH", "FAIL", across.CRASH_GONE),
    ("PASS", "CRASH", across.NEW_CRASH), ("-", "CRASH", across.NEW_CRASH), ("CRASH", "CRASH", across.STILL_FAILING),
    ("-", "PASS", across.ONLY_NEWER), ("SKIP", "PASS", across.ONLY_NEWER),
    ("PASS", "SKIP", across.ONLY_OLDER), ("FAIL", "-", across.ONLY_OLDER), ("CRASH", "SKIP", across.ONLY_OLDER),
    ("PASS", "NOTE", across.UNCHANGED), ("SKIP", "-", across.UNCHANGED),
])
def test_classify(older, newer, cls):
    assert across.classify(older, newer) == cls


def test_the_worst_verdict_of_an_id_over_its_cases_decides():
    older = rec("", [ok("H5", "a"), fail("H5", "1", "b"), crash("S3"), ok("T1"), fail("C5", "3"), skip("S4")])
    newer = rec("sr6", [ok("H5", "a"), fail("H5", "2", "b"), ok("S3"), fail("T1", "9"), ok("C5"), ok("R1"),
                        ok("S4")])
    a = across.across(older, newer)
    rows = by_id(a)
    assert (a.older_revision, a.newer_revision) == ("srl2", "sr6")
    assert rows["H5"].cls == across.STILL_FAILING and rows["H5"].was.endswith("seen 1")
    assert rows["H5"].now.endswith("seen 2")                    # the other finding: both shown
    assert rows["C5"].cls == across.FIXED and rows["C5"].now == ""
    assert rows["T1"].cls == across.NEWLY_FAILING and rows["T1"].now.endswith("seen 9")
    assert rows["S3"].cls == across.CRASH_GONE and "kernel BUG" in rows["S3"].was
    assert rows["R1"].cls == across.ONLY_NEWER and rows["R1"].older == "-"
    assert rows["S4"].cls == across.ONLY_NEWER and rows["S4"].older == "SKIP"
    assert a.failures() == ["1 newly failing (T1)"] and a.exit_status() == 1


def test_same_finding_is_said_once_and_by_design_comes_from_the_newer_revision():
    older = rec("", [fail("H2", "x"), ok("L1"), ok("H1")])
    newer = rec("sr6", [fail("H2", "x"), ok("L1"), ok("H1")])
    a = across.across(older, newer)
    rows = by_id(a)
    assert rows["H2"].cls == across.STILL_FAILING and rows["H2"].now == ""
    assert "  srl2 and sr6: [c] w: expected 1, seen x" in across.text(a)
    assert rows["L1"].by_design and "tx_errors" in rows["L1"].expect and rows["L1"].reason
    assert not rows["H1"].by_design and rows["H1"].cls == across.UNCHANGED
    assert a.exit_status() == 0
    # the same revision on both sides: no expectation changed
    assert not any(c.by_design for c in across.across(newer, newer).clauses)


def test_a_new_crash_fails_and_a_newer_run_without_cases_fails():
    a = across.across(rec("", [ok("S3")]), rec("sr6", [crash("S3")]))
    assert a.failures() == ["1 new crash (S3)"] and a.exit_status() == 1
    assert across.across(rec("", [ok("S3")]), rec("sr6", [])).failures() == ["no case in the newer run"]


def write(path: Path, record: Record) -> str:
    w = RecordWriter(str(path), record.headers[0])
    for case in record.cases:
        w.write(case)
    w.close()
    return str(path)


def test_cli_compares_by_clause_when_revisions_differ(tmp_path, capsys):
    older = write(tmp_path / "o.jsonl", rec("", [fail("H2", "x"), ok("T1")]))
    newer = write(tmp_path / "n.jsonl", rec("sr6", [fail("H2", "x"), fail("T1", "y", "renamed")]))
    page = tmp_path / "a.html"
    assert main(["compare", older, newer, "--html", str(page)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("srl2 -> sr6, clause by clause") and "Newly failing (1):\n  T1 PASS -> FAIL" in out
    assert "<table>" in page.read_text() and "<script" not in page.read_text()
    assert main(["compare", older, newer, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["newly failing"] == 1 and data["exit_status"] == 1
    # the same revision: per case, unless --by-clause (the renamed case is then the same clause)
    same = write(tmp_path / "s.jsonl", rec("", [fail("H2", "x"), ok("T1", "renamed")]))
    assert main(["compare", older, same, "--allow-missing"]) == 0
    assert "Cases new in this run (1)" in capsys.readouterr().out
    assert main(["compare", older, same, "--by-clause"]) == 0
    assert "srl2 -> srl2, clause by clause" in capsys.readouterr().out
    assert main(["compare", older, same, "--html", str(page)]) == 2


def test_the_baselines_srl2_to_sr6():
    from testbed.results.record import read

    older, newer, _ = across.EXAMPLE
    a = across.across(read(str(ROOT / older)), read(str(ROOT / newer)))
    rows = by_id(a)
    assert rows["S3"].cls == across.CRASH_GONE and rows["S3"].by_design
    assert {c.id for c in a.of(across.ONLY_NEWER)} == {"R1", "R2", "R3", "R4", "R5", "R6"}
    assert a.exit_status() == 0


def test_the_committed_example_is_not_stale():
    _, _, doc = across.EXAMPLE
    assert (ROOT / doc).read_text() == across.example(str(ROOT)), (
        f"{doc} is stale: regenerate it with `{across.command_line(*across.EXAMPLE[:2])} > {doc}`")
