"""A plain-text picture of a topology.

Used as the header comment of the rendered bash script and reusable by
`testbed status`.  Two parts:

* the *picture*: the nodes as boxes in one row (hosts ``[ ]``, routers
  ``( )`` inside the box), each veth link drawn between its two interface
  names; links between nodes that are not neighbours in the row are drawn as
  arcs under the row, one level per arc where they would overlap;
* the *details*: per node, its interfaces with addresses, bridges and their
  ports, srl2 devices with their kind (the topology's revision's: srl2 when
  it is auto), mode, segment list, table, HMAC key id and the node that owns
  the last SID, tunnel source, HMAC keys (id and algorithm, never the
  secret), SIDs, rules and routes.

Example (topologies/p2p.yaml)::

    +--------+             +----------+                   +----------+             +--------+
    | [hs-1] |veth0-----veth-hs| (rt-1) |veth-rt2------veth-rt1| (rt-2) |veth-hs-----veth0| [hs-2] |
    +--------+             +----------+                   +----------+             +--------+

Everything here is a pure function of the model: no system access.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional

from testbed import model

__all__ = ["picture", "details", "render", "node_order", "sid_owner", "srl2_settings", "srl2_text"]

MIN_DASHES = 4


def _label(node: model.Node) -> str:
    return f"({node.name})" if node.kind == "router" else f"[{node.name}]"


def node_order(topo: model.Topology) -> list[str]:
    """Nodes in an order that keeps linked nodes next to each other: a
    depth-first walk from a least-connected node (an end of a chain), visiting
    neighbours in the order their links appear; each connected component in
    turn, components in topology order."""
    names = list(topo.nodes)
    adj: dict[str, list[str]] = {n: [] for n in names}
    for link in topo.links:
        a, b = link.a.node, link.b.node
        if a in adj and b in adj and a != b:
            if b not in adj[a]:
                adj[a].append(b)
            if a not in adj[b]:
                adj[b].append(a)
    seen: set[str] = set()
    order: list[str] = []

    def component(start: str) -> list[str]:
        comp, todo = [], [start]
        mark = {start}
        while todo:
            n = todo.pop()
            comp.append(n)
            for m in adj[n]:
                if m not in mark:
                    mark.add(m)
                    todo.append(m)
        return comp

    for first in names:
        if first in seen:
            continue
        comp = component(first)
        # start from a least-connected node, first in topology order
        start = min(comp, key=lambda n: (len(adj[n]), names.index(n)))

        def dfs(n: str) -> None:
            seen.add(n)
            order.append(n)
            for m in adj[n]:
                if m not in seen:
                    dfs(m)

        dfs(start)
    return order


class _Canvas:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def put(self, row: int, col: int, text: str, over: bool = True) -> None:
        while len(self.rows) <= row:
            self.rows.append([])
        line = self.rows[row]
        if len(line) < col + len(text):
            line.extend(" " * (col + len(text) - len(line)))
        for i, ch in enumerate(text):
            if over or line[col + i] == " ":
                line[col + i] = ch

    def text(self) -> str:
        return "\n".join("".join(r).rstrip() for r in self.rows)


def cv_char(cv: "_Canvas", row: int, col: int) -> str:
    if row < len(cv.rows) and col < len(cv.rows[row]):
        return cv.rows[row][col]
    return " "


def picture(topo: model.Topology, max_width: Optional[int] = 160) -> str:
    """The row-of-boxes picture.  When it would be wider than `max_width`
    columns (None: no limit), fall back to one line per link."""
    order = node_order(topo)
    if not order:
        return "(no nodes)"
    pos = {n: i for i, n in enumerate(order)}

    # Split links: the first link between row neighbours is drawn inline,
    # everything else (non-neighbours, parallel links, self links) as arcs.
    inline: dict[int, model.Link] = {}  # gap index i (between order[i], order[i+1])
    arcs: list[model.Link] = []
    for link in topo.links:
        if link.a.node not in pos or link.b.node not in pos:
            continue
        pa, pb = pos[link.a.node], pos[link.b.node]
        gap = min(pa, pb)
        if abs(pa - pb) == 1 and gap not in inline:
            inline[gap] = link
        else:
            arcs.append(link)

    def ends_left_right(link: model.Link) -> tuple[model.Endpoint, model.Endpoint]:
        if pos[link.a.node] <= pos[link.b.node]:
            return link.a, link.b
        return link.b, link.a

    # Arc attachment points: a node needs room under its box for each arc end.
    arc_ends: dict[str, int] = {n: 0 for n in order}
    for link in arcs:
        arc_ends[link.a.node] += 1
        arc_ends[link.b.node] += 1

    widths = []
    for n in order:
        w = len(_label(topo.nodes[n])) + 4
        w = max(w, 3 + 3 * arc_ends[n])
        widths.append(w)
    gaps = []
    for i in range(len(order) - 1):
        next_link = inline.get(i)
        if next_link is None:
            gaps.append(6)
        else:
            left, right = ends_left_right(next_link)
            gaps.append(len(left.ifname) + len(right.ifname) + MIN_DASHES)
    xs = []
    x = 0
    for i, w in enumerate(widths):
        xs.append(x)
        x += w + (gaps[i] if i < len(gaps) else 0)
    total = x
    if max_width is not None and total > max_width:
        return _link_list(topo)

    cv = _Canvas()
    for i, n in enumerate(order):
        w, x0 = widths[i], xs[i]
        lab = _label(topo.nodes[n])
        cv.put(0, x0, "+" + "-" * (w - 2) + "+")
        cv.put(1, x0, "|" + lab.center(w - 2) + "|")
        cv.put(2, x0, "+" + "-" * (w - 2) + "+")
    for i, link in inline.items():
        left, right = ends_left_right(link)
        x0 = xs[i] + widths[i]
        gap = gaps[i]
        dashes = gap - len(left.ifname) - len(right.ifname)
        cv.put(1, x0, left.ifname + "-" * dashes + right.ifname)

    # Arcs.  Attachment points under each box, ordered by where the other end
    # is (leftmost first), so that arcs nest instead of crossing; then one
    # level per arc where spans would overlap (shortest arcs nearest the row).
    ends: dict[str, list[tuple[int, int, int]]] = {n: [] for n in order}  # node -> (other pos, arc, side)
    for k, link in enumerate(arcs):
        ends[link.a.node].append((pos[link.b.node], k, 0))
        ends[link.b.node].append((pos[link.a.node], k, 1))
    attach: dict[tuple[int, int], int] = {}
    for n, lst in ends.items():
        for slot, (_, k, side) in enumerate(sorted(lst)):
            attach[(k, side)] = xs[pos[n]] + 1 + 3 * slot

    placed: list[tuple[int, int, int, model.Endpoint, model.Endpoint]] = []  # level, xl, xr, el, er
    spans = []
    for k, link in enumerate(arcs):
        xa, xb = attach[(k, 0)], attach[(k, 1)]
        if xa <= xb:
            spans.append((xa, xb, link.a, link.b))
        else:
            spans.append((xb, xa, link.b, link.a))
    for xl, xr, el, er in sorted(spans, key=lambda t: t[1] - t[0]):
        level = 0
        while any(lv == level and not (xr + 1 < a or b + 1 < xl) for lv, a, b, _, _ in placed):
            level += 1
        placed.append((level, xl, xr, el, er))

    base = 3
    verticals: list[tuple[int, int]] = []  # (x, last row) of every vertical
    for level, xl, xr, _el, _er in placed:
        row = base + 2 * level + 1
        verticals += [(xl, row), (xr, row)]
    for level, xl, xr, el, er in placed:
        row = base + 2 * level + 1
        crossing = {x for x, last in verticals if last > row and xl < x < xr}
        cv.put(row, xl, "+" + "".join("|" if x in crossing else "-" for x in range(xl + 1, xr)) + "+")

        def fits(x0: int, text: str) -> bool:
            return xl < x0 and x0 + len(text) <= xr and not any(x0 <= c < x0 + len(text) for c in crossing)

        lx = next((x for x in range(xl + 1, xr) if fits(x, el.ifname)), None)
        rx = next((x for x in range(xr - len(er.ifname), xl, -1) if fits(x, er.ifname)), None)
        if lx is not None and rx is not None and lx + len(el.ifname) < rx:
            cv.put(row, lx, el.ifname)
            cv.put(row, rx, er.ifname)
        else:  # no room on the line: under it
            cv.put(row + 1, xl + 1, f"{el.ifname} .. {er.ifname}", over=False)
    for x, last in verticals:
        for r in range(base, last):
            cv.put(r, x, "|" if cv_char(cv, r, x) in " -|" else cv_char(cv, r, x))
    return cv.text()


def _link_list(topo: model.Topology) -> str:
    lines = []
    for n in node_order(topo):
        node = topo.nodes[n]
        lines.append(f"{_label(node)}")
    width = max((len(str(l.a)) for l in topo.links), default=0)
    for link in topo.links:
        lines.append(f"  {str(link.a):>{width}} ---- {link.b}")
    return "\n".join(lines)


def sid_owner(topo: model.Topology, addr: ipaddress.IPv6Address) -> Optional[tuple[str, model.Sid]]:
    """The node (and its SID) whose SID covers `addr`: an exact /128 first,
    else the longest SID prefix that contains it."""
    best: Optional[tuple[int, str, model.Sid]] = None
    for name, node in topo.nodes.items():
        for sid in node.sids:
            if addr in sid.sid and (best is None or sid.sid.prefixlen > best[0]):
                best = (sid.sid.prefixlen, name, sid)
    return None if best is None else (best[1], best[2])


def _given(dev: model.Srl2) -> list[str]:
    return [f"{k} {v}" for k, v in (("table", dev.table), ("hmac", dev.hmac)) if v is not None]


def srl2_settings(dev: model.Srl2) -> str:
    """`reduced table 100 hmac 1`: what a device was given beyond its
    segments (mode, table, HMAC key id, where set); "" when nothing."""
    return " ".join(([dev.mode] if dev.mode is not None else []) + _given(dev))


def srl2_text(dev: model.Srl2, revision: str = "auto") -> str:
    """`sr6 full segs fcff:2::d20 table 100 hmac 1`: the device's kind (the
    link kind of `revision`; `srl2`, the project's word for the device, when
    that is auto), its mode, segments, table and HMAC key id (where set)."""
    from testbed import revisions

    kind = revisions.get(revision).kind if revision in revisions.NAMES else "srl2"
    mode = [dev.mode] if dev.mode is not None else []
    return " ".join([kind, *mode, f"segs {','.join(map(str, dev.segs))}", *_given(dev)])


def _sid_text(s: model.Sid) -> str:
    out = [f"SID {s.sid.network_address if s.sid.prefixlen == 128 else s.sid}", s.action]
    if s.nh6 is not None:
        out.append(f"nh6 {s.nh6}")
    if s.oif:
        out.append(f"oif {s.oif}")
    if s.l2dev:
        out.append(f"l2dev {s.l2dev}")
    if s.table is not None:
        out.append(f"table {s.table}")
    if s.count:
        out.append("count")
    return " ".join(out)


def _route_text(r: model.Route) -> str:
    out: list[str] = [] if r.type == "unicast" else [r.type]
    out.append("default" if r.dst.prefixlen == 0 else str(r.dst))
    if r.via is not None:
        out.append(f"via {r.via}")
    if r.dev:
        out.append(f"dev {r.dev}")
    if r.encap is not None:
        out.append(f"encap seg6 {r.encap.mode} segs {','.join(map(str, r.encap.segs))}")
    if r.table is not None:
        out.append(f"table {r.table}")
    return "route " + " ".join(out)


def _rule_text(r: model.Rule) -> str:
    out = ["rule"]
    if r.prio is not None:
        out.append(f"{r.prio}:")
    out.append(f"from {r.src}" if r.src is not None else "from all")
    if r.to is not None:
        out.append(f"to {r.to}")
    out.append(f"lookup {r.lookup}")
    return " ".join(out)


def details(topo: model.Topology, netns: Optional[dict[str, str]] = None) -> str:
    """Per-node description.  `netns` (node -> namespace name) adds the
    namespace of each node, for `testbed status`."""
    lines: list[str] = []
    for n in node_order(topo):
        node = topo.nodes[n]
        head = f"{n} ({node.kind})"
        if netns and n in netns:
            head += f"  netns {netns[n]}"
        lines.append(head)
        rows: list[tuple[str, str]] = []
        ifnames: list[str] = [end.ifname for _, end, _ in topo.veth_ends(n)]
        for name in list(node.bridges) + list(node.srl2) + list(node.interfaces):
            if name not in ifnames:
                ifnames.append(name)
        for ifname in ifnames:
            parts: list[str] = []
            for _link, end, peer in topo.veth_ends(n):
                if end.ifname == ifname:
                    parts.append(f"-> {peer}")
            br = node.bridges.get(ifname)
            if br is not None:
                ports = [p.name for p in br.ports]
                ports += [s.name for s in node.srl2.values() if s.bridge == ifname and s.name not in ports]
                parts.append("bridge" + (" vlan_filtering" if br.vlan_filtering else "") +
                             " [" + " ".join(ports) + "]")
            s = node.srl2.get(ifname)
            if s is not None:
                owner = sid_owner(topo, s.segs[-1]) if s.segs else None
                where = f" => {owner[0]} {owner[1].action}" if owner else ""
                parts.append(f"{srl2_text(s, topo.revision)}{where}")
            for b in node.bridges.values():
                for p in b.ports:
                    if p.name == ifname:
                        vl = f" pvid {p.pvid}" if p.pvid is not None else ""
                        vl += f" vlans {','.join(map(str, p.vlans))}" if p.vlans else ""
                        parts.append(f"port of {b.name}{vl}")
            iface = node.interfaces.get(ifname)
            if iface is not None:
                parts.extend(str(a) for a in iface.addresses)
                if iface.mtu is not None:
                    parts.append(f"mtu {iface.mtu}")
                if not iface.up:
                    parts.append("down")
            if parts or ifname != "lo":
                rows.append((ifname, " ".join(parts)))
        w = max((len(r[0]) for r in rows), default=0)
        lines.extend(f"  {name:<{w}}  {text}".rstrip() for name, text in rows)
        if node.tunsrc is not None:
            lines.append(f"  tunsrc {node.tunsrc}")
        lines.extend(f"  hmac key {k.keyid} {k.algorithm}" for k in node.hmac_keys.values())
        lines.extend("  " + _sid_text(s) for s in node.sids)
        lines.extend("  " + _rule_text(r) for r in node.rules)
        lines.extend("  " + _route_text(r) for r in node.routes)
    return "\n".join(lines)


def render(topo: model.Topology, netns: Optional[dict[str, str]] = None,
           max_width: Optional[int] = 160) -> str:
    """Picture, a blank line, then the details."""
    return picture(topo, max_width) + "\n\n" + details(topo, netns)


def comment(text: str, prefix: str = "# ") -> Iterable[str]:
    """`text` as comment lines (empty lines get a bare '#')."""
    for line in text.splitlines():
        yield (prefix + line).rstrip() if line else prefix.rstrip()
