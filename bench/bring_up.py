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
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from testbed import state, topology  # noqa: E402
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


def measure(path: str, runs: int, name: str) -> tuple[dict[str, list[float]], str | None]:
    """Seconds of up + down per method, `runs` times each; and why the script skipped, if it did."""
    topo = topology.load(path)
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
            "engine": [timed(lambda: engine(topo, name)) for _ in range(runs)],
            "cli": [timed(lambda: cli(path, name)) for _ in range(runs)],
        }
        if not skipped:
            results["script"] = [timed(lambda: script(f.name)) for _ in range(runs)]
    finally:
        os.unlink(f.name)
    return results, skipped


def report(label: str, runs: int, results: dict[str, list[float]], skipped: str | None) -> dict[str, float]:
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{label}; up + down, median of {runs} runs")
    for k in ("engine", "cli", "script"):
        if k in med:
            print(f"  {k:<7} {med[k] * 1000:8.1f} ms   (min {min(results[k]) * 1000:.1f} ms)")
        else:
            print(f"  {k:<7}     SKIP   ({skipped})")
    if "script" in med:
        print(f"  engine/script = {med['engine'] / med['script']:.3f}   cli/script = {med['cli'] / med['script']:.3f}")
    return med


def scaling(sizes: list[int], runs: int, name: str, plot_dir: str | None) -> None:
    by_method: dict[str, dict[int, float]] = {}
    tmp = tempfile.mkdtemp(prefix="bring_up")
    try:
        for n in sizes:
            path = os.path.join(tmp, f"chain{n}.yaml")
            with open(path, "w") as f:
                f.write(chain(n))
            nodes = len(topology.load(path).nodes)
            results, skipped = measure(path, runs, name)
            for method, secs in report(f"chain of {nodes} nodes", runs, results, skipped).items():
                by_method.setdefault(method, {})[nodes] = secs
    finally:
        with contextlib.suppress(OSError):
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            os.rmdir(tmp)
    print(f"{'nodes':>6} " + " ".join(f"{m:>9}" for m in by_method))
    for n in sorted(next(iter(by_method.values()), {})):
        print(f"{n:>6} " + " ".join(f"{by_method[m].get(n, float('nan')):>8.2f}s" for m in by_method))
    if plot_dir:
        import plots

        why = plots.available()
        if why:
            print(f"plots: {why}")
            return
        note = f"bench/bring_up.py --sizes {','.join(map(str, sizes))} --runs {runs}: median of {runs}, " \
               f"{os.cpu_count()} CPUs (shared), kernel {os.uname().release}"
        for path in plots.bring_up_time(by_method, plot_dir, note):
            print(f"plot: {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", nargs="?", default="topologies/mesh4.yaml")
    ap.add_argument("--runs", type=int, default=None, help="repetitions per figure (default 5; 2 with --sizes)")
    ap.add_argument("--sizes", help="lab sizes in nodes, e.g. 6,12,24,50,100: generated chains instead of TOPOLOGY")
    ap.add_argument("--plots", default=os.path.join(ROOT, "docs", "plots"), metavar="DIR",
                    help="where --sizes writes bring_up.png and bring_up.svg (default: docs/plots)")
    ap.add_argument("--no-plots", action="store_true", help="print the figures only")
    args = ap.parse_args()
    name = f"bench{os.getpid()}"
    # Lab records of its own (inherited by the CLI it times): on a shared
    # machine another testbed process that takes a lab for stale must not
    # pull the record from under a run.
    private = tempfile.mkdtemp(prefix="bring_up_state")
    os.environ["TESTBED_STATE_DIR"] = state.STATE_DIR = private
    try:
        return run(args, ap, name)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run(args, ap, name: str) -> int:
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
        if any(n < 4 for n in sizes):
            ap.error("--sizes: a lab has at least 4 nodes (2 routers, 2 hosts)")
        scaling(sizes, args.runs or 2, name, None if args.no_plots else args.plots)
        return 0
    runs = args.runs or 5
    topo = topology.load(args.topology)
    results, skipped = measure(args.topology, runs, name)
    report(f"{args.topology}: {len(topo.nodes)} nodes, {len(topo.links)} links", runs, results, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
