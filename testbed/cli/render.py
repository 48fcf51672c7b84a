"""testbed render TOPOLOGY [-o FILE] [--no-checks] [--revision srl2|sr6]"""
from __future__ import annotations

import os


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="print a standalone bash (iproute2) script that builds the lab")
    p.add_argument("topology")
    p.add_argument("--name", help="lab name used in the script")
    p.add_argument("-o", "--output", help="write to FILE (made executable) instead of stdout")
    p.add_argument("--revision", choices=("auto", "srl2", "sr6"),
                   help="the series' revision whose `ip` syntax the devices are written in (default: the "
                        "topology's `revision:`, else the oldest that has what the topology asks for)")
    p.add_argument("--no-checks", action="store_true",
                   help="leave out the topology's checks (validate:): a script that only builds the lab")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import topology
    from testbed.render import render_script

    topo = topology.load(args.topology, name=args.name, revision=args.revision)
    script = render_script(topo, with_checks=not args.no_checks, revision=args.revision)
    if args.output:
        with open(args.output, "w") as f:
            f.write(script)
        os.chmod(args.output, 0o755)
    else:
        print(script, end="")
    return 0
