"""`testbed status`: what a lab is, read back from the kernel (not from the
YAML), so it shows what really exists: interfaces, routes, rules, SIDs,
the series' L2 devices (srl2, sr6: segments, mode, table, HMAC key id)
from the kernel or the reference process, and their counters."""
from __future__ import annotations

import os
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
SR6_TLV_PAD1 = 0
SR6_TLV_HMAC = 5  # RFC 8754 §2.1.2: D/reserved (2 bytes), key id (4), HMAC


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


def hmac_keyid(tlvs: bytes) -> int | None:
    """The key id of the SRH's HMAC TLV among `tlvs` (what follows the
    segment list), or None without one."""
    i = 0
    while i < len(tlvs):
        if tlvs[i] == SR6_TLV_PAD1:
            i += 1
            continue
        if i + 2 > len(tlvs):
            return None
        kind, length = tlvs[i], tlvs[i + 1]
        if kind == SR6_TLV_HMAC and length >= 6 and i + 2 + length <= len(tlvs):
            return int.from_bytes(tlvs[i + 4:i + 8], "big")
        i += 2 + length
    return None


def l2_device(kind: str | None, srh: bytes | None, mode: str | None = None, table: int | None = None,
              hmac: int | None = None) -> dict:
    """One of the series' L2 devices (srl2, sr6) as status shows it: its
    kind, segments in visiting order (from its SRH, the list as configured:
    a reduced device leaves the first SID out on the wire, not in its
    IFLA_*_SRH), and mode, table and HMAC key id where it has them (the key
    id from the SRH's HMAC TLV when not given)."""
    from testbed.srv6.srh import decode_srh

    segs: list[str] = []
    if srh:
        try:
            decoded = decode_srh(srh)
        except ValueError as e:
            segs = [f"(SRH does not decode: {e})"]
        else:
            segs = [str(a) for a in decoded.travel_order]
            if hmac is None:
                hmac = hmac_keyid(decoded.tlvs)
    dev = {"kind": kind, "segs": segs, "mode": mode, "table": table, "hmac": hmac}
    return {k: v for k, v in dev.items() if v is not None}


def _kernel_l2(ipr) -> dict[str, dict]:
    """The kernel's srl2/sr6 devices of the netns (the kernel datapath's)."""
    from testbed.srv6 import nla

    out = {}
    for m in ipr.get_links():
        d = nla.l2_link_of(m)
        if d is not None:
            out[m.get_attr("IFLA_IFNAME")] = l2_device(d["kind"], d["srh"], d["mode"], d["table"])
    return out


def _ref_l2(lab: Lab, node: str) -> dict[str, dict]:
    """The reference process's devices (its `info`); {} when the lab's
    datapath is not the reference or the process does not answer (the
    counters say so)."""
    from testbed.datapaths.ref import RefDatapath

    dp = lab.datapath_for_status()
    if not isinstance(dp, RefDatapath) or not os.path.exists(dp.control_path(lab.ns[node])):
        return {}
    from srl2_ref.control import query

    try:
        devices = query(dp.control_path(lab.ns[node]), "info").get("devices", {})
    except (OSError, RuntimeError, ValueError):
        return {}
    out = {}
    for name, d in devices.items():
        try:
            srh = bytes.fromhex(d["srh"]) if d.get("srh") else None
        except ValueError:
            srh = None
        dev = l2_device(d.get("kind"), srh, d.get("mode"), d.get("table"), d.get("hmac"))
        if "segs" in d:  # as configured (its SRH may be the reduced one on the wire)
            dev["segs"] = [str(x) for x in d["segs"]]
        out[name] = dev
    return out


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
    nodes: dict[str, dict] = {}
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
            "srl2_devices": {**_kernel_l2(ipr), **_ref_l2(lab, node)},
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


def device_text(name: str, d: dict) -> str:
    """`srl2-0  sr6 full segs fcff:2::d20 table 100 hmac 1`: what it is,
    then what it was given (mode, table, hmac where set)."""
    parts = [name, ""] + [d[k] for k in ("kind", "mode") if d.get(k)]
    parts.append(f"segs {','.join(d.get('segs', [])) or '-'}")
    parts += [f"{k} {d[k]}" for k in ("table", "hmac") if d.get(k) is not None]
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
        lines += [f"  srl2   {device_text(dev, d)}" for dev, d in n.get("srl2_devices", {}).items()]
        for dev, counters in n.get("srl2", {}).items():
            shown = " ".join(f"{k}={v}" for k, v in counters.items() if k != "datapath")
            lines.append(f"  srl2   {dev} ({counters.get('datapath', info['datapath'])}): {shown}")
    return "\n".join(lines)
