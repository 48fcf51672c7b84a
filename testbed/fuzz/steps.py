"""One fuzz step as data: an operation name and its parameters, JSON both
ways, so that the journal, the shrinker and the reproducer all speak of the
same thing (docs/fuzz.md "Steps").  Nothing here touches the kernel.

Operations (objects are named; devices live in node `rt` unless moved;
"srl2" is the series' device, of the revision's link kind: srl2, sr6):

    srl2_add  name segs mtu mac up edit  RTM_NEWLINK create, raw SRH
              [mode table hmac]          (revisions that have them)
    srl2_change name segs edit [mode table hmac]  RTM_NEWLINK on the existing device
    link      name node up mtu         set up/down, set MTU
    ipv6      name node on             net.ipv6.conf.NAME.disable_ipv6
    master    name bridge              enslave to `bridge` (br0, or the VRF) or release (None)
    move      name frm to              move to another node's netns
    delete    name node                delete the device
    sid_add   k action dev count       seg6local route fc00:f::k (dev: l2dev/oif)
    sid_del   k                        remove it
    srv6      k nsegs sl edit inner... [red]  SRv6 packets from node `up` to fc00:f::k
    l2        kind size vlans count    frames from node `hs` into the bridge
    delete_flowing name                delete a bridged device while `hs` floods
    change_flowing name segs mode segs2 mode2 swaps
                                       changelink, alternately to each, while frames
                                       go out of the device (set up first)
    hmac_key  k secret algo via        `ip sr hmac set` (secret None: delete), while
                                       frames go out of device `via` (None: no traffic)
    vrf_add   table up                 the VRF testbed.fuzz.mix.VRF with that table
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from testbed.fuzz.mix import TABLE_ROUTED

OPS = ("srl2_add", "srl2_change", "link", "ipv6", "master", "move", "delete", "sid_add",
       "sid_del", "srv6", "l2", "delete_flowing", "change_flowing", "hmac_key", "vrf_add")

GONE = "#gone"  # an ifindex no interface has (a deleted l2dev / oif)


@dataclass
class Step:
    op: str
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown fuzz step {self.op!r} (known: {', '.join(OPS)})")

    def to_json(self) -> dict:
        return {"op": self.op, **self.args}

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        data = dict(data)
        return cls(data.pop("op"), data)

    def __str__(self) -> str:
        return self.op + " " + " ".join(f"{k}={v}" for k, v in self.args.items()
                                        if v is not None and v is not False)

    def needs(self) -> set[str]:
        """The lab's nodes this step uses (the reproducer builds only those)."""
        a = self.args
        nodes = {"rt"}
        if self.op in ("srv6",):
            nodes.add("up")
        if self.op in ("l2", "delete_flowing"):
            nodes.add("hs")
        if self.op == "move" or a.get("node") == "hs":
            nodes.add("hs")
        if self.op == "sid_add":
            nodes.add("up")  # every fuzzed SID route is on rt:veth-up
            if a.get("dev") in ("veth-hs", "br0"):
                nodes.add("hs")
        if self.op == "master":
            nodes.add("hs")  # br0 and its port veth-hs
        if a.get("table") == TABLE_ROUTED:
            nodes.add("up")  # that table's route goes through veth-up
        if self.op == "change_flowing" or (self.op == "hmac_key" and a.get("via")):
            nodes.add("up")  # the frames they send out of a device go to the underlay
        return nodes


def dumps(steps: list[Step]) -> str:
    return json.dumps([s.to_json() for s in steps])


def loads(text: str) -> list[Step]:
    return [Step.from_json(d) for d in json.loads(text)]


__all__ = ["Step", "OPS", "GONE", "dumps", "loads"]
