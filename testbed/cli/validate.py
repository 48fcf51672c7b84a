"""testbed validate LAB [--json] [--list] [--tests NAME...] [--topology FILE]

Runs the checks of the lab's topology (its `validate:` section,
docs/topology.md "Checks") against the running lab.  Exit status as
netlab's: 0 every check holds, 1 a check failed, 3 the lab or the
topology could not be used."""
from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 3


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="run the topology's checks (validate:) against a running lab",
                       description="Run the checks written in the lab's topology (validate:) against the "
                                   "running lab, one line per check. Exit 0: all ok; 1: a check failed; "
                                   "3: lab or topology error.")
    p.add_argument("lab")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--list", action="store_true", help="list the checks (and their probes); run nothing")
    p.add_argument("--tests", nargs="+", metavar="NAME", help="run only these checks")
    p.add_argument("--topology", metavar="FILE",
                   help="read the checks from FILE instead of the topology the lab was built from")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.cli import UsageError, usage_error
    from testbed.diagnostics import TopologyError
    from testbed.errors import TestbedError

    try:
        return _validate(args)
    except UsageError as e:  # validate's own status for it (netlab's), not argparse's 2
        return usage_error(args, str(e), EXIT_ERROR)
    except TopologyError as e:
        n = len(e.diagnostics)
        print(f"{e}\ntestbed: {n} error{'s' if n != 1 else ''} in the topology; nothing was checked",
              file=sys.stderr)
    except TestbedError as e:
        print(f"testbed: error: {e}", file=sys.stderr)
    return EXIT_ERROR


def _validate(args) -> int:
    from testbed import state, topology
    from testbed.errors import LabError
    from testbed.topology.yamlpos import did_you_mean
    from testbed.validate import plan, report

    record = state.load(args.lab)
    if record is None:
        raise LabError(f"no lab named {args.lab!r} is up (see: testbed status)")
    path = args.topology or record.topology
    topo = topology.load(path, name=record.name)
    if args.topology:
        _same_nodes(record, topo, path)
    if not topo.checks:
        raise LabError(f"{path} has no checks (add a validate: section, see docs/topology.md)")
    names = [c.name for c in topo.checks]
    for name in args.tests or []:
        if name not in names:
            raise LabError(f"{path} has no check {name!r}{did_you_mean(name, names)} "
                           f"(checks: {', '.join(names)})")
    probes = plan.probes(topo, args.tests)
    if args.list:
        return _list(topo, probes, args)

    from testbed.cli import need_root
    from testbed.lab import Lab
    from testbed.validate.run import run as run_probes

    need_root()
    if record.stale():
        raise LabError(f"lab {args.lab!r} is not running (its owner, pid {record.owner.pid}, is gone); "
                       f"testbed down --stale removes it")
    lab = Lab.attach(args.lab)
    try:
        on_result = None if args.json else (lambda r: print(report.line(r), flush=True))
        results = run_probes(lab, topo, probes, on_result)
    finally:
        lab.close()
    if args.json:
        print(json.dumps(report.as_json(args.lab, path, results), indent=1))
    else:
        print(report.summary(args.lab, results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _same_nodes(record, topo, path: str) -> None:
    """Refuse checks from a topology of other nodes than the lab's: they
    would run against nodes that are not there (or miss those that are),
    and their failures would say nothing about the lab."""
    from testbed.cli import UsageError

    differs = [f"{', '.join(names)} only in {where}" for names, where in (
        ([n for n in topo.nodes if n not in record.netns], path),
        ([n for n in record.netns if n not in topo.nodes], "the lab")) if names]
    if differs:
        raise UsageError(f"--topology {path} has other nodes than lab {record.name!r} ({'; '.join(differs)}); "
                         f"the lab was built from {record.topology}")


def _list(topo, probes, args) -> int:
    if args.json:
        print(json.dumps([{"check": p.check, "title": p.title} for p in probes], indent=1))
        return EXIT_OK
    for check in topo.checks:
        if args.tests and check.name not in args.tests:
            continue
        print(f"{check.name} ({check.kind}, {check.where})" + (f": {check.description}" if check.description else ""))
        for p in probes:
            if p.check == check.name:
                print(f"    {p.title}")
    return EXIT_OK
