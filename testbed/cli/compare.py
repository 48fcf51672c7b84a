"""testbed compare BASELINE NEW [--json]

A run against a baseline run (docs: README, "Results, reports and
comparisons"): newly failing, new crashes, fixed, unchanged findings, cases
missing or new.  Exit status 1 when something newly fails or crashes, 0
otherwise: a CI step as it stands.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare the record of a run with a baseline record; "
                                       "exit 1 when something newly fails or crashes")
    p.add_argument("baseline", help="the baseline record (e.g. baselines/srl2-rfc-6.12.jsonl)")
    p.add_argument("new", help="the record of the new run")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from testbed.results import compare
    from testbed.results.record import read

    cmp = compare.compare(read(args.baseline), read(args.new))
    if args.json:
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        print(compare.text(cmp), end="")
    return cmp.exit_status()
