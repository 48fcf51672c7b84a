"""testbed up TOPOLOGY [--name NAME] [--datapath auto|kernel|ref] [--foreground]"""
from __future__ import annotations

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
    from testbed import keeper, status, topology
    from testbed.lab import Lab

    topo = topology.load(args.topology, name=args.name)  # YAML errors before any privilege check
    need_root()
    if args.foreground:
        lab = Lab.up(topo, datapath=args.datapath)
        try:
            _show(status, lab, args.json)
            print(f"lab {lab.name} is up; Ctrl-C to tear it down", flush=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, keeper.STOP_SIGNALS)
            signal.sigwait(keeper.STOP_SIGNALS)
        finally:
            lab.down()
        return 0
    keeper.spawn(topo, topo.name, args.datapath)
    lab = Lab.attach(topo.name)
    try:
        _show(status, lab, args.json)
    finally:
        lab.close()
    return 0


def _show(status, lab, as_json: bool) -> None:
    import json

    info = status.collect(lab)
    print(json.dumps(info, indent=1) if as_json else status.format_text(info))
