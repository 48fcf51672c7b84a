"""testbed up TOPOLOGY [--name NAME] [--datapath auto|kernel|ref] [--foreground] [--json]"""
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
    p.add_argument("--foreground", action="store_true",
                   help="keep the lab in this process until Ctrl-C instead of a background keeper")
    p.add_argument("--json", action="store_true",
                   help="print the lab's status as JSON (and errors as {\"error\": ...})")
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.json:
        return _up(args)
    from testbed.diagnostics import TopologyError
    from testbed.errors import TestbedError

    try:
        return _up(args)
    except TopologyError as e:
        print(json.dumps({"error": f"{len(e.diagnostics)} error(s) in the topology; nothing was built",
                          "diagnostics": [{"file": d.where.file, "line": d.where.line, "col": d.where.col,
                                           "message": d.message} for d in e.diagnostics]}, indent=1))
        return 2
    except (TestbedError, PermissionError) as e:
        print(json.dumps({"error": str(e)}, indent=1))
        return 1


def _up(args) -> int:
    from testbed import keeper, topology

    topo = topology.load(args.topology, name=args.name)
    topo.source = os.path.abspath(args.topology)  # the lab's record: `validate` reads the checks from any cwd
    need_root()
    if args.foreground:
        return _foreground(topo, args)
    pending = keeper.spawn(topo, topo.name, args.datapath, full_status=args.json)
    reply = pending.reply
    try:  # the lab is ours once shown: interrupted before that, it is removed
        if args.json:
            print(json.dumps({**reply["status"], "datapath_why": reply["datapath_why"]}, indent=1))
        else:
            print(summary(topo, reply["datapath"], reply["datapath_why"], reply["netns"],
                          f"keeper pid {reply['keeper']}"))
        sys.stdout.flush()
    except BaseException:
        pending.cancel()
        raise
    pending.accept()
    # The lab is the user's now, and this process has only to exit: a stop
    # signal from here on would kill it during the interpreter's shutdown
    # (which restores the default actions) and report a failed `up` for a
    # lab that is up and kept (seen in tests/test_interrupt.py: exit -15).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    return 0


def _foreground(topo, args) -> int:
    from testbed import guardian, status
    from testbed.lab import Lab

    guardian.begin()  # even a SIGKILL of this process leaves no lab behind
    lab = Lab.up(topo, datapath=args.datapath)
    try:
        if args.json:
            print(json.dumps({**status.collect(lab), "datapath_why": lab.record.datapath_why}, indent=1))
        else:
            print(summary(topo, lab.record.datapath, lab.record.datapath_why, lab.record.netns,
                          f"pid {os.getpid()}"))
        print(f"lab {lab.name} is up in the foreground; Ctrl-C tears it down", flush=True)
        while True:
            signal.pause()  # SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (testbed.cli)
    except KeyboardInterrupt:
        pass
    finally:
        lab.down()
    return 0


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
