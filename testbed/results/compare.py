"""Two runs compared: a baseline (an earlier revision of the series, or
the reference datapath) and a new run (docs: README, "Results, reports and
comparisons").

The unit is a (case, ID) verdict, so a case that failed on H5 and now fails
on H1 shows H1 as newly failing and H5 as fixed.  Cases are matched on
their file and test name: the path before `cases/` (guest vs host, or
another checkout) does not count, nor the datapath parameter when each run
has one datapath of its own (kernel vs ref).  Something newly failing, a
new crash, a case of the baseline missing from the new run (or lost to its
last line cut short), or a new run without any case makes the exit status
1, as a CI wants: a run that ran nothing must not pass for one that changed
nothing.  `allow_missing` accepts a run of part of the suite.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from testbed.results.findings import findings_of, summary_line
from testbed.results.record import Case, Record
from testbed.results.verdicts import BAD, CRASH, ERROR, FAIL, PASS, SKIP, id_verdicts

_ANCHORS = ("cases", "tests")
CASE_LEVEL = ""   # the "ID" of a case that names no catalogue ID


def _path_key(path: str) -> str:
    """`/x/y/cases/test_a.py` and `../cases/test_a.py` -> `cases/test_a.py`."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _ANCHORS:
            return "/".join(parts[i:])
    return parts[-1] if parts else path


def _drop_param(name: str, value: str) -> str:
    """`test_x[kernel-3]` -> `test_x[3]`; `test_x[kernel]` -> `test_x`."""
    m = re.fullmatch(r"(.*?)\[(.*)\]", name)
    if not m:
        return name
    params = [p for p in m.group(2).split("-") if p != value]
    return f"{m.group(1)}[{'-'.join(params)}]" if params else m.group(1)


def case_key(case: Case, drop_datapath: bool) -> str:
    path, _, rest = case.nodeid.partition("::")
    parts = rest.split("::") if rest else []
    if drop_datapath and parts and case.datapath not in ("", "-"):
        parts[-1] = _drop_param(parts[-1], case.datapath)
    return "::".join([_path_key(path), *parts])


def unit_verdicts(case: Case) -> dict[str, str]:
    """ID -> verdict; a case without IDs is one unit of its own."""
    verdicts = id_verdicts(case)
    if verdicts:
        return verdicts
    word = {"crashed": CRASH, "failed": FAIL, "error": ERROR, "skipped": SKIP}.get(case.outcome, PASS)
    return {CASE_LEVEL: word}


def finding_line(case: Case, cid: str) -> str:
    """What a case said about one ID (its first finding, and how many more), or its outcome."""
    bodies = [f.body() for f in findings_of(case) if cid == CASE_LEVEL or cid in f.id.split(",")]
    if not bodies:
        return case.outcome
    return bodies[0] + (f" (and {len(bodies) - 1} more)" if len(bodies) > 1 else "")


@dataclass
class Change:
    case: str          # the matching key (path from cases/, name)
    nodeid: str        # the new run's nodeid (the baseline's for a missing case)
    id: str            # catalogue ID, "" for a case without IDs
    before: str        # verdict in the baseline ("-" when it was not there)
    after: str         # verdict in the new run
    line: str          # the finding (new for failing and unchanged, baseline's for fixed)
    was: str = ""      # for unchanged: the baseline's finding, when it reads differently

    def text(self) -> str:
        cid = f"{self.id} " if self.id else ""
        out = f"{cid}{self.nodeid}: {self.before} -> {self.after}: {self.line}"
        return out + (f" (was: {self.was})" if self.was else "")


@dataclass
class Comparison:
    baseline: str
    new: str
    newly_failing: list[Change] = field(default_factory=list)
    new_crashes: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    not_checked: list[Change] = field(default_factory=list)   # bad before, skipped now
    missing: list[str] = field(default_factory=list)          # in the baseline only
    added: list[str] = field(default_factory=list)            # in the new run only
    new_path: str = ""
    new_cases: int = 0
    cut: str = ""              # the new record's last line cut short: where, else ""
    allow_missing: bool = False

    def failures(self) -> list[str]:
        """What makes the exit status 1, in the verdict line's words."""
        out = []
        if self.newly_failing:
            cases = len({c.nodeid for c in self.newly_failing})
            out.append(f"{len(self.newly_failing)} newly failing ID verdicts in {cases} case{'s' * (cases != 1)}")
        if self.new_crashes:
            out.append(f"{len(self.new_crashes)} new crash{'es' * (len(self.new_crashes) != 1)}")
        if self.missing and not self.allow_missing:
            out.append(f"{_cases(len(self.missing))} of the baseline missing")
        if self.cut and not self.allow_missing:
            out.append("the new record's last line cut short")
        if not self.new_cases:
            out.append("no case in the new run")
        return out

    def exit_status(self) -> int:
        return 1 if self.failures() else 0

    def notices(self) -> list[str]:
        """One line each for what a CI log must show besides the verdicts:
        the missing cases (the first few), a cut record, a run of nothing."""
        out = []
        if self.missing and not self.allow_missing:
            more = len(self.missing) - MISSING_SHOWN
            names = ", ".join(self.missing[:MISSING_SHOWN]) + (f" and {more} more" if more > 0 else "")
            out.append(f"{_cases(len(self.missing))} of the baseline missing from {self.new_path}: {names}; "
                       "--allow-missing compares what ran")
        if self.cut:
            out.append(f"{self.cut}; that case is not compared"
                       + ("" if self.allow_missing else "; --allow-missing compares what ran"))
        if not self.new_cases and (self.allow_missing or not self.missing):
            out.append(f"{self.new_path}: no case in the new run: nothing to compare")
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_status": self.exit_status()}


