"""testbed fuzz [--datapath auto|kernel|ref] [--revision auto|srl2|sr6] [--time S] [--seed N] [--out DIR] ..."""
from __future__ import annotations

import os


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fuzz", help="fuzz the datapath under test: srl2/sr6 device and SID configuration and packets to SIDs",
        description="Drive the datapath under test through create/change requests of the series' device "
                    "(of the revision under test: srl2, sr6 with its modes, tables, HMAC keys, VRF masters), "
                    "SIDs and packets (hypothesis stateful testing) in a small lab, checking after each step "
                    "that the kernel is alive and quiet, counters are consistent and nothing leaks. "
                    "Inside `testbed vm` it survives guest crashes: each boot reads the runner's "
                    "crashes.jsonl, shrinks findings over boots and writes reproducers (OUT/repro/).",
        epilog="example: testbed vm --kernel bzImage --out fz -- python3 -m testbed.cli fuzz --time 600 "
               "--ip /path/to/ip-srl2   |   testbed fuzz --datapath ref --revision sr6 --time 60")
    p.add_argument("--datapath", choices=("auto", "kernel", "ref"), default="auto",
                   help="auto: the kernel's device where this kernel has it, else srl2_ref (default)")
    p.add_argument("--revision", choices=("auto", "srl2", "sr6"), default=None,
                   help="the series' revision to fuzz: auto (what the kernel has; srl2 where it has none), "
                        "srl2 or sr6 (default: $TESTBED_REVISION, else auto)")
    p.add_argument("--time", type=float, default=600.0, metavar="SECONDS",
                   help="fuzzing time over all boots (default 600); shrinking and replays come on top")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    p.add_argument("--out", metavar="DIR",
                   help="journal, findings, reproducers (default: $TESTBED_VM_OUT in a `testbed vm` "
                        "guest, else ./fuzz-results)")
    p.add_argument("--steps", type=int, default=10, help="steps per input (default 10)")
    p.add_argument("--shrink-boots", type=int, default=8, metavar="N",
                   help="boots one finding's shrinking may cost (default 8)")
    p.add_argument("--ip", default=os.environ.get("IP", "ip"), metavar="PATH",
                   help="iproute2 knowing the revision's `type srl2` / `type sr6`, for replaying reproducers "
                        "(default $IP or ip)")
    p.add_argument("--no-verify", action="store_true", help="do not replay reproducers")
    p.add_argument("--max-srh", type=int, default=0, metavar="BYTES",
                   help="keep device SRHs within this size (e.g. 1400): to explore past the wrapped-MTU "
                        "crash long lists trigger on the RFC kernel (default: no limit)")
    p.add_argument("--stop-at-finding", action="store_true",
                   help="end the fuzzing at the first finding (recorded, shrunk and replayed as "
                        "the other options say), not at the end of --time")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.cli import UsageError, need_root
    from testbed.fuzz.run import Options, Runner, choose_target

    if args.time < 0 or args.steps < 1 or args.shrink_boots < 0:
        raise UsageError("--time and --shrink-boots must be at least 0, --steps at least 1")
    need_root()
    # before anything is made: a refusal leaves no --out behind
    target, revision = choose_target(args.datapath, args.revision)
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        from testbed.errors import TestbedError

        raise TestbedError("testbed fuzz needs hypothesis: pip install 'hypothesis>=6.100'") from None
    out = args.out or os.environ.get("TESTBED_VM_OUT") or "fuzz-results"
    opts = Options(target=target, revision=revision.name, time=args.time, seed=args.seed, out=os.path.abspath(out),
                   steps=args.steps, shrink_boots=args.shrink_boots,
                   ip=args.ip, verify=not args.no_verify, max_srh=args.max_srh,
                   stop_at_finding=args.stop_at_finding)
    opts.say(f"{target} datapath, revision {revision.name}, {args.time:g} s, seed {args.seed}; results in {opts.out}")
    return Runner(opts).run()
