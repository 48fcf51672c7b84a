"""Fuzz steps on the kernel datapath: raw rtnetlink requests (even
malformed) for the revision's devices, seg6local routes for SIDs, HMAC
keys over SEG6 genetlink, VRFs, frames from the lab's nodes.  A refusal by
the kernel is an outcome, not a finding: the step returns the kernel's
text (docs/fuzz.md "Outcomes")."""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading

from pyroute2 import NetlinkError
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWLINK

from testbed import packets
from testbed.fuzz import frames, mix, requests
from testbed.fuzz.lab import BASE_LINKS
from testbed.fuzz.steps import GONE, Step
from testbed.kerror import kernel_text
from testbed.revisions import Revision
from testbed.srv6 import nla
from testbed.srv6.seg6genl import NETLINK_GENERIC, Seg6Genl

GONE_DEV = "fzgone"  # made, used as l2dev/oif, deleted: the "deleted l2dev" case
SID_DEV = "veth-up"  # device of every fuzzed SID route (has IPv6, is up)
FLOW_START = 2.0     # seconds a flowing step waits for its first frames to go out


class KernelTarget:
    name = "kernel"
    raw = True  # malformed SRHs and change requests can be sent
    lacks: frozenset[str] = frozenset()  # steps it cannot run (testbed.fuzz.mix.ops_for)
    kernel_keys = True  # HMAC keys are the kernel's (`ip sr hmac`), to be removed after each input

    def __init__(self, lab, revision: Revision = requests.FIRST):
        self.lab = lab
        self.revision = revision
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
        msg, mtype, flags = requests.srl2_message(step, self.revision)
        nla.send(self.lab.node("rt").ipr, msg, mtype, flags)

    _srl2_change = _srl2_add

    def _change_flowing(self, a: dict, step: Step) -> None:
        """changelink to either end, `swaps` times, while frames go out of
        the device; every swap is sent, the first refusal is the outcome."""
        refused = None
        ipr = self.lab.node("rt").ipr
        with self._flowing(a["name"]):
            for msg in requests.swap_messages(step, self.revision):
                try:
                    nla.send(ipr, msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
                except NetlinkError as e:
                    refused = refused or e
        if refused is not None:
            raise refused

    def _hmac_key(self, a: dict, step: Step) -> None:
        """`ip sr hmac set K ALGO` (secret None: delete), maybe while frames
        go out of a device (whose SRH may name that key)."""
        genl = self._genl()
        try:
            with self._flowing(a.get("via")):
                genl.set_hmac(a["k"], (a.get("secret") or "").encode(), a.get("algo", "sha256"))
        finally:
            genl.close()

    def _vrf_add(self, a: dict, step: Step) -> None:
        self.lab.node("rt").ipr.link("add", ifname=a["name"], kind="vrf", vrf_table=a["table"])
        if a.get("up"):
            self._set("rt", a["name"], state="up")

    def _genl(self) -> Seg6Genl:
        """SEG6 generic netlink in rt (HMAC keys are per netns); caller closes it."""
        return Seg6Genl(self.lab.node("rt").socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_GENERIC))

    @contextlib.contextmanager
    def _flowing(self, name: str | None):
        """Frames out of rt's device `name` (set up first) for as long as
        the body runs, starting before it; no device named: no traffic."""
        if name is None or not self.lab.node("rt").ipr.link_lookup(ifname=name):
            yield
            return
        self._set("rt", name, state="up")
        stop, sent = threading.Event(), threading.Event()
        flood = requests.flood_frames()

        def run() -> None:
            while not stop.is_set():
                try:
                    packets.send_frames(self.lab.node("rt"), name, flood)
                except OSError:
                    return  # the device went (or went down): nothing more to send
                finally:
                    sent.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        sent.wait(FLOW_START)  # frames are in flight when the change comes
        try:
            yield
        finally:
            stop.set()
            t.join(10)

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
        """Into `bridge` (br0 or the VRF, whichever the step names) or out."""
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
        frames_ = requests.flood_frames()

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
        """Counters of every device of the revision's kind (node/name ->
        counters), by ifindex so that a device deleted and made again starts afresh."""
        out = {}
        for node in ("rt", "hs"):
            for link in self.lab.node(node).ipr.get_links():
                info = link.get_attr("IFLA_LINKINFO")
                if info is None or info.get_attr("IFLA_INFO_KIND") != self.revision.kind:
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
        self._restore_ports()
        if self.revision.hmac and self.kernel_keys:
            self._drop_keys()

    def _restore_ports(self) -> None:
        """The lab's bridge as it was: veth-hs in br0, br0 without a master
        (master steps move them; deleting the VRF already freed br0)."""
        ipr = self.lab.node("rt").ipr
        br0 = self._index("rt", "br0")
        for name, want in (("veth-hs", br0), ("br0", 0)):
            (link,) = ipr.link("get", index=self._index("rt", name))
            if (link.get_attr("IFLA_MASTER") or 0) != want:
                self._set("rt", name, master=want)

    def _drop_keys(self) -> list[int]:
        """Delete the HMAC keys steps may have set (an empty secret deletes
        one); the ids that were there."""
        found = []
        genl = self._genl()
        try:
            for k in (*mix.KEY_IDS, mix.KEY_MISSING):
                try:
                    genl.set_hmac(k, b"")
                    found.append(k)
                except NetlinkError as e:
                    if abs(e.code) == errno.EOPNOTSUPP:
                        break  # a kernel without HMAC has no keys to leave behind
                    if abs(e.code) != errno.ENOENT:
                        raise
        finally:
            genl.close()
        return found

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
        if self.revision.hmac and self.kernel_keys:
            keys = self._drop_keys()  # none, after cleanup; a key found is also deleted now
            if keys:
                out.append(f"rt: HMAC keys left: {', '.join(map(str, keys))}")
        return out

    def stop(self) -> None:
        pass


__all__ = ["KernelTarget", "GONE_DEV"]
