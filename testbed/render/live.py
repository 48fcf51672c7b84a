"""`testbed graph LAB`: a picture of a running lab as the kernel has it.

Two steps, so that the drawing is a pure function that tests can feed:

* `read(lab)` reads the lab back (testbed/status.py's `collect`, the same
  data as `testbed status --json`) and adds what a picture needs beyond it:
  which veth ends face each other (each end's peer ifindex and the peer's
  netns id, resolved to a node with RTM_GETNSID), packet counters of every
  interface, each srl2 device's segment list (from status's
  "srl2_devices": the kernel's srl2/sr6 device, or the reference
  process's `info`), and which nodes forward IPv6.
* `render_live_dot(info)` draws it as graphviz DOT: routers are ellipses and
  hosts boxes, each listing its bridges (with their ports), srl2 devices
  (kind, mode, segments, table, HMAC key id, counters), SIDs (counters where counted) and addresses of
  non-veth interfaces; veth pairs are edges with the interface, its
  addresses and tx/rx packets at each end; pseudowires are dashed arrows from
  the encapsulating node to the owner of the last SID: blue for srl2
  devices, green for route-based seg6 encapsulation (l2encap.red in
  topologies/mesh4.yaml), labelled with the segment list, the device's
  kind, mode, table and HMAC key id where it has them, and counters.
"""
from __future__ import annotations

import ipaddress
import os
import time
from typing import TYPE_CHECKING

import jinja2

if TYPE_CHECKING:  # pragma: no cover
    from testbed.lab import Lab

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(os.path.abspath(__file__))),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True, autoescape=False)

NSID_UNASSIGNED = 0xFFFFFFFF  # NETNSA_NSID of a namespace the asking one has no id for


# ---- reading the lab back ----------------------------------------------------

def read(lab: "Lab") -> dict:
    """`status.collect(lab)` plus, per node, "router", "stats" (interface ->
    rx/tx packets) and "segs" (srl2 device -> segments in visiting order,
    from "srl2_devices"), and "links": the veth pairs, [{"a", "a_if", "b",
    "b_if"}]."""
    from testbed import status

    info = status.collect(lab)
    info["read_at"] = time.time()
    veths: dict[str, dict[str, tuple[int, int | None]]] = {}  # node -> ifname -> (peer ifindex, nsid)
    index: dict[str, dict[int, str]] = {}  # node -> ifindex -> name
    for node, n in info["nodes"].items():
        ns = lab.ns[node]
        links = ns.ipr.get_links()
        index[node] = {m["index"]: m.get_attr("IFLA_IFNAME") for m in links}
        n["stats"], veths[node] = {}, {}
        for m in links:
            name = m.get_attr("IFLA_IFNAME")
            stats = m.get_attr("IFLA_STATS64")
            if stats is not None:
                n["stats"][name] = {"rx_packets": int(stats["rx_packets"]), "tx_packets": int(stats["tx_packets"])}
            if _kind(m) == "veth" and m.get_attr("IFLA_LINK"):
                veths[node][name] = (m.get_attr("IFLA_LINK"), m.get_attr("IFLA_LINK_NETNSID"))
        n["segs"] = {dev: list(d.get("segs", [])) for dev, d in n.get("srl2_devices", {}).items()}
        n["router"] = bool(n["sids"] or n["segs"] or _forwards(ns))
    info["links"] = _pairs(lab, veths, index)
    return info


def _kind(m) -> str | None:
    li = m.get_attr("IFLA_LINKINFO")
    return li.get_attr("IFLA_INFO_KIND") if li else None


def _forwards(ns) -> bool:
    try:
        return ns.read_sysctl("net.ipv6.conf.all.forwarding") == "1"
    except OSError:
        return False


