"""The generator: a hypothesis RuleBasedStateMachine whose rules are the
fuzz steps (testbed.fuzz.steps), drawn from distributions over each
parameter's valid range and just beyond, with the boundary values
hypothesis favours by itself (docs/fuzz.md "What it drives").  Hypothesis
chooses, shrinks a failing sequence, and keeps failures in its database
(OUT/hypothesis) to replay them first on the next run with the same OUT.

The machine knows the lab only as far as needed to aim steps at objects
that exist (a device made by srl2_add, where a device was moved to); it
still sends steps at names that do not exist, now and then."""
from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from testbed.fuzz.frames import EDIT_FIELDS, device_srh
from testbed.fuzz.steps import GONE, Step
from testbed.srv6.srh import mtu_for

NAMES = ("fz0", "fz1")
SIDS = (1, 2, 3)
NODES = ("rt", "hs")
ACTIONS = ("End", "End.DT2U", "End.DX2")
REF_DEVS = ("veth-hs", "br0", "veth-up", "lo")
KINDS = ("ipv4", "ipv6", "arp", "raw", "llc", "bcast")

segment_counts = st.integers(min_value=0, max_value=130)    # 1..127 valid, and just beyond
edits = st.one_of(st.none(), st.none(), st.tuples(st.sampled_from(EDIT_FIELDS), st.integers(0, 255)))
sizes = st.one_of(st.integers(0, 64), st.integers(60, 1600), st.integers(1600, 9100))
counts = st.one_of(st.just(1), st.integers(1, 4), st.integers(16, 200))  # one, a few, a flood


def mtus(segs: int):
    """No MTU (the device computes one), one around the computed value, or any."""
    near = st.integers(-3, 3).map(lambda d: mtu_for(segs) + d)
    return st.one_of(st.none(), st.none(), st.none(), near, st.sampled_from((67, 68, 1280, 65535, 65536)),
                     st.integers(0, 70000))


# How often each step is drawn: objects must be made before anything can
# happen to them, so creation and packets come more often than the rest.
# (Hypothesis draws among rules uniformly; one rule drawing from this list
# sets the mix.)
WEIGHTS = {"srl2_add": 4, "srl2_change": 1, "link": 2, "ipv6": 1, "master": 1, "move": 1, "delete": 1,
           "sid_add": 2, "sid_del": 1, "srv6": 3, "l2": 2, "delete_flowing": 1}
OPS = tuple(op for op, w in WEIGHTS.items() for _ in range(w))


class TimeUp(Exception):
    """The time box is over: ends hypothesis' run (not a finding)."""


