"""`testbed review`: kernel images in, a reviewer's findings out (README,
"Testing a kernel"; the verb and its exit status: testbed/cli/review.py).

Per kernel, in OUT/NAME/: its baseline (the record in baselines/ of its
release, or the one given), the kernel-datapath suite in `testbed vm` as
.ci/vm-rfc.sh runs it, the reports of the record of every boot, the
comparison with the baseline; a changed verdict counts only when a fresh
boot confirms it, as .ci/vm-rfc-compare.sh does (the differing cases and
the cases open beside them in a crash run again, OUT/NAME/confirm/; what
differs in both runs counts).  Then consecutive kernels (and --previous
before the first) clause by clause (OUT/revisions.*: a report, not counted
in the exit status: each revision is judged against its own baseline), and
OUT/summary.txt.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from testbed.results import across, compare, findings, html, junit, ktap, merge
from testbed.results.record import Record, RecordError
from testbed.results.resume import CRASHES_FILE, RECORD_FILE, open_cases, read_crashes
from testbed.vm import runner, session
from testbed.vm.base import VmError
from testbed.vm.image import inspect_kernel
from testbed.vm.runner import VmSpec, project_root

OK, FINDING, USAGE, RUNNER = 0, 1, 2, 3
EXIT_MEANING = {OK: "every kernel's verdicts as in its baseline",
                FINDING: "a changed verdict (or, without a baseline, a failing or crashed case)",
                RUNNER: "a kernel's run did not complete"}
CHANGE_KINDS = ("new_crashes", "newly_failing", "fixed")
MISSING = "missing"             # the ID of a changed verdict that is a case missing from the new run
CONFIRM_DIR, CONFIRM_FILE, OUTPUT_FILE = "confirm", "confirm.txt", "output.txt"
DEFAULT_TIMEOUT, DEFAULT_WORKERS = 3600.0, 2
# `pytest` in the guest exits 0 (all passed) or 1 (some failed): a verdict;
# anything else (usage, internal error, nothing collected) is not one.
VERDICT_STATUSES = (0, 1)

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the kernels -------------------------------------------------------------------------


@dataclass
class Kernel:
    image: str                  # absolute path of the image
    release: str
    name: str                   # its directory under OUT
    baseline: list[str] = field(default_factory=list)   # record(s) of its baseline run; [] none
    why: str = ""               # where the baseline came from, or why there is none


def dir_name(image: str, release: str) -> str:
    """The results directory of an image: its directory's name
    (kernels/srl2-rfc-6.12/bzImage: srl2-rfc-6.12), or its release for an
    image in boot/ (arch/x86/boot/bzImage, boot/vmlinuz-R of a package)."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(image)))
    return release if parent in ("", "boot") else parent


def unique(names: list[str]) -> list[str]:
    """`names` with the second of a name as NAME-2, the third NAME-3, ..."""
    out: list[str] = []
    for name in names:
        n, candidate = 1, name
        while candidate in out:
            n += 1
            candidate = f"{name}-{n}"
        out.append(candidate)
    return out


