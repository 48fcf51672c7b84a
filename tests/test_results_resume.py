"""A run resumed after a kernel crash, as `testbed vm` asks for it
(TESTBED_VM_BOOT=2, TESTBED_VM_OUT with the first boot's record and
crashes.jsonl): the cases the record has are not run again, the case the
crash is charged to is recorded as crashed with the kernel's lines without
running, the rest run, and KTAP covers the whole run.  Serial and under
xdist (where each worker deselects for itself)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from testbed.results.record import read

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUITE = textwrap.dedent('''\
    import os, pytest

    def ran(name):
        with open(os.path.join(os.environ["RAN_DIR"], name), "w"):
            pass

    def test_done_on_boot_1():
        ran("done")

    @pytest.mark.conformance("S3")
    def test_crashes_the_kernel():
        ran("crash")

    def test_open_with_another_when_it_crashed():
        ran("other")

    @pytest.mark.conformance("H1")
    def test_not_reached():
        ran("rest")
        assert False, "H1 outer next header: expected 43, seen 0"
    ''')

KERNEL_LINES = ["skbuff: skb_over_panic: text:ffffffffa0 len:1540 put:20 dev:srl2-0",
                "kernel BUG at net/core/skbuff.c:209!", "RIP: 0010:skb_panic+0x4c/0x50", "Call Trace:",
                " add_grec+0x1a2/0x3c0"]


def pytest_cmd(suite, *args):
    return [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-p", "testbed.pytest_plugin",
            "--rootdir", ROOT, "-c", os.path.join(ROOT, "pyproject.toml"), *args]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_boot_2_resumes_the_run(tmp_path, workers):
    suite = tmp_path / "test_resumed.py"
    suite.write_text(SUITE)
    out, ran = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    ran.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBED_VM", "TESTBED_RECORD"))}
    env.update(RAN_DIR=str(ran), TESTBED_VM_OUT=str(out), PYTHONPATH=ROOT)
    collected = subprocess.run(pytest_cmd(suite, "--collect-only", "-q"), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
    nodeids = [ln for ln in collected.stdout.splitlines() if "::" in ln]
    done, crashed, other, rest = nodeids

    # boot 1: one case done (its record line), then the last line cut short by the crash
    record = out / "record.jsonl"
    record.write_text(
        json.dumps({"type": "header", "format": "srl2-testbed-record", "version": 1, "boot": 1,
                    "release": "6.12.117-srl2rfc", "machine": "guest"}) + "\n"
        + json.dumps({"type": "case", "nodeid": done, "outcome": "passed", "boot": 1}) + "\n"
        + '{"type": "case", "nodeid": "' + crashed[:10])
    (out / "crashes.jsonl").write_text(
        json.dumps({"boot": 1, "kind": "BUG", "title": "kernel BUG at net/core/skbuff.c:209!",
                    "rip": "RIP: 0010:skb_panic+0x4c/0x50", "trace": ["add_grec+0x1a2/0x3c0"],
                    "lines": KERNEL_LINES, "open": [f"case {crashed}"], "release": "6.12.117-srl2rfc",
                    "elapsed": 3.2}) + "\n"
        + json.dumps({"boot": 1, "kind": "Oops", "title": "an earlier crash, two cases open",
                      "open": [f"case {other}", f"case {rest}"]}) + "\n")

    env["TESTBED_VM_BOOT"] = "2"
    p = subprocess.run(pytest_cmd(suite, "--ktap", str(tmp_path / "k.tap"), *workers), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 1, p.stdout + p.stderr
    assert sorted(os.listdir(ran)) == ["other", "rest"]  # neither the done case nor the crashed one ran
    summary = p.stdout.strip().splitlines()[-1]  # one error (the crash), no teardown error beside it
    assert re.search(r"\b1 failed\b.*\b1 passed\b.*\b1 error\b", summary), p.stdout

    rec = read(str(record))
    assert not rec.truncated and [h.boot for h in rec.headers] == [1, 2]
    by = rec.by_nodeid()
    assert set(by) == set(nodeids) and len(rec.cases) == 4
    assert by[done].boot == 1 and by[other].outcome == "passed" and by[rest].outcome == "failed"
    case = by[crashed]
    assert case.outcome == "crashed" and case.ids == ["S3"] and case.boot == 2
    assert case.crash.lines == KERNEL_LINES and case.crash.rip == "RIP: 0010:skb_panic+0x4c/0x50"
    assert "kernel BUG while this case ran (boot 1): kernel BUG at net/core/skbuff.c:209!" in case.message

    ktap = (tmp_path / "k.tap").read_text().splitlines()
    assert ktap[1] == "1..4"
    assert "# kernel BUG: kernel BUG at net/core/skbuff.c:209!" in ktap
    assert sum(ln.startswith("not ok") for ln in ktap) == 2


def test_boot_1_starts_a_new_record(tmp_path):
    suite = tmp_path / "test_resumed.py"
    suite.write_text(SUITE)
    out, ran = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    ran.mkdir()
    (out / "record.jsonl").write_text('{"type": "case", "nodeid": "from an older run", "outcome": "passed"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBED_VM", "TESTBED_RECORD"))}
    env.update(RAN_DIR=str(ran), TESTBED_VM_OUT=str(out), TESTBED_VM_BOOT="1", PYTHONPATH=ROOT)
    p = subprocess.run(pytest_cmd(suite), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert sorted(os.listdir(ran)) == ["crash", "done", "other", "rest"]
    rec = read(str(out / "record.jsonl"))
    assert len(rec.headers) == 1 and [c.outcome for c in rec.cases] == ["passed"] * 3 + ["failed"]


def test_a_pytest_run_by_a_case_of_a_recorded_run_keeps_its_hands_off_the_record(tmp_path):
    """Inside a VM, a test of the suite that runs pytest (this file does)
    must not take the VM's default record, nor resume from it."""
    suite = tmp_path / "test_resumed.py"
    suite.write_text(SUITE)
    out, ran = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    ran.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBED_VM", "TESTBED_RECORD"))}
    env.update(RAN_DIR=str(ran), TESTBED_VM_OUT=str(out), TESTBED_VM_BOOT="2", PYTHONPATH=ROOT,
               TESTBED_RECORD=str(out / "record.jsonl"))  # what the outer run (the VM's pytest) set
    p = subprocess.run(pytest_cmd(suite), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert sorted(os.listdir(ran)) == ["crash", "done", "other", "rest"] and not os.listdir(out)


TURNS_SUITE = textwrap.dedent('''\
    import json, os, time

    def ran(name):
        start = time.time()
        time.sleep(0.4)  # long enough that cases side by side would overlap
        with open(os.path.join(os.environ["RAN_DIR"], name), "w") as f:
            json.dump([start, time.time()], f)

    def test_c():
        ran("c")

    def test_d():
        ran("d")

    def test_e():
        ran("e")

    def test_f():
        ran("f")

    def test_a():
        ran("a")

    def test_b():
        ran("b")
    ''')


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_suspects_run_first_alone_one_at_a_time(tmp_path, workers):
    """A crash had a and b open (collected last): on the next boot they run
    before every other case, never beside another case, and then the rest
    runs (in parallel under -n).  Nothing of the turns is left in /tmp."""
    suite = tmp_path / "test_turns.py"
    suite.write_text(TURNS_SUITE)
    out, ran = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    ran.mkdir()
    collected = subprocess.run(pytest_cmd(suite, "--collect-only", "-q"), cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    prefix = collected.stdout.splitlines()[0].split("::")[0]
    (out / "crashes.jsonl").write_text(json.dumps(
        {"boot": 1, "kind": "BUG", "title": "two cases open", "open": [f"case {prefix}::test_a",
                                                                        f"case {prefix}::test_b"]}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBED_VM", "TESTBED_RECORD"))}
    env.update(RAN_DIR=str(ran), TESTBED_VM_OUT=str(out), TESTBED_VM_BOOT="2", PYTHONPATH=ROOT,
               TMPDIR=str(tmp_path))
    p = subprocess.run(pytest_cmd(suite, *workers), cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    spans = {name: json.loads((ran / name).read_text()) for name in os.listdir(ran)}
    assert sorted(spans) == ["a", "b", "c", "d", "e", "f"]
    suspects_end = max(spans["a"][1], spans["b"][1])
    for name in "cdef":
        assert spans[name][0] >= suspects_end, (name, spans)  # only after the suspects
    for s in "ab":
        for other, (start, end) in spans.items():
            if other != s:
                assert end <= spans[s][0] or start >= spans[s][1], (s, other, spans)  # alone
    if workers:  # and the rest in parallel again
        assert any(spans[x][0] < spans[y][1] and spans[y][0] < spans[x][1]
                   for x in "cdef" for y in "cdef" if x < y), spans
    assert not [n for n in os.listdir(tmp_path) if n.startswith("testbed-turns-")]  # removed at the end
