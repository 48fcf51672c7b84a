"""Two runs on two revisions of the series compared clause by clause
(docs: README, "Results, reports and comparisons"; docs/srl2-to-sr6.md).

Across revisions the cases differ (sr6 adds the R cases, renames and
splits others), so `compare.py`'s unit, a (case, ID) verdict, would show
every renamed case as missing and new.  Here the unit is the catalogue ID:
its worst verdict over all the cases of each record (verdicts.worst), and
each ID is put in one class:

    new crash        CRASH in the newer run, not in the older
    newly failing    FAIL/ERROR in the newer run, PASS, NOTE, SKIP or absent in the older
    crash gone       CRASH in the older run, not in the newer
    fixed            FAIL/ERROR in the older run, PASS or NOTE in the newer
    still failing    bad in both (the finding's words of each, when they differ)
    only in older    ran in the older run, skipped or absent in the newer
    only in newer    ran (and did not fail) in the newer run only
    unchanged        PASS or NOTE in both (counted, not listed)

An ID whose expectation differs between the two revisions (the newer
revision's `differs`, testbed/revisions) is shown apart, "expectation
changed by design", with the new expectation and why, and its class.
The exit status is 1 on a new crash or a newly failing ID (by design or
not: the cases judge each revision by its own expectation), or when the
newer run has no case; 0 otherwise.

    python -m testbed.results.across OLDER NEWER [--json | --markdown]
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Optional

from testbed import revisions
from testbed.results.compare import finding_line
from testbed.results.findings import summary_line
from testbed.results.record import Case, Record
from testbed.results.verdicts import BAD, CRASH, SKIP, catalogue_ids, id_verdicts, title, worst

NEW_CRASH, NEWLY_FAILING, CRASH_GONE, FIXED = "new crash", "newly failing", "crash gone", "fixed"
STILL_FAILING, ONLY_OLDER, ONLY_NEWER, UNCHANGED = "still failing", "only in older", "only in newer", "unchanged"
CLASSES = (NEW_CRASH, NEWLY_FAILING, CRASH_GONE, FIXED, STILL_FAILING, ONLY_OLDER, ONLY_NEWER, UNCHANGED)
FAILING = (NEW_CRASH, NEWLY_FAILING)   # what makes the exit status 1
ABSENT = "-"


def revision_of(record: Record) -> str:
    """The header's revision; "" (older records) is the first revision."""
    return record.header.revision or revisions.NAMES[0]


def _revision(name: str) -> Optional[revisions.Revision]:
    try:
        return revisions.get(name)
    except KeyError:
        return None


def differ(a: Record, b: Record) -> bool:
    return revision_of(a) != revision_of(b)


@dataclass
class Clause:
    id: str
    title: str
    cls: str            # one of CLASSES
    older: str          # worst verdict in the older run, "-" when no case named the ID
    newer: str
    was: str = ""       # the older run's finding (for a bad verdict there)
    now: str = ""       # the newer run's finding; for still failing only when it reads differently
    expect: str = ""    # expectation changed by design: the newer revision's expectation
    reason: str = ""    # ... and why

    @property
    def by_design(self) -> bool:
        return bool(self.expect or self.reason)


def worst_of(cases: list[Case]) -> dict[str, tuple[str, Optional[Case]]]:
    """ID -> (its worst verdict among the cases that ran it, a case that
    gave it); SKIP when every case naming it was skipped."""
    seen: dict[str, list[tuple[str, Case]]] = {}
    for case in cases:
        for cid, v in id_verdicts(case).items():
            seen.setdefault(cid, []).append((v, case))
    out: dict[str, tuple[str, Optional[Case]]] = {}
    for cid, pairs in seen.items():
        ran = [p for p in pairs if p[0] != SKIP]
        if not ran:
            out[cid] = (SKIP, None)
        else:
            w = worst([v for v, _ in ran])
            out[cid] = (w, next(c for v, c in ran if v == w))
    return out


def classify(older: str, newer: str) -> str:
    ran_o, ran_n = older not in (SKIP, ABSENT), newer not in (SKIP, ABSENT)
    if newer == CRASH and older != CRASH:
        return NEW_CRASH
    if older == CRASH and newer != CRASH and ran_n:
        return CRASH_GONE
    if newer in BAD:
        return STILL_FAILING if older in BAD else NEWLY_FAILING
    if not ran_n:
        return ONLY_OLDER if ran_o else UNCHANGED
    if not ran_o:
        return ONLY_NEWER
    return FIXED if older in BAD else UNCHANGED


