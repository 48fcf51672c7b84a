"""Per-ID verdicts of a case and the catalogue table of a run.

Where a case records one check per catalogue ID (docs: README, "Results,
reports and comparisons"), an ID is FAIL only when its own check failed: a
frame whose hop limit is wrong turns H5 red, not H1, H3 and H4 beside it.
A case that failed without a failed check (an exception, a plain assert)
fails all its IDs; a crash makes all its IDs CRASH.
"""
from __future__ import annotations

from collections import defaultdict

from testbed import catalogue
from testbed.results.record import Case

# Cell words, worst first: a catalogue cell shows the worst of its cases.
CRASH, FAIL, ERROR, NOTE, PASS, SKIP = "CRASH", "FAIL", "ERROR", "NOTE", "PASS", "SKIP"
SEVERITY = (CRASH, FAIL, ERROR, NOTE, PASS, SKIP)
BAD = (CRASH, FAIL, ERROR)


def clause(cid: str) -> str:
    """The clause an ID is judged by (catalogue.CLAUSES where the catalogue has them)."""
    return getattr(catalogue, "CLAUSES", {}).get(cid, "")


def title(cid: str) -> str:
    return catalogue.CATALOGUE.get(cid, "")


def id_verdicts(case: Case) -> dict[str, str]:
    """ID -> PASS, FAIL, NOTE, SKIP, CRASH or ERROR for one case."""
    ids = case.all_ids()
    if case.outcome == "crashed":
        return {i: CRASH for i in ids}
    if case.outcome == "skipped":
        return {i: SKIP for i in ids}
    if case.outcome == "error":
        return {i: ERROR for i in ids}
    failed = {c.get("id") for c in case.checks if c.get("verdict") == "fail"}
    noted = {c.get("id") for c in case.checks if c.get("verdict") == "note"}
    if case.outcome == "failed" and not failed:
        return {i: FAIL for i in ids}
    return {i: FAIL if i in failed else NOTE if i in noted else PASS for i in ids}


def worst(verdicts: list[str]) -> str:
    return min(verdicts, key=SEVERITY.index)


def cells(cases: list[Case]) -> tuple[list[str], dict[tuple[str, str], str]]:
    """The datapaths (columns) and the cell of every (ID, datapath) that ran:
    the worst verdict of its cases; PASS* where some of them were skipped.
    A case that runs on no datapath (the topology loader's) counts in every
    column."""
    by: dict[tuple[str, str], list[str]] = defaultdict(list)
    dps = sorted({c.datapath for c in cases if c.datapath != "-" and c.all_ids()}) or ["-"]
    for case in cases:
        for cid, verdict in id_verdicts(case).items():
            for dp in (dps if case.datapath == "-" else [case.datapath]):
                by[(cid, dp)].append(verdict)
    out = {}
    for key, verdicts in by.items():
        ran = [v for v in verdicts if v != SKIP]
        if not ran:
            out[key] = SKIP
        else:
            cell = worst(ran)
            out[key] = cell + "*" if cell == PASS and len(ran) < len(verdicts) else cell
    return dps, out


def catalogue_ids(cases: list[Case]) -> list[str]:
    """The catalogue's IDs in its order, then any unknown ID a case names."""
    ids = list(catalogue.CATALOGUE)
    for case in cases:
        ids += [i for i in case.all_ids() if i not in ids]
    return ids


def catalogue_table(cases: list[Case]) -> list[str]:
    """One row per catalogue ID, one column per datapath: PASS, FAIL,
    CRASH, ERROR (the case could not run its checks), NOTE (a finding
    recorded without failing), SKIP if all skipped, '-' if none ran."""
    dps, cell = cells(cases)
    rows = [["ID", *dps, "behaviour"]]
    for cid in catalogue_ids(cases):
        rows.append([cid, *[cell.get((cid, dp), "-") for dp in dps], title(cid)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    area = ""
    for r in rows:
        if r[0] != "ID" and r[0][0] != area:
            area = r[0][0]
            out.append(f"{area}: {catalogue.AREAS.get(area, '')}")
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    out.append("  PASS* = some cases for this ID were skipped on this datapath; "
               "NOTE = a finding recorded without failing")
    return out