def _keyed(record: Record, drop: bool) -> dict[str, Case]:
    return {case_key(c, drop): c for c in record.cases}


MISSING_SHOWN = 3  # missing cases named in the one-line notice; the text lists them all


def _cases(n: int) -> str:
    return f"{n} case{'s' * (n != 1)}"


def compare(baseline: Record, new: Record, allow_missing: bool = False) -> Comparison:
    dps_b, dps_n = baseline.datapaths(), new.datapaths()
    drop = dps_b != dps_n and len(dps_b) <= 1 and len(dps_n) <= 1
    before, after = _keyed(baseline, drop), _keyed(new, drop)
    out = Comparison(_describe(baseline), _describe(new), new_path=new.path, new_cases=len(new.cases),
                     cut=new.cut_text() if new.truncated else "", allow_missing=allow_missing)
    out.missing = [before[k].nodeid for k in before if k not in after]
    for key, case in after.items():
        old = before.get(key)
        if old is None:
            out.added.append(case.nodeid)
        if case.outcome == "crashed" and (old is None or old.outcome != "crashed"):
            out.new_crashes.append(Change(key, case.nodeid, ",".join(case.all_ids()),
                                          old.outcome if old else "-", "crashed", finding_line(case, CASE_LEVEL)))
            continue
        if old is None:
            out.newly_failing += [Change(key, case.nodeid, cid, "-", a, finding_line(case, cid))
                                  for cid, a in unit_verdicts(case).items() if a in BAD]
            continue
        vb, va = unit_verdicts(old), unit_verdicts(case)
        for cid in dict.fromkeys([*vb, *va]):
            b, a = vb.get(cid, "-"), va.get(cid, "-")
            if a in BAD and b not in BAD:
                out.newly_failing.append(Change(key, case.nodeid, cid, b, a, finding_line(case, cid)))
            elif b in BAD and a in BAD:
                now, was = finding_line(case, cid), finding_line(old, cid)
                out.unchanged.append(Change(key, case.nodeid, cid, b, a, now, was if was != now else ""))
            elif b in BAD and a in (SKIP, "-"):
                out.not_checked.append(Change(key, case.nodeid, cid, b, a, finding_line(old, cid)))
            elif b in BAD:
                out.fixed.append(Change(key, case.nodeid, cid, b, a, finding_line(old, cid)))
    return out


def _describe(record: Record) -> str:
    h = record.header
    dps = ",".join(record.datapaths()) or h.datapath or "-"
    return f"{record.path} (kernel {h.release or '?'}, {dps}; {summary_line(record)})"


SECTIONS = (("new_crashes", "New crashes"), ("newly_failing", "Newly failing"), ("fixed", "Fixed"),
            ("unchanged", "Unchanged findings"), ("not_checked", "Failing before, not checked now"))


def _grouped(changes: list[Change]) -> list[str]:
    """One line per case and finding: the IDs of a case that failed as a
    whole share one line (`H1,H3 case: PASS -> FAIL: ...`)."""
    groups: dict[tuple, list[str]] = {}
    for c in changes:
        groups.setdefault((c.nodeid, c.before, c.after, c.line, c.was), []).append(c.id)
    out = []
    for (nodeid, before, after, line, was), ids in groups.items():
        joined = ",".join(dict.fromkeys(i for i in ids if i))
        text = f"{joined + ' ' if joined else ''}{nodeid}: {before} -> {after}: {line}"
        out.append(text + (f" (was: {was})" if was else ""))
    return out


def text(cmp: Comparison) -> str:
    out = [f"baseline: {cmp.baseline}", f"new:      {cmp.new}", ""]
    for attr, title in SECTIONS:
        changes = getattr(cmp, attr)
        out.append(f"{title} ({len(changes)}):")
        out += [f"  {line}" for line in _grouped(changes)]
        out.append("")
    for attr, title in (("missing", "Cases missing from the new run"), ("added", "Cases new in this run")):
        nodeids = getattr(cmp, attr)
        if nodeids:
            out.append(f"{title} ({len(nodeids)}):")
            out += [f"  {n}" for n in nodeids]
            out.append("")
    verdict = ", ".join(cmp.failures()) or "nothing newly failing, no new crash"
    out.append(f"verdict: {verdict} (exit status {cmp.exit_status()})")
    return "\n".join(out) + "\n"