@dataclass
class Across:
    older: str               # path and summary of each run
    newer: str
    older_revision: str
    newer_revision: str
    clauses: list[Clause] = field(default_factory=list)
    newer_cases: int = 0

    def of(self, cls: str, by_design: Optional[bool] = False) -> list[Clause]:
        """The clauses of a class; by_design None: with and without."""
        return [c for c in self.clauses if c.cls == cls and (by_design is None or c.by_design == by_design)]

    def failures(self) -> list[str]:
        out = []
        for cls in FAILING:
            ids = [c.id for c in self.of(cls, None)]
            if ids:
                out.append(f"{len(ids)} {cls} ({', '.join(ids)})")
        if not self.newer_cases:
            out.append("no case in the newer run")
        return out

    def exit_status(self) -> int:
        return 1 if self.failures() else 0

    def counts(self) -> dict[str, int]:
        return {cls: len(self.of(cls, None)) for cls in CLASSES}

    def to_dict(self) -> dict:
        out = asdict(self)
        for row, c in zip(out["clauses"], self.clauses):
            row["by_design"] = c.by_design
        return {**out, "counts": self.counts(), "failures": self.failures(), "exit_status": self.exit_status()}


def _line(case: Optional[Case], cid: str, verdict: str) -> str:
    return finding_line(case, cid) if case is not None and verdict in BAD else ""


def across(older: Record, newer: Record) -> Across:
    ro, rn = revision_of(older), revision_of(newer)
    rev_o, rev_n = _revision(ro), _revision(rn)
    wo, wn = worst_of(older.cases), worst_of(newer.cases)
    out = Across(_describe(older), _describe(newer), ro, rn, newer_cases=len(newer.cases))
    for cid in catalogue_ids(older.cases + newer.cases):
        (vo, co), (vn, cn) = wo.get(cid, (ABSENT, None)), wn.get(cid, (ABSENT, None))
        cls = classify(vo, vn)
        was, now = _line(co, cid, vo), _line(cn, cid, vn)
        if cls == STILL_FAILING and now == was:
            now = ""
        row = Clause(cid, title(cid), cls, vo, vn, was, now)
        exp_o = rev_o.expectation(cid) if rev_o else None
        exp_n = rev_n.expectation(cid) if rev_n else None
        if exp_n != exp_o:
            if exp_n:
                row.expect, row.reason = exp_n.expect, exp_n.reason
            elif exp_o:
                row.expect, row.reason = "as in the first revision", f"{ro} had: {exp_o.expect} ({exp_o.reason})"
        out.clauses.append(row)
    return out


def _describe(record: Record) -> str:
    h = record.header
    return f"{record.path} (revision {revision_of(record)}, kernel {h.release or '?'}; {summary_line(record)})"


TITLES = {NEW_CRASH: "New crashes", NEWLY_FAILING: "Newly failing", CRASH_GONE: "Crashes gone",
          FIXED: "Fixed", STILL_FAILING: "Still failing", ONLY_OLDER: "Only in the older revision's run",
          ONLY_NEWER: "Only in the newer revision's run"}
DESIGN = "Expectation changed by design"


def _clause_lines(c: Clause, older: str, newer: str, design: bool = False) -> list[str]:
    head = f"{c.id} {c.older} -> {c.newer}"
    out = [f"{head}{f' ({c.cls})' if design else ''}: {c.title}"]
    if design:
        out.append(f"    {newer} expects: {c.expect}")
        out.append(f"    why: {c.reason}")
    out += [f"    {whose}: {line}" for whose, line in _found(c, older, newer)]
    return out


def _found(c: Clause, older: str, newer: str) -> list[tuple[str, str]]:
    """(whose, finding) pairs: one shared line when a still failing ID reads the same in both."""
    if c.cls == STILL_FAILING and not c.now:
        return [(f"{older} and {newer}", c.was)]
    return [(r, t) for r, t in ((older, c.was), (newer, c.now)) if t]


def _sections(a: Across) -> list[tuple[str, list[Clause], bool]]:
    out = [(f"{TITLES[cls]}", a.of(cls), False) for cls in CLASSES if cls != UNCHANGED]
    out.append((f"{DESIGN} ({a.newer_revision} vs {a.older_revision})",
                [c for c in a.clauses if c.by_design], True))
    return out


def verdict_line(a: Across) -> str:
    verdict = ", ".join(a.failures()) or "no clause newly failing, no new crash"
    return f"verdict: {verdict} (exit status {a.exit_status()})"


def text(a: Across) -> str:
    """For a mail: one section per class, one ID a line, the findings under it."""
    ro, rn = a.older_revision, a.newer_revision
    out = [f"{ro} -> {rn}, clause by clause", f"older: {a.older}", f"newer: {a.newer}", ""]
    for heading, rows, design in _sections(a):
        out.append(f"{heading} ({len(rows)}):")
        for c in rows:
            out += [f"  {line}" for line in _clause_lines(c, ro, rn, design)]
        out.append("")
    out.append(f"Unchanged, PASS or NOTE in both ({len(a.of(UNCHANGED))}): "
               + (", ".join(c.id for c in a.of(UNCHANGED)) or "none"))
    out += ["", verdict_line(a)]
    return "\n".join(out) + "\n"


