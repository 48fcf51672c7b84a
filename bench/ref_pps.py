#!/usr/bin/env python3
"""Frames/s the reference srl2 datapath encapsulates, next to the kernel's
route-based `encap seg6 mode l2encap` (+ End.DX2 at the far end).

    gen:g0 --- a:veth-g [br0 + srl2-0 (ref TAP)]      a:eth-b ==== b:eth-a   b: End.DX2 -> b:veth-x --- sink
    gen:g1 --- a:veth-k (routed: 2001:db8:ff::/48 encap seg6 mode l2encap segs ... via b)

The generator is netsniff-ng's trafgen (one process, no socket-memory or IRQ
tuning), falling back to a Python AF_PACKET sendmmsg loop if trafgen is absent.
The rate is the number of encapsulated packets leaving a:eth-b over a fixed
window (for the reference also its own tx_packets), while the generator runs
flat out; whatever the datapath cannot take is dropped in front of it.

    sudo python3 bench/ref_pps.py [--window 2] [--windows 1] [--sizes 64,1500] [--segs 1,8]
                                  [--plots DIR | --no-plots]

With matplotlib (`pip install -e '.[plots]'`) it also draws frames/s against
frame size and against the number of SIDs, reference next to kernel, as
DIR/ref_pps.png and DIR/ref_pps.svg (bench/plots.py; DIR defaults to docs/plots).

The kernel column needs the host kernel's seg6 lwtunnels (the l2encap route,
End.DX2 at b: CONFIG_IPV6_SEG6_LWTUNNEL); without them it says SKIP and why,
and the reference is measured alone.  Exit 0 when something was measured, 4
(SKIP) when the reference cannot run here (not root, no /dev/net/tun), 1
with one line on error; nothing is left behind (bench/common.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from common import ENCAP_SEG6, SKIP, BenchError, Parser, ROOT, main, run, uncut, workdir

from srl2_ref.control import query  # (common.py puts the project on sys.path)
from testbed.lab import deferred_signals
from testbed.linux import Netns, create_netns, delete_netns, enter_for_exec

UA, UB = "fc00:12::1", "fc00:12::2"
GEN_MAC_SRC = "02:00:00:00:0a:01"
UNKNOWN_MAC = "02:00:00:00:0b:02"  # flooded by a's bridge to srl2-0


def sh(ns: str, *cmd: str) -> str:
    return run(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE).stdout


def ip(ns: str, *args: str) -> None:
    run(["ip", "-n", ns, *args])


def frame(size: int, dst_mac: str) -> bytes:
    """An Ethernet + IPv6 + UDP frame of `size` bytes (no FCS) to 2001:db8:ff::1."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    base = Ether(dst=dst_mac, src=GEN_MAC_SRC) / IPv6(src="2001:db8:1::1", dst="2001:db8:ff::1", hlim=64) \
        / UDP(sport=1234, dport=5678)
    pad = size - len(bytes(base))
    return bytes(base / (b"\x00" * max(pad, 0)))


def tx_packets(ns: Netns, ifname: str) -> int:
    def read() -> int:
        link = ns.ipr.get_links(ns.ipr.link_lookup(ifname=ifname)[0])[0]
        return link.get_attr("IFLA_STATS64")["tx_packets"]
    return uncut(read)