def _nsid(lab: "Lab", node: str, other: str, cache: dict) -> int | None:
    """The id `node`'s netns has for `other`'s (RTM_GETNSID with its fd)."""
    key = (node, other)
    if key not in cache:
        from pyroute2.netlink import NLM_F_REQUEST
        from pyroute2.netlink.rtnl import RTM_GETNSID
        from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

        from testbed.srv6.nla import send

        fd = lab.ns[other].fd()
        try:
            msg = nsidmsg()
            msg["attrs"] = [("NETNSA_FD", fd)]
            reply = send(lab.ns[node].ipr, msg, RTM_GETNSID, NLM_F_REQUEST)
            nsid = reply[0].get_attr("NETNSA_NSID") if reply else None
            cache[key] = None if nsid in (None, NSID_UNASSIGNED) else nsid
        finally:
            os.close(fd)
    return cache[key]


def _pairs(lab: "Lab", veths: dict, index: dict) -> list[dict]:
    """Veth pairs between the lab's nodes: an end names its peer by ifindex
    and netns id; candidates are the nodes whose interface of that index
    names this end back, confirmed by the netns id (ifindexes repeat from
    one netns to the next)."""
    cache: dict = {}
    out, seen = [], set()
    own = {node: {name: idx for idx, name in index[node].items()} for node in index}
    for a, ends in veths.items():
        for a_if, (peer_idx, nsid) in ends.items():
            if (a, a_if) in seen:
                continue
            for b in veths:
                b_if = index[b].get(peer_idx)
                if b_if is None or veths[b].get(b_if, (None,))[0] != own[a][a_if]:
                    continue
                if nsid is None and b != a:
                    continue  # no netns id: the peer is in a's own netns
                if nsid is not None and (b == a or _nsid(lab, a, b, cache) != nsid):
                    continue
                seen.update({(a, a_if), (b, b_if)})
                out.append({"a": a, "a_if": a_if, "b": b, "b_if": b_if})
                break
    return out


# ---- drawing ------------------------------------------------------------------

def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _lines(lines: list[str]) -> str:
    """A DOT label: the first line centred, the rest left-justified."""
    if len(lines) == 1:
        return _esc(lines[0])
    return _esc(lines[0]) + "\\n" + "".join(_esc(line) + "\\l" for line in lines[1:])


def _rxtx(stats: dict | None) -> str:
    return f"tx {stats['tx_packets']} rx {stats['rx_packets']}" if stats else ""


def sid_owner(info: dict, addr: str) -> str | None:
    """The node with the longest SID prefix holding `addr`, if any."""
    try:
        a = ipaddress.IPv6Address(addr)
    except ValueError:
        return None
    best = None
    for node, n in info["nodes"].items():
        for s in n["sids"]:
            net = ipaddress.IPv6Network(s["sid"] if "/" in s["sid"] else f"{s['sid']}/128", strict=False)
            if a in net and (best is None or net.prefixlen > best[1]):
                best = (node, net.prefixlen)
    return best[0] if best else None


def _node_label(node: str, n: dict) -> str:
    lines = [node]
    for i in n["interfaces"]:
        if i["kind"] == "bridge":
            ports = [p["name"] for p in n["interfaces"] if p["master"] == i["name"]]
            lines.append(f"bridge {i['name']} [{', '.join(ports)}] {' '.join(i['addresses'])}".rstrip())
    counters = n.get("srl2", {})
    devices = n.get("srl2_devices", {})
    for dev, segs in n["segs"].items():
        c = counters.get(dev) or n["stats"].get(dev)
        d = devices.get(dev, {})
        head = [d.get("kind") or "srl2", dev] + ([d["mode"]] if d.get("mode") else [])
        tail = "".join(f" {k} {d[k]}" for k in ("table", "hmac") if d.get(k) is not None)
        lines.append(f"{' '.join(head)} segs {', '.join(segs)}{tail}" + (f"  {_rxtx(c)}" if c else ""))
        drops = {k: v for k, v in (counters.get(dev) or {}).items()
                 if k in ("tx_dropped", "tx_carrier_errors", "collisions", "rx_dropped") and v}
        if drops:
            lines.append("  " + " ".join(f"{k} {v}" for k, v in drops.items()))
    for s in n["sids"]:
        arg = " ".join(str(s[k]) for k in ("nh6", "oif", "l2dev") if s.get(k))
        sid = s["sid"].removesuffix("/128")
        c = s.get("counters")
        lines.append(f"sid {sid} {s['action']}{' ' + arg if arg else ''}"
                     + (f"  packets {c['packets']} errors {c['errors']}" if c else ""))
    for i in n["interfaces"]:
        if i["kind"] not in ("veth", "bridge") and i["name"] not in n["segs"] and i["addresses"]:
            lines.append(f"{i['name']} {' '.join(i['addresses'])}")
    return _lines(lines)