class FuzzMachine(RuleBasedStateMachine):
    """Set `FuzzMachine.world` (a testbed.fuzz.world.World) before running."""

    world: Any = None  # testbed.fuzz.world.World
    deadline = float("inf")  # time.time() at which fuzzing stops (TimeUp)
    max_srh = 0              # bytes; > 0: longer device SRHs are cut to a valid list that fits

    def __init__(self) -> None:
        super().__init__()
        self.where: dict[str, str] = {}  # device -> node, as far as the steps succeeded
        self.world.begin("fuzz")

    # ---- helpers -------------------------------------------------------

    def _name(self, data) -> str:
        existing = sorted(self.where)
        if existing:
            return data.draw(st.one_of(st.sampled_from(existing), st.sampled_from(existing),
                                       st.sampled_from(NAMES)), label="name")
        return data.draw(st.sampled_from(NAMES), label="name")

    def _fit(self, segs: int, edit):
        """(segs, edit) within --max-srh: to explore past a known bug that
        long segment lists trigger (the wrapped MTU), not for finding it."""
        if self.max_srh and len(device_srh(segs, edit)) > self.max_srh:
            return max(0, min(segs, (self.max_srh - 8) // 16)), None
        return segs, edit

    def _do(self, op: str, **args) -> str:
        outcome = self.world.step(Step(op, args))
        ok = outcome == "ok"
        name = args.get("name")
        if not ok or name is None:
            pass
        elif op == "srl2_add":
            self.where[name] = "rt"
        elif op == "move":
            self.where[name] = args["to"]
        elif op in ("delete", "delete_flowing"):
            self.where.pop(name, None)
        return outcome

    @property
    def raw(self) -> bool:
        return self.world.target.raw

    # ---- configuration -----------------------------------------------------

    @rule(data=st.data())
    def step(self, data) -> None:
        if time.time() >= self.deadline:
            raise TimeUp()
        op = data.draw(st.sampled_from(OPS), label="op")
        getattr(self, "do_" + op)(data)

    def do_srl2_add(self, data) -> None:
        segs = data.draw(segment_counts, label="segs")
        name = data.draw(st.sampled_from(NAMES), label="name")
        mtu = data.draw(mtus(segs), label="mtu")
        mac = data.draw(st.one_of(st.none(), st.integers(0, 2**48 - 1)), label="mac")
        up = data.draw(st.booleans(), label="up")
        edit = (list(data.draw(edits, label="edit") or []) or None) if self.raw else None
        segs, edit = self._fit(segs, edit)
        self._do("srl2_add", name=name, segs=segs, mtu=mtu, mac=mac, up=up, edit=edit)

    def do_srl2_change(self, data) -> None:
        if not self.raw:
            return
        name = self._name(data)
        segs, edit = self._fit(data.draw(segment_counts, label="segs"),
                               list(data.draw(edits, label="edit") or []) or None)
        self._do("srl2_change", name=name, segs=segs, edit=edit)

    def do_link(self, data) -> None:
        name = self._name(data)
        up = data.draw(st.one_of(st.just(True), st.just(False), st.none()), label="up")
        mtu = data.draw(st.one_of(st.none(), st.none(), st.integers(0, 70000)), label="mtu")
        self._do("link", name=name, node=self.where.get(name, "rt"), up=up, mtu=mtu)

    def do_ipv6(self, data) -> None:
        name = self._name(data)
        self._do("ipv6", name=name, node=self.where.get(name, "rt"), on=data.draw(st.booleans(), label="on"))

    def do_master(self, data) -> None:
        self._do("master", name=self._name(data), bridge=data.draw(st.sampled_from(("br0", None)), label="br"))

    def do_move(self, data) -> None:
        if not self.raw:
            return
        name = self._name(data)
        frm = self.where.get(name, "rt")
        self._do("move", name=name, frm=frm, to="hs" if frm == "rt" else "rt")

    def do_delete(self, data) -> None:
        name = self._name(data)
        self._do("delete", name=name, node=self.where.get(name, "rt"))

    def do_sid_add(self, data) -> None:
        devs = (*NAMES, *REF_DEVS, GONE, None)
        self._do("sid_add", k=data.draw(st.sampled_from(SIDS), label="k"),
                 action=data.draw(st.sampled_from(ACTIONS), label="action"),
                 dev=data.draw(st.sampled_from(devs), label="dev"), count=data.draw(st.booleans(), label="count"))

    def do_sid_del(self, data) -> None:
        self._do("sid_del", k=data.draw(st.sampled_from(SIDS), label="k"))

    # ---- packets -----------------------------------------------------------

    def do_srv6(self, data) -> None:
        d = data.draw
        self._do("srv6", k=d(st.integers(0, 4), label="k"),
                 nsegs=d(st.one_of(st.integers(1, 4), st.integers(1, 130)), label="nsegs"),
                 sl=d(st.one_of(st.none(), st.none(), st.integers(0, 255)), label="sl"),
                 edit=list(d(edits, label="edit") or []) or None,
                 kind=d(st.sampled_from(KINDS), label="kind"), size=d(sizes, label="size"),
                 vlans=d(st.integers(0, 3), label="vlans"), nested=d(st.booleans(), label="nested"),
                 reduced=d(st.booleans(), label="reduced"), frags=d(st.sampled_from((0, 0, 2, 3)), label="frags"),
                 cut=d(st.one_of(st.none(), st.none(), st.integers(14, 200)), label="cut"),
                 count=d(counts, label="count"))

    def do_l2(self, data) -> None:
        d = data.draw
        self._do("l2", kind=d(st.sampled_from(KINDS), label="kind"), size=d(sizes, label="size"),
                 vlans=d(st.integers(0, 3), label="vlans"), count=d(counts, label="count"))

    def do_delete_flowing(self, data) -> None:
        self._do("delete_flowing", name=self._name(data))

    def teardown(self) -> None:
        self.world.end()


__all__ = ["FuzzMachine", "TimeUp"]
