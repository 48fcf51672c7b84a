#!/usr/bin/env python3
"""Time to the first case in `testbed vm`: where a boot's time goes before
the conformance suite does any work, as CI pays it once per boot.

    python3 bench/vm_first_case.py --kernel ../shared/kernels/srl2-rfc-6.12/bzImage \\
        [--workers 2] [--runs 1] [-k EXPR]

Each run boots the kernel once with `pytest cases/ --datapath kernel -n
WORKERS -k EXPR` (the whole suite is collected, EXPR selects what runs) and
reads the kernel's clock from the console (testbed/kmsg.py markers):
kernel start to the guest command's start (boot), command start to the
first case's start (Python, pytest, xdist workers, imports, collection,
the probe), the first case to the command's end; and the host's wall
time of the whole `testbed vm`.  Prints a Markdown table; exit 1 with one
line on error.  Absolute figures under software emulation depend on the
machine's load: compare runs of one session.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, Parser, main

MARK = re.compile(r"^\[\s*(\d+\.\d+)\] testbed: (.*)$")


def marks(console: str) -> dict[str, float]:
    """Kernel-clock seconds of the first command start, first case start
    and the last command end in a console log."""
    found: dict[str, float] = {}
    for line in console.splitlines():
        m = MARK.match(line)
        if not m:
            continue
        t, what = float(m.group(1)), m.group(2)
        if what.startswith("vm command START"):
            found.setdefault("command", t)
        elif what.startswith("START case"):
            found.setdefault("case", t)
        elif what.startswith("vm command END"):
            found["end"] = t
    return found


def one_run(kernel: str, workers: int, expr: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-vm-") as out:
        t = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-m", "testbed.cli", "vm", "--kernel", kernel, "--out", out, "--max-boots", "1",
             "--timeout", "1200", "--", "python3", "-m", "pytest", "cases/", "--datapath", "kernel",
             "-p", "no:cacheprovider", "-q", "-n", str(workers), "-k", expr],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - t
        with open(os.path.join(out, "console.txt"), errors="replace") as f:
            found = marks(f.read())
    if "case" not in found or "command" not in found:
        tail = p.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"no case started in the guest (testbed vm exit {p.returncode}): {' | '.join(tail)}")
    return {"boot": found["command"], "to_first_case": found["case"] - found["command"],
            "after": found.get("end", found["case"]) - found["case"], "wall": wall}


def bench() -> int:
    ap = Parser(prog="vm_first_case", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("-k", dest="expr", default="test_outer_headers_of_a_frame",
                    help="which cases run (pytest -k; default: H1's first case)")
    args = ap.parse_args()
    if not os.path.isfile(args.kernel):
        ap.error(f"--kernel {args.kernel}: no such file")
    kernel = os.path.abspath(args.kernel)
    runs = [one_run(kernel, args.workers, args.expr) for _ in range(args.runs)]
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"testbed vm, {os.path.basename(os.path.dirname(kernel))}, pytest -n {args.workers} -k {args.expr}: "
          f"median of {len(runs)} run(s), load {load} at the end\n")
    print("| kernel start → command | command → first case | first case → end | wall (host) |")
    print("|---:|---:|---:|---:|")
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"| {med['boot']:.1f} s | {med['to_first_case']:.1f} s | {med['after']:.1f} s | {med['wall']:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main("vm_first_case", bench))
