"""testbed vm --kernel bzImage [--memory 2G] [--cpus 2] [--timeout S] [--out DIR]
[--max-boots N] [--hang-after S] [--stop-on crash|warning] -- CMD..."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "vm", help="boot a kernel under test (virtme-ng) and run a command in it",
        description="Boot KERNEL with virtme-ng (the host's root file system read-only, the "
                    "project directory writable as an overlay, --out shared read-write at the "
                    "same path), run CMD in it, stream its output and exit with its status. "
                    "KVM where it works (probed), software emulation otherwise. The kernel console "
                    "(OUT/console.txt) is watched: a panic, BUG, oops or general protection fault "
                    "(or a hang) ends the VM within seconds, is appended to OUT/crashes.jsonl with "
                    "the work that was running, and the same command runs again in a fresh boot "
                    "(TESTBED_VM_BOOT=2, 3, ...), until it finishes or --max-boots. After each "
                    "boot the guest's kernel log (OUT/dmesg.txt) is scanned: a kernel WARNING, "
                    "BUG, oops or 'dead loop' is reported against the case that was running. "
                    "Exit status: the command's; 1 if it was 0 but the kernel crashed or "
                    "complained; 124 on --timeout; 130/143 on SIGINT/SIGTERM (the VM is stopped).",
        epilog="example: testbed vm --kernel arch/x86/boot/bzImage --out vm-results -- "
               "python3 -m pytest cases/ --datapath kernel --junitxml=vm-results/junit.xml "
               "--ktap=vm-results/ktap.txt --results=vm-results")
    p.add_argument("--kernel", required=True, metavar="IMAGE",
                   help="kernel image: arch/x86/boot/bzImage, or boot/vmlinuz-RELEASE of an "
                        "unpacked package (its lib/modules/RELEASE is found beside it)")
    p.add_argument("--memory", default="2G", help="guest memory (default 2G)")
    p.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="kill the VM after this long, boot included (default 3600; 0: none)")
    p.add_argument("--out", default="vm-results", metavar="DIR",
                   help="results directory, writable in the guest at the same path; gets "
                        "dmesg.txt, console.txt, crashes.jsonl and vm-status.json "
                        "(default ./vm-results)")
    p.add_argument("--max-boots", type=int, default=8, metavar="N",
                   help="run the command in at most N boots: after a crash it runs again in a "
                        "fresh boot (default 8; 1: never again). A boot that crashes before the "
                        "command starts is booted again and not counted (3 in a row: an error)")
    p.add_argument("--hang-after", type=float, metavar="SECONDS",
                   help="a guest with no output and no progress for this long once the command "
                        "has started (before: at least 300 s) has hung: it is ended and recorded "
                        "as a crash of kind 'hang' (default 120 under KVM, 600 under software "
                        "emulation)")
    p.add_argument("--stop-on", choices=("crash", "warning"), default="crash",
                   help="crash: a panic, BUG, oops or general protection fault ends the boot "
                        "(default); warning: a kernel WARNING does too")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto: KVM if the probe says it works, else software emulation (default)")
    p.add_argument("--qemu", metavar="PATH", help="qemu binary (default qemu-system-x86_64)")
    p.add_argument("--cwd", metavar="DIR", help="working directory in the guest (default: the project)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show the guest's kernel console (always kept in OUT/console.txt)")
    p.add_argument("--dry-run", action="store_true", help="print the vng command line and exit")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD",
                   help="command to run in the guest, and its arguments")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import vm

    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise vm.VmError("no command given: testbed vm --kernel IMAGE -- CMD...")
    if args.cpus < 1:
        raise vm.VmError(f"--cpus {args.cpus}: must be at least 1")
    spec = vm.VmSpec(kernel=args.kernel, command=cmd, out=os.path.abspath(args.out),
                     cwd=os.path.abspath(args.cwd) if args.cwd else "", memory=args.memory,
                     cpus=args.cpus, qemu=args.qemu, verbose=args.verbose)
    if args.dry_run:
        spec.kvm = args.accel == "kvm"
        print(shlex.join(vm.vng_argv(spec)))
        print(f"# {os.path.join(spec.out, vm.REQUEST_FILE)}: {json.dumps(vm.guest_request(spec))}")
        return 0
    if args.max_boots < 1:
        raise vm.VmError(f"--max-boots {args.max_boots}: must be at least 1")
    if args.hang_after is not None and args.hang_after <= 0:
        raise vm.VmError(f"--hang-after {args.hang_after:g}: must be positive")
    try:
        with _signals_interrupt():
            result = vm.run(spec, accel=args.accel, timeout=args.timeout or None,
                            hang_after=args.hang_after, max_boots=args.max_boots,
                            stop_on_warning=args.stop_on == "warning")
    except vm.VmTimeout as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return 124
    except vm.Interrupted as e:
        name = signal.Signals(e.signum).name
        print(f"testbed vm: interrupted by {name}: stopped the VM; results so far in {spec.out}",
              file=sys.stderr)
        return 128 + e.signum
    accel = "KVM" if spec.kvm else "software emulation"
    boots = f"{result.boots} boots" if result.boots > 1 else "1 boot"
    last = ("the last boot crashed" if result.status is None
            else f"command exited {result.status}")
    print(f"testbed vm: {last} on {result.release} ({accel}); {boots}, "
          f"{result.seconds:.1f} s; results in {spec.out}", file=sys.stderr)
    if result.boot_crashes:
        n = len(result.boot_crashes)
        print(f"testbed vm: {n} boot{'s' if n != 1 else ''} failed before the command started "
              f"and {'were' if n != 1 else 'was'} booted again (not counted in the exit status), "
              f"in {spec.out}/{vm.BOOT_CRASH_FILE}: "
              + "; ".join(f"boot {c.boot}: {c.title}" for c in result.boot_crashes), file=sys.stderr)
    if result.crashes:
        n = len(result.crashes)
        print(f"testbed vm: {n} crash{'es' if n != 1 else ''} in {spec.out}/{vm.CRASH_FILE}: "
              + "; ".join(f"boot {c.boot}: {c.summary()}" for c in result.crashes), file=sys.stderr)
    if result.problems:
        n = len(result.problems)
        print(f"testbed vm: {n} kernel problem{'s' if n != 1 else ''} in {spec.out}/dmesg*.txt "
              f"(listed above)", file=sys.stderr)
    if result.exit_status != (result.status or 0):
        why = "the kernel crashed" if result.crashes else "the kernel complained"
        print(f"testbed vm: exit status {result.exit_status}: {why}", file=sys.stderr)
    return result.exit_status


@contextlib.contextmanager
def _signals_interrupt():
    """SIGINT and SIGTERM raise vm.Interrupted, so that the VM (qemu's whole
    process group) is stopped on the way out; a second one while stopping
    is ignored."""
    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise vm.Interrupted(signum)

    from testbed import vm

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
