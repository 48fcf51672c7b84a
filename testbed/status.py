"""`testbed status`: what a lab is, read back from the kernel (not from the
YAML), so it shows what really exists."""
from __future__ import annotations

import socket

from typing import TYPE_CHECKING

from testbed import state

if TYPE_CHECKING:  # pragma: no cover
    from testbed.lab import Lab

# Route protocols and tables the kernel makes by itself: not worth showing.
RTPROT_KERNEL = 2
RT_TABLE_LOCAL = 255
RT_TABLE_MAIN = 254
RTN_NAMES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
             6: "blackhole", 7: "unreachable", 8: "prohibit"}
LWTUNNEL_ENCAP_SEG6 = 5
LWTUNNEL_ENCAP_SEG6_LOCAL = 7


IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def _state(flags: int) -> str:
    """Admin state and carrier from the flags (operstate lags behind by up to
    a second of linkwatch delay, which would show a fresh lab as DOWN)."""
    if not flags & IFF_UP:
        return "DOWN"
    return "UP" if flags & IFF_LOWER_UP else "NO-CARRIER"


def _links(ipr) -> tuple[list[dict], dict[int, str]]:
    links = ipr.get_links()
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in links}
    out = []
    for m in links:
        info = m.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        master = m.get_attr("IFLA_MASTER")
        out.append({
            "name": m.get_attr("IFLA_IFNAME"),
            "kind": kind or ("loopback" if m["index"] == 1 else "device"),
            "state": _state(m["flags"]),
            "mtu": m.get_attr("IFLA_MTU"),
            "mac": m.get_attr("IFLA_ADDRESS"),
            "master": names.get(master) if master else None,
            "addresses": [],
        })
    return out, names


def _addresses(ipr, links: list[dict], names: dict[int, str]) -> None:
    by_name = {link["name"]: link for link in links}
    for m in ipr.get_addr():
        addr = m.get_attr("IFA_ADDRESS")
        if m["family"] == socket.AF_INET6 and addr.startswith("fe80"):
            continue  # link-local: made by the kernel on every interface
        if addr in ("127.0.0.1", "::1"):
            continue
        name = names.get(m["index"])
        if name in by_name:
            by_name[name]["addresses"].append(f"{addr}/{m['prefixlen']}")


def _encap(m) -> dict | None:
    """Route-based seg6 encapsulation, as iproute2 shows it."""
    if m.get_attr("RTA_ENCAP_TYPE") != LWTUNNEL_ENCAP_SEG6:
        return None
    srh = m.get_attr("RTA_ENCAP").get_attr("SEG6_IPTUNNEL_SRH") if m.get_attr("RTA_ENCAP") else None
    return {"type": "seg6", "mode": srh.get("mode"), "segs": srh.get("segs")} if srh else {"type": "seg6"}


def _sids(ipr, names: dict[int, str]) -> list[dict]:
    """Kernel seg6local routes (the kernel datapath's SIDs)."""
    from testbed.srv6 import nla, seg6

    out = []
    for m in nla.dump_seg6local(ipr):
        info = nla.seg6local_of(m)
        assert info is not None  # dump_seg6local yields seg6local routes only
        table = m.get_attr("RTA_TABLE") or m["table"]
        sid = {"sid": f"{m.get_attr('RTA_DST')}/{m['dst_len']}",
               "action": seg6.ACTION_NAMES.get(info["action"], str(info["action"])),
               "table": "main" if table == RT_TABLE_MAIN else table,
               "dev": names.get(m.get_attr("RTA_OIF"))}
        for key in ("oif", "l2dev"):
            if info[key]:
                sid[key] = names.get(info[key], info[key])
        if info["nh6"]:
            sid["nh6"] = info["nh6"]
        if info["counters"] is not None:
            sid["counters"] = info["counters"]
        out.append(sid)
    return out


def _routes(ipr, names: dict[int, str]) -> list[dict]:
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in ipr.get_routes(family=family):
            table = m.get_attr("RTA_TABLE") or m["table"]
            if table == RT_TABLE_LOCAL or m["proto"] == RTPROT_KERNEL:
                continue
            if RTN_NAMES.get(m["type"]) == "multicast":
                continue
            if m.get_attr("RTA_ENCAP_TYPE") == LWTUNNEL_ENCAP_SEG6_LOCAL:
                continue  # a SID: listed by _sids
            dst = m.get_attr("RTA_DST")
            route = {
                "dst": f"{dst}/{m['dst_len']}" if dst else ("default" if m["dst_len"] == 0 else "?"),
                "type": RTN_NAMES.get(m["type"], str(m["type"])),
                "via": m.get_attr("RTA_GATEWAY"),
                "dev": names.get(m.get_attr("RTA_OIF")),
                "table": "main" if table == RT_TABLE_MAIN else table,
                "metric": m.get_attr("RTA_PRIORITY"),
            }
            encap = _encap(m)
            if encap:
                route["encap"] = encap
            out.append({k: v for k, v in route.items() if v is not None})
    return out