def settings(d: dict) -> str:
    """`sr6 reduced table 100 hmac 1`: a device's kind and what it was
    given, or "" when it was given nothing beyond its segments (an srl2
    device: the one mode it has)."""
    given = ([d["mode"]] if d.get("mode") else []) + [f"{k} {d[k]}" for k in ("table", "hmac")
                                                     if d.get(k) is not None]
    return " ".join(([d["kind"]] if d.get("kind") else []) + given) if given else ""


def _pseudowires(info: dict) -> tuple[list[dict], list[dict]]:
    pws: list[dict] = []
    unknown: dict[str, dict[str, str]] = {}

    def to(addr: str) -> str:
        owner = sid_owner(info, addr)
        if owner is not None:
            return _q(owner)
        unknown.setdefault(addr, {"id": _q(f"?{addr}"), "label": _esc(f"{addr}?")})
        return unknown[addr]["id"]

    for node, n in info["nodes"].items():
        for dev, segs in n["segs"].items():
            if segs:
                c = n.get("srl2", {}).get(dev) or n["stats"].get(dev)
                given = settings(n.get("srl2_devices", {}).get(dev, {}))
                pws.append({"a": _q(node), "b": to(segs[-1]), "color": "blue",
                            "label": _lines([f"{dev}: {', '.join(segs)}"] + ([given] if given else [])
                                            + ([_rxtx(c)] if c else []))})
        groups: dict[tuple, list[str]] = {}
        for r in n["routes"]:
            enc = r.get("encap")
            if enc and enc.get("type") == "seg6" and enc.get("segs"):
                segs = tuple(reversed(enc["segs"]))  # status keeps the wire order
                groups.setdefault((enc.get("mode"), segs), []).append(r["dst"])
        for (mode, segs), dsts in groups.items():
            pws.append({"a": _q(node), "b": to(segs[-1]), "color": "darkgreen",
                        "label": _lines([f"{', '.join(dsts)}", f"seg6 {mode}: {', '.join(segs)}"])})
    return pws, list(unknown.values())


def render_live_dot(info: dict) -> str:
    """Graphviz DOT of `read(lab)`'s data (pure)."""
    nodes = [{"id": _q(node), "shape": "ellipse" if n.get("router") else "box", "label": _node_label(node, n)}
             for node, n in info["nodes"].items()]
    links = []
    for pair in info["links"]:
        ends = []
        for node, ifname in ((pair["a"], pair["a_if"]), (pair["b"], pair["b_if"])):
            n = info["nodes"][node]
            iface: dict = next((i for i in n["interfaces"] if i["name"] == ifname), {"addresses": []})
            ends.append("\\n".join(_esc(t) for t in [ifname, *iface["addresses"], _rxtx(n["stats"].get(ifname))] if t))
        links.append({"a": _q(pair["a"]), "b": _q(pair["b"]), "taillabel": ends[0], "headlabel": ends[1],
                      "tooltip": _esc(f"{pair['a']}:{pair['a_if']} -- {pair['b']}:{pair['b_if']}")})
    pws, unknown = _pseudowires(info)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("read_at", time.time())))
    title = f"lab {info['lab']} ({info['datapath']} datapath, {info['topology']}), read back at {when}"
    return _env.get_template("live.dot.j2").render(name=_q(info["lab"]), title=_esc(title), nodes=nodes,
                                                   links=links, pseudowires=pws, unknown=unknown)


__all__ = ["read", "render_live_dot", "sid_owner", "settings"]
