"""Fuzz steps on the reference datapath (srl2_ref), modelling the revision
under test.  Its configuration is given at start-up, so a configuration
step changes the node's wanted devices, SIDs and HMAC keys and restarts its
process through the lab engine's RefDatapath; the kernel-side settings of
its TAP devices (bridge, up, MTU) are made again after each restart.

Steps srl2_ref has no surface for are not generated for it (`lacks`;
docs/fuzz.md "What it drives", "Revisions"): raw SRH bytes, change requests (its
devices are made at start-up: no changelink, so no change_flowing either),
netns moves, and VRFs (srl2_ref does not model a VRF's table, and the
host kernels it runs on have no VRF to build one with)."""
from __future__ import annotations

import ipaddress

from testbed.datapaths import DatapathError
from testbed.datapaths.ref import RefDatapath
from testbed.fuzz import frames
from testbed.fuzz.kernel import KernelTarget
from testbed.fuzz import requests
from testbed.fuzz.requests import mac_of
from testbed.fuzz.steps import GONE, Step
from testbed.model import HmacKey, Sid, Srl2
from testbed.revisions import Revision


class RefTarget(KernelTarget):
    name = "ref"
    raw = False
    lacks = frozenset({"srl2_change", "change_flowing", "move", "vrf_add"})
    kernel_keys = False  # its HMAC keys are in its configuration, not the kernel's

    def __init__(self, lab, revision: Revision = requests.FIRST):
        super().__init__(lab, revision)
        self.dp = RefDatapath(lab.record.rundir, revision)
        self.devices: dict[str, dict] = {}
        self.sids: dict[int, dict] = {}
        self.keys: dict[int, dict] = {}  # `ip sr hmac` keys: id -> {secret, algo}
        self.restarts = 0

    def _restart(self) -> None:
        """Stop rt's srl2_ref and start it with the wanted devices and SIDs;
        a refused configuration raises DatapathError (the caller undoes it)."""
        self.dp.stop()
        if not self.devices and not self.sids:
            return
        devs = [Srl2(name, [frames.seg(i) for i in range(1, d["segs"] + 1)], mtu=d.get("mtu"),
                     mac=mac_of(d.get("mac")), mode=d.get("mode"), table=d.get("table"), hmac=d.get("hmac"))
                for name, d in self.devices.items()]
        keys = [HmacKey(k, v["secret"], v["algo"]) for k, v in self.keys.items()]
        sids = []
        for k, s in self.sids.items():
            sids.append(Sid(ipaddress.IPv6Network(f"{frames.sid(k)}/128"), s["action"],
                            oif=s.get("dev") if s["action"] == "End.DX2" else None,
                            l2dev=s.get("dev") if s["action"] == "End.DT2U" else None,
                            count=s.get("count", False), dev="veth-up"))
        self.restarts += 1
        self.dp.start_node(self.lab.node("rt"), devs, sids, keys)
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
        self._change(self.devices, a["name"], {k: a.get(k) for k in ("segs", "mtu", "mac", "mode", "table", "hmac")})

    def _hmac_key(self, a: dict, step: Step) -> None:
        """The node's keys as `ip sr hmac set` leaves them (deleting a key
        that is not there: ENOENT, as the kernel says), then a restart,
        with frames going out of `via` meanwhile."""
        if a.get("secret") is None and a["k"] not in self.keys:
            raise OSError(2, f"no HMAC key {a['k']}")
        with self._flowing(a.get("via")):
            self._change(self.keys, a["k"], None if a.get("secret") is None else
                         {"secret": a["secret"], "algo": a.get("algo", "sha256")})

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
        self.keys.clear()
        self.dp.stop()
        super().cleanup()

    def stop(self) -> None:
        self.dp.stop()


__all__ = ["RefTarget"]
