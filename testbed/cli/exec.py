"""testbed exec LAB NODE -- CMD..."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("exec", help="run a command inside a node's network namespace")
    p.add_argument("lab")
    p.add_argument("node")
    p.add_argument("command", nargs="+", metavar="-- CMD", help="command and its arguments")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.cli import need_root
    from testbed.lab import Lab
    from testbed.run import CommandError, exec_in

    need_root()
    lab = Lab.attach(args.lab)
    ns = lab.node(args.node)
    cmd = args.command[1:] if args.command[0] == "--" else args.command
    sys.stdout.flush()
    try:
        exec_in(ns, cmd)  # becomes the command: its exit status is the verb's
    except CommandError as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return e.returncode or 1
    return 0  # not reached