def _rules(ipr) -> list[dict]:
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in ipr.get_rules(family=family):
            prio = m.get_attr("FRA_PRIORITY") or 0
            table = m.get_attr("FRA_TABLE") or m["table"]
            if prio in (0, 32766, 32767):
                continue  # the kernel's own local/main/default rules
            rule = {"prio": prio, "lookup": table, "family": 4 if family == socket.AF_INET else 6}
            if m["dst_len"]:
                rule["to"] = f"{m.get_attr('FRA_DST')}/{m['dst_len']}"
            if m["src_len"]:
                rule["from"] = f"{m.get_attr('FRA_SRC')}/{m['src_len']}"
            out.append(rule)
    return out


def collect(lab: Lab) -> dict:
    """Everything `status` shows, as plain data (the --json output)."""
    rec = lab.record
    nodes = {}
    for node, ns in lab.ns.items():
        ipr = ns.ipr
        links, names = _links(ipr)
        _addresses(ipr, links, names)
        routes = _routes(ipr, names)
        nodes[node] = {
            "netns": ns.name,
            "interfaces": links,
            "routes": routes,
            "sids": _sids(ipr, names),
            "rules": _rules(ipr),
        }
    dp = lab.datapath_for_status()
    if dp is not None:
        for node, info in nodes.items():
            extra = dp.describe(lab.ns[node])
            info["sids"] += extra.pop("sids", [])
            info.update(extra)
    return {
        "lab": lab.name,
        "topology": rec.topology,
        "datapath": rec.datapath,
        "owner": {"pid": rec.owner.pid, "kind": rec.owner.what, "alive": rec.owner.alive()},
        "nodes": nodes,
    }


def collect_all() -> list[dict]:
    from testbed.lab import Lab

    out = []
    for rec in state.all_records():
        lab = Lab.attach(rec.name)
        try:
            out.append(collect(lab))
        finally:
            lab.close()
    return out


# ---- text -------------------------------------------------------------

def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _route_text(r: dict) -> str:
    parts = [r["dst"] if r["type"] == "unicast" else f"{r['type']} {r['dst']}"]
    if "via" in r:
        parts.append(f"via {r['via']}")
    if "dev" in r:
        parts.append(f"dev {r['dev']}")
    enc = r.get("encap")
    if enc and enc["type"] == "seg6":
        parts.append(f"encap seg6 mode {enc.get('mode')} segs {','.join(reversed(enc.get('segs') or []))}")
    if r.get("table") not in (None, "main"):
        parts.append(f"table {r['table']}")
    return " ".join(parts)


def _sid_text(s: dict) -> str:
    parts = [s["sid"], s["action"]]
    parts += [f"{k} {s[k]}" for k in ("nh6", "oif", "l2dev", "dev") if s.get(k)]
    if s.get("table") not in (None, "main"):
        parts.append(f"table {s['table']}")
    if "datapath" in s:
        parts.append(f"({s['datapath']} datapath)")
    if "counters" in s:
        c = s["counters"]
        parts.append(f"packets {c['packets']} bytes {c['bytes']} errors {c['errors']}")
    return " ".join(parts)


def format_text(info: dict) -> str:
    owner = info["owner"]
    lines = [f"lab {info['lab']}  topology {info['topology']}  datapath {info['datapath']}  "
             f"owner {owner['kind']} pid {owner['pid']}{'' if owner['alive'] else ' (dead: stale)'}"]
    for node, n in info["nodes"].items():
        lines.append("")
        lines.append(f"{node}  (netns {n['netns']})")
        rows = [["INTERFACE", "KIND", "STATE", "MTU", "MASTER", "ADDRESSES"]]
        for i in n["interfaces"]:
            if i["kind"] == "loopback" and not i["addresses"]:
                continue
            rows.append([i["name"], i["kind"], i["state"] or "", str(i["mtu"]), i["master"] or "-",
                         " ".join(i["addresses"]) or "-"])
        lines += _table(rows)
        if n["rules"]:
            lines += [f"  rule   {r['prio']}: " + " ".join(
                f"{k} {r[k]}" for k in ("from", "to") if k in r) + f" lookup {r['lookup']}" for r in n["rules"]]
        lines += [f"  route  {_route_text(r)}" for r in n["routes"]]
        lines += [f"  sid    {_sid_text(s)}" for s in n["sids"]]
        for dev, counters in n.get("srl2", {}).items():
            shown = " ".join(f"{k}={v}" for k, v in counters.items() if k != "datapath")
            lines.append(f"  srl2   {dev} ({counters.get('datapath', info['datapath'])}): {shown}")
    return "\n".join(lines)
