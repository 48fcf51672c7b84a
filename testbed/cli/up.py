"""testbed up TOPOLOGY [--name NAME] [--datapath auto|kernel|ref] [--revision auto|srl2|sr6] [--foreground] [--json]"""
from __future__ import annotations

import json
import os
import signal
import sys

from testbed.cli import need_root


def add_parser(sub) -> None:
    p = sub.add_parser("up", help="build a lab from a topology file",
                       description="Build the lab a YAML topology describes, owned by a background "
                                   "keeper process until `testbed down`.")
    p.add_argument("topology", help="YAML topology file (e.g. topologies/p2p.yaml)")
    p.add_argument("--name", help="lab name (default: the topology's name); "
                                  "lets the same file run twice side by side")
    p.add_argument("--datapath", choices=("auto", "kernel", "ref"),
                   help="override the topology's datapath (auto: kernel if it has srl2, else ref)")
    p.add_argument("--revision", choices=("auto", "srl2", "sr6"),
                   help="revision of the series the devices are (default: the topology's `revision:`, "
                        "else auto: what the kernel has, srl2 where it has none)")
    p.add_argument("--foreground", action="store_true",
                   help="keep the lab in this process until Ctrl-C, SIGTERM or `testbed down` "
                        "instead of a background keeper")
    p.add_argument("--json", action="store_true",
                   help="print the lab's status as JSON (and errors as {\"error\": ...})")
    p.set_defaults(run=run)


# `up`'s status when the lab is as asked but its stdout could not be written
# (`up | head -1` once head has gone): what a shell reports for a command
# killed by SIGPIPE, and distinct from 1, a lab that is not up.
OUTPUT_LOST = 128 + signal.SIGPIPE


def run(args) -> int:
    if not args.json:
        return _up(args)
    from testbed.diagnostics import TopologyError
    from testbed.errors import TestbedError

    try:
        return _up(args)
    except TopologyError as e:
        error = f"{len(e.diagnostics)} error(s) in the topology; nothing was built"
        _show_error({"error": error,
                     "diagnostics": [{"file": d.where.file, "line": d.where.line, "col": d.where.col,
                                      "message": d.message} for d in e.diagnostics]})
        return 2
    except (TestbedError, PermissionError) as e:
        _show_error({"error": str(e)})
        return 1


def _show_error(error: dict) -> None:
    """An error as JSON on stdout, or as testbed's one line on stderr if
    stdout cannot be written: a failed `up` never looks like a success."""
    if _write(json.dumps(error, indent=1)) is not None:
        _say(f"testbed: error: {error['error']}")


def _up(args) -> int:
    from testbed import keeper, topology

    if args.revision:  # read by the engine, here and in the keeper it spawns
        os.environ["TESTBED_REVISION"] = args.revision
    topo = topology.load(args.topology, name=args.name, revision=args.revision)
    topo.source = os.path.abspath(args.topology)  # the lab's record: `validate` reads the checks from any cwd
    need_root()
    if args.foreground:
        return _foreground(topo, args)
    pending = keeper.spawn(topo, topo.name, args.datapath, full_status=args.json)
    reply = pending.reply
    try:  # interrupted before the lab is shown, it is removed
        if args.json:
            lost = _write(json.dumps({**reply["status"], "datapath_why": reply["datapath_why"]}, indent=1))
        else:
            lost = _write(summary(topo, reply["datapath"], reply["datapath_why"], reply["netns"],
                                  f"keeper pid {reply['keeper']}"))
    except BaseException:
        pending.cancel()
        raise
    # The lab is up and the keeper has it: a stdout that cannot be written
    # does not undo it (the caller asked for a lab, and `status` shows it),
    # but is not a success either.
    pending.accept()
    # The lab is the user's now, and this process has only to exit: a stop
    # signal from here on would kill it during the interpreter's shutdown
    # (which restores the default actions) and report a failed `up` for a
    # lab that is up and kept (seen in tests/test_interrupt.py: exit -15).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if lost is not None:
        _say(f"testbed: lab {topo.name} is up, but its status could not be written to stdout ({lost}); "
             f"see it with: testbed status {topo.name}; remove it with: testbed down {topo.name}")
        return OUTPUT_LOST
    return 0


