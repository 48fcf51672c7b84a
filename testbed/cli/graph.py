"""testbed graph TOPOLOGY [-o FILE.svg|FILE.dot]"""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw a topology (SVG via graphviz, or DOT)")
    p.add_argument("topology")
    p.add_argument("-o", "--output", help="FILE.svg (needs graphviz) or FILE.dot; default: DOT on stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from testbed import topology
    from testbed.render import render_dot, render_svg

    topo = topology.load(args.topology)
    if not args.output:
        sys.stdout.write(render_dot(topo))
    elif args.output.endswith(".svg"):
        with open(args.output, "wb") as f:
            f.write(render_svg(topo))
    else:
        with open(args.output, "w") as f:
            f.write(render_dot(topo))
    return 0
