"""testbed list [--json]: one line per lab, from the lab records alone (no
netlink, no root needed where the records are readable): name, datapath,
nodes, owner (pid, what, user; "stale" once it died), age, topology file."""
from __future__ import annotations

import json
import pwd
import time


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="one line per lab: name, datapath, nodes, owner, age, topology",
                       description="List the labs that are up (their records under the state directory): "
                                   "name, datapath, number of nodes, owner pid and user, age, topology file. "
                                   "A lab whose owner died is marked stale (testbed down --stale removes it).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def user_name(uid: int | None) -> str:
    if uid is None:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def age(seconds: float) -> str:
    """3s, 4m12s, 2h05m, 3d04h: short, and sortable by eye."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def rows(now: float | None = None) -> list[dict]:
    from testbed import state

    now = time.time() if now is None else now
    out = []
    for rec in state.all_records():
        out.append({
            "name": rec.name,
            "datapath": rec.datapath or "?",
            "nodes": len(rec.netns),
            "owner": {"pid": rec.owner.pid, "kind": rec.owner.what, "user": user_name(rec.uid),
                      "alive": rec.owner.alive()},
            "age": round(now - rec.created, 1),
            "topology": rec.topology,
        })
    return out


def format_rows(labs: list[dict]) -> str:
    table = [["LAB", "DATAPATH", "NODES", "OWNER", "USER", "AGE", "TOPOLOGY"]]
    for lab in labs:
        o = lab["owner"]
        owner = f"{o['kind'] or 'pid'} {o['pid']}" + ("" if o["alive"] else " (stale)")
        table.append([lab["name"], lab["datapath"], str(lab["nodes"]), owner, o["user"], age(lab["age"]),
                      lab["topology"]])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def run(args) -> int:
    labs = rows()
    if args.json:
        print(json.dumps(labs, indent=1))
    elif not labs:
        print("no labs are up")
    else:
        print(format_rows(labs))
    return 0
