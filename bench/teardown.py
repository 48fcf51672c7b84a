#!/usr/bin/env python3
"""Lab teardown: `testbed down` of every topology in topologies/, as a user
types it (a new Python process that asks the lab's keeper to tear down and
waits until everything is gone: datapath processes, namespaces, records).

    sudo python3 bench/teardown.py [TOPOLOGY ...] [--runs 5]

Per topology, median (and min) of --runs: `testbed down` (the whole
command) and `Lab.down()` in one process (what a test fixture pays).
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from testbed import topology  # noqa: E402
from testbed.lab import Lab  # noqa: E402


def testbed(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "testbed.cli", *args], check=True, stdout=subprocess.DEVNULL)


def cli_down(path: str, name: str) -> float:
    testbed("up", path, "--name", name)
    t = time.perf_counter()
    testbed("down", name)
    return time.perf_counter() - t


def engine_down(path: str, name: str) -> tuple[float, str]:
    lab = Lab.up(topology.load(path), name=name)
    t = time.perf_counter()
    lab.down()
    return time.perf_counter() - t, lab.record.datapath


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topologies", nargs="*")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    paths = args.topologies or sorted(glob.glob(os.path.join(ROOT, "topologies", "*.yaml")))
    name = f"bench{os.getpid()}"
    print(f"teardown, median (min) of {args.runs} runs\n")
    print("| topology | nodes | datapath | `testbed down` | `Lab.down()` |")
    print("|---|---|---|---|---|")
    for path in paths:
        topo = topology.load(path)
        cli_down(path, name)  # warm caches
        cli = [cli_down(path, name) for _ in range(args.runs)]
        engine = [engine_down(path, name) for _ in range(args.runs)]
        dp = engine[0][1]
        eng = [t for t, _ in engine]
        print(f"| {os.path.basename(path)} | {len(topo.nodes)} | {dp} "
              f"| {statistics.median(cli) * 1000:.0f} ms ({min(cli) * 1000:.0f}) "
              f"| {statistics.median(eng) * 1000:.0f} ms ({min(eng) * 1000:.0f}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
