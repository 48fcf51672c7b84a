"""testbed graph TOPOLOGY|LAB [-o FILE.svg|.png|.pdf|.dot]

A file is drawn as the topology says; the name of a running lab (no file of
that name) is drawn as the kernel has it, counters and all
(testbed/render/live.py)."""
from __future__ import annotations

import os
import sys

from testbed.errors import TestbedError

DOT_SUFFIXES = (".dot", ".gv")


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw a topology, or a running lab as it is (SVG, PNG or PDF via graphviz, "
                                     "or DOT)",
                       description="Draw TOPOLOGY (a YAML file: its shape, i.e. nodes, links with their "
                                   "interface names, SIDs and srl2 pseudowires), or the running lab LAB read "
                                   "back from the kernel: nodes, addresses, bridges, srl2 devices and their "
                                   "segment lists, route-based seg6 pseudowires, SIDs, and packet counters "
                                   "as labels.")
    p.add_argument("topology", metavar="TOPOLOGY|LAB")
    p.add_argument("-o", "--output",
                   help="FILE.svg, FILE.png or FILE.pdf (drawn by graphviz `dot`), or FILE.dot / FILE.gv "
                        "(DOT text, no graphviz needed); default: DOT on stdout")
    p.set_defaults(run=run)


def output_format(path: str) -> str:
    """"dot", or the graphviz format the file name asks for; refuses the
    rest rather than writing DOT text into a file named like an image."""
    from testbed.render import GRAPH_FORMATS

    ext = os.path.splitext(path)[1].lower()
    if ext in DOT_SUFFIXES:
        return "dot"
    if ext.lstrip(".") in GRAPH_FORMATS:
        return ext.lstrip(".")
    known = ", ".join([*DOT_SUFFIXES, *(f".{f}" for f in GRAPH_FORMATS)])
    raise TestbedError(f"cannot tell which format to write to {path!r}: "
                       f"its name must end in one of {known}")


def is_lab(source: str) -> bool:
    """A running lab's name rather than a file: no such file, and a lab
    record of that name (a file wins: `testbed graph p2p` in topologies/)."""
    from testbed import state

    return not os.path.exists(source) and "/" not in source and state.load(source) is not None


def live_dot(name: str) -> str:
    from testbed.cli import need_root
    from testbed.lab import Lab
    from testbed.render import live

    need_root()
    lab = Lab.attach(name)
    try:
        return live.render_live_dot(live.read(lab))
    finally:
        lab.close()


def run(args) -> int:
    from testbed import topology
    from testbed.render import RenderError, draw, render_dot

    if is_lab(args.topology):
        text = live_dot(args.topology)
    elif not os.path.exists(args.topology) and "/" not in args.topology and "." not in args.topology:
        raise TestbedError(f"no topology file and no running lab named {args.topology!r} (see: testbed list)")
    else:
        text = render_dot(topology.load(args.topology))
    if not args.output:
        sys.stdout.write(text)
        return 0
    fmt = output_format(args.output)
    try:
        data = text.encode() if fmt == "dot" else draw(text, fmt)
    except RenderError as e:
        raise TestbedError(str(e)) from None
    try:
        with open(args.output, "wb") as f:
            f.write(data)
    except OSError as e:
        raise TestbedError(f"cannot write {args.output}: {e.strerror}") from None
    return 0