def header_release(path: str) -> Optional[str]:
    """The release in a record's first line (its header), None when it has none."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return data.get("release") if isinstance(data, dict) and data.get("type") == "header" else None


def baselines_for(release: str, directory: str) -> list[str]:
    """The records in `directory` (baselines/*.jsonl) of a run on `release`:
    one, or the parts of one run kept in shards."""
    return [p for p in sorted(glob.glob(os.path.join(directory, "*.jsonl"))) if header_release(p) == release]


def kernels(images: list[str], baseline: Optional[str], baselines_dir: str) -> list[Kernel]:
    """Each image checked (testbed vm's own checks: VmError) with its release,
    directory name and baseline."""
    found = [inspect_kernel(image) for image in images]
    names = unique([dir_name(k.path, k.release) for k in found])
    out = []
    for k, name in zip(found, names):
        records = [baseline] if baseline else baselines_for(k.release, baselines_dir)
        why = (f"{baseline} (given)" if baseline else f"{' + '.join(records)} (release {k.release})" if records
               else f"no record of release {k.release} in {baselines_dir}: any failing or crashed case is a finding")
        out.append(Kernel(k.path, k.release, name, records, why))
    return out


# ---- one run of the suite in testbed vm ----------------------------------------------------


@dataclass
class Run:
    out: str
    status: Optional[int] = None   # pytest's in the last boot (None: it never finished)
    boots: int = 0
    seconds: float = 0.0
    error: str = ""                # why the run did not complete, "" when it did

    @property
    def record(self) -> str:
        return os.path.join(self.out, RECORD_FILE)


def suite_command(out: str, tests: list[str], workers: int, python: str = sys.executable) -> list[str]:
    """The guest's command: .ci/vm-rfc.sh's pytest, its own JUnit and KTAP
    (the last boot's) named so; the reports of every boot come from the record."""
    return [python, "-m", "pytest", *tests, "--datapath", "kernel", "-p", "no:cacheprovider",
            "-n", str(workers), "-rfEs", f"--junitxml={os.path.join(out, 'junit-last-boot.xml')}",
            f"--ktap={os.path.join(out, 'ktap-last-boot.txt')}", f"--results={out}"]


def vm_spec(kernel: Kernel, out: str, tests: list[str], workers: int) -> VmSpec:
    """testbed vm's spec: 2 CPUs, 2G, the kernel's directory first on PATH
    (its ip-srl2 / ip-sr6)."""
    path = os.pathsep.join([os.path.dirname(kernel.image), os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
    return VmSpec(kernel=kernel.image, command=suite_command(out, tests, workers), out=out,
                  memory="2G", cpus=2, path_env=path)


def run_suite(kernel: Kernel, out: str, tests: list[str], workers: int, timeout: float, log: Log = _stderr,
              echo: bool = False) -> Run:
    """The suite in testbed vm (session.run), the guest's output into
    OUT/output.txt (and stdout with echo); a runner failure is Run.error.
    An earlier review's record in OUT is removed first (the reports would read it)."""
    os.makedirs(out, exist_ok=True)
    for name in (RECORD_FILE, CRASHES_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, name))
    run = Run(out)
    start = time.monotonic()
    with open(os.path.join(out, OUTPUT_FILE), "wb") as f:
        sink = Tee(f, sys.stdout.buffer if echo else None)
        try:
            result = session.run(vm_spec(kernel, out, tests, workers), timeout=timeout or None, sink=sink, log=log)
        except VmError as e:   # VmTimeout too: the whole message here, its first line in the summary
            log(f"testbed review: {kernel.name}: {e}")
            run.error = str(e).splitlines()[0]
        else:
            run.status, run.boots = result.status, result.boots
            run.error = run_error(result.status, out)
    run.seconds = time.monotonic() - start
    return run


def run_error(status: Optional[int], out: str) -> str:
    """Why a run that testbed vm finished gave no verdict, "" when it did."""
    if status is None:
        return "the last boot did not let the suite finish (a crash on every boot up to --max-boots)"
    if status not in VERDICT_STATUSES:
        return f"pytest in the guest exited {status} (not a verdict: usage or internal error)"
    if not os.path.exists(os.path.join(out, RECORD_FILE)):
        return f"no record came back from the guest ({os.path.join(out, RECORD_FILE)})"
    return ""


class Tee:
    """A sink for the guest's output: a file, and stdout when asked."""

    def __init__(self, *files):
        self.files = [f for f in files if f is not None]

    def write(self, data: bytes) -> None:
        for f in self.files:
            f.write(data)

    def flush(self) -> None:
        for f in self.files:
            f.flush()


# ---- the baseline, and confirming what changed ------------------------------------------------


def changes(cmp: compare.Comparison) -> dict[tuple[str, str], str]:
    """The changed verdicts of a comparison, (case, ID) -> its line: newly
    failing, new crashes, fixed (the kernel is the baseline's release: a
    verdict turned good is a change of the harness or of the kernel's
    build, and counts like the others), and cases of the baseline missing."""
    out = {(c.case, c.id): f"{c.id + ' ' if c.id else ''}{c.nodeid}: {c.before} -> {c.after}: {c.line}"
           for kind in CHANGE_KINDS for c in getattr(cmp, kind)}
    out.update({(nodeid, MISSING): f"{nodeid}: not in the new record" for nodeid in cmp.missing})
    return out


def to_confirm(cmp: compare.Comparison, crashes: list[dict]) -> list[str]:
    """The nodeids to run again in a fresh boot: the cases whose verdicts
    changed, and the cases open beside one of them in a crash of the run
    (a neighbour may have caused it)."""
    cases = {c.nodeid for kind in CHANGE_KINDS for c in getattr(cmp, kind)} | set(cmp.missing)
    for crash in crashes:
        opened = set(open_cases(crash))
        if opened & cases:
            cases |= opened
    return sorted(cases)


def confirmed(first: dict[tuple[str, str], str], second: dict[tuple[str, str], str]) -> list[str]:
    """The lines of the changes in both runs (the confirming run's words)."""
    return [second[key] for key in sorted(set(first) & set(second))]


# ---- one kernel -------------------------------------------------------------------------


@dataclass
class Review:
    """One kernel's review."""
    kernel: Kernel
    run: Run
    record: Optional[Record] = None
    comparison: Optional[compare.Comparison] = None
    changed: dict[tuple[str, str], str] = field(default_factory=dict)
    confirm: Optional[Run] = None
    confirm_cases: list[str] = field(default_factory=list)   # the nodeids the fresh boot ran
    confirmed: Optional[list[str]] = None   # None: not confirmed (--no-confirm, nothing changed, no baseline)
    seconds: float = 0.0
    error: str = ""                         # the run's, the confirming run's, or reading the record

    def counted(self) -> list[str]:
        """The changed verdicts that count."""
        return self.confirmed if self.confirmed is not None else list(self.changed.values())

    def status(self) -> int:
        if self.error or self.record is None:
            return RUNNER
        if self.comparison is None:
            return findings.exit_status(self.record)
        return FINDING if self.counted() else OK


def write_reports(record: Record, out: str) -> None:
    """findings.txt, report.html, junit.xml, ktap.txt: from the record of every boot."""
    with open(os.path.join(out, "findings.txt"), "w", encoding="utf-8") as f:
        f.write(findings.text(record))
    html.write(record, os.path.join(out, "report.html"))
    junit.write(record, os.path.join(out, "junit.xml"))
    ktap.write(record, os.path.join(out, "ktap.txt"))


def write_comparison(r: Review, out: str) -> None:
    """compare.txt and compare.json: the comparison with the baseline, and what the fresh boot confirmed."""
    assert r.comparison is not None
    text = compare.text(r.comparison)
    confirm: dict = {"ran": r.confirmed is not None, "cases": [], "confirmed": r.confirmed or [],
                     "not_confirmed": []}
    if r.confirmed is not None:
        both = set(r.confirmed)
        confirm["not_confirmed"] = [line for line in r.changed.values() if line not in both]
        confirm["cases"] = r.confirm_cases
        text += (f"\nconfirmed in a fresh boot ({len(r.confirmed)} of {len(r.changed)} changed verdicts; "
                 f"{len(confirm['cases'])} cases run again, {CONFIRM_DIR}/):\n"
                 + "".join(f"  {line}\n" for line in r.confirmed)
                 + "".join(f"  not confirmed (differed in the first run only): {line}\n"
                           for line in confirm["not_confirmed"]))
    with open(os.path.join(out, "compare.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "compare.json"), "w", encoding="utf-8") as f:
        json.dump({**r.comparison.to_dict(), "confirmation": confirm}, f, indent=2)


def review_kernel(kernel: Kernel, out: str, workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT,
                  confirm: bool = True, log: Log = _stderr, echo: bool = False) -> Review:
    """Run, report, compare and confirm one kernel, in OUT/NAME/."""
    start = time.monotonic()
    where = os.path.join(out, kernel.name)
    log(f"testbed review: {kernel.name}: {kernel.release}, baseline {kernel.why}; results in {where} "
        f"(the guest's output: {os.path.join(where, OUTPUT_FILE)})")
    r = Review(kernel, run_suite(kernel, where, ["cases/"], workers, timeout, log, echo))
    r.error = r.run.error
    try:
        if os.path.exists(r.run.record):
            r.record = merge.read_all([r.run.record])
    except RecordError as e:
        r.error = r.error or str(e)
    if r.record is not None:
        write_reports(r.record, where)
        if not r.error and not r.record.cases:
            r.error = f"{r.run.record}: no case ran"
    if r.record is not None and kernel.baseline and not r.error:
        baseline = merge.read_all(kernel.baseline)
        r.comparison = compare.compare(baseline, r.record)
        r.changed = changes(r.comparison)
        if r.changed and confirm:
            _confirm(r, baseline, where, workers, timeout, log, echo)
        write_comparison(r, where)
    r.seconds = time.monotonic() - start
    log(f"testbed review: {summary_line(r)}")
    return r


def _confirm(r: Review, baseline: Record, where: str, workers: int, timeout: float, log: Log, echo: bool) -> None:
    assert r.comparison is not None
    r.confirm_cases = cases = to_confirm(r.comparison, read_crashes(os.path.join(where, CRASHES_FILE)))
    again = os.path.join(where, CONFIRM_DIR)
    os.makedirs(again, exist_ok=True)
    listing = os.path.join(again, CONFIRM_FILE)
    with open(listing, "w", encoding="utf-8") as f:
        f.write("".join(f"{nodeid}\n" for nodeid in cases))
    log(f"testbed review: {r.kernel.name}: {len(r.changed)} verdicts differ from the baseline: confirming "
        f"the {len(cases)} cases in a fresh boot ({listing})")
    r.confirm = run_suite(r.kernel, again, [f"@{listing}"], workers, timeout, log, echo)
    if r.confirm.error:
        r.error = f"the confirming run: {r.confirm.error}"
        return
    second = compare.compare(baseline, merge.read_all([r.confirm.record]), allow_missing=True)
    r.confirmed = confirmed(r.changed, changes(second))


# ---- across revisions ------------------------------------------------------------------


def pairs(reviews: list[Review], previous: Optional[Record]) -> list[tuple[Record, Record]]:
    """(older, newer): --previous and the first kernel, then each kernel and the next (those with a record)."""
    records = ([previous] if previous is not None else []) + [r.record for r in reviews if r.record is not None]
    return list(zip(records, records[1:]))


def one_page(pages: list[str]) -> str:
    """Several self-contained HTML pages as one: the first page's head, every body."""
    if len(pages) == 1:
        return pages[0]
    head = pages[0].split("<body>", 1)[0]
    bodies = [p.split("<body>", 1)[1].rsplit("</body>", 1)[0] for p in pages]
    return head + "<body>" + "<hr>".join(bodies) + "</body></html>\n"


def write_revisions(comparisons: list[across.Across], out: str) -> None:
    """OUT/revisions.txt, .html, .json: each pair clause by clause (JSON: a list, one per pair)."""
    with open(os.path.join(out, "revisions.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(across.text(a) for a in comparisons))
    with open(os.path.join(out, "revisions.html"), "w", encoding="utf-8") as f:
        f.write(one_page([across.page(a) for a in comparisons]))
    with open(os.path.join(out, "revisions.json"), "w", encoding="utf-8") as f:
        json.dump([a.to_dict() for a in comparisons], f, indent=2)


# ---- the summary ------------------------------------------------------------------------


def counts_text(record: Optional[Record]) -> str:
    if record is None:
        return "no record"
    c = record.counts()
    shown = ["passed", "failed", "skipped", "crashed"] + (["error"] if c.get("error") else [])
    return f"{len(record.cases)} cases: " + ", ".join(f"{c.get(o, 0)} {o}" for o in shown)


def verdicts_text(r: Review) -> str:
    """What the kernel's verdicts are against its baseline, in a few words."""
    if r.error:
        return f"RUN FAILED: {r.error}"
    if r.comparison is None:
        bad = r.record.counts() if r.record else {}
        n = sum(bad.get(o, 0) for o in ("failed", "crashed", "error"))
        return f"no baseline: {n} failing or crashed case{'s' * (n != 1)}"
    n = len(r.changed)
    if not n:
        return "verdicts as in the baseline"
    if r.confirmed is None:
        return f"{n} changed verdict{'s' * (n != 1)} (not confirmed: --no-confirm)"
    return f"{n} changed verdict{'s' * (n != 1)}, {len(r.confirmed)} confirmed in a fresh boot"


def summary_line(r: Review) -> str:
    revision = across.revision_of(r.record) if r.record is not None else "?"
    boots = r.run.boots + (r.confirm.boots if r.confirm else 0)
    return (f"{r.kernel.name}: {r.kernel.release}, revision {revision}; {counts_text(r.record)}; "
            f"{boots} boot{'s' * (boots != 1)}, {r.seconds:.0f} s; {verdicts_text(r)}")


def exit_status(reviews: list[Review]) -> int:
    statuses = [r.status() for r in reviews]
    return RUNNER if RUNNER in statuses else FINDING if FINDING in statuses else OK


def summary(reviews: list[Review], seconds: float, notes: Sequence[str] = ()) -> str:
    status = exit_status(reviews)
    lines = [summary_line(r) for r in reviews]
    for r in reviews:
        lines += [f"  {r.kernel.name}: changed verdict: {line}" for line in r.counted()]
    lines += list(notes)
    lines.append(f"exit status {status}: {EXIT_MEANING[status]}; {seconds:.0f} s in all")
    return "\n".join(lines) + "\n"


# ---- the whole review ---------------------------------------------------------------------


def review(kernel_list: list[Kernel], out: str, previous: Optional[Record] = None,
           workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT, confirm: bool = True,
           log: Log = _stderr, echo: bool = False) -> int:
    """Every kernel reviewed in turn, the revisions compared, OUT/summary.txt; the exit status."""
    start = time.monotonic()
    os.makedirs(out, exist_ok=True)
    reviews = [review_kernel(k, out, workers, timeout, confirm, log, echo) for k in kernel_list]
    notes = []
    comparisons = [across.across(a, b) for a, b in pairs(reviews, previous)]
    if comparisons:
        write_revisions(comparisons, out)
        notes += [f"revisions: {a.older_revision} -> {a.newer_revision}: {across.verdict_line(a)}"
                  for a in comparisons]
        notes.append(f"  (clause by clause in {os.path.join(out, 'revisions.txt')}; not counted in the exit status)")
    text = summary(reviews, time.monotonic() - start, notes)
    with open(os.path.join(out, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text, end="", flush=True)
    return exit_status(reviews)


def checkout_baselines() -> str:
    return os.path.join(project_root(), "baselines")


def check_host(kernel_list: list[Kernel]) -> None:
    """testbed vm's checks of the host (virtme-ng, qemu, udev, ...), before
    any boot: VmError with the fix."""
    runner.find_vng()
    runner.find_qemu()
    for k in kernel_list:
        runner.check_host(inspect_kernel(k.image))