class Generator:
    """trafgen (or a Python fallback) sending one frame over and over out of ifname."""

    def __init__(self, ns: str, ifname: str, data: bytes, tmp: str):
        self.proc = None
        self.thread = None
        self.stop_flag = False
        if shutil.which("trafgen"):
            cfg = os.path.join(tmp, "frame.cfg")
            with open(cfg, "w") as f:
                f.write("{ " + ", ".join(f"0x{b:02x}" for b in data) + " }\n")
            cmd = ["ip", "netns", "exec", ns, "trafgen", "--dev", ifname, "--conf", cfg, "--cpus", "1", "--no-sock-mem",
                   "--notouch-irq", "--no-cpu-stats"]
            if len(data) > 2048:
                cmd.append("--jumbo-support")
            # its own process group: trafgen forks a worker, and SIGINT must reach both
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            self.kind = "trafgen"
        else:
            self.kind = "python AF_PACKET sendmmsg"
            self.thread = threading.Thread(target=self._py, args=(ns, ifname, data), daemon=True)
            self.thread.start()

    def _py(self, ns: str, ifname: str, data: bytes) -> None:
        s = Netns(ns).socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.bind((ifname, 0))
        while not self.stop_flag:
            for _ in range(256):
                try:
                    s.send(data)
                except OSError:
                    pass
        s.close()

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the group is the one we made
            try:
                os.killpg(pgid, signal.SIGINT)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
            # the worker may outlive the parent by a moment: wait until the group is empty
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
            else:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.thread is not None:
            self.stop_flag = True
            self.thread.join(5)


def measure(rate_fn, gen: Generator, window: float, warmup: float = 0.5, windows: int = 1) -> float:
    """The best rate over `windows` consecutive windows (on a shared machine
    the best window is the closest to what the datapath can do)."""
    time.sleep(warmup)  # a benchmark window, not a readiness wait
    best = 0.0
    t0, c0 = time.monotonic(), rate_fn()
    for _ in range(windows):
        time.sleep(window)
        t1, c1 = time.monotonic(), rate_fn()
        best = max(best, (c1 - c0) / (t1 - t0))
        t0, c0 = t1, c1
    return best


