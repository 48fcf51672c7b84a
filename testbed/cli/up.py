"""testbed up TOPOLOGY [--name NAME] [--datapath auto|kernel|ref] [--foreground]"""
from __future__ import annotations

import json
import os
import signal

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
    p.add_argument("--json", action="store_true", help="print the lab's status as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import keeper, topology

    topo = topology.load(args.topology, name=args.name)
    topo.source = os.path.abspath(args.topology)  # the lab's record: `validate` reads the checks from any cwd
    need_root()
    if args.foreground:
        return _foreground(topo, args)
    reply = keeper.spawn(topo, topo.name, args.datapath, full_status=args.json)
    if args.json:
        print(json.dumps(reply["status"], indent=1))
    else:
        print(summary(topo, reply["datapath"], reply["netns"], f"keeper pid {reply['keeper']}"))
    return 0


def _foreground(topo, args) -> int:
    from testbed import keeper, status
    from testbed.lab import Lab

    lab = Lab.up(topo, datapath=args.datapath)
    try:
        if args.json:
            print(json.dumps(status.collect(lab), indent=1))
        else:
            print(summary(topo, lab.record.datapath, lab.record.netns, f"pid {os.getpid()}"))
        print(f"lab {lab.name} is up in the foreground; Ctrl-C tears it down", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, keeper.STOP_SIGNALS)
        signal.sigwait(keeper.STOP_SIGNALS)
    finally:
        lab.down()
    return 0


def summary(topo, datapath: str, netns: dict[str, str], owner: str) -> str:
    """What `up` prints: the lab as built, from the model (cheap; `testbed
    status` reads the kernel back)."""
    from testbed.render import ascii

    return (f"lab {topo.name} is up: datapath {datapath}, {owner}\n\n"
            f"{ascii.render(topo, netns)}\n\n"
            f"  testbed status {topo.name}          # read back from the kernel, counters\n"
            f"  testbed exec {topo.name} NODE -- CMD  # e.g. testbed exec {topo.name} "
            f"{next(iter(topo.nodes))} -- ip addr\n"
            f"  testbed down {topo.name}")
