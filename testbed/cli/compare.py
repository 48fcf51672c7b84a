"""testbed compare BASELINE NEW [NEW...] [--baseline PART] [--json] [--allow-missing] [--by-clause] [--html FILE]

A run against a baseline run (docs: README, "Results, reports and
comparisons"): newly failing, new crashes, fixed, unchanged findings, cases
missing or new.  Exit status 1 when something newly fails or crashes, when
cases of the baseline are missing from NEW (or NEW's last line was cut
short) unless --allow-missing, when NEW has no case at all, and when a
record cannot be read; 0 otherwise: a CI step as it stands.

Several NEW records (the shards of a run, --shard K/N) are merged into the
record of one run first, and so is BASELINE with each --baseline PART
(testbed/results/merge.py); records that are not parts of one run are an
error (exit 1).

When the two records are of different revisions of the series (their
headers' `revision`, "" meaning srl2), or with --by-clause, the comparison
is per catalogue ID instead (testbed/results/across.py): fixed, still
failing, newly failing, crash gone or new, only in one revision, and the
IDs whose expectation the newer revision changed by design.  Its exit
status is 1 on a newly failing ID or a new crash (or a NEW without cases).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare the record of a run with a baseline record; exit 1 when "
                                       "something newly fails or crashes, or cases of the baseline are missing")
    p.add_argument("baseline", help="the baseline record (e.g. baselines/srl2-rfc-6.12.jsonl)")
    p.add_argument("new", nargs="+",
                   help="the record of the new run; several: the records of its shards, merged into one run")
    p.add_argument("--baseline", dest="baseline_parts", action="append", default=[], metavar="PART",
                   help="another record of the baseline run (a sharded baseline), merged with BASELINE; "
                        "may be given several times")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--allow-missing", action="store_true",
                   help="compare what ran: cases of the baseline missing from NEW do not fail the comparison "
                        "(NEW must still have a case)")
    p.add_argument("--by-clause", action="store_true",
                   help="compare per catalogue ID, not per case (the default when the records' revisions differ)")
    p.add_argument("--html", metavar="FILE",
                   help="also write the clause-by-clause comparison as one self-contained HTML page")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from testbed.results import across, compare, merge

    baseline = merge.read_all([args.baseline, *args.baseline_parts])
    new = merge.read_all(args.new)
    for rec in (baseline, new):
        for line in merge.notes(rec):
            print(f"testbed compare: {line}", file=sys.stderr)
    by_clause = args.by_clause or across.differ(baseline, new)
    for rec in (baseline, new):
        if rec.truncated and (by_clause or rec is baseline):
            print(f"testbed compare: {rec.cut_text()}; that case is not compared", file=sys.stderr)
    if by_clause:
        cmp = across.across(baseline, new)
        print(json.dumps(cmp.to_dict(), indent=2) if args.json else across.text(cmp), end="\n" if args.json else "")
        if args.html:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(across.page(cmp))
        if not cmp.newer_cases:
            print(f"testbed compare: {new.path}: no case in the new run: nothing to compare", file=sys.stderr)
        return cmp.exit_status()
    if args.html:
        print("testbed compare: --html is for a clause-by-clause comparison: add --by-clause", file=sys.stderr)
        return 2
    case_cmp = compare.compare(baseline, new, allow_missing=args.allow_missing)
    if args.json:
        print(json.dumps(case_cmp.to_dict(), indent=2))
    else:
        print(compare.text(case_cmp), end="")
    for line in case_cmp.notices():
        print(f"testbed compare: {line}", file=sys.stderr)
    return case_cmp.exit_status()
