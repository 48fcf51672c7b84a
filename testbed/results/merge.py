"""Several records merged into the record of one run: the shards of a run
split with --shard K/N, or the parts of a run done on several machines
(docs: README, "Sharding").

The records must be of the same thing under test: kernel release,
revision of the series, datapaths and spec agree, or the merge is refused
naming both files and the field.  Each case is there once: a nodeid in two
records is refused (naming both files) unless both lines say the same.
Boots are numbered per run, so each record's boots come after the ones
before it (boot 1 and 2 of the second shard become 3 and 4 when the first
had two), and so do its cases' and crashes' boots; every header is kept,
shard field and all, so the merged record says which shards it is made of.
A pcap named relative to its record is made absolute, the merged record
having no one directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from testbed import revisions
from testbed.results.record import Case, Header, Record, RecordError, read

SEPARATOR = " + "   # between the files' names in the merged record's path


class MergeError(RecordError):
    """Records that are not parts of one run."""


# Header fields that say what was tested: parts of one run agree on them.
def _under_test(h: Header) -> dict[str, str]:
    return {"kernel release": h.release or "?",
            "revision": h.revision or revisions.NAMES[0],   # older records have none: the first revision
            "datapath": ",".join(h.datapaths) or h.datapath or "-",
            "spec": h.spec}


@dataclass
class Merged(Record):
    """The merged record; `parts` are the records it was made of, in order."""
    parts: list[Record] = field(default_factory=list)

    def cut_text(self) -> str:
        return "; ".join(p.cut_text() for p in self.parts if p.truncated)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_headers(records: list[Record]) -> None:
    for i, rec in enumerate(records):
        if any(rec.path and other.path and _same_file(rec.path, other.path) for other in records[:i]):
            raise MergeError(f"{rec.path}: given twice")
    first = records[0]
    want = _under_test(first.header)
    for rec in records[1:]:
        have = _under_test(rec.header)
        for name, value in want.items():
            if have[name] != value:
                raise MergeError(f"{first.path} and {rec.path} are not parts of one run: "
                                 f"{name} {value} in the first, {have[name]} in the second")
    shards: dict[str, str] = {}
    totals = {}
    for rec in records:
        sh = rec.header.shard
        if not sh:
            continue
        if sh in shards:
            raise MergeError(f"{shards[sh]} and {rec.path} are both shard {sh}")
        shards[sh] = rec.path
        totals[sh.partition("/")[2]] = rec.path
    if len(totals) > 1:
        (n1, p1), (n2, p2) = list(totals.items())[:2]
        raise MergeError(f"{p1} and {p2} are shards of different splits: of {n1} and of {n2}")


def _same_result(a: Case, b: Case) -> bool:
    return {**a.to_dict(), "boot": 0} == {**b.to_dict(), "boot": 0}


def _absolute(pcaps: list[str], record_path: str) -> list[str]:
    base = os.path.dirname(os.path.abspath(record_path)) if record_path else os.getcwd()
    return [p if os.path.isabs(p) else os.path.join(base, p) for p in pcaps]


def merge(records: list[Record]) -> Record:
    """One record of one run from the records of its parts (the one record
    itself when there is one); a MergeError when they are not parts of one run."""
    if not records:
        raise MergeError("no record to merge")
    if len(records) == 1:
        return records[0]
    _check_headers(records)
    out = Merged(path=SEPARATOR.join(r.path for r in records), parts=list(records))
    seen: dict[str, tuple[Case, str]] = {}
    offset = 0
    for rec in records:
        out.headers += [replace(h, boot=h.boot + offset) for h in rec.headers]
        for case in rec.cases:
            earlier = seen.get(case.nodeid)
            if earlier is not None:
                if _same_result(earlier[0], case):
                    continue
                raise MergeError(f"{case.nodeid}: in both {earlier[1]} ({earlier[0].outcome}) and {rec.path} "
                                 f"({case.outcome}): each case must be in one record only")
            seen[case.nodeid] = (case, rec.path)
            crash = case.crash and replace(case.crash, boot=case.crash.boot + offset if case.crash.boot else 0)
            out.cases.append(replace(case, boot=case.boot + offset, crash=crash,
                                     pcaps=_absolute(case.pcaps, rec.path)))
        offset += rec.boots
    cut = [r for r in records if r.truncated]
    out.cut_line = cut[0].cut_line if cut else 0
    return out


def notes(record: Record) -> list[str]:
    """What a CI log shows of a merged record: its parts, and the shards of
    the split that are not among them (their cases are not in the run)."""
    if not isinstance(record, Merged):
        return []
    parts = []
    for r in record.parts:
        what = f"shard {r.header.shard}, " if r.header.shard else ""
        boots = f", {r.boots} boots" if r.boots > 1 else ""
        parts.append(f"{r.path} ({what}{len(r.cases)} cases{boots})")
    out = [f"merged {len(record.parts)} records: " + ", ".join(parts)]
    shards = {r.header.shard for r in record.parts if r.header.shard}
    total = next(iter(shards), "").partition("/")[2]
    if total.isdigit():
        absent = [f"{k}/{total}" for k in range(1, int(total) + 1) if f"{k}/{total}" not in shards]
        if absent:
            out.append(f"shard{'s' * (len(absent) > 1)} {', '.join(absent)} of the split not given: "
                       "their cases are not in the merged run")
    return out


def read_all(paths: list[str]) -> Record:
    """The records in `paths` (testbed.results.record.read), merged."""
    return merge([read(p) for p in paths])
