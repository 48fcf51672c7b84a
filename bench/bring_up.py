#!/usr/bin/env python3
"""Lab bring-up + teardown: the engine against the script `testbed render`
makes for the same topology, in one run.

    sudo python3 bench/bring_up.py [topologies/mesh4.yaml] [--runs 5]
    sudo python3 bench/bring_up.py --sizes 6,12,24,50,100 [--runs 2] [--plots DIR | --no-plots]

The second form generates labs of growing size (a chain of routers, one host
on each: End SIDs, routes to the neighbours' locators, a rule, per router),
measures each, and with matplotlib (`pip install -e '.[plots]'`) draws time
against lab size as DIR/bring_up.png and DIR/bring_up.svg (DIR defaults to
docs/plots).

Three figures, median of --runs each:
  engine  Lab.up() + Lab.down() in one Python process (what a test fixture pays)
  cli     `testbed up` + `testbed down` as a user types them (adds interpreter
          start-up and the keeper handshake)
  script  bash running the rendered iproute2 script (build, then tear down)

A figure this host cannot measure is a SKIP line with the reason: the
rendered script's own SKIP line (no srl2, no seg6 lwtunnels, ...), or for the
engine and the CLI what the kernel lacks for the topology (route-based
`encap seg6` needs CONFIG_IPV6_SEG6_LWTUNNEL on every datapath).  Exit 0
when something was measured, 4 when nothing could be, 1 with one line on
error; nothing is left behind (bench/common.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import Parser, ROOT, SKIP, host_lacks, main, remove_lab, run, uncut, workdir

from testbed import topology  # (common.py puts the project on sys.path)
from testbed.lab import Lab
from testbed.render import KSFT_SKIP, render_script

METHODS = ("engine", "cli", "script")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def engine(topo, name):
    uncut(lambda: Lab.up(topo, name=name).down())


def cli(path, name):
    for args in (["up", path, "--name", name], ["down", name]):
        run([sys.executable, "-m", "testbed.cli", *args])


class Skip(Exception):
    """The rendered script skipped (kselftest exit 4): this kernel lacks what it needs."""


def script(path):
    try:
        run(["bash", path, "--no-wait"])
    except subprocess.CalledProcessError as e:
        if e.returncode == KSFT_SKIP:
            err = (e.stderr or "").strip()
            raise Skip(err.splitlines()[-1] if err else "exit 4") from None
        raise


def chain(nodes: int) -> str:
    """YAML of a lab of `nodes` nodes (even, >= 4): routers rt-1 .. rt-R in a
    chain, host hs-i on rt-i; rt-i owns locator fcff:i::/32 (End SID
    fcff:i::e), routes its neighbours' locators in table 90, and the rule
    "to fcff::/16 lookup 90"; hosts have IPv4 and IPv6 and a default route."""
    routers = max(2, nodes // 2)
    out = [f"name: chain{nodes}", f"description: {routers} routers in a chain, a host on each", "nodes:"]
    for i in range(1, routers + 1):
        out += [f"  hs-{i}:", "    interfaces:",
                f'      veth0: {{addresses: [10.{i // 256}.{i % 256}.1/24, "cafe:{i:x}::1/64"]}}',
                "    routes:", f"      - {{dst: default, via: 10.{i // 256}.{i % 256}.254}}",
                f'      - {{dst: "::/0", via: "cafe:{i:x}::254"}}']
    for i in range(1, routers + 1):
        out += [f"  rt-{i}:", "    kind: router", "    interfaces:",
                f'      veth-hs: {{addresses: [10.{i // 256}.{i % 256}.254/24, "cafe:{i:x}::254/64"]}}']
        hops = [j for j in (i - 1, i + 1) if 1 <= j <= routers]
        for j in hops:
            a, b = min(i, j), max(i, j)
            out.append(f'      veth-rt{j}: {{addresses: ["fcf0:{a:x}:{b:x}::{i:x}/64"]}}')
        out += ["    sids:", f'      - {{sid: "fcff:{i:x}::e", action: End, dev: veth-rt{hops[0]}, table: 90}}',
                "    routes:"]
        for j in hops:
            a, b = min(i, j), max(i, j)
            out.append(f'      - {{dst: "fcff:{j:x}::/32", via: "fcf0:{a:x}:{b:x}::{j:x}", table: 90}}')
        out += ["    rules:", '      - {to: "fcff::/16", lookup: 90, prio: 999}']
    out.append("links:")
    for i in range(1, routers + 1):
        out.append(f"  - [hs-{i}:veth0, rt-{i}:veth-hs]")
        if i < routers:
            out.append(f"  - [rt-{i}:veth-rt{i + 1}, rt-{i + 1}:veth-rt{i}]")
    return "\n".join(out) + "\n"


def measure(path: str, runs: int, name: str, work: str) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Seconds of up + down per method, `runs` times each; and why a method was skipped."""
    topo = topology.load(path)
    sh = os.path.join(work, "lab.sh")
    with open(sh, "w") as f:
        f.write(render_script(topo))
    skipped: dict[str, str] = {}
    results: dict[str, list[float]] = {}
    try:
        try:
            script(sh)  # warm caches (binaries, page cache) before timing anything
        except Skip as e:
            skipped["script"] = str(e)
        lacks = host_lacks(topo)
        if lacks:
            skipped["engine"] = skipped["cli"] = f"SKIP: {lacks}"
        else:
            engine(topo, name)
            results["engine"] = [timed(lambda: engine(topo, name)) for _ in range(runs)]
            results["cli"] = [timed(lambda: cli(path, name)) for _ in range(runs)]
        if "script" not in skipped:
            results["script"] = [timed(lambda: script(sh)) for _ in range(runs)]
    finally:
        remove_lab(name)  # stopped between an up and its down
    return results, skipped


