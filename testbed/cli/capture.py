"""testbed capture LAB NODE IFACE [-w FILE.pcap | -w -] [-c COUNT] [--filter EXPR]

Without -w, one line per frame (testbed/decode.py): time, direction, and the
frame read down to its innermost header, SRv6 outer addresses and SRH first.
`-w -` writes pcap to stdout, for `| tcpdump -r -` or `| wireshark -k -i -`;
the messages go to stderr."""
from __future__ import annotations

import os
import sys
import time


def add_parser(sub) -> None:
    from testbed.filterterms import FILTER_HELP

    p = sub.add_parser("capture", help="capture frames on a node's interface: SRv6 decoded, or pcap",
                       description="Capture what NODE sends and receives on IFACE (an ETH_P_ALL packet "
                                   "socket inside the node's netns) until Ctrl-C or COUNT frames. Without -w, "
                                   "prints one line per frame: SRv6 outer addresses, SRH (segments left, "
                                   "segment list in visiting order), then the inner frame as tcpdump -e -vv "
                                   "prints it.")
    p.add_argument("lab")
    p.add_argument("node")
    p.add_argument("iface")
    p.add_argument("-w", "--write", metavar="FILE",
                   help="write pcap to FILE ('-': standard output, to pipe into tcpdump -r - or wireshark -k -i -)")
    p.add_argument("-c", "--count", type=int, help="stop after COUNT frames (that pass the filter)")
    p.add_argument("-f", "--filter", metavar="EXPR", help=FILTER_HELP)
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed.capture import Capture, PcapWriter
    from testbed.cli import UsageError, need_root
    from testbed.decode import Filter, FilterError, decode
    from testbed.errors import TestbedError
    from testbed.lab import Lab

    try:
        keep = Filter.parse(args.filter) if args.filter else None
    except FilterError as e:
        raise UsageError(f"--filter: {e}") from None
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    to_stdout = args.write == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError("-w - writes pcap to standard output, which is a terminal: pipe it "
                         "(| tcpdump -r -) or redirect it")
    need_root()
    lab = Lab.attach(args.lab)
    out = None
    try:
        lab.ifindex(args.node, args.iface)  # a clear error for a wrong interface name
        if to_stdout:
            out = sys.stdout.buffer
        elif args.write:
            try:
                out = open(args.write, "wb")
            except OSError as e:
                raise TestbedError(f"cannot write {args.write}: {e.strerror}") from None
        writer = PcapWriter(out) if out else None
        n = 0
        with Capture(lab.node(args.node), args.iface) as cap:
            print(f"capturing on {args.lab}:{args.node}:{args.iface}"
                  + (f" (filter {args.filter!r})" if args.filter else "") + "; Ctrl-C to stop",
                  file=sys.stderr, flush=True)
            try:
                for frame in cap.stream(alive=lambda: lab_is_up(lab)):
                    decoded = decode(frame.data) if keep or not writer else None
                    if keep:
                        assert decoded is not None  # decoded whenever there is a filter
                        if not keep(decoded):
                            continue
                    n += 1
                    if writer:
                        writer.write(frame)
                    else:
                        assert decoded is not None  # decoded whenever there is no writer
                        print(line(frame, decoded.text), flush=True)
                    if args.count and n >= args.count:
                        break
            except KeyboardInterrupt:
                pass
        where = " written to " + ("standard output" if to_stdout else args.write) if writer else ""
        gone = "" if lab_is_up(lab) else f"; lab {args.lab} was taken down"
        print(f"{n} frame{'s' if n != 1 else ''}{where}{gone}", file=sys.stderr)
    finally:
        if out is not None and not to_stdout:
            out.close()
        lab.close()
    return 0


def lab_is_up(lab) -> bool:
    """The lab's record and the node's netns still exist (`down` removes both)."""
    from testbed import linux, state

    return state.load(lab.name) is not None and all(os.path.exists(linux.netns_path(ns.name))
                                                    for ns in lab.ns.values())


def line(frame, text: str) -> str:
    """tcpdump's time of day, the direction ('out' for what the node sent), the frame."""
    stamp = time.strftime("%H:%M:%S", time.localtime(frame.time)) + f".{int(frame.time % 1 * 1e6):06d}"
    return f"{stamp} {'out' if frame.outgoing else 'in '} {text}"
