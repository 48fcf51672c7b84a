"""testbed capture LAB NODE IFACE [-w FILE.pcap] [-c COUNT]"""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("capture", help="capture frames on a node's interface (both directions) to pcap",
                       description="Capture what NODE sends and receives on IFACE (an ETH_P_ALL packet "
                                   "socket inside the node's netns) until Ctrl-C or COUNT frames.")
    p.add_argument("lab")
    p.add_argument("node")
    p.add_argument("iface")
    p.add_argument("-w", "--write", metavar="FILE", help="pcap file to write (default: a summary per frame)")
    p.add_argument("-c", "--count", type=int, help="stop after COUNT frames")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.capture import Capture, PcapWriter
    from testbed.cli import need_root
    from testbed.lab import Lab

    need_root()
    lab = Lab.attach(args.lab)
    try:
        lab.ifindex(args.node, args.iface)  # a clear error for a wrong interface name
        out = open(args.write, "wb") if args.write else None
        writer = PcapWriter(out) if out else None
        n = 0
        with Capture(lab.node(args.node), args.iface) as cap:
            print(f"capturing on {args.lab}:{args.node}:{args.iface}; Ctrl-C to stop", file=sys.stderr, flush=True)
            try:
                for frame in cap.stream():
                    n += 1
                    if writer:
                        writer.write(frame)
                    else:
                        print(summary(frame), flush=True)
                    if args.count and n >= args.count:
                        break
            except KeyboardInterrupt:
                pass
        if out:
            out.close()
        print(f"{n} frames" + (f" written to {args.write}" if args.write else ""), file=sys.stderr)
    finally:
        lab.close()
    return 0


def summary(frame) -> str:
    d = frame.data
    mac = lambda b: ":".join(f"{x:02x}" for x in b)  # noqa: E731
    direction = "out" if frame.outgoing else "in "
    return f"{direction} {mac(d[6:12])} > {mac(d[0:6])} type 0x{d[12:14].hex()} len {len(d)}"
