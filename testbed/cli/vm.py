"""testbed vm --kernel bzImage [--memory 2G] [--cpus 2] [--timeout S] [--out DIR] -- CMD..."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "vm", help="boot a kernel under test (virtme-ng) and run a command in it",
        description="Boot KERNEL with virtme-ng (the host's root file system read-only, the "
                    "project directory writable as an overlay, --out shared read-write at the "
                    "same path), run CMD in it, stream its output and exit with its status. "
                    "KVM where it works (probed), software emulation otherwise. After the run the "
                    "guest's kernel log (OUT/dmesg.txt) is scanned: a kernel WARNING, BUG, oops "
                    "or 'dead loop' is reported against the case that was running, and makes the "
                    "exit status non-zero.",
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
                        "dmesg.txt and vm-status.json (default ./vm-results)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto: KVM if the probe says it works, else software emulation (default)")
    p.add_argument("--qemu", metavar="PATH", help="qemu binary (default qemu-system-x86_64)")
    p.add_argument("--cwd", metavar="DIR", help="working directory in the guest (default: the project)")
    p.add_argument("--verbose", "-v", action="store_true", help="show the guest's boot console")
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
    try:
        result = vm.run(spec, accel=args.accel, timeout=args.timeout or None)
    except vm.VmTimeout as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return 124
    accel = "KVM" if spec.kvm else "software emulation"
    print(f"testbed vm: command exited {result.status} on {result.release} ({accel}); "
          f"boot + run {result.seconds:.1f} s; results in {spec.out}", file=sys.stderr)
    if result.problems:
        n = len(result.problems)
        print(f"testbed vm: {n} kernel problem{'s' if n != 1 else ''} in {spec.out}/dmesg.txt "
              f"(listed above); exit status {result.exit_status}", file=sys.stderr)
    return result.exit_status
