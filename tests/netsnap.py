"""A normalized picture of what a network namespace holds, from `ip -j`.

`snapshot(netns)` is meant for comparing two labs built from one topology by
different means (the rendered bash script, the engine): it keeps what the
topology decides and drops what differs by construction (ifindexes, random
MACs and the link-local addresses and routes derived from them, counters,
timers, operstate that depends on timing).

    {
      "links":     {ifname: {"kind", "mtu", "master", "up"}},
      "addresses": [{"ifname", "address", "scope"}...]        (sorted)
      "routes":    [{"family", "table", "type", "dst", ...}...] (all tables, sorted)
      "rules":     [{"family", "priority", "src", "dst", "table", ...}...]
      "vlans":     {port: [{"vid", "pvid", "untagged"}...]}
    }

Needs root (or CAP_SYS_ADMIN) for `ip -n`.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

__all__ = ["snapshot", "ip_json"]

# route/rule keys that are not configuration
_ROUTE_DROP = {"flags", "pref", "expires", "cache", "cacheinfo", "error", "used", "ifindex"}
_RULE_DROP = {"flags", "protocol"}


def ip_json(netns: str, *args: str, tool: str = "ip") -> Any:
    """`ip -n NETNS -j ARGS` (or `bridge -n NETNS -j ARGS`), parsed."""
    out = subprocess.run([tool, "-n", netns, "-j", *args], capture_output=True, text=True, check=True).stdout
    out = out.strip()
    return json.loads(out) if out else []


def _is_link_local(addr: str) -> bool:
    try:
        return ipaddress.ip_network(addr, strict=False).network_address.is_link_local and \
            ipaddress.ip_network(addr, strict=False).version == 6
    except ValueError:
        return False


def _links(netns: str) -> dict[str, dict]:
    out = {}
    for link in ip_json(netns, "-d", "link", "show"):
        kind = (link.get("linkinfo") or {}).get("info_kind")
        if kind is None:
            kind = "loopback" if link.get("link_type") == "loopback" else link.get("link_type")
        out[link["ifname"]] = {
            "kind": kind,
            "mtu": link.get("mtu"),
            "master": link.get("master"),
            "up": "UP" in link.get("flags", []),
        }
    return out


def _addresses(netns: str, keep_link_local: bool) -> list[dict]:
    out = []
    for link in ip_json(netns, "addr", "show"):
        for a in link.get("addr_info", []):
            addr = f"{a['local']}/{a['prefixlen']}"
            if not keep_link_local and _is_link_local(addr):
                continue
            out.append({"ifname": link["ifname"], "address": addr, "scope": a.get("scope")})
    return sorted(out, key=lambda d: (d["ifname"], d["address"]))


def _norm_route(r: dict, family: int, keep_link_local: bool) -> dict | None:
    r = {k: v for k, v in r.items() if k not in _ROUTE_DROP}
    dst = r.get("dst", "default")
    if not keep_link_local and family == 6:
        # fe80::/64 per interface and local routes of link-local addresses,
        # multicast routes per interface: made by the kernel, same for both
        if dst.split("/")[0].startswith("fe80:"):
            return None
    if r.get("protocol") != "kernel":
        # who added it (iproute2 says "boot", pyroute2 "static"): not configuration
        r.pop("protocol", None)
    r["family"] = family
    r.setdefault("table", "main")
    r.setdefault("type", "unicast")
    r["dst"] = dst
    if "metrics" in r:  # [{"hoplimit": 10}] -> {"hoplimit": 10}
        merged: dict = {}
        for m in r["metrics"]:
            merged.update(m)
        r["metrics"] = merged
    return r


def _routes(netns: str, keep_link_local: bool) -> list[dict]:
    out = []
    for fam in (4, 6):
        for r in ip_json(netns, f"-{fam}", "route", "show", "table", "all"):
            n = _norm_route(r, fam, keep_link_local)
            if n is not None:
                out.append(n)
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


def _rules(netns: str) -> list[dict]:
    out = []
    for fam in (4, 6):
        for r in ip_json(netns, f"-{fam}", "rule", "show"):
            r = {k: v for k, v in r.items() if k not in _RULE_DROP}
            r["family"] = fam
            out.append(r)
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


def _vlans(netns: str) -> dict[str, list[dict]]:
    try:
        data = ip_json(netns, "vlan", "show", tool="bridge")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {}
    # iproute2 >= 5.x: [{"ifname": p, "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]}]
    items = data.items() if isinstance(data, dict) else ((d["ifname"], d.get("vlans", [])) for d in data)
    out = {}
    for ifname, vlans in items:
        rows = []
        for v in vlans:
            flags = v.get("flags", [])
            first = v.get("vlan")
            last = v.get("vlanEnd", first)
            for vid in range(first, last + 1):
                rows.append({"vid": vid, "pvid": "PVID" in flags, "untagged": "Egress Untagged" in flags})
        out[ifname] = sorted(rows, key=lambda d: d["vid"])
    return out


def snapshot(netns: str, keep_link_local: bool = False) -> dict:
    """What netns NETNS holds, normalized (see the module docstring)."""
    return {
        "links": _links(netns),
        "addresses": _addresses(netns, keep_link_local),
        "routes": _routes(netns, keep_link_local),
        "rules": _rules(netns),
        "vlans": _vlans(netns),
    }
