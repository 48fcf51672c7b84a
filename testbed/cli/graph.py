"""testbed graph TOPOLOGY [-o FILE.svg|.png|.pdf|.dot]"""
from __future__ import annotations

import os
import sys

from testbed.errors import TestbedError

DOT_SUFFIXES = (".dot", ".gv")


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw a topology (SVG, PNG or PDF via graphviz, or DOT)")
    p.add_argument("topology")
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


def run(args) -> int:
    from testbed import topology
    from testbed.render import RenderError, render_dot, render_graph

    topo = topology.load(args.topology)
    if not args.output:
        sys.stdout.write(render_dot(topo))
        return 0
    fmt = output_format(args.output)
    try:
        data = render_dot(topo).encode() if fmt == "dot" else render_graph(topo, fmt)
    except RenderError as e:
        raise TestbedError(str(e)) from None
    try:
        with open(args.output, "wb") as f:
            f.write(data)
    except OSError as e:
        raise TestbedError(f"cannot write {args.output}: {e.strerror}") from None
    return 0
