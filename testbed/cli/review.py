"""testbed review KERNEL [KERNEL...] [--out DIR] [--baseline RECORD] [--previous RECORD] [--workers N]
[--timeout S] [--no-confirm] [-v]

One command for a reviewer or a CI job: each kernel image booted in
`testbed vm`, the kernel-datapath suite run in it, the record compared with
the kernel's baseline (a changed verdict confirmed in a fresh boot), the
revisions compared clause by clause, every report in one directory
(testbed/review.py; README, "Testing a kernel").
"""
from __future__ import annotations

# Not testbed.review's own: parsing imports every verb, and that module loads testbed.vm.
WORKERS, TIMEOUT = 2, 3600.0
EPILOG = """\
results, in OUT (default ./review-results):
  NAME/          one per kernel, named after the image's directory (kernels/srl2-rfc-6.12/bzImage:
                 srl2-rfc-6.12; the release for an image in a boot/ directory): testbed vm's files
                 (record.jsonl, console.txt, dmesg*.txt, crashes.jsonl, pcaps/), output.txt (the
                 guest's), findings.txt, report.html, junit.xml, ktap.txt (of every boot),
                 compare.txt, compare.json (against the baseline), confirm/ (the fresh boot)
  revisions.txt, .html, .json
                 consecutive kernels (and --previous before the first) clause by clause
  summary.txt    a line per kernel and the exit status (also printed)

baseline: the record in baselines/ whose header has the kernel's release (several: the shards of
one run, merged); without one, any failing or crashed case is a finding and nothing is confirmed.

exit status:
  0    every kernel's verdicts as in its baseline
  1    a changed verdict (newly failing, new crash, fixed, a case missing) that a fresh boot
       confirmed (with --no-confirm: any); without a baseline: a failing or crashed case
  2    usage: a kernel image that is not one, a record that cannot be read
  3    a run did not complete: no VM tools, the VM did not boot or timed out, pytest gave no
       verdict (whatever the other kernels found)
  130, 143  interrupted by SIGINT, SIGTERM (the VM is stopped)
the comparison across revisions is a report: it does not change the exit status.

example: testbed review ../shared/kernels/srl2-rfc-6.12/bzImage ../shared/kernels/sr6-rfc-v2-6.12/bzImage \\
             --out review"""


def add_parser(sub) -> None:
    import argparse

    p = sub.add_parser(
        "review", help="boot kernel images in testbed vm, run the suite, compare with their baselines and "
                       "with each other; reports in one directory",
        description="For each KERNEL: boot it in testbed vm, run the kernel-datapath suite (as "
                    ".ci/vm-rfc.sh does, resumed after a crash), write the findings, HTML, JUnit and KTAP "
                    "of every boot, compare the record with the kernel's baseline and confirm a changed "
                    "verdict by running the differing cases again in a fresh boot. Then compare consecutive "
                    "kernels clause by clause, and write a summary.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kernels", nargs="+", metavar="KERNEL",
                   help="kernel image (bzImage); its directory goes first on the guest's PATH (ip-srl2, ip-sr6)")
    p.add_argument("--out", default="review-results", metavar="DIR",
                   help="results directory (default ./review-results)")
    p.add_argument("--baseline", metavar="RECORD",
                   help="the baseline record (only with one KERNEL; default: the one in baselines/ of its release)")
    p.add_argument("--previous", metavar="RECORD",
                   help="the record of the previous revision, compared clause by clause with the first KERNEL's")
    p.add_argument("--workers", type=int, default=WORKERS, metavar="N",
                   help=f"pytest -n in the guest (default {WORKERS}: the guest has 2 CPUs)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS",
                   help=f"each run's time in testbed vm, boots included (default {TIMEOUT:g}; 0: none)")
    p.add_argument("--no-confirm", action="store_true",
                   help="count a changed verdict without running its cases again in a fresh boot")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show the guest's output (always kept in OUT/NAME/output.txt)")
    p.set_defaults(run=run)


def run(args) -> int:
    import os
    import signal
    import sys

    from testbed import review
    from testbed.cli import UsageError
    from testbed.cli.vm import _signals_interrupt
    from testbed.results import merge
    from testbed.results.record import RecordError
    from testbed.vm import Interrupted, VmError

    if args.baseline and len(args.kernels) > 1:
        raise UsageError(f"--baseline is the baseline of one kernel; {len(args.kernels)} given "
                         "(without it, each kernel's is found in baselines/ by its release)")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be at least 1")
    if args.timeout < 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be 0 (none) or more")
    try:
        kernels = review.kernels(args.kernels, args.baseline, review.checkout_baselines())
        previous = merge.read_all([args.previous]) if args.previous else None
        for k in kernels:
            merge.read_all(k.baseline)
    except (VmError, RecordError) as e:
        raise UsageError(str(e)) from None
    try:
        review.check_host(kernels)
    except VmError as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return review.RUNNER
    out = os.path.abspath(args.out)
    try:
        with _signals_interrupt():
            return review.review(kernels, out, previous, workers=args.workers, timeout=args.timeout,
                                 confirm=not args.no_confirm, echo=args.verbose)
    except Interrupted as e:
        print(f"testbed review: interrupted by {signal.Signals(e.signum).name}: stopped the VM; "
              f"results so far in {out}", file=sys.stderr)
        return 128 + e.signum
