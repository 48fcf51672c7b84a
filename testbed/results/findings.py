"""What a run found, as a reviewer pastes it into a reply on netdev.

A finding is one ID that deviated in one case (its check failed, or the
case failed as a whole), a crash charged to a case, a case that could not
check its behaviour (error), or a note (a finding recorded without
failing).  The text puts crashes first, then failures, errors and notes;
each finding names ID, clause, expected vs seen in one line, the case and
the kernel release (docs: README, "Results, reports and comparisons").
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from testbed.results.record import Case, Record
from testbed.results.verdicts import BAD, catalogue_ids, clause, id_verdicts, title

KINDS = ("crash", "fail", "error", "note")


@dataclass(frozen=True)
class Finding:
    kind: str          # one of KINDS
    id: str            # catalogue ID ("H5"), or "H1,H4" for a case failing as a whole
    clause: str
    what: str
    expected: str
    seen: str
    nodeid: str
    datapath: str

    def line(self) -> str:
        """`H5 [clause] what: expected X, seen Y`: one line to paste."""
        return f"{self.id} {self.body()}".rstrip()

    def body(self) -> str:
        """The line without its ID."""
        head = f"[{self.clause}] " if self.clause else ""
        both = expected_seen(self.expected, self.seen)
        return f"{head}{self.what}: {both}" if both else f"{head}{self.what}"


def expected_seen(expected: str, seen: str) -> str:
    """`expected X, seen Y`, leaving out a side the check left empty: a
    note records what it saw where nothing is expected (N6: the move is
    allowed by the RFC series, refused by later revisions)."""
    return ", ".join(p for p in (f"expected {expected}" if expected else "", f"seen {seen}" if seen else "") if p)


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


_EXCEPTION = re.compile(r"^(AssertionError|Failed): ")  # pytest's words, not the case's


def headline(message: str) -> str:
    """A failure message in one line: its first line without the exception
    name; a first line ending in ':' takes the lines after it along (a few,
    not pytest's own `assert ...` explanation)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if not lines:
        return ""
    head = _EXCEPTION.sub("", lines[0])
    if head.endswith(":"):  # "differs from the expected one:" and the fields after it, up to pytest's own words
        rest = [ln for ln in lines[1:5] if not ln.startswith(("assert ", "where ", "+"))]
        head = f"{head} {'; '.join(rest)}".rstrip()
    return head


def _case_clause(ids: list[str]) -> str:
    return "; ".join(dict.fromkeys(c for c in (clause(i) for i in ids) if c))


def findings_of(case: Case) -> list[Finding]:
    """The findings of one case (none when it passed without notes or was skipped)."""
    out = []
    ids = case.all_ids()
    joined = ",".join(ids) or "-"
    if case.outcome == "crashed" and case.crash:
        crash = case.crash
        what = crash.title if crash.kind and crash.kind in crash.title else f"kernel {crash.kind}: {crash.title}"
        out.append(Finding("crash", joined, _case_clause(ids), what.strip(),
                           "", "", case.nodeid, case.datapath))
    elif case.outcome == "error":
        out.append(Finding("error", joined, _case_clause(ids),
                           "could not check: " + (headline(case.message) or "error outside the case's checks"),
                           "", "", case.nodeid, case.datapath))
    failed = [c for c in case.checks if c.get("verdict") == "fail"]
    if case.outcome == "failed":
        if failed:
            for c in failed:
                out.append(_from_check("fail", c, case))
        else:
            what = headline(case.message) or "failed"
            named, _, rest = what.partition(" ")
            if named in ids and rest:  # a plain assert that names its ID: that ID alone
                out.append(Finding("fail", named, clause(named), rest, "", "", case.nodeid, case.datapath))
            else:
                out.append(Finding("fail", joined, _case_clause(ids), what, "", "", case.nodeid, case.datapath))
    if case.outcome in ("passed", "failed"):
        out += [_from_check("note", c, case) for c in case.checks if c.get("verdict") == "note"]
    return out


def _from_check(kind: str, c: dict, case: Case) -> Finding:
    cid = str(c.get("id", "-"))
    return Finding(kind, cid, str(c.get("clause") or clause(cid)), str(c.get("what") or title(cid)),
                   str(c.get("expected", "")), str(c.get("seen", "")), case.nodeid, case.datapath)


def findings(record: Record) -> list[Finding]:
    """Every finding of a run, crashes first, then failures, errors, notes."""
    out = [f for case in record.cases for f in findings_of(case)]
    return sorted(out, key=lambda f: KINDS.index(f.kind))


def summary_line(record: Record) -> str:
    """`73 cases: 59 passed, 10 failed, 1 crashed, 3 skipped`."""
    counts = record.counts()
    parts = [f"{n} {o}" for o, n in counts.items() if n]
    return f"{len(record.cases)} cases: " + ", ".join(parts) if parts else "no cases"


def exit_status(record: Record) -> int:
    """`testbed report`'s status: 1 unless the run is clean (a case at
    least, none failed, crashed or in error, none lost to a cut line)."""
    return 1 if not record.cases or record.truncated or any(c.bad for c in record.cases) else 0


def summary(record: Record) -> dict:
    """What a CI step reads of a run (`testbed report --json`)."""
    bad_ids = {cid for c in record.cases for cid, v in id_verdicts(c).items() if v in BAD}
    return {
        "record": record.path, "release": record.header.release, "boots": record.boots,
        "datapaths": record.datapaths() or record.header.datapaths, "cases": len(record.cases),
        "counts": record.counts(),
        "failing": [c.nodeid for c in record.cases if c.bad],
        "failing_ids": [cid for cid in catalogue_ids(record.cases) if cid in bad_ids],
        "crashes": [{"nodeid": c.nodeid, "kind": c.crash.kind if c.crash else "",
                     "title": c.crash.title if c.crash else "", "boot": c.crash.boot if c.crash else c.boot,
                     "release": release_of(record, c)} for c in record.cases if c.outcome == "crashed"],
        "cut_line": record.cut_line or None,
    }


def run_line(record: Record) -> str:
    h = record.header
    where = "in a testbed vm guest" if h.machine == "guest" else f"on {h.hostname or 'the host'}"
    boots = f", {record.boots} boots" if record.boots > 1 else ""
    dps = ",".join(record.datapaths() or h.datapaths) or h.datapath or "-"
    return (f"kernel {h.release or '?'}, datapath {dps}, spec {h.spec}; "
            f"run {h.started or '?'} {where}{boots}")


SECTIONS = {"crash": "Kernel crashes", "fail": "Deviations", "error": "Cases that could not check",
            "note": "Notes (recorded, not failing)"}


def text(record: Record) -> str:
    """The findings as plain text, wrapped for mail (72 columns where it can)."""
    out = ["srl2 conformance findings", *textwrap.wrap(run_line(record), 72), summary_line(record), ""]
    found = findings(record)
    if not record.cases:
        out.append("No cases in this record.")
    elif not found:
        out.append("No findings: every case that ran passed.")
    by_case = {c.nodeid: c for c in record.cases}
    for kind in KINDS:
        group = [f for f in found if f.kind == kind]
        if not group:
            continue
        out.append(f"{SECTIONS[kind]} ({len(group)}):")
        out.append("")
        for f in group:
            out += textwrap.wrap(f.line(), 72, initial_indent="  ", subsequent_indent="      ",
                                 break_on_hyphens=False)
            if kind == "crash":
                crash = by_case[f.nodeid].crash
                if crash:
                    out += [f"      {crash.rip}"] if crash.rip else []
                    if crash.trace:
                        out += textwrap.wrap("call trace: " + " < ".join(_short(t) for t in crash.trace[:8]),
                                             72, initial_indent="      ", subsequent_indent="        ")
            out.append(f"      case: {f.nodeid}")
            out.append(f"      kernel: {release_of(record, by_case[f.nodeid])} ({f.datapath} datapath)")
            out += [f"      logged: {line}" for line in kernel_lines(by_case[f.nodeid]) if kind != "note"]
            out.append("")
    quiet = passed_with_kernel_problems(record)
    if quiet:
        out += [f"Kernel problems logged while passing cases ran ({len(quiet)}):", ""]
        for case in quiet:
            out += [f"  {case.nodeid}", *[f"      {line}" for line in kernel_lines(case)], ""]
    return "\n".join(out).rstrip() + "\n"


def kernel_lines(case: Case) -> list[str]:
    """The kernel problems logged while a case ran, repeats counted:
    `10x dead loop: Dead loop on virtual device srl2-1, fix it urgently!`."""
    counted: dict[str, int] = {}
    for p in case.kernel_problems:
        line = f"{p.get('kind', '?')}: {p.get('line', '')}"
        counted[line] = counted.get(line, 0) + 1
    return [f"{n}x {line}" if n > 1 else line for line, n in counted.items()]


def passed_with_kernel_problems(record: Record) -> list[Case]:
    """Cases that passed although the kernel logged problems while they ran
    (the case judged them, e.g. L5 expects "Dead loop"): worth a look."""
    return [c for c in record.cases if not c.bad and c.kernel_problems]


def release_of(record: Record, case: Case) -> str:
    """The kernel a case ran on: the crash's own word for a crashed case."""
    if case.crash and case.crash.release:
        return case.crash.release
    return record.header.release or "?"


def _short(frame: str) -> str:
    """`add_grec+0x1a2/0x3c0` -> `add_grec`: what a reader scans for."""
    return frame.strip().split("+", 1)[0].lstrip("? ").strip()
