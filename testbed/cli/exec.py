"""testbed exec LAB NODE -- CMD..."""
from __future__ import annotations

import os
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("exec", help="run a command inside a node's network namespace")
    p.add_argument("lab")
    p.add_argument("node")
    p.add_argument("command", nargs="+", metavar="-- CMD", help="command and its arguments")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import linux
    from testbed.cli import need_root
    from testbed.lab import Lab

    need_root()
    lab = Lab.attach(args.lab)
    ns = lab.node(args.node).name
    cmd = args.command[1:] if args.command[0] == "--" else args.command
    sys.stdout.flush()
    linux.enter_for_exec(ns)
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        print(f"testbed: error: {cmd[0]}: command not found", file=sys.stderr)
        return 127
