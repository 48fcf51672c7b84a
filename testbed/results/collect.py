"""pytest's reports of a case (setup, call, teardown) folded into one
record line (docs: README, "Results, reports and comparisons").

Runs on the controller, also under xdist: everything it needs travels in
the reports, the case's data as `user_properties` entries set in the worker:

    conformance       "H1,H3"              catalogue IDs (the case's markers)
    datapath          "kernel"
    testbed_checks    [ {id, clause, verdict, what, expected, seen}, ... ]
    testbed_pcaps     [ path, ... ]        kept captures of a failure
    testbed_labs      [ {name, source, picture}, ... ]   the labs of a failure
    testbed_kernel_problems [ {kind, line}, ... ]   (inside a VM)
    testbed_crash     {kind, title, rip, trace, lines, ...}   a crash charged to the case
"""
from __future__ import annotations

import re

from testbed.results.record import Case, Crash

# Errors of the testbed itself (testbed.errors.LabError, TopologyError, ...):
# raised inside a case, they mean it never got to check its behaviour.
HARNESS_ERROR = re.compile(r"^testbed\.[\w.]*(Error|Timeout)\b")
MAX_MESSAGE_LINES = 40
MAX_MESSAGE_CHARS = 4000


def short(text: str) -> str:
    """A failure message cut to what a report shows."""
    lines = text.rstrip().splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES] + [f"... ({len(lines) - MAX_MESSAGE_LINES} more lines)"]
    out = "\n".join(lines)
    return out if len(out) <= MAX_MESSAGE_CHARS else out[:MAX_MESSAGE_CHARS] + " ..."


def message_of(report) -> str:
    """The failure's own words: the exception line(s) pytest shows after `E`,
    not the traceback."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return short(crash.message)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return short(str(longrepr[2]))
    return short(str(longrepr or ""))


def skip_reason(report) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"expected to fail: {report.wasxfail}".rstrip(": ")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return ""


class CaseCollector:
    """Folds the reports of each case; `add` returns the Case when its
    last report (teardown) has come."""

    def __init__(self, boot: int = 1):
        self.boot = boot
        self.open: dict[str, Case] = {}

    def add(self, report) -> Case | None:
        case = self.open.setdefault(report.nodeid, Case(report.nodeid, boot=self.boot))
        self._properties(case, report.user_properties)
        case.duration = round(case.duration + float(getattr(report, "duration", 0.0) or 0.0), 3)
        when = report.when
        if report.failed:
            if when == "setup":
                case.outcome = "crashed" if case.crash else "error"
                case.message = message_of(report)
            elif when == "call":
                case.message = message_of(report)
                failed_checks = any(c.get("verdict") == "fail" for c in case.checks)
                # the lab could not be built (or the harness broke): nothing was checked
                case.outcome = "error" if HARNESS_ERROR.match(case.message) and not failed_checks else "failed"
            elif case.outcome in ("passed", "skipped"):  # teardown broke a case that passed
                case.outcome = "error"
                case.message = message_of(report)
        elif report.skipped and case.outcome == "passed":
            case.outcome = "skipped"
            case.skip_reason = skip_reason(report)
        if when != "teardown":
            return None
        del self.open[report.nodeid]
        return case

    @staticmethod
    def _properties(case: Case, props) -> None:
        for entry in props or []:
            key, value = entry[0], entry[1]
            if key == "conformance":
                case.ids = [i for i in str(value).split(",") if i]
            elif key == "datapath":
                case.datapath = str(value)
            elif key == "testbed_checks":
                case.checks = [dict(c) for c in value]
            elif key == "testbed_pcaps":
                case.pcaps += [p for p in value if p not in case.pcaps]
            elif key == "testbed_labs":
                case.labs = [dict(lab) for lab in value]
            elif key == "testbed_kernel_problems":
                case.kernel_problems += [dict(p) for p in value if p not in case.kernel_problems]
            elif key == "testbed_crash":
                case.crash = Crash.from_dict(value)
