"""The pure parts of testbed/results on a hand-made record: reading and
writing records (a line cut short by a crash), per-ID verdicts and the
catalogue, the findings text, KTAP, JUnit (xunit2), the HTML page, the
comparison of two runs and the choice of crashed cases on resume."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from testbed.cli import main
from testbed.catalogue import CLAUSES
from testbed.results import compare, findings, html, junit, ktap, resume
from testbed.results.record import Case, Header, RecordError, RecordWriter, parse_lines, read
from testbed.results.verdicts import catalogue_table, id_verdicts
from tests.results_sample import CRASH, H5_CLAUSE, RELEASE, sample, write_record


# ---- the record -----------------------------------------------------------


def test_a_record_reads_back_as_written(tmp_path):
    rec = sample()
    back = read(write_record(tmp_path / "r.jsonl", rec))
    assert back.header.release == RELEASE and back.header.machine == "guest"
    assert [c.to_dict() for c in back.cases] == [c.to_dict() for c in rec.cases]
    assert back.cases[1].crash == CRASH and not back.truncated


def test_a_last_line_cut_short_is_tolerated_and_trimmed_on_resume(tmp_path):
    path = write_record(tmp_path / "r.jsonl", sample())
    with open(path, "a") as f:
        f.write('{"type": "case", "nodeid": "cases/x.py::half')  # the guest died mid-write
    rec = read(path)
    assert rec.truncated and len(rec.cases) == len(sample().cases)
    w = RecordWriter(path, Header(boot=2), resume=True)  # the next boot appends after the last whole line
    w.write(Case("cases/x.py::whole", "passed"))
    w.close()
    rec = read(path)
    assert not rec.truncated and [h.boot for h in rec.headers] == [1, 2]
    assert rec.cases[-1].nodeid == "cases/x.py::whole" and rec.boots == 2


def test_a_broken_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    header = json.dumps(Header().to_dict())
    with pytest.raises(RecordError, match=r"x.jsonl:2: not a JSON line"):
        parse_lines([header, "garbage", '{"type": "case", "nodeid": "a", "outcome": "passed"}'], "x.jsonl")
    with pytest.raises(RecordError, match="neither a header nor a case"):
        parse_lines([header, '{"what": 1}'], "x.jsonl")
    with pytest.raises(RecordError, match="no such record"):
        read(str(tmp_path / "missing.jsonl"))


# ---- per-ID verdicts and the catalogue -------------------------------------


def test_only_the_id_whose_check_failed_fails():
    cases = sample().cases
    assert id_verdicts(cases[0]) == {"H1": "PASS", "H3": "PASS", "H5": "FAIL"}
    assert id_verdicts(cases[1]) == {"S3": "CRASH"}
    assert id_verdicts(cases[3]) == {"N6": "NOTE"}
    assert id_verdicts(cases[4]) == {"N4": "ERROR"}
    assert id_verdicts(cases[5]) == {"L1": "FAIL"}  # no checks: the case's IDs fail with it


def test_catalogue_table_per_id():
    table = "\n".join(catalogue_table(sample().cases))
    for cid, cell in (("H1", "PASS"), ("H3", "PASS"), ("H5", "FAIL"), ("S3", "CRASH"), ("S4", "SKIP"),
                      ("N6", "NOTE"), ("N4", "ERROR"), ("L1", "FAIL"), ("T1", "PASS"), ("H2", "-")):
        assert re.search(rf"^\s+{cid}\s+{re.escape(cell)}\s", table, re.M), (cid, table)


def test_a_case_on_no_datapath_counts_in_every_column():
    cases = sample().cases + [Case("cases/test_sid_order.py::test_loader", "passed", ["S1"], "-")]
    table = catalogue_table(cases)
    assert table[0].split() == ["ID", "kernel", "behaviour"]
    assert any(re.match(r"^\s+S1\s+PASS\s", line) for line in table)


# ---- findings text ------------------------------------------------------------


def test_findings_text_puts_crashes_first_and_names_id_clause_expected_seen_case_release():
    text = findings.text(sample())
    assert text.index("Kernel crashes (1)") < text.index("Deviations (2)") < text.index("Notes")
    flat = " ".join(text.split())
    # A crash is charged to its case's IDs, with their clause (testbed.catalogue.CLAUSES).
    assert f"S3 [{CLAUSES['S3']}] kernel BUG at net/core/skbuff.c:209! RIP" in flat
    assert "RIP: 0010:skb_panic+0x4c/0x50" in text and "skb_put < add_grec < mld_send_initial_cr" in text
    assert (f"H5 [{H5_CLAUSE}] outer hop limit of a frame carrying IPv6 hop limit 1: expected 64, seen 1"
            in flat)
    assert "case: cases/test_headers.py::test_hop_limit[kernel]" in text
    assert f"kernel: {RELEASE} (kernel datapath)" in text
    assert f"N4 [{CLAUSES['N4']}] could not check: testbed.errors.LabError: srl2 srl2-9: mtu greater" in flat
    assert f"L1 [{CLAUSES['L1']}] tx_dropped of srl2-0: expected 1, seen 0" in flat and "L1 L1" not in flat
    assert "logged: WARNING: WARNING: CPU: 1 PID: 7 at net/ipv6/seg6.c:1 x" in text
    assert "H1" not in text.split("Deviations")[1].split("Cases that")[0].replace("H1,", "")  # H1 passed
    assert all(len(line) <= 72 for line in text.splitlines() if "case: " not in line), text


def test_findings_text_lists_kernel_problems_of_passing_cases_counted():
    rec = sample()
    rec.cases[6].kernel_problems = [{"kind": "dead loop", "line": "Dead loop on virtual device srl2-1"}] * 3
    text = findings.text(rec)
    part = text.split("Kernel problems logged while passing cases ran (1):")[1]
    assert "cases/test_transparency.py::test_arp[kernel]" in part
    assert "3x dead loop: Dead loop on virtual device srl2-1" in part
    assert "WARNING" not in part  # L1 failed: its kernel lines are with its finding, not here


# ---- KTAP and JUnit -------------------------------------------------------------


def test_ktap_has_not_ok_for_failed_crashed_error_and_diagnostics_before_the_result():
    lines = ktap.ktap(sample()).splitlines()
    assert lines[:2] == ["KTAP version 1", "1..7"]
    results = [ln for ln in lines if not ln.startswith("#")][2:]
    assert [r.split(" ", 2)[:2] for r in results] == [
        ["not", "ok"], ["not", "ok"], ["ok", "3"], ["ok", "4"], ["not", "ok"], ["not", "ok"], ["ok", "7"]]
    assert re.fullmatch(r"ok 3 \S+ # SKIP kernel-only: the reference datapath has no srl2 link kind", results[2])
    i = lines.index(results[0])
    assert lines[i - 1] == (f"# H5 [{H5_CLAUSE}] outer hop limit of a frame carrying IPv6 hop limit 1: "
                            "expected 64, seen 1")
    j = lines.index(results[1])
    assert lines[j - 2:j] == ["# kernel BUG: kernel BUG at net/core/skbuff.c:209!",
                              "# RIP: 0010:skb_panic+0x4c/0x50"]
    # a plain assert naming its ID, given its clause
    assert f"# L1 [{CLAUSES['L1']}] tx_dropped of srl2-0: expected 1, seen 0" in lines
    assert "# kernel WARNING: WARNING: CPU: 1 PID: 7 at net/ipv6/seg6.c:1 x" in lines


XUNIT2_CASE_ATTRS = {"classname", "name", "time"}
XUNIT2_CASE_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err"}


def test_junit_is_xunit2_shaped_and_carries_findings_and_the_crash():
    root = ET.fromstring(junit.junit(sample()))
    suite = root.find("testsuite")
    assert suite.get("tests") == "7" and suite.get("failures") == "3" and suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["kernel_release"] == RELEASE
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    for c in cases.values():
        assert set(c.attrib) <= XUNIT2_CASE_ATTRS and {x.tag for x in c} <= XUNIT2_CASE_CHILDREN
    hop = cases["test_hop_limit[kernel]"]
    assert hop.get("classname") == "cases.test_headers"
    fail = hop.find("failure")
    assert fail.get("message").startswith("H5 [RFC 2473 §6.3; srl2 patch] outer hop limit")
    assert "expected 64, seen 1" in fail.text
    out = hop.find("system-out").text
    assert "per ID: H1 PASS, H3 PASS, H5 FAIL" in out and "pcap: /tmp/out/pcaps/x/t1-rt-1-veth-rt2.pcap" in out
    crash = cases["test_127_sids[kernel]"].find("failure")
    assert crash.get("type") == "kernel crash" and "kernel BUG at net/core/skbuff.c:209!" in crash.get("message")
    assert "RIP: 0010:skb_panic+0x4c/0x50" in crash.text and "add_grec+0x1a2/0x3c0" in crash.text
    assert "NOTE N6" in cases["test_moving[kernel]"].find("system-out").text
    assert cases["test_mtu_at_creation[kernel]"].find("error") is not None
    assert cases["test_srh_read_back[kernel]"].find("skipped").get("message").startswith("kernel-only")


def test_junit_survives_control_characters_in_kernel_lines():
    rec = sample()
    rec.cases[1].crash.lines.append("garbage \x01\x1b[0m")
    ET.fromstring(junit.junit(rec))


# ---- HTML -------------------------------------------------------------------------


def test_html_page_has_catalogue_diff_picture_crash_and_relative_pcap_links(tmp_path):
    kept = tmp_path / "out" / "pcaps" / "x" / "t1-rt-1-veth-rt2.pcap"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"pcap")
    rec = sample()
    rec.cases[0].pcaps = [str(kept)]
    page = html.page(rec, base=str(tmp_path / "out"))
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert '<a href="pcaps/x/t1-rt-1-veth-rt2.pcap">t1-rt-1-veth-rt2.pcap</a>' in page
    assert '<mark class="exp">64</mark>' in page and "<mark>1</mark>" in page
    assert "| [a] |v0--v1| (b) |" in page  # the lab's picture, as it is
    assert "kernel BUG at net/core/skbuff.c:209!" in page and "add_grec+0x1a2/0x3c0" in page
    assert re.search(r'<td class="id"><b>H5</b></td><td><span class="v FAIL">FAIL</span>', page)
    assert re.search(r'<td class="id"><b>S3</b></td><td><span class="v CRASH">CRASH</span>', page)
    rec = sample()
    rec.cases[0].message = "<script>alert(1)</script>"
    assert "<script>alert" not in html.page(rec)


def test_html_says_pcap_not_kept_where_the_file_is_gone(tmp_path):
    """A record from another machine (the baseline's /tmp/rfc-base) or
    without its results directory: no dead links.  A relative path is
    taken from the record's directory."""
    (tmp_path / "rec" / "pcaps").mkdir(parents=True)
    (tmp_path / "rec" / "pcaps" / "here.pcap").write_bytes(b"pcap")
    rec = sample()
    rec.path = str(tmp_path / "rec" / "r.jsonl")
    rec.cases[0].pcaps = [str(tmp_path / "gone" / "t1-rt-1-veth-rt2.pcap"), "pcaps/here.pcap", "pcaps/nothere.pcap"]
    page = html.page(rec, base=str(tmp_path / "page"))
    assert ("<p><b>pcaps</b>: <span class='muted'>t1-rt-1-veth-rt2.pcap (pcap not kept)</span>, "
            '<a href="../rec/pcaps/here.pcap">here.pcap</a>, '
            "<span class='muted'>nothere.pcap (pcap not kept)</span></p>") in page


def test_the_baselines_html_has_no_dead_pcap_link(tmp_path, capsys):
    out = tmp_path / "x.html"
    assert main(["report", "baselines/srl2-rfc-6.12.jsonl", "--html", str(out), "--exit-zero"]) == 0
    page = out.read_text()
    links = re.findall(r'<a href="([^"#]+\.pcap)">', page)
    assert all((tmp_path / link).exists() for link in links)
    assert len(links) + page.count(" (pcap not kept)</span>") == 14
    assert "expected , " not in page


NOTE_WITHOUT_EXPECTED = {"id": "N6", "clause": "srl2 patch (netns move)", "verdict": "note",
                         "what": "moving srl2 to another netns", "expected": "",
                         "seen": "allowed; it then routes in the new netns"}


def test_a_check_without_an_expected_value_reads_as_what_was_seen():
    rec = sample()
    rec.cases[3].checks = [NOTE_WITHOUT_EXPECTED]
    line = "N6 [srl2 patch (netns move)] moving srl2 to another netns: seen allowed; it then routes in the new netns"
    assert line in " ".join(findings.text(rec).split())
    assert f"# note: {line}" in ktap.ktap(rec).splitlines()
    assert f"NOTE N6 {line[3:]}" in junit.junit(rec)
    assert "expected ," not in html.page(rec) + findings.text(rec) + junit.junit(rec)
    assert "<td class='mono'>allowed; it then routes in the new netns</td>" in html.page(rec)  # nothing to mark
    failed = findings.Finding("fail", "D1", "", "outer packet", "identical to the reference's", "", "n", "kernel")
    assert failed.line() == "D1 outer packet: expected identical to the reference's"


def test_html_ids_do_not_wrap_and_node_ids_wrap_only_after_separators():
    page = html.page(sample())
    assert "break-all" not in page and "anywhere" not in page
    assert re.search(r"\.id \{[^}]*white-space: nowrap", page)
    # the findings table's ID column, the checks' ID column and the catalogue's
    assert "<td class='id'><b>H5</b></td>" in page and '<td class="id"><b>N6</b></td>' in page
    assert "<h3>cases/<wbr>test_<wbr>headers.py::<wbr>test_<wbr>hop_<wbr>limit[kernel]</h3>" in page
    assert ">test_<wbr>headers.py::<wbr>test_<wbr>hop_<wbr>limit[kernel]</a>" in page


def test_diff_pair_marks_the_fields_that_differ():
    exp, seen = html.diff_pair("hlim=64, tc=0, fl=0", "hlim=1, tc=0, fl=0")
    assert exp == 'hlim=<mark class="exp">64</mark>, tc=0, fl=0' and seen == "hlim=<mark>1</mark>, tc=0, fl=0"


# ---- comparison ----------------------------------------------------------------------


def test_compare_with_itself_changes_nothing():
    cmp = compare.compare(sample(), sample())
    assert cmp.exit_status() == 0 and not cmp.newly_failing and not cmp.new_crashes and not cmp.fixed
    assert {(c.id, c.after) for c in cmp.unchanged} == {("H5", "FAIL"), ("S3", "CRASH"), ("N4", "ERROR"),
                                                        ("L1", "FAIL")}


def test_compare_newly_failing_fixed_crashes_across_paths_and_datapaths():
    base = sample(nodeprefix="/work/main/cases/", datapath="ref")   # another checkout, the reference
    base.cases[0].checks = [dict(c, verdict="pass") for c in base.cases[0].checks]
    base.cases[0].outcome = "passed"
    base.cases[1].outcome, base.cases[1].crash = "passed", None
    base.cases[5].outcome = "passed"
    base.cases.append(Case("/work/main/cases/test_gone.py::test_gone[ref]", "passed", ["T2"], "ref"))
    new = sample()
    new.cases[6].outcome, new.cases[6].message = "failed", "AssertionError: T1 no ARP reply: expected 1, seen 0"
    new.cases[4].outcome = "passed"  # the lab error fixed
    cmp = compare.compare(base, new)
    assert cmp.exit_status() == 1
    assert [(c.id, c.before, c.after) for c in cmp.newly_failing] == [
        ("H5", "PASS", "FAIL"), ("L1", "PASS", "FAIL"), ("T1", "PASS", "FAIL")]
    assert [c.nodeid for c in cmp.new_crashes] == ["cases/test_sid_order.py::test_127_sids[kernel]"]
    assert [(c.id, c.before, c.after) for c in cmp.fixed] == [("N4", "ERROR", "PASS")]
    assert cmp.missing == ["/work/main/cases/test_gone.py::test_gone[ref]"] and cmp.added == []
    out = compare.text(cmp)
    assert "H5 cases/test_headers.py::test_hop_limit[kernel]: PASS -> FAIL: [RFC 2473" in out
    assert out.rstrip().endswith("(exit status 1)")
    assert json.loads(json.dumps(cmp.to_dict()))["exit_status"] == 1


def test_a_case_failing_on_another_id_shows_one_newly_failing_and_one_fixed():
    base, new = sample(), sample()
    base.cases[0].checks = [dict(c, verdict="fail" if c["id"] == "H3" else "pass") for c in checks()]
    cmp = compare.compare(base, new)
    assert [(c.id, c.before) for c in cmp.newly_failing] == [("H5", "PASS")]
    assert [(c.id, c.after) for c in cmp.fixed] == [("H3", "PASS")]


def checks():
    from tests.results_sample import checks_h

    return checks_h()


# ---- resume: which cases a crash is charged to ----------------------------------------


def test_crashed_cases_only_open_alone_or_twice():
    a, b, c = "cases/a.py::t[kernel]", "cases/b.py::t[kernel]", "cases/c.py::t[kernel]"
    crashes = [{"boot": 1, "kind": "BUG", "title": "one", "open": [f"case {a}", f"case {b}"]},
               {"boot": 2, "kind": "Oops", "title": "two", "open": [f"case {b}", "fuzz 17"]},
               {"boot": 3, "kind": "panic", "title": "three", "open": [f"case {a}", f"case {c}"]}]
    got = resume.crashed_cases(crashes)
    assert {k: v.title for k, v in got.items()} == {b: "two", a: "three"}


def test_crashes_file_tolerates_a_cut_line(tmp_path):
    path = tmp_path / "crashes.jsonl"
    path.write_text('{"boot": 1, "kind": "BUG", "open": ["case x"]}\n{"boot": 2, "ki')
    assert [c["boot"] for c in resume.read_crashes(str(path))] == [1]
    assert resume.read_crashes(str(tmp_path / "none.jsonl")) == []


# ---- the CLI verbs ---------------------------------------------------------------------


def test_cli_report_and_compare(tmp_path, capsys):
    path = write_record(tmp_path / "r.jsonl", sample())
    assert main(["report", path, "--text", "--html", str(tmp_path / "r.html"), "--junit",
                 str(tmp_path / "j.xml"), "--ktap", str(tmp_path / "k.tap")]) == 1  # the sample has failures
    out = capsys.readouterr().out
    assert out.startswith("srl2 conformance findings") and f"wrote {tmp_path / 'r.html'}" in out
    assert (tmp_path / "k.tap").read_text().startswith("KTAP version 1")
    assert main(["compare", path, path]) == 0
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"testbed: error: {tmp_path / 'nope.jsonl'}: no such record"


def test_fields_of_a_plain_failure_message_for_the_html_diff():
    msg = ("AssertionError: D1 differ:\n    x:D1fl0-ipv6: IPv6.tc: expected 0, got 32; IPv6.hlim: expected 64, got 1\n"
           "assert not ['x:D1fl0-ipv6: IPv6.tc: expected 0, got 32; IPv6.hlim: expected 64, got 1']")
    assert html.fields_from_message(msg) == [("IPv6.tc", "0", "32"), ("IPv6.hlim", "64", "1")]
    rec = sample()
    rec.cases[5].message = msg
    assert "<td class=mono>IPv6.tc</td>" in html.page(rec)


# ---- folding pytest's reports into a record line -------------------------------------------


def report(when, outcome="passed", message="", props=(), duration=0.5):
    from types import SimpleNamespace

    longrepr = SimpleNamespace(reprcrash=SimpleNamespace(message=message)) if outcome == "failed" else None
    return SimpleNamespace(nodeid="cases/x.py::t[kernel]", when=when, outcome=outcome, failed=outcome == "failed",
                           skipped=outcome == "skipped", passed=outcome == "passed", longrepr=longrepr,
                           user_properties=[list(p) for p in props], duration=duration)  # xdist sends lists


@pytest.mark.parametrize("message, checks, outcome", [
    ("AssertionError: H5 hop limit: expected 64, seen 1", [], "failed"),
    ("testbed.errors.LabError: srl2 srl2-9: mtu greater than device maximum (EINVAL)", [], "error"),
    ("testbed.errors.LabError: late", [{"id": "N4", "verdict": "fail"}], "failed"),
])
def test_collector_tells_a_failure_from_a_case_that_could_not_check(message, checks, outcome):
    from testbed.results.collect import CaseCollector

    col = CaseCollector(boot=2)
    tags = [("conformance", "N4"), ("datapath", "kernel")]
    assert col.add(report("setup", props=tags)) is None
    assert col.add(report("call", "failed", message, tags + [("testbed_checks", checks)])) is None
    case = col.add(report("teardown", props=tags + [("testbed_checks", checks)]))
    assert (case.outcome, case.ids, case.datapath, case.boot, case.duration) == (outcome, ["N4"], "kernel", 2, 1.5)
    assert case.message == message and not col.open


def test_collector_makes_a_crashed_case_of_a_setup_failure_carrying_a_crash():
    from dataclasses import asdict

    from testbed.results.collect import CaseCollector

    col = CaseCollector()
    props = [("conformance", "S3"), ("testbed_crash", asdict(CRASH))]
    col.add(report("setup", "failed", "Failed: kernel BUG while this case ran", props))
    case = col.add(report("teardown", props=props))
    assert case.outcome == "crashed" and case.crash == CRASH and case.ids == ["S3"]


def test_headline_of_a_plain_failure_keeps_the_fields_and_drops_pytests_explanation():
    msg = ("AssertionError: captured packet differs from the expected one:\n  IPv6.tc: expected 0, got 184\n"
           "  IPv6.hlim: expected 64, got 1\nassert [] == ['x']")
    assert findings.headline(msg) == ("captured packet differs from the expected one: IPv6.tc: expected 0, got 184; "
                                      "IPv6.hlim: expected 64, got 1")
    assert findings.headline("AssertionError: 2 segments: list on the wire\nassert [1] == [2]") == \
        "2 segments: list on the wire"
    assert findings.headline("testbed.errors.LabError: x: y") == "testbed.errors.LabError: x: y"


def test_the_same_pair_open_in_two_crashes_charges_neither_and_both_take_turns():
    a, b, c = "case cases/t.py::a", "case cases/t.py::b", "case cases/t.py::c"
    same_pair = [{"open": [a, b]}, {"open": [a, b]}]
    assert resume.crashed_cases(same_pair) == {}
    assert resume.suspects(same_pair) == {"cases/t.py::a", "cases/t.py::b"}
    one_in_common = [{"open": [a, b]}, {"open": [a, c]}]
    assert set(resume.crashed_cases(one_in_common)) == {"cases/t.py::a"}
    assert resume.suspects(one_in_common) == {"cases/t.py::b", "cases/t.py::c"}
    alone = [{"open": [a, b]}, {"open": [b]}]
    assert set(resume.crashed_cases(alone)) == {"cases/t.py::b"}
    assert resume.suspects(alone) == {"cases/t.py::a"}
