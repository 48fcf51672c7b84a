"""testbed status [LAB] [--json]"""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="show running labs: nodes, netns, interfaces, addresses, routes, SIDs")
    p.add_argument("lab", nargs="?", help="one lab (default: every lab)")
    p.add_argument("--json", action="store_true", help="machine-readable output (netns of every node included)")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import status
    from testbed.cli import need_root
    from testbed.lab import Lab

    need_root()
    if args.lab:
        lab = Lab.attach(args.lab)
        try:
            infos = [status.collect(lab)]
        finally:
            lab.close()
    else:
        infos = status.collect_all()
    if args.json:
        print(json.dumps(infos[0] if args.lab else infos, indent=1))
    elif not infos:
        print("no labs are up")
    else:
        print("\n\n".join(status.format_text(i) for i in infos))
    return 0