def report(label: str, runs: int, results: dict[str, list[float]], skipped: dict[str, str]) -> dict[str, float]:
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{label}; up + down, median of {runs} runs")
    for k in METHODS:
        if k in med:
            print(f"  {k:<7} {med[k] * 1000:8.1f} ms   (min {min(results[k]) * 1000:.1f} ms)")
        else:
            print(f"  {k:<7}     SKIP   ({skipped[k]})")
    if "script" in med and "engine" in med:
        print(f"  engine/script = {med['engine'] / med['script']:.3f}   cli/script = {med['cli'] / med['script']:.3f}")
    return med


def scaling(sizes: list[int], runs: int, name: str, plot_dir: str | None, work: str) -> bool:
    """Measure chains of each size; whether anything was measured."""
    by_method: dict[str, dict[int, float]] = {}
    for n in sizes:
        path = os.path.join(work, f"chain{n}.yaml")
        with open(path, "w") as f:
            f.write(chain(n))
        nodes = len(topology.load(path).nodes)
        results, skipped = measure(path, runs, name, work)
        for method, secs in report(f"chain of {nodes} nodes", runs, results, skipped).items():
            by_method.setdefault(method, {})[nodes] = secs
    if not by_method:
        return False
    print(f"{'nodes':>6} " + " ".join(f"{m:>9}" for m in by_method))
    for n in sorted(next(iter(by_method.values()), {})):
        print(f"{n:>6} " + " ".join(f"{by_method[m].get(n, float('nan')):>8.2f}s" for m in by_method))
    if plot_dir:
        import plots

        why = plots.available()
        if why:
            print(f"plots: {why}")
            return True
        note = f"bench/bring_up.py --sizes {','.join(map(str, sizes))} --runs {runs}: median of {runs}, " \
               f"{os.cpu_count()} CPUs (shared), kernel {os.uname().release}"
        for path in plots.bring_up_time(by_method, plot_dir, note):
            print(f"plot: {path}")
    return True


def parse_args():
    ap = Parser(prog="bring_up", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", nargs="?", default="topologies/mesh4.yaml")
    ap.add_argument("--runs", type=int, default=None, help="repetitions per figure (default 5; 2 with --sizes)")
    ap.add_argument("--sizes", help="lab sizes in nodes, e.g. 6,12,24,50,100: generated chains instead of TOPOLOGY")
    ap.add_argument("--plots", default=os.path.join(ROOT, "docs", "plots"), metavar="DIR",
                    help="where --sizes writes bring_up.png and bring_up.svg (default: docs/plots)")
    ap.add_argument("--no-plots", action="store_true", help="print the figures only")
    args = ap.parse_args()
    if args.runs is not None and args.runs < 1:
        ap.error("--runs: at least 1")
    if args.sizes:
        try:
            args.sizes = [int(x) for x in args.sizes.split(",")]
        except ValueError:
            ap.error(f"--sizes: comma-separated numbers of nodes, not {args.sizes!r}")
        if any(n < 4 for n in args.sizes):
            ap.error("--sizes: a lab has at least 4 nodes (2 routers, 2 hosts)")
    return args


def bench() -> int:
    args = parse_args()
    name = f"bench{os.getpid()}"
    with workdir("bring_up") as work:
        if args.sizes:
            measured = scaling(args.sizes, args.runs or 2, name, None if args.no_plots else args.plots, work)
        else:
            runs = args.runs or 5
            topo = topology.load(args.topology)
            results, skipped = measure(args.topology, runs, name, work)
            report(f"{args.topology}: {len(topo.nodes)} nodes, {len(topo.links)} links", runs, results, skipped)
            measured = bool(results)
    return 0 if measured else SKIP


if __name__ == "__main__":
    sys.exit(main("bring_up", bench))