def _md(s: str) -> str:
    return s.replace("|", "\\|")


def markdown(a: Across, command: str = "") -> str:
    """The same as a page of docs/ (docs/srl2-to-sr6.md)."""
    ro, rn = a.older_revision, a.newer_revision
    out = [f"# {ro} -> {rn}: the conformance findings, clause by clause", ""]
    if command:
        out += [f"Generated by `{command}`; tests/test_across.py fails when this file is stale.", ""]
    out += [f"- older: `{a.older}`", f"- newer: `{a.newer}`", ""]
    for heading, rows, design in _sections(a):
        out += [f"## {heading} ({len(rows)})", ""]
        if not rows:
            out += ["None.", ""]
            continue
        if design:
            out += [f"| ID | {ro} | {rn} | class | {rn} expects | why |", "|---|---|---|---|---|---|"]
            out += [f"| {c.id} | {c.older} | {c.newer} | {c.cls} | {_md(c.expect)} | {_md(c.reason)} |"
                    for c in rows]
        else:
            out += [f"| ID | {ro} | {rn} | behaviour | finding |", "|---|---|---|---|---|"]
            for c in rows:
                found = "<br>".join(_md(f"{r}: {t}") for r, t in _found(c, ro, rn))
                out.append(f"| {c.id} | {c.older} | {c.newer} | {_md(c.title)} | {found} |")
        out.append("")
    out += [f"Unchanged, PASS or NOTE in both ({len(a.of(UNCHANGED))}): "
            + (", ".join(c.id for c in a.of(UNCHANGED)) or "none"), "", verdict_line(a), ""]
    return "\n".join(out)


def page(a: Across) -> str:
    """One self-contained HTML page, in the style of `testbed report --html`."""
    from testbed.results.html import STYLE, _v

    ro, rn = a.older_revision, a.newer_revision
    body = [f"<h1>{escape(ro)} &rarr; {escape(rn)}, clause by clause</h1>",
            f'<p class="meta">older: <code>{escape(a.older)}</code></p>',
            f'<p class="meta">newer: <code>{escape(a.newer)}</code></p>',
            f"<p><strong>{escape(verdict_line(a))}</strong></p>"]
    for heading, rows, design in _sections(a):
        body.append(f"<h2>{escape(heading)} ({len(rows)})</h2>")
        if not rows:
            body.append('<p class="muted">None.</p>')
            continue
        extra = "<th>class</th><th>expects</th><th>why</th>" if design else "<th>finding</th>"
        body.append(f"<table><tr><th>ID</th><th>{escape(ro)}</th><th>{escape(rn)}</th>"
                    f"<th>behaviour</th>{extra}</tr>")
        for c in rows:
            found = "<br>".join(f"<b>{escape(r)}</b>: {escape(t)}" for r, t in _found(c, ro, rn))
            cells = (f"<td>{escape(c.cls)}</td><td>{escape(c.expect)}</td><td>{escape(c.reason)}</td>"
                     if design else f"<td>{found}</td>")
            body.append(f'<tr><td class="id">{escape(c.id)}</td><td>{_v(c.older)}</td><td>{_v(c.newer)}</td>'
                        f"<td>{escape(c.title)}</td>{cells}</tr>")
        body.append("</table>")
    unchanged = ", ".join(c.id for c in a.of(UNCHANGED)) or "none"
    body.append(f"<h2>Unchanged, PASS or NOTE in both ({len(a.of(UNCHANGED))})</h2><p>{escape(unchanged)}</p>")
    return ('<!doctype html><html><head><meta charset="utf-8">'
            f"<title>srl2 conformance: {escape(ro)} to {escape(rn)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    from testbed.results.record import read

    p = argparse.ArgumentParser(prog="python -m testbed.results.across")
    p.add_argument("older")
    p.add_argument("newer")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    a = across(read(args.older), read(args.newer))
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
    elif args.markdown:
        print(markdown(a, command_line(args.older, args.newer)), end="")
    else:
        print(text(a), end="")
    return a.exit_status()


def command_line(older: str, newer: str) -> str:
    return f"python -m testbed.results.across {older} {newer} --markdown"


EXAMPLE = ("baselines/srl2-rfc-6.12.jsonl", "baselines/sr6-rfc-v2-6.12.jsonl", "docs/srl2-to-sr6.md")


def example(root: str = ".") -> str:
    """docs/srl2-to-sr6.md as the two baselines make it (paths relative to the checkout)."""
    import os

    from testbed.results.record import read

    older, newer, _ = EXAMPLE
    a = across(read(os.path.join(root, older)), read(os.path.join(root, newer)))
    a.older, a.newer = (d.replace(os.path.join(root, p), p, 1) for d, p in ((a.older, older), (a.newer, newer)))
    return markdown(a, command_line(older, newer))


if __name__ == "__main__":
    sys.exit(main())
