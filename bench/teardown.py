#!/usr/bin/env python3
"""Lab teardown: `testbed down` of every topology in topologies/, as a user
types it (a new Python process that asks the lab's keeper to tear down and
waits until everything is gone: datapath processes, namespaces, records).

    sudo python3 bench/teardown.py [TOPOLOGY ...] [--runs 5]

Per topology, median (and min) of --runs: `testbed down` (the whole
command) and `Lab.down()` in one process (what a test fixture pays).
Prints a Markdown table; a topology this host cannot build is a row that
says SKIP and why (e.g. route-based `encap seg6` without
CONFIG_IPV6_SEG6_LWTUNNEL).  Exit 0 when a row was measured, 4 when none
could be, 1 with one line on error; nothing is left behind (bench/common.py).
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

from common import Parser, ROOT, SKIP, host_lacks, main, remove_lab, run, uncut, workdir

from testbed import topology  # (common.py puts the project on sys.path)
from testbed.lab import Lab


def testbed(*args: str) -> None:
    run([sys.executable, "-m", "testbed.cli", *args])


def cli_down(path: str, name: str) -> float:
    testbed("up", path, "--name", name)
    t = time.perf_counter()
    testbed("down", name)
    return time.perf_counter() - t


def engine_down(path: str, name: str) -> tuple[float, str]:
    lab = uncut(Lab.up, topology.load(path), name=name)
    t = time.perf_counter()
    uncut(lab.down)
    return time.perf_counter() - t, lab.record.datapath


def bench() -> int:
    ap = Parser(prog="teardown", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topologies", nargs="*")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs: at least 1")
    paths = args.topologies or sorted(glob.glob(os.path.join(ROOT, "topologies", "*.yaml")))
    topos = {path: topology.load(path) for path in paths}  # every mistake before anything is made
    name = f"bench{os.getpid()}"
    measured = 0
    print(f"teardown, median (min) of {args.runs} runs\n")
    print("| topology | nodes | datapath | `testbed down` | `Lab.down()` |")
    print("|---|---|---|---|---|")
    with workdir("teardown"):
        try:
            for path, topo in topos.items():
                lacks = host_lacks(topo)
                if lacks:
                    print(f"| {os.path.basename(path)} | {len(topo.nodes)} | SKIP: {lacks} | | |", flush=True)
                    continue
                cli_down(path, name)  # warm caches
                cli = [cli_down(path, name) for _ in range(args.runs)]
                engine = [engine_down(path, name) for _ in range(args.runs)]
                dp = engine[0][1]
                eng = [t for t, _ in engine]
                print(f"| {os.path.basename(path)} | {len(topo.nodes)} | {dp} "
                      f"| {statistics.median(cli) * 1000:.0f} ms ({min(cli) * 1000:.0f}) "
                      f"| {statistics.median(eng) * 1000:.0f} ms ({min(eng) * 1000:.0f}) |", flush=True)
                measured += 1
        finally:
            remove_lab(name)  # stopped between an up and its down
    return 0 if measured else SKIP


if __name__ == "__main__":
    sys.exit(main("teardown", bench))
