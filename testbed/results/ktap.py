"""KTAP version 1 from a run's record, one test line per case, as a
kselftest prints it (docs: README, "Results, reports and comparisons").

Diagnostic lines (`# ...`) go directly before the result line of the case
they are about, as the KTAP spec asks: the failed IDs' lines, notes, the
crash's first line and RIP, kernel problems charged to the case.
"""
from __future__ import annotations

import re

from testbed.results.findings import findings_of, headline
from testbed.results.record import Case, Record


def _name(nodeid: str) -> str:
    return re.sub(r"\s+", "_", nodeid)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def diagnostics(case: Case) -> list[str]:
    """The `# ` lines for one case (without the `# `)."""
    out = []
    if case.crash:
        out.append(f"kernel {case.crash.kind}: {case.crash.title}".strip())
        if case.crash.rip:
            out.append(case.crash.rip)
    for f in findings_of(case):
        if f.kind in ("fail", "note") and (f.expected or f.seen):
            out.append(("note: " if f.kind == "note" else "") + f.line())
        elif f.kind == "fail" and headline(case.message).startswith(f"{f.id} "):
            out.append(f.line())  # a plain assert that names its ID: still an ID line
        elif f.kind == "error":
            out.append(f.line())
    out += [f"kernel {p.get('kind', '?')}: {p.get('line', '')}" for p in case.kernel_problems]
    return [_one_line(x) for x in out if x.strip()]


def totals(record: Record) -> str:
    """kselftest's last line (ksft_print_cnts), which CI parsers of kselftest
    output read.  Every `not ok` is a fail: a case in error or crashed is
    printed as plain `not ok`, not with kselftest's `# error` directive."""
    counts = record.counts()
    fail = counts["failed"] + counts["crashed"] + counts["error"]
    return f"# Totals: pass:{counts['passed']} fail:{fail} xfail:0 xpass:0 skip:{counts['skipped']} error:0"


def ktap(record: Record) -> str:
    """`ok N name`, `not ok N name` (failed, crashed, error), `ok N name # SKIP reason`,
    then kselftest's totals line."""
    lines = ["KTAP version 1", f"1..{len(record.cases)}"]
    for n, case in enumerate(record.cases, 1):
        lines += [f"# {d}" for d in diagnostics(case)]
        name = _name(case.nodeid)
        if case.bad:
            lines.append(f"not ok {n} {name}")
        elif case.outcome == "skipped":
            lines.append(f"ok {n} {name} # SKIP {_one_line(case.skip_reason)}")
        else:
            lines.append(f"ok {n} {name}")
    lines.append(totals(record))
    return "\n".join(lines) + "\n"


def write(record: Record, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(ktap(record))
