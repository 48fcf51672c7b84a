#!/usr/bin/env python3
"""Lab bring-up + teardown: the engine against the script `testbed render`
makes for the same topology, in one run.

    sudo python3 bench/bring_up.py [topologies/mesh4.yaml] [--runs 5]

Three figures, median of --runs each:
  engine  Lab.up() + Lab.down() in one Python process (what a test fixture pays)
  cli     `testbed up` + `testbed down` as a user types them (adds interpreter
          start-up and the keeper handshake)
  script  bash running the rendered iproute2 script (build, then tear down)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from testbed import topology  # noqa: E402
from testbed.lab import Lab  # noqa: E402
from testbed.render import KSFT_SKIP, render_script  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def engine(topo, name):
    Lab.up(topo, name=name).down()


def cli(path, name):
    for args in (["up", path, "--name", name], ["down", name]):
        subprocess.run([sys.executable, "-m", "testbed.cli", *args], check=True,
                       stdout=subprocess.DEVNULL)


class Skip(Exception):
    """The rendered script skipped (kselftest exit 4): this kernel lacks what it needs."""


def script(path):
    p = subprocess.run(["bash", path, "--no-wait"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode == KSFT_SKIP:
        raise Skip(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "exit 4")
    if p.returncode != 0:
        raise SystemExit(f"bring_up: the rendered script failed (exit {p.returncode}):\n{p.stderr}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", nargs="?", default="topologies/mesh4.yaml")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    topo = topology.load(args.topology)
    name = f"bench{os.getpid()}"
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(render_script(topo))
    skipped = None
    try:
        try:
            script(f.name)  # warm caches (binaries, page cache) before timing anything
        except Skip as e:
            skipped = str(e)
        engine(topo, name)
        results = {
            "engine": [timed(lambda: engine(topo, name)) for _ in range(args.runs)],
            "cli": [timed(lambda: cli(args.topology, name)) for _ in range(args.runs)],
        }
        if not skipped:
            results["script"] = [timed(lambda: script(f.name)) for _ in range(args.runs)]
    finally:
        os.unlink(f.name)
    med = {k: statistics.median(v) for k, v in results.items()}
    n_nodes, n_links = len(topo.nodes), len(topo.links)
    print(f"{args.topology}: {n_nodes} nodes, {n_links} links; up + down, median of {args.runs} runs")
    for k in ("engine", "cli", "script"):
        if k in med:
            print(f"  {k:<7} {med[k] * 1000:8.1f} ms   (min {min(results[k]) * 1000:.1f} ms)")
        else:
            print(f"  {k:<7}     SKIP   ({skipped})")
    if "script" in med:
        print(f"  engine/script = {med['engine'] / med['script']:.3f}   cli/script = {med['cli'] / med['script']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
