"""testbed down [LAB | --all | --all-users | --stale]"""
from __future__ import annotations

import os
import signal

from testbed.cli import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("down", help="remove a lab and everything it made")
    p.add_argument("lab", nargs="?")
    p.add_argument("--all", action="store_true",
                   help="every lab of the calling user (the uid in the lab's record: the real uid, "
                        "or under sudo the user who ran sudo)")
    p.add_argument("--all-users", action="store_true", help="every lab on the machine, anyone's")
    p.add_argument("--stale", action="store_true",
                   help="labs whose owning process died (crash, SIGKILL)")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import state
    from testbed.cli import need_root
    from testbed.errors import LabError

    if sum(map(bool, (args.lab, args.all, args.all_users, args.stale))) != 1:
        raise UsageError("give one of LAB, --all, --all-users or --stale")
    need_root()
    if args.stale:
        for rec in state.reap_stale():
            print(f"removed stale lab {rec.name} (owner pid {rec.owner.pid} is gone)")
        return 0
    if args.lab:
        rec = state.load(args.lab)
        if rec is None:
            raise LabError(f"no lab named {args.lab!r} is up")
        records = [rec]
    else:
        records = state.all_records()
        if args.all:
            me = state.caller_uid()
            others = [r for r in records if r.uid != me]
            records = [r for r in records if r.uid == me]
            if others:
                print(f"left {len(others)} lab{'s' if len(others) != 1 else ''} of other users "
                      f"({', '.join(r.name for r in others)}); `testbed down --all-users` removes them too")
    for rec in records:
        stop(rec)
        print(f"removed lab {rec.name}")
    return 0


def stop(rec) -> None:
    """Ask a lab's keeper to tear down the lab; reap what is left either
    way.  A lab owned by another live process (a test run) is reaped from
    under it."""
    from testbed import state

    if rec.owner.what == "keeper" and rec.owner.alive():
        os.kill(rec.owner.pid, signal.SIGTERM)
        state.wait_exit(rec.owner.pid, 10.0)
    with state.locked():
        state.reap(rec)
