"""The record of a pytest run, wired into pytest by testbed/pytest_plugin.py:
which record a run keeps, resuming it on a later boot of `testbed vm`, and
the Reporter that writes it on the controller and derives KTAP and the
catalogue from it (docs: README, "Results, reports and comparisons")."""
from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timezone
from typing import Callable

import pytest

from testbed.results import ktap as ktap_report
from testbed.results import resume
from testbed.results.collect import CaseCollector
from testbed.results.record import Case, Crash, Header, Record, RecordError, RecordWriter, read
from testbed.results.verdicts import catalogue_table

ENV_RECORD = "TESTBED_RECORD"          # the record this run writes, for its xdist workers and children
ENV_RECORD_RESUME = "TESTBED_RECORD_RESUME"


def choose_record(config) -> tuple[str | None, bool]:
    """(record path, resuming?) of this run: --record, else
    $TESTBED_VM_OUT/record.jsonl inside `testbed vm`, else none.  A pytest
    started by a case of an outer run that keeps a record (tests of the
    suite, inside a VM) neither takes the default nor resumes: it would
    clobber the outer record.  xdist workers take their controller's choice."""
    if hasattr(config, "workerinput"):
        return os.environ.get(ENV_RECORD) or None, os.environ.get(ENV_RECORD_RESUME) == "1"
    nested = bool(os.environ.get(ENV_RECORD))
    path = config.getoption("record")
    if not path and not nested and os.environ.get(resume.ENV_OUT):
        path = os.path.join(os.environ[resume.ENV_OUT], resume.RECORD_FILE)
    resuming = bool(path) and not nested and resume.boot_number() > 1
    os.environ[ENV_RECORD] = os.path.abspath(path) if path else ""
    os.environ[ENV_RECORD_RESUME] = "1" if resuming else ""
    return path or None, resuming


def resume_items(config, items, path: str) -> None:
    """On boot 2, 3, ... of `testbed vm` (also in each xdist worker): drop
    the cases the record already has; a case charged with a crash (in
    crashes.jsonl) is kept, to be reported as crashed without running."""
    try:
        done = {c.nodeid for c in read(path).cases} if os.path.exists(path) else set()
    except RecordError as e:
        raise pytest.UsageError(f"cannot resume: {e}") from None
    out = os.environ.get(resume.ENV_OUT) or os.path.dirname(os.path.abspath(path))
    crashes_path = os.path.join(out, resume.CRASHES_FILE)
    crashes = resume.read_crashes(crashes_path)
    crashed = resume.crashed_cases(crashes)
    keep, drop = [], []
    for item in items:
        if item.nodeid in done:
            drop.append(item)
            continue
        if item.nodeid in crashed:
            item._testbed_crash = crashed[item.nodeid]
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    suspects = resume.suspects(crashes) & {item.nodeid for item in keep}
    resume.suspects_first(keep, suspects)
    items[:] = keep
    # xdist's load scheduling (and a serial run) keep the order: suspects
    # first; its other schedulers group cases otherwise (see Turns)
    config._testbed_turns = resume.Turns(suspects, turns_key(crashes_path),
                                         wait_first=config.getoption("dist", "no") in ("no", "load"))


def turns_key(crashes_path: str) -> str:
    """The same key in the controller and every worker of one boot's run."""
    return f"{os.path.abspath(crashes_path)} boot {resume.boot_number()}"


def crash_message(crash: Crash) -> str:
    """The failure text of a case charged with a kernel crash."""
    lines = [f"kernel {crash.kind} while this case ran (boot {crash.boot}): {crash.title}", crash.rip]
    if crash.trace:
        lines += ["Call Trace:", *[f"  {t}" for t in crash.trace]]
    return "\n".join(x for x in lines if x)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Reporter:
    """On the controller: folds each case's reports into a record line,
    written as the case ends (when a record is kept); at the end, KTAP and
    the catalogue of the whole run (all boots) come from the record."""

    def __init__(self, config, path: str | None, resuming: bool, datapaths: Callable[[object], list[str]]):
        self.config = config
        self.path, self.resuming = path, resuming
        self.datapaths = datapaths
        self.boot = resume.boot_number()
        self.collector = CaseCollector(self.boot)
        self.header: Header | None = None
        self.writer: RecordWriter | None = None
        self.cases: list[Case] = []
        self.record: Record | None = None

    # After xdist's (which starts the workers): the revision below may probe
    # the kernel, and under software emulation that and its imports take
    # seconds the workers can spend starting.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session) -> None:
        config = self.config
        self.header = Header(
            boot=self.boot, release=os.uname().release,
            machine="guest" if os.environ.get("TESTBED_VM") == "1" else "host",
            hostname=socket.gethostname(), datapath=config.getoption("datapath"),
            datapaths=self.datapaths(config), spec=config.getoption("spec"),
            revision=_revision(), started=_now(), shard=str(config.getoption("shard") or ""),
            argv=list(sys.argv[1:]))
        if self.path:
            self.writer = RecordWriter(self.path, self.header, resume=self.resuming)

    def pytest_runtest_logreport(self, report) -> None:
        case = self.collector.add(report)
        if case is None:
            return
        self.cases.append(case)
        if self.writer:
            self.writer.write(case)

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if self.resuming and self.path:  # the suspects' turns (resume.Turns) are over
            out = os.environ.get(resume.ENV_OUT) or os.path.dirname(os.path.abspath(self.path))
            resume.Turns(set(), turns_key(os.path.join(out, resume.CRASHES_FILE))).remove()
        if self.writer and self.path:
            self.writer.close()
            self.record = read(self.path)  # the whole run, earlier boots included
        else:
            self.record = Record(headers=[self.header] if self.header else [], cases=self.cases)
        path = self.config.getoption("ktap")
        if path:
            ktap_report.write(self.record, path)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        record = self.record or Record(cases=self.cases)
        if self.config.getoption("catalogue"):
            terminalreporter.write_sep("=", "conformance catalogue")
            for line in catalogue_table(record.cases):
                terminalreporter.write_line(line)
        if self.path:
            terminalreporter.write_line(f"testbed: record of the run in {self.path} "
                                        f"({len(record.cases)} cases; `testbed report {self.path}`)")


def _revision() -> str:
    """The series' revision this run's devices are (--revision resolved)."""
    from testbed.datapaths.kernel import KernelDatapath

    return KernelDatapath.revision_of().name
