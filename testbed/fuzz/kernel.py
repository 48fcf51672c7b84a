"""Fuzz steps on the kernel datapath: raw rtnetlink requests (even
malformed) for srl2 devices, seg6local routes for SIDs, frames from the
lab's nodes.  A refusal by the kernel is an outcome, not a finding: the
step returns the kernel's text (docs/fuzz.md "Outcomes")."""
from __future__ import annotations

import errno
import os
import threading

from pyroute2 import NetlinkError

from testbed import packets
from testbed.fuzz import frames, requests
from testbed.fuzz.lab import BASE_LINKS
from testbed.fuzz.steps import GONE, Step
from testbed.kerror import kernel_text
from testbed.srv6 import nla, seg6

GONE_DEV = "fzgone"  # made, used as l2dev/oif, deleted: the "deleted l2dev" case
SID_DEV = "veth-up"  # device of every fuzzed SID route (has IPv6, is up)


class KernelTarget:
    name = "kernel"
    raw = True  # malformed SRHs and change requests can be sent

    def __init__(self, lab):
        self.lab = lab
        # What the lab has before any step (the kernel adds its own per-netns
        # devices, e.g. ip6tnl0, sit0, tunl0): kept by cleanup, the leak check's baseline.
        self.base = {node: {m.get_attr("IFLA_IFNAME") for m in lab.node(node).ipr.get_links()}
                     for node in BASE_LINKS}

    # ---- helpers -------------------------------------------------------

    def _index(self, node: str, name: str) -> int:
        found = self.lab.node(node).ipr.link_lookup(ifname=name)
        if not found:
            raise NetlinkError(errno.ENODEV, f"no interface {name} in {node}")
        return found[0]

    def _set(self, node: str, name: str, **kw) -> None:
        self.lab.node(node).ipr.link("set", index=self._index(node, name), **kw)

    # ---- steps ---------------------------------------------------------

    def apply(self, step: Step) -> str:
        """Run one step; 'ok' or what the kernel said."""
        try:
            getattr(self, "_" + step.op)(step.args, step)
        except NetlinkError as e:
            return f"refused: {kernel_text(e)}"
        except OSError as e:
            return f"refused: {e.strerror or e}"
        return "ok"

    def _srl2_add(self, a: dict, step: Step) -> None:
        msg, mtype, flags = requests.srl2_message(step)
        nla.send(self.lab.node("rt").ipr, msg, mtype, flags)

    _srl2_change = _srl2_add

    def _link(self, a: dict, step: Step) -> None:
        kw: dict = {}
        if a.get("mtu") is not None:
            kw["mtu"] = requests.u32(a["mtu"])
        if a.get("up") is not None:
            kw["state"] = "up" if a["up"] else "down"
        self._set(a["node"], a["name"], **kw)

    def _ipv6(self, a: dict, step: Step) -> None:
        self.lab.node(a["node"]).write_proc(f"/proc/sys/net/ipv6/conf/{a['name']}/disable_ipv6",
                                            "0" if a["on"] else "1")

    def _master(self, a: dict, step: Step) -> None:
        master = self._index("rt", a["bridge"]) if a.get("bridge") else 0
        self._set("rt", a["name"], master=master)

    def _move(self, a: dict, step: Step) -> None:
        fd = self.lab.node(a["to"]).fd()
        try:
            self._set(a["frm"], a["name"], net_ns_fd=fd)
        finally:
            os.close(fd)

    def _delete(self, a: dict, step: Step) -> None:
        self.lab.node(a["node"]).ipr.link("del", index=self._index(a["node"], a["name"]))

    def _sid_add(self, a: dict, step: Step) -> None:
        ipr = self.lab.node("rt").ipr
        action = a["action"]
        ref: int | None
        if a.get("dev") == GONE:
            ipr.link("add", ifname=GONE_DEV, kind="dummy")
            ref = self._index("rt", GONE_DEV)
        else:
            ref = self._index("rt", a["dev"]) if a.get("dev") else None
        try:
            nla.add_seg6local(ipr, f"{frames.sid(a['k'])}/128", action, dev=self._index("rt", SID_DEV),
                              oif=ref if action == "End.DX2" else None,
                              l2dev=ref if action == "End.DT2U" else None, count=a.get("count", False))
        finally:
            if a.get("dev") == GONE:
                ipr.link("del", index=ref)

    def _sid_del(self, a: dict, step: Step) -> None:
        self.lab.node("rt").ipr.route("del", dst=f"{frames.sid(a['k'])}/128", family=10)

    def _srv6(self, a: dict, step: Step) -> None:
        packets.send_frames(self.lab.node("up"), "veth-rt", requests.srv6_frames(step))

    def _l2(self, a: dict, step: Step) -> None:
        packets.send_frames(self.lab.node("hs"), "veth0", requests.l2_frames(step))

    def _delete_flowing(self, a: dict, step: Step) -> None:
        """Delete a device while hs floods the bridge (frames in flight
        through the device as it goes)."""
        stop = threading.Event()
        frames_ = requests.l2_frames(Step("l2", {"kind": "bcast", "size": 200, "count": 32}))

        def flood() -> None:
            while not stop.is_set():
                try:
                    packets.send_frames(self.lab.node("hs"), "veth0", frames_)
                except OSError:
                    return

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            self._delete({"node": "rt", "name": a["name"]}, step)
        finally:
            stop.set()
            t.join(10)

    # ---- state and invariants ---------------------------------------------

    def counters(self) -> dict[str, dict[str, int]]:
        """Counters of every srl2 device (node/name -> counters), by ifindex
        so that a device deleted and made again starts afresh."""
        out = {}
        for node in ("rt", "hs"):
            for link in self.lab.node(node).ipr.get_links():
                info = link.get_attr("IFLA_LINKINFO")
                if info is None or info.get_attr("IFLA_INFO_KIND") != seg6.SRL2_KIND:
                    continue
                stats = link.get_attr("IFLA_STATS64") or {}
                key = f"{node}/{link.get_attr('IFLA_IFNAME')}#{link['index']}"
                out[key] = {k: int(v) for k, v in dict(stats).items() if isinstance(v, int)}
        return out

    def alive(self) -> str | None:
        """None when rtnetlink answers in every node, else what failed."""
        for node in BASE_LINKS:
            try:
                self.lab.node(node).ipr.get_links()
            except (NetlinkError, OSError) as e:
                return f"{node}: link dump failed: {e}"
        return None

    def cleanup(self) -> None:
        """Remove everything steps made (devices, SIDs)."""
        for node, base in self.base.items():
            ipr = self.lab.node(node).ipr
            for link in ipr.get_links():
                if link.get_attr("IFLA_IFNAME") not in base:
                    try:
                        ipr.link("del", index=link["index"])
                    except NetlinkError:
                        pass  # gone with its master, or a veth peer
        ipr = self.lab.node("rt").ipr
        for route in list(nla.dump_seg6local(ipr)):
            try:
                ipr.route("del", dst=f"{route.get_attr('RTA_DST')}/{route['dst_len']}", family=10,
                          table=route.get_attr("RTA_TABLE") or route["table"])
            except NetlinkError:
                pass

    def leaks(self) -> list[str]:
        """What is left after cleanup() that the lab did not have."""
        out = []
        for node, base in self.base.items():
            names = {m.get_attr("IFLA_IFNAME") for m in self.lab.node(node).ipr.get_links()}
            extra = names - base
            if extra:
                out.append(f"{node}: interfaces left: {', '.join(sorted(extra))}")
        left = list(nla.dump_seg6local(self.lab.node("rt").ipr))
        if left:
            out.append(f"rt: {len(left)} seg6local routes left")
        return out

    def stop(self) -> None:
        pass


__all__ = ["KernelTarget", "GONE_DEV"]
