"""testbed compare BASELINE NEW [--json] [--allow-missing]

A run against a baseline run (docs: README, "Results, reports and
comparisons"): newly failing, new crashes, fixed, unchanged findings, cases
missing or new.  Exit status 1 when something newly fails or crashes, when
cases of the baseline are missing from NEW (or NEW's last line was cut
short) unless --allow-missing, when NEW has no case at all, and when a
record cannot be read; 0 otherwise: a CI step as it stands.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare the record of a run with a baseline record; exit 1 when "
                                       "something newly fails or crashes, or cases of the baseline are missing")
    p.add_argument("baseline", help="the baseline record (e.g. baselines/srl2-rfc-6.12.jsonl)")
    p.add_argument("new", help="the record of the new run")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--allow-missing", action="store_true",
                   help="compare what ran: cases of the baseline missing from NEW do not fail the comparison "
                        "(NEW must still have a case)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from testbed.results import compare
    from testbed.results.record import read

    baseline, new = read(args.baseline), read(args.new)
    cmp = compare.compare(baseline, new, allow_missing=args.allow_missing)
    if args.json:
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        print(compare.text(cmp), end="")
    if baseline.truncated:
        print(f"testbed compare: {baseline.cut_text()}; that case is not compared", file=sys.stderr)
    for line in cmp.notices():
        print(f"testbed compare: {line}", file=sys.stderr)
    return cmp.exit_status()
