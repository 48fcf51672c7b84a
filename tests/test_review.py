"""`testbed review` (testbed/review.py, testbed/cli/review.py): its pure
parts on small records (baseline by release, the cases to confirm, what a
fresh boot confirms, the summary and the exit status), a whole review with
testbed vm replaced by a stand-in that writes records, and the CLI's usage
errors.  The real thing boots kernels for many minutes: it runs only when
TESTBED_REVIEW_KERNELS names kernel images (space-separated)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from results_sample import RELEASE, sample, write_record
from testbed import review
from testbed.cli import main
from testbed.results import compare
from testbed.results.record import Case, Record
from testbed.vm import session
from testbed.vm.base import VmError
from testbed.vm.session import VmResult

ROOT = Path(__file__).resolve().parent.parent
ENV_KERNELS = "TESTBED_REVIEW_KERNELS"


def bzimage(path: Path, release: str) -> str:
    """A file inspect_kernel takes for an x86 bzImage of `release`."""
    header = bytearray(0x8000)
    header[0x202:0x206] = b"HdrS"
    header[0x20E:0x210] = (0x400).to_bytes(2, "little")
    text = f"{release} (nobody@nowhere) #1 SMP".encode()
    header[0x600:0x600 + len(text)] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(header))
    return str(path)


def with_outcome(record: Record, name: str, outcome: str, checks=None) -> Record:
    """`record` with the case whose nodeid contains `name` turned to `outcome`."""
    cases = [replace(c, outcome=outcome, checks=c.checks if checks is None else checks, crash=None)
             if name in c.nodeid else c for c in record.cases]
    return replace(record, cases=cases)


def without(record: Record, name: str) -> Record:
    return replace(record, cases=[c for c in record.cases if name not in c.nodeid])


# ---- kernels and their baselines ----------------------------------------------------------


def test_a_kernel_is_named_after_its_directory_or_its_release():
    assert review.dir_name("/k/srl2-rfc-6.12/bzImage", "6.12.117-srl2rfc") == "srl2-rfc-6.12"
    assert review.dir_name("linux/arch/x86/boot/bzImage", "6.13.0-rc1") == "6.13.0-rc1"
    assert review.dir_name("pkg/boot/vmlinuz-6.1.0-amd64", "6.1.0-amd64") == "6.1.0-amd64"
    assert review.unique(["a", "b", "a", "a"]) == ["a", "b", "a-2", "a-3"]


def test_the_baseline_is_the_record_of_the_kernels_release(tmp_path):
    bases = tmp_path / "baselines"
    bases.mkdir()
    write_record(bases / "srl2.jsonl", sample())
    other = sample()
    other.headers = [replace(h, release="6.12.117-sr6v2") for h in other.headers]
    write_record(bases / "sr6.jsonl", other)
    (bases / "notes.jsonl").write_text("not json\n")
    assert review.baselines_for(RELEASE, str(bases)) == [str(bases / "srl2.jsonl")]
    assert review.baselines_for("6.12.117-sr6v2", str(bases)) == [str(bases / "sr6.jsonl")]
    assert review.baselines_for("7.0.0", str(bases)) == []

    srl2 = bzimage(tmp_path / "srl2-rfc-6.12" / "bzImage", RELEASE)
    new = bzimage(tmp_path / "next" / "bzImage", "7.0.0")
    found = review.kernels([srl2, new], None, str(bases))
    assert [(k.name, k.release, k.baseline) for k in found] == [
        ("srl2-rfc-6.12", RELEASE, [str(bases / "srl2.jsonl")]), ("next", "7.0.0", [])]
    assert "no record of release 7.0.0" in found[1].why and "any failing or crashed case is a finding" in found[1].why
    given = review.kernels([new], str(bases / "sr6.jsonl"), str(bases))[0]
    assert given.baseline == [str(bases / "sr6.jsonl")] and "(given)" in given.why


def test_the_committed_baselines_are_found_by_release():
    bases = str(ROOT / "baselines")
    assert review.baselines_for("6.12.117-srl2rfc", bases) == [os.path.join(bases, "srl2-rfc-6.12.jsonl")]
    assert review.baselines_for("6.12.117-sr6v2", bases) == [os.path.join(bases, "sr6-rfc-v2-6.12.jsonl")]


def test_the_suite_runs_as_ci_runs_it(tmp_path):
    kernel = review.Kernel("/k/srl2/bzImage", RELEASE, "srl2")
    spec = review.vm_spec(kernel, "/out/srl2", ["cases/"], 2)
    assert spec.command[1:] == ["-m", "pytest", "cases/", "--datapath", "kernel", "-p", "no:cacheprovider",
                                "-n", "2", "-rfEs", "--junitxml=/out/srl2/junit-last-boot.xml",
                                "--ktap=/out/srl2/ktap-last-boot.txt", "--results=/out/srl2"]
    assert spec.path_env.split(os.pathsep)[0] == "/k/srl2"   # its ip-srl2 first
    assert (spec.cpus, spec.memory, spec.out) == (2, "2G", "/out/srl2")


# ---- what changed, what to confirm, what is confirmed ---------------------------------------


def test_changes_and_the_cases_to_confirm():
    base = sample()
    new = with_outcome(base, "test_arp", "failed")          # newly failing
    new = with_outcome(new, "test_route_into_itself", "passed", checks=[])   # fixed
    new = without(new, "test_mtu_at_creation")               # missing
    cmp = compare.compare(base, new)
    changed = review.changes(cmp)
    assert sorted(changed) == [
        ("cases/test_loops.py::test_route_into_itself[kernel]", "L1"),
        ("cases/test_netlink.py::test_mtu_at_creation[kernel]", review.MISSING),
        ("cases/test_transparency.py::test_arp[kernel]", "T1")]
    assert changed[("cases/test_transparency.py::test_arp[kernel]", "T1")].startswith("T1 cases/test_transparency")
    crashes = [{"open": ["case cases/test_transparency.py::test_arp[kernel]", "case cases/test_x.py::test_n[kernel]"]},
               {"open": ["case cases/test_y.py::test_far[kernel]"]}, {"open": ["fuzz 3"]}]
    assert review.to_confirm(cmp, crashes) == [
        "cases/test_loops.py::test_route_into_itself[kernel]", "cases/test_netlink.py::test_mtu_at_creation[kernel]",
        "cases/test_transparency.py::test_arp[kernel]", "cases/test_x.py::test_n[kernel]"]


def test_only_what_differs_in_both_runs_is_confirmed():
    base = sample()
    first = review.changes(compare.compare(base, with_outcome(with_outcome(base, "test_arp", "failed"),
                                                                "test_route_into_itself", "passed", checks=[])))
    # the fresh boot ran the two cases only: the arp case failed again, the loop case failed as in the baseline
    again = Record(headers=base.headers, path="again.jsonl",
                   cases=[c for c in with_outcome(base, "test_arp", "failed").cases
                          if "test_arp" in c.nodeid or "test_route_into_itself" in c.nodeid])
    second = review.changes(compare.compare(base, again, allow_missing=True))
    assert review.confirmed(first, second) == [second[("cases/test_transparency.py::test_arp[kernel]", "T1")]]


# ---- the exit status and the summary --------------------------------------------------------


def a_review(name="k", record=None, comparison=None, changed=None, confirmed=None, error="") -> review.Review:
    r = review.Review(review.Kernel(f"/k/{name}/bzImage", RELEASE, name), review.Run("/o", 1, 2, 10.0),
                      record=record if record is not None else sample(), comparison=comparison,
                      changed=changed or {}, confirmed=confirmed, seconds=12.4, error=error)
    return r


def test_exit_status_decisions():
    cmp = compare.compare(sample(), sample())
    same = a_review(comparison=cmp)
    changed = a_review(comparison=cmp, changed={("c", "T1"): "T1 c: PASS -> FAIL: x"})
    unconfirmed = a_review(comparison=cmp, changed={("c", "T1"): "T1 c: PASS -> FAIL: x"}, confirmed=[])
    confirmed = a_review(comparison=cmp, changed={("c", "T1"): "T1 c: PASS -> FAIL: x"},
                         confirmed=["T1 c: PASS -> FAIL: x"])
    clean = Record(headers=sample().headers, cases=[Case("cases/t.py::t[kernel]", "passed", ["T1"], "kernel")])
    assert [r.status() for r in (same, changed, unconfirmed, confirmed)] == [0, 1, 0, 1]
    # without a baseline: any failing or crashed case is a finding
    assert a_review().status() == 1 and a_review(record=clean).status() == 0
    failed = a_review(comparison=cmp, error="the VM did not boot")
    assert failed.status() == 3
    assert review.exit_status([same, unconfirmed]) == 0
    assert review.exit_status([same, confirmed]) == 1
    assert review.exit_status([confirmed, failed, same]) == 3


def test_the_summary_has_a_line_per_kernel_and_the_exit_status():
    cmp = compare.compare(sample(), sample())
    reviews = [a_review("srl2-rfc-6.12", comparison=cmp),
               a_review("next", comparison=cmp, changed={("c", "T1"): "T1 c: PASS -> FAIL: x", ("d", "H1"): "H1 d"},
                        confirmed=["T1 c: PASS -> FAIL: x"]),
               a_review("bare")]
    text = review.summary(reviews, 61.2, ["revisions: srl2 -> sr6: verdict: ..."])
    lines = text.splitlines()
    assert lines[0] == ("srl2-rfc-6.12: 6.12.117-srl2rfc, revision srl2; 7 cases: 2 passed, 2 failed, 1 skipped, "
                        "1 crashed, 1 error; 2 boots, 12 s; verdicts as in the baseline")
    assert lines[1].endswith("2 changed verdicts, 1 confirmed in a fresh boot")
    assert lines[2].endswith("no baseline: 4 failing or crashed cases")
    assert lines[3] == "  next: changed verdict: T1 c: PASS -> FAIL: x"
    assert lines[-1] == ("exit status 1: a changed verdict (or, without a baseline, a failing or crashed case); "
                         "61 s in all")
    failed = review.summary([a_review("x", record=None, error="the VM did not boot")], 1.0)
    assert "RUN FAILED: the VM did not boot" in failed and failed.endswith(
        "exit status 3: a kernel's run did not complete; 1 s in all\n")


# ---- a whole review, testbed vm replaced ---------------------------------------------------


class FakeVm:
    """session.run's stand-in: each call writes the next record (and crashes) into the spec's OUT."""

    def __init__(self, *runs):
        self.runs = list(runs)   # (record or None, crashes, status) or an exception
        self.specs = []

    def __call__(self, spec, timeout=None, sink=None, log=None, **kw):
        self.specs.append(spec)
        run = self.runs.pop(0)
        if isinstance(run, Exception):
            raise run
        record, crashes, status = run
        if record is not None:
            write_record(os.path.join(spec.out, "record.jsonl"), record)
        with open(os.path.join(spec.out, "crashes.jsonl"), "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in crashes))
        sink.write(b"guest output\n")
        return VmResult(status, [], 1.0, None, RELEASE, [], 2)


@pytest.fixture
def kernels(tmp_path):
    bases = tmp_path / "baselines"
    bases.mkdir()
    write_record(bases / "srl2.jsonl", sample())
    sr6 = sample()
    sr6.headers = [replace(h, release="6.12.117-sr6v2", revision="sr6") for h in sr6.headers]
    write_record(bases / "sr6.jsonl", sr6)
    images = [bzimage(tmp_path / "k" / "srl2-rfc-6.12" / "bzImage", RELEASE),
              bzimage(tmp_path / "k" / "sr6-rfc-v2-6.12" / "bzImage", "6.12.117-sr6v2")]
    return review.kernels(images, None, str(bases)), sr6


def test_a_review_of_two_kernels_as_their_baselines(tmp_path, kernels, monkeypatch, capsys):
    found, sr6 = kernels
    vm = FakeVm((sample(), [], 1), (sr6, [], 1))
    monkeypatch.setattr(session, "run", vm)
    out = tmp_path / "out"
    assert review.review(found, str(out), log=lambda msg: None) == 0
    for name in ("srl2-rfc-6.12", "sr6-rfc-v2-6.12"):
        for f in ("record.jsonl", "output.txt", "findings.txt", "report.html", "junit.xml", "ktap.txt",
                  "compare.txt", "compare.json"):
            assert (out / name / f).stat().st_size > 0, (name, f)
        assert not (out / name / "confirm").exists()
    assert "# Totals: pass:2 fail:4" in (out / "srl2-rfc-6.12" / "ktap.txt").read_text()
    assert json.loads((out / "srl2-rfc-6.12" / "compare.json").read_text())["exit_status"] == 0
    assert (out / "revisions.txt").read_text().startswith("srl2 -> sr6, clause by clause")
    assert [(a["older_revision"], a["newer_revision"]) for a in json.loads((out / "revisions.json").read_text())] \
        == [("srl2", "sr6")]
    assert "<body>" in (out / "revisions.html").read_text()
    summary = (out / "summary.txt").read_text()
    assert summary == capsys.readouterr().out
    assert summary.endswith("exit status 0: every kernel's verdicts as in its baseline; 0 s in all\n")
    assert [s.kernel for s in vm.specs] == [k.image for k in found]


def test_a_changed_verdict_counts_when_a_fresh_boot_confirms_it(tmp_path, kernels, monkeypatch):
    found, _ = kernels
    changed = with_outcome(sample(), "test_arp", "failed")
    crash = {"boot": 1, "open": ["case cases/test_transparency.py::test_arp[kernel]",
                                 "case cases/test_netlink.py::test_moving[kernel]"]}
    again = Record(headers=sample().headers, path="",
                   cases=[c for c in changed.cases if "test_arp" in c.nodeid or "test_moving" in c.nodeid])
    vm = FakeVm((changed, [crash], 1), (again, [], 1))
    monkeypatch.setattr(session, "run", vm)
    out = tmp_path / "out"
    assert review.review(found[:1], str(out), log=lambda msg: None) == 1
    listing = out / "srl2-rfc-6.12" / "confirm" / "confirm.txt"
    assert listing.read_text().splitlines() == ["cases/test_netlink.py::test_moving[kernel]",
                                                "cases/test_transparency.py::test_arp[kernel]"]
    assert vm.specs[1].command[3] == f"@{listing}" and vm.specs[1].out == str(listing.parent)
    data = json.loads((out / "srl2-rfc-6.12" / "compare.json").read_text())
    assert len(data["confirmation"]["confirmed"]) == 1 and data["confirmation"]["not_confirmed"] == []
    assert "confirmed in a fresh boot (1 of 1 changed verdicts; 2 cases run again" in \
        (out / "srl2-rfc-6.12" / "compare.txt").read_text()
    assert "1 changed verdict, 1 confirmed in a fresh boot" in (out / "summary.txt").read_text()


def test_a_change_the_fresh_boot_does_not_see_is_not_counted(tmp_path, kernels, monkeypatch):
    found, _ = kernels
    again = Record(headers=sample().headers, cases=[c for c in sample().cases if "test_arp" in c.nodeid])
    monkeypatch.setattr(session, "run", FakeVm((with_outcome(sample(), "test_arp", "failed"), [], 1), (again, [], 0)))
    out = tmp_path / "out"
    assert review.review(found[:1], str(out), log=lambda msg: None) == 0
    assert "not confirmed (differed in the first run only): T1" in (out / "srl2-rfc-6.12" / "compare.txt").read_text()


def test_no_confirm_counts_the_first_run(tmp_path, kernels, monkeypatch):
    found, _ = kernels
    vm = FakeVm((with_outcome(sample(), "test_arp", "failed"), [], 1))
    monkeypatch.setattr(session, "run", vm)
    assert review.review(found[:1], str(tmp_path / "out"), confirm=False, log=lambda msg: None) == 1
    assert len(vm.specs) == 1
    assert "(not confirmed: --no-confirm)" in (tmp_path / "out" / "summary.txt").read_text()


def test_a_run_that_does_not_complete_is_exit_3(tmp_path, kernels, monkeypatch):
    found, sr6 = kernels
    monkeypatch.setattr(session, "run", FakeVm(VmError("the kernel crashed during boot, 3 boot(s) in a row"),
                                               (sr6, [], 4)))
    out = tmp_path / "out"
    assert review.review(found, str(out), log=lambda msg: None) == 3
    lines = (out / "summary.txt").read_text().splitlines()
    assert "no record" in lines[0] and "RUN FAILED: the kernel crashed during boot" in lines[0]
    assert "RUN FAILED: pytest in the guest exited 4 (not a verdict" in lines[1]
    assert not (out / "revisions.txt").exists()   # one record only: nothing to compare


def test_previous_is_compared_with_the_first_kernel(tmp_path, kernels, monkeypatch):
    found, sr6 = kernels
    previous = sample()
    monkeypatch.setattr(session, "run", FakeVm((sr6, [], 1)))
    out = tmp_path / "out"
    assert review.review(found[1:], str(out), previous=previous, log=lambda msg: None) == 0
    assert (out / "revisions.txt").read_text().startswith("srl2 -> sr6")


# ---- the CLI ---------------------------------------------------------------------------


def review_status(argv: list[str]) -> int:
    """`testbed review ARGV`'s exit status, argparse's own errors included."""
    try:
        return main(["review", *argv])
    except SystemExit as e:
        return int(e.code or 0)


def test_usage_errors(tmp_path, capsys):
    image = bzimage(tmp_path / "k" / "bzImage", RELEASE)
    cases = [
        ([image, image, "--baseline", str(ROOT / "baselines" / "srl2-rfc-6.12.jsonl")],
         "--baseline is the baseline of one kernel; 2 given"),
        ([str(tmp_path / "nope" / "bzImage")], f"kernel image {tmp_path}/nope/bzImage does not exist"),
        ([str(tmp_path)], "is a directory"),
        ([str(ROOT / "README.md")], "is not bootable: not a bzImage"),
        ([image, "--previous", str(tmp_path / "nope.jsonl")], "nope.jsonl"),
        ([image, "--baseline", str(ROOT / "README.md")], "README.md"),
        ([image, "--workers", "0"], "--workers 0: must be at least 1"),
        ([], "the following arguments are required: KERNEL"),
    ]
    for argv, message in cases:
        assert review_status(argv) == 2, argv
        err = capsys.readouterr().err
        assert "usage: testbed review" in err and message in err, (argv, err)
        assert "Traceback" not in err


def test_no_vm_tools_is_exit_3_before_any_boot(tmp_path, monkeypatch, capsys):
    from testbed.vm import runner

    def no_vng(vng=None):
        raise VmError("virtme-ng is not installed (no `vng` on PATH): bash .ci/setup-vm.sh")

    monkeypatch.setattr(runner, "find_vng", no_vng)
    monkeypatch.setattr(session, "run", FakeVm())   # would fail: no run queued
    image = bzimage(tmp_path / "k" / "bzImage", RELEASE)
    assert main(["review", image, "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err == "testbed: error: virtme-ng is not installed (no `vng` on PATH): bash .ci/setup-vm.sh\n"


def test_the_cli_runs_a_review(tmp_path, kernels, monkeypatch, capsys):
    found, sr6 = kernels
    monkeypatch.setattr(review, "check_host", lambda kernels: None)
    monkeypatch.setattr(review, "checkout_baselines", lambda: str(tmp_path / "baselines"))
    monkeypatch.setattr(session, "run", FakeVm((sample(), [], 1), (sr6, [], 1)))
    out = tmp_path / "out"
    assert main(["review", *(k.image for k in found), "--out", str(out), "--workers", "1"]) == 0
    assert "exit status 0" in capsys.readouterr().out
    assert (out / "summary.txt").exists()


# ---- the real thing: boots kernels (minutes) ----------------------------------------------


@pytest.mark.skipif(not os.environ.get(ENV_KERNELS),
                    reason=f"boots kernels for many minutes: set {ENV_KERNELS} to kernel images "
                           "(space-separated, e.g. ../shared/kernels/srl2-rfc-6.12/bzImage)")
def test_review_of_real_kernels(tmp_path):
    images = shlex.split(os.environ[ENV_KERNELS])
    out = tmp_path / "review"
    p = subprocess.run([sys.executable, "-m", "testbed.cli", "review", *images, "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    summary = (out / "summary.txt").read_text()
    assert p.returncode == 0, f"exit {p.returncode}\n{summary}\n{p.stderr[-3000:]}"
    assert summary.endswith(" s in all\n") and len(summary.splitlines()) >= len(images) + 1
