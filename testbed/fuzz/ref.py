"""Fuzz steps on the reference datapath (srl2_ref).  Its configuration is
given at start-up, so a configuration step changes the node's wanted
devices and SIDs and restarts its process through the lab engine's
RefDatapath; the kernel-side settings of its TAP devices (bridge, up, MTU)
are made again after each restart.  Steps srl2_ref has no surface for (raw
SRH bytes, change requests, netns moves) are not generated for it
(docs/fuzz.md "Two datapaths")."""
from __future__ import annotations

import ipaddress

from testbed.datapaths import DatapathError
from testbed.datapaths.ref import RefDatapath
from testbed.fuzz import frames
from testbed.fuzz.kernel import KernelTarget
from testbed.fuzz.requests import mac_of
from testbed.fuzz.steps import GONE, Step
from testbed.model import Sid, Srl2


class RefTarget(KernelTarget):
    name = "ref"
    raw = False

    def __init__(self, lab):
        super().__init__(lab)
        self.dp = RefDatapath(lab.record.rundir)
        self.devices: dict[str, dict] = {}
        self.sids: dict[int, dict] = {}
        self.restarts = 0

    def _restart(self) -> None:
        """Stop rt's srl2_ref and start it with the wanted devices and SIDs;
        a refused configuration raises DatapathError (the caller undoes it)."""
        self.dp.stop()
        if not self.devices and not self.sids:
            return
        devs = [Srl2(name, [frames.seg(i) for i in range(1, d["segs"] + 1)], mtu=d.get("mtu"),
                     mac=mac_of(d.get("mac"))) for name, d in self.devices.items()]
        sids = []
        for k, s in self.sids.items():
            sids.append(Sid(ipaddress.IPv6Network(f"{frames.sid(k)}/128"), s["action"],
                            oif=s.get("dev") if s["action"] == "End.DX2" else None,
                            l2dev=s.get("dev") if s["action"] == "End.DT2U" else None,
                            count=s.get("count", False), dev="veth-up"))
        self.restarts += 1
        self.dp.start_node(self.lab.node("rt"), devs, sids)
        self.dp.wait_ready()
        for name, d in self.devices.items():
            kw: dict = {}
            if d.get("bridge"):
                kw["master"] = self._index("rt", d["bridge"])
            if d.get("up"):
                kw["state"] = "up"
            if kw:
                self._set("rt", name, **kw)

    def _change(self, table: dict, key, value) -> None:
        """Set table[key] = value (None: remove) and restart; undo on refusal."""
        old = table.get(key)
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
        try:
            self._restart()
        except DatapathError:
            if old is None:
                table.pop(key, None)
            else:
                table[key] = old
            self._restart()
            raise

    def apply(self, step: Step) -> str:
        try:
            return super().apply(step)
        except DatapathError as e:
            return f"refused: {e}"

    def _srl2_add(self, a: dict, step: Step) -> None:
        if a["name"] in self.devices:
            raise OSError(17, f"{a['name']} exists")
        self._change(self.devices, a["name"], {"segs": a["segs"], "mtu": a.get("mtu"), "mac": a.get("mac")})

    def _srl2_change(self, a: dict, step: Step) -> None:
        raise OSError(95, "srl2_ref has no change request")

    def _move(self, a: dict, step: Step) -> None:
        raise OSError(95, "srl2_ref devices stay in their node")

    def _link(self, a: dict, step: Step) -> None:
        super()._link(a, step)
        d = self.devices.get(a["name"])
        if d is not None and a.get("up") is not None:
            d["up"] = a["up"]

    def _master(self, a: dict, step: Step) -> None:
        super()._master(a, step)
        if a["name"] in self.devices:
            self.devices[a["name"]]["bridge"] = a.get("bridge")

    def _delete(self, a: dict, step: Step) -> None:
        if a["name"] not in self.devices:
            raise OSError(19, f"no srl2_ref device {a['name']}")
        self._change(self.devices, a["name"], None)

    def _sid_add(self, a: dict, step: Step) -> None:
        if a["k"] in self.sids:
            raise OSError(17, f"SID {a['k']} exists")
        if a.get("dev") == GONE:
            raise OSError(19, "srl2_ref needs an existing interface")
        self._change(self.sids, a["k"], dict(a))

    def _sid_del(self, a: dict, step: Step) -> None:
        if a["k"] not in self.sids:
            raise OSError(3, f"no SID {a['k']}")
        self._change(self.sids, a["k"], None)

    # ---- state and invariants ---------------------------------------------

    def counters(self) -> dict[str, dict[str, int]]:
        for netns, proc in self.dp.procs.items():
            if proc.poll() is not None:
                raise DatapathError(f"srl2_ref in {netns} exited with status {proc.returncode}")
        if not self.dp.procs:
            return {}
        return {f"rt/{name}#{self.restarts}": c
                for name, c in self.dp._query(self.lab.node("rt")).get("devices", {}).items()}

    def alive(self) -> str | None:
        for netns, proc in self.dp.procs.items():
            if proc.poll() is not None:
                return f"srl2_ref in {netns} exited with status {proc.returncode}"
        try:
            self.counters()
        except DatapathError as e:
            return str(e)
        return super().alive()

    def cleanup(self) -> None:
        self.devices.clear()
        self.sids.clear()
        self.dp.stop()
        super().cleanup()

    def stop(self) -> None:
        self.dp.stop()


__all__ = ["RefTarget"]
