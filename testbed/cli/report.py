"""testbed report RECORD [RECORD...] [--text | --json] [--html FILE] [--junit FILE] [--ktap FILE] [--catalogue]
                [--exit-zero]

Everything a run's record gives (docs: README, "Results, reports and
comparisons"): the findings text to paste into a reply, the HTML page,
JUnit and KTAP for CI, the catalogue table, a JSON summary.  With no
option: the text.  Several records (the shards of a run, --shard K/N) are
merged into the record of one run first (testbed/results/merge.py); records
that are not parts of one run are an error.

Exit status, for a CI step: 0 when the run is clean (at least one case,
none failed, crashed or in error, no case lost to a last line cut short),
1 when it is not (the reports are written all the same) or the record
cannot be read, 2 for a usage mistake.  --exit-zero: 0 whatever the run
found (a step that only publishes the reports); an unreadable record is
still 1.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="findings text, HTML page, JUnit, KTAP, JSON summary from the record of a run; "
                                      "exit 1 when the run has failures, crashes or errors")
    p.add_argument("record", nargs="+",
                   help="the record of a run (record.jsonl: pytest --record, or testbed vm's --out); several: "
                        "the records of its shards, merged into one run")
    p.add_argument("--text", action="store_true", help="print the findings as plain text (the default)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary instead: counts per outcome, failing cases and IDs, crashes, "
                        "kernel release, boots, exit status")
    p.add_argument("--catalogue", action="store_true", help="print the catalogue table")
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (xunit2)")
    p.add_argument("--ktap", metavar="FILE", help="write KTAP version 1")
    p.add_argument("--exit-zero", action="store_true",
                   help="exit 0 even when the run has failures, crashes or errors (1 only if the record "
                        "cannot be read)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from testbed.cli import UsageError
    from testbed.results import findings, html, junit, ktap, merge
    from testbed.results.verdicts import catalogue_table

    if args.json and (args.text or args.catalogue):
        raise UsageError("--json prints the summary alone: not with --text or --catalogue")
    record = merge.read_all(args.record)
    for line in merge.notes(record):
        print(f"testbed report: {line}", file=sys.stderr)
    status = 0 if args.exit_zero else findings.exit_status(record)
    wrote = []
    for path, module in ((args.html, html), (args.junit, junit), (args.ktap, ktap)):
        if path:
            module.write(record, path)
            wrote.append(path)
    if args.json:
        print(json.dumps({**findings.summary(record), "exit_status": status}, indent=2))
    elif args.text or not (wrote or args.catalogue):
        print(findings.text(record), end="")
    if args.catalogue:
        print("\n".join(catalogue_table(record.cases)))
    if record.truncated:
        print(f"testbed report: {record.cut_text()}; that case is not in the report", file=sys.stderr)
    for path in wrote:  # beside the JSON, stdout would no longer be JSON
        print(f"testbed report: wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return status