class Ref:
    """srl2_ref with one device, srl2-0, in netns `ns`; stopped on leaving the with block."""

    def __init__(self, ns: str, segs: list[str], mtu: int, tmp: str):
        self.sock = os.path.join(tmp, "a.sock")
        path = os.path.join(tmp, "a.json")
        with open(path, "w") as f:
            json.dump({"devices": [{"name": "srl2-0", "segs": segs, "mtu": mtu}], "control": self.sock}, f)
        r, w = os.pipe()
        try:
            # its stderr to a file: the bench's own says one line when it fails
            with open(os.path.join(tmp, "srl2_ref.log"), "a") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "srl2_ref", "--config", path,
                                              "--ready-fd", str(w)], stderr=log, pass_fds=(w,),
                                             preexec_fn=lambda: enter_for_exec(ns), cwd=ROOT)
            os.close(w)
            w = -1
            try:
                ok, _, _ = select.select([r], [], [], 15)  # its readiness pipe
                line = os.read(r, 4096).decode() if ok else "no answer within 15 s"
                if line != "ready\n":
                    raise BenchError(f"srl2_ref did not start: {line.strip() or 'it exited'}")
            except BaseException:
                self.stop()
                raise
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def __enter__(self) -> "Ref":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def tx(self) -> int:
        return query(self.sock, "counters")["devices"]["srl2-0"]["tx_packets"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def netns(p: str, stack: contextlib.ExitStack) -> dict[str, str]:
    """The four namespaces, each deleted when `stack` closes."""
    n = {k: f"{p}{k}" for k in ("gen", "a", "b", "sink")}
    for name in n.values():
        # made and registered for deletion as one step: a signal between
        # the two would leak it
        with deferred_signals():
            create_netns(name)
            stack.callback(delete_netns, name)
    return n


def build(n: dict[str, str], kernel: bool) -> None:
    """The links and addresses; with `kernel`, also End.DX2 at b (what the
    kernel run needs of seg6 besides its l2encap route)."""
    ip(n["gen"], "link", "add", "g0", "mtu", "9000", "type", "veth", "peer", "name", "veth-g", "mtu", "9000",
       "netns", n["a"])
    ip(n["gen"], "link", "add", "g1", "mtu", "9000", "type", "veth", "peer", "name", "veth-k", "mtu", "9000",
       "netns", n["a"])
    ip(n["a"], "link", "add", "eth-b", "mtu", "9000", "type", "veth", "peer", "name", "eth-a", "mtu", "9000",
       "netns", n["b"])
    ip(n["b"], "link", "add", "veth-x", "mtu", "9000", "type", "veth", "peer", "name", "eth0", "mtu", "9000",
       "netns", n["sink"])
    for ns, devs in ((n["gen"], ["g0", "g1"]), (n["a"], ["veth-g", "veth-k", "eth-b"]), (n["b"], ["eth-a", "veth-x"]),
                     (n["sink"], ["eth0"])):
        for d in devs:
            ip(ns, "link", "set", d, "up")
    ip(n["a"], "link", "add", "br0", "type", "bridge")
    ip(n["a"], "link", "set", "veth-g", "master", "br0")
    ip(n["a"], "link", "set", "br0", "up")
    ip(n["a"], "addr", "add", f"{UA}/64", "dev", "eth-b", "nodad")
    ip(n["b"], "addr", "add", f"{UB}/64", "dev", "eth-a", "nodad")
    ip(n["a"], "-6", "route", "add", "fcff:2::/32", "via", UB)
    ip(n["a"], "-6", "addr", "add", "2001:db8:1::2/64", "dev", "veth-k", "nodad")
    sh(n["a"], "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    sh(n["b"], "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    if kernel:
        # b: kernel End.DX2 for the kernel run (the reference run's packets just die at b: no route)
        ip(n["b"], "-6", "route", "add", "fcff:2::d2/128", "encap", "seg6local", "action", "End.DX2",
           "oif", "veth-x", "dev", "eth-a")


def ref_rate(n: dict[str, str], a: Netns, segs: list[str], size: int, args, tmp: str) -> tuple[float, float, str]:
    """srl2_ref's best rate over the windows (its own tx_packets), and the
    encapsulated packets on a:eth-b meanwhile; frames flooded by a's bridge
    into srl2-0.  And the generator's kind."""
    with Ref(n["a"], segs, 9000, tmp) as ref:
        ip(n["a"], "link", "set", "srl2-0", "master", "br0")
        ip(n["a"], "link", "set", "srl2-0", "up")
        with Generator(n["gen"], "g0", frame(size, UNKNOWN_MAC), tmp) as g:
            both = {}

            def sample():
                both["wire"] = tx_packets(a, "eth-b")
                return ref.tx()
            ref_pps = ref_wire = 0.0
            time.sleep(0.5)  # a benchmark warm-up, not a readiness wait
            t0, r0 = time.monotonic(), sample()
            wire0 = both["wire"]
            for _ in range(args.windows):  # the best of consecutive windows, as measure() does
                time.sleep(args.window)
                t1, r1 = time.monotonic(), sample()
                if (r1 - r0) / (t1 - t0) > ref_pps:
                    ref_pps, ref_wire = (r1 - r0) / (t1 - t0), (both["wire"] - wire0) / (t1 - t0)
                t0, r0, wire0 = t1, r1, both["wire"]
            return ref_pps, ref_wire, g.kind


def kernel_rate(n: dict[str, str], a: Netns, veth_k_mac: str, size: int, args, tmp: str) -> float:
    """Routed frames to a:veth-k, the l2encap route, End.DX2 at b."""
    with Generator(n["gen"], "g1", frame(size, veth_k_mac), tmp) as g:
        return measure(lambda: tx_packets(a, "eth-b"), g, args.window, windows=args.windows)


def numbers(ap, option: str, text: str, least: int) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        ap.error(f"{option}: comma-separated numbers, not {text!r}")
    if any(v < least for v in values):
        ap.error(f"{option}: each at least {least}")
    return values


def bench() -> int:
    ap = Parser(prog="ref_pps")
    ap.add_argument("--window", type=float, default=2.0, help="seconds per measuring window")
    ap.add_argument("--windows", type=int, default=1,
                    help="consecutive windows per figure; the best is kept (a shared machine steals some)")
    ap.add_argument("--sizes", default="64,1500")
    ap.add_argument("--segs", default="1,8")
    ap.add_argument("--plots", default=os.path.join(ROOT, "docs", "plots"), metavar="DIR",
                    help="where to write ref_pps.png and ref_pps.svg (default: docs/plots)")
    ap.add_argument("--no-plots", action="store_true", help="print the table only")
    args = ap.parse_args()
    if not args.window > 0 or args.windows < 1:
        ap.error("--window must be above 0 and --windows at least 1")
    sizes = numbers(ap, "--sizes", args.sizes, 1)
    nsegs_list = numbers(ap, "--segs", args.segs, 1)
    if os.geteuid() != 0:
        print("ref_pps: SKIP: needs root (network namespaces)")
        return SKIP
    from testbed.datapaths.kernel import KernelDatapath
    from testbed.datapaths.ref import RefDatapath

    why = RefDatapath.probe().reason(["srl2"])
    if why:
        print(f"ref_pps: SKIP: {why}")
        return SKIP
    no_kernel = uncut(KernelDatapath.probe).reason(ENCAP_SEG6 + ("End.DX2",))
    prefix = f"bpps{os.getpid() % 100000}"
    rows = []
    kind = "?"
    with workdir("ref_pps") as tmp, contextlib.ExitStack() as stack:
        n = netns(prefix, stack)
        build(n, kernel=not no_kernel)
        a = Netns(n["a"])
        stack.callback(a.close)
        veth_k_mac = uncut(lambda: a.ipr.get_links(a.ipr.link_lookup(ifname="veth-k")[0])[0].get_attr("IFLA_ADDRESS"))
        for nsegs in nsegs_list:
            segs = ["fcff:2::d2"] + [f"fcff:2::{i:x}" for i in range(1, nsegs)]
            if not no_kernel:
                ip(n["a"], "-6", "route", "replace", "2001:db8:ff::/48", "encap", "seg6", "mode", "l2encap",
                   "segs", ",".join(segs), "via", UB, "dev", "eth-b")
            for size in sizes:
                ref_pps, ref_wire, kind = ref_rate(n, a, segs, size, args, tmp)
                k_pps = None if no_kernel else kernel_rate(n, a, veth_k_mac, size, args, tmp)
                rows.append((size, nsegs, ref_pps, ref_wire, k_pps))
                kernel = "SKIP" if k_pps is None else f"{k_pps:10.0f}/s"
                print(f"  size {size:5d} segs {nsegs}: ref {ref_pps:10.0f}/s (wire {ref_wire:10.0f}/s)  "
                      f"kernel l2encap {kernel}", file=sys.stderr)
    print(f"generator: {kind}; best of {args.windows} window(s) of {args.window}s; {os.cpu_count()} CPUs; "
          f"kernel {os.uname().release}")
    print(f"{'frame':>6} {'SIDs':>4} {'srl2_ref fps':>13} {'ref on wire':>12} "
          f"{'kernel l2encap':>15} {'ref/kernel':>10}")
    for size, nsegs, r, w, k in rows:
        kernel = f"{k:>15.0f}" if k is not None else f"{'SKIP':>15}"
        ratio = f"{r / k:>10.2f}" if k else f"{'-':>10}"
        print(f"{size:>6} {nsegs:>4} {r:>13.0f} {w:>12.0f} {kernel} {ratio}")
    if no_kernel:
        print(f"kernel l2encap: SKIP: {no_kernel}")
    if not args.no_plots and rows:
        import plots

        why = plots.available()
        if why:
            print(f"plots: {why}")
        else:
            note = (f"bench/ref_pps.py --window {args.window} --windows {args.windows}: best window, "
                    f"generator {kind}, {os.cpu_count()} CPUs "
                    f"(shared), kernel {os.uname().release}"
                    + ("; kernel l2encap not measured: no seg6 lwtunnels" if no_kernel else ""))
            for path in plots.frames_per_second(rows, args.plots, note):
                print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main("ref_pps", bench))