def _foreground(topo, args) -> int:
    from testbed import guardian, status
    from testbed.lab import Lab

    guardian.begin()  # even a SIGKILL of this process leaves no lab behind
    lab = Lab.up(topo, datapath=args.datapath)
    try:
        if args.json:
            shown = json.dumps({**status.collect(lab), "datapath_why": lab.record.datapath_why}, indent=1)
        else:
            shown = summary(topo, lab.record.datapath, lab.record.datapath_why, lab.record.netns,
                            f"pid {os.getpid()}")
        ends = f"Ctrl-C or `testbed down {lab.name}` ends it"
        lost = _write(f"{shown}\nlab {lab.name} is up in the foreground; {ends}")
        if lost is not None:  # the lab stays: this process is its owner, and nothing went wrong with it
            _say(f"testbed: lab {lab.name} is up in the foreground, but its status could not be written "
                 f"to stdout ({lost}); {ends}")
        # Stop signals raise KeyboardInterrupt here (testbed.cli): the lab
        # is removed below, and the CLI says "interrupted" and exits 128+N.
        _until_taken_down(lab)
    except BaseException:
        if _still_ours(lab):
            lab.down()
        else:  # taken down meanwhile: the name may be another lab's already
            _forget(lab)
        raise
    _forget(lab)
    lost = _write(f"lab {lab.name} was taken down (testbed down); the foreground up ends") or lost
    return OUTPUT_LOST if lost is not None else 0


def _still_ours(lab) -> bool:
    """Whether the lab's record on disk is still this process's lab (`testbed
    down` removes the record of a lab owned by a process, not a keeper,
    without asking it)."""
    from testbed import state

    rec = state.load(lab.name)
    return rec is not None and (rec.owner.pid, rec.owner.start) == (lab.record.owner.pid, lab.record.owner.start)


def _until_taken_down(lab) -> None:
    """Return once the lab is no longer this process's (its record removed
    or replaced).  The watch starts before the first look, so that no
    removal falls between the two."""
    import select
    import time

    from testbed import state

    fd = state.watch_records()
    try:
        while _still_ours(lab):
            if fd is None:  # no inotify instance to be had: look every second
                time.sleep(1.0)
            else:  # woken by any record's removal or replacement (other labs' too: then it looks again)
                select.select([fd], [], [])
                state.drain(fd)
    finally:
        if fd is not None:
            os.close(fd)


def _forget(lab) -> None:
    """Let go of a lab someone else has removed: wait for its datapath's
    processes (killed by `down`: our children) and close its namespaces,
    without touching anything by name."""
    import contextlib

    if lab.datapath is not None:
        with contextlib.suppress(Exception):
            lab.datapath.stop()
    lab.close()


def _write(text: str) -> str | None:
    """Print TEXT on stdout; None once written, else why not ("Broken pipe":
    `up | head -1` once head has gone).  Then stdout becomes /dev/null, so
    that later prints and Python's last flush of what is left in its buffer
    do not fail again (a traceback at exit, status 120)."""
    try:
        if sys.stdout is None:  # started with fd 1 closed: print() would drop the text silently
            raise OSError(9, "stdout is closed")
        print(text, flush=True)
        return None
    except OSError as e:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        return e.strerror or str(e)


def _say(line: str) -> None:
    """One line on stderr, if stderr can be written at all."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, AttributeError):  # closed too (AttributeError: sys.stderr is None)
        pass


def summary(topo, datapath: str, why: str, netns: dict[str, str], owner: str) -> str:
    """What `up` prints: the lab as built, from the model (cheap; `testbed
    status` reads the kernel back)."""
    from testbed.render import ascii

    because = f"\nwhy datapath {datapath}: {why}" if why else ""
    return (f"lab {topo.name} is up: datapath {datapath}, {owner}{because}\n\n"
            f"{ascii.render(topo, netns)}\n\n"
            f"  testbed status {topo.name}          # read back from the kernel, counters\n"
            f"  testbed exec {topo.name} NODE -- CMD  # e.g. testbed exec {topo.name} "
            f"{next(iter(topo.nodes))} -- ip addr\n"
            f"  testbed down {topo.name}")
