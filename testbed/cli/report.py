"""testbed report RECORD [--text] [--html FILE] [--junit FILE] [--ktap FILE] [--catalogue]

Everything a run's record gives (docs: README, "Results, reports and
comparisons"): the findings text to paste into a reply, the HTML page,
JUnit and KTAP for CI, the catalogue table.  With no option: the text.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="findings text, HTML page, JUnit, KTAP from the record of a run")
    p.add_argument("record", help="the record of a run (record.jsonl: pytest --record, or testbed vm's --out)")
    p.add_argument("--text", action="store_true", help="print the findings as plain text (the default)")
    p.add_argument("--catalogue", action="store_true", help="print the catalogue table")
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (xunit2)")
    p.add_argument("--ktap", metavar="FILE", help="write KTAP version 1")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.results import findings, html, junit, ktap
    from testbed.results.record import read
    from testbed.results.verdicts import catalogue_table

    record = read(args.record)
    wrote = []
    for path, module in ((args.html, html), (args.junit, junit), (args.ktap, ktap)):
        if path:
            module.write(record, path)
            wrote.append(path)
    if args.text or not (wrote or args.catalogue):
        print(findings.text(record), end="")
    if args.catalogue:
        print("\n".join(catalogue_table(record.cases)))
    if record.truncated:
        print(f"testbed report: {args.record}: the last line was cut short (a crash mid-write); "
              "that case is not in the report")
    for path in wrote:
        print(f"testbed report: wrote {path}")
    return 0
