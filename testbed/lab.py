"""A topology model made real: namespaces, veths, bridges, addresses,
routes, rules, sysctls, SIDs and srl2 devices, through pyroute2.

Bring-up is all-or-nothing: a kernel refusal is reported with the kernel's
own message and the YAML place that asked for it, and whatever was already
made is removed.  Every namespace is named `<lab>-<node>` so labs never
collide, and the lab's record (testbed.state) is written before the first
object exists, so a crash at any point leaves something `down --stale` can
reap.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import threading
from typing import Callable, Iterator, TypeVar

from pyroute2.netlink.exceptions import NetlinkError

from testbed import defaults, guardian, linux, state
from testbed.kerror import kernel_text
from testbed.datapaths import Datapath, DatapathError
from testbed.errors import LabError
from testbed.model import Node, Topology, Where
from testbed.srv6.seg6encap import seg6_route_encap
from testbed.srv6.seg6genl import NETLINK_GENERIC, Seg6Genl
from testbed.wait import until

T = TypeVar("T")

RT_SCOPE_LINK = 253
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
BR_STATE_FORWARDING = 3
IFA_F_NODAD = 0x02
IFF_UP = 0x1
IFA_F_TENTATIVE = 0x40
VETH_INDEX_BASE = 1000  # explicit ifindexes of the local veth ends (see _links)


def netns_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def _bridge_port(link) -> bool:
    """Whether a link with a master is a bridge's port (not a VRF's)."""
    info = link.get_attr("IFLA_LINKINFO")
    return info is None or info.get_attr("IFLA_INFO_SLAVE_KIND") in (None, "bridge")


def _port_state(link) -> int | None:
    """IFLA_BRPORT_STATE of a bridge port's link message, else None."""
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_SLAVE_KIND") != "bridge":
        return None
    data = info.get_attr("IFLA_INFO_SLAVE_DATA")
    return data.get_attr("IFLA_BRPORT_STATE") if data is not None else None


class Lab:
    """A running lab.  Use `Lab.up(topo)` (or as a context manager) to build
    it and `down()` to remove it; `Lab.attach(name)` re-opens one built by
    another process."""

    def __init__(self, topo: Topology | None, name: str, record: state.Record):
        self.topo = topo
        self.name = name
        self.record = record
        self.ns = {node: linux.Netns(ns) for node, ns in record.netns.items()}
        self.datapath: Datapath | None = None
        self._ifindexes: dict[str, dict[str, int]] = {}

    # ---- construction -------------------------------------------------

    @classmethod
    def up(cls, topo: Topology, name: str | None = None, datapath: str | None = None,
           owner: str = "process") -> "Lab":
        """Build `topo` as lab `name` (default: the topology's name).  Raises
        LabError (kernel refusal, name taken) or DatapathError; nothing is
        left behind when it does."""
        missing = linux.is_root_capable()
        if missing:
            raise LabError(missing)
        name = name or topo.name
        state.reap_stale()
        record = state.Record(
            name=name, topology=topo.source, owner=state.Proc.of(os.getpid(), owner),
            netns={n: netns_name(name, n) for n in topo.nodes},
            rundir=os.path.join(state.STATE_DIR, name), run=guardian.current())
        lab = None
        try:
            # Ctrl-C or SIGTERM between writing the record and holding it
            # here would leave a record nobody removes: they wait until then.
            with deferred_signals():
                try:
                    state.claim(record)
                except state.LabExists as e:
                    raise LabError(str(e)) from None
                lab = cls(topo, name, record)
            lab._build(datapath)
        except BaseException:
            if lab is not None:
                lab.down()
            raise
        return lab

    @classmethod
    def attach(cls, name: str) -> "Lab":
        record = state.load(name)
        if record is None:
            raise LabError(f"no lab named {name!r} is up (see: testbed status)")
        return cls(None, name, record)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def _build(self, datapath_choice: str | None) -> None:
        from testbed.datapaths.select import choose  # heavy imports only when needed

        topo = self.topo
        assert topo is not None
        try:
            self.datapath = choose(topo, datapath_choice, self.record.rundir)
        except DatapathError as e:
            raise LabError(str(e), e.where) from None
        self.record.datapath = self.datapath.name if self.datapath else "none"
        self.record.datapath_why = self.datapath.why if self.datapath else ""
        revision = getattr(self.datapath, "revision", None)  # the series' revision its devices are
        self.record.revision = getattr(revision, "name", revision) or ""
        os.makedirs(self.record.rundir, exist_ok=True)
        self.record.save()

        for node in topo.nodes.values():
            linux.create_netns(self.ns[node.name].name)
        for node in topo.nodes.values():
            self._sysctls(node, defaults.early_sysctls(node))
            self._req(node, node.where, "set lo up", lambda ipr: ipr.link("set", index=1, state="up"))
        self._links()
        for node in topo.nodes.values():
            self._bridges(node)
        if self.datapath:
            for node in topo.nodes.values():
                if node.srl2 or node.sids:
                    self._datapath_start(node)
            try:
                self.datapath.wait_ready()
            except DatapathError as e:
                raise LabError(str(e), e.where) from None
            self.record.procs = [state.Proc.of(pid, "datapath") for pid in self.datapath.processes()]
            self.record.save()
        for node in topo.nodes.values():
            self._srl2_ports(node)
            self._vrfs(node)
            self._interfaces(node)
        # A route with a `src` is refused while that address is still tentative.
        self._wait_for("IPv6 addresses still tentative", self._addresses_settled,
                       [n.name for n in topo.nodes.values()
                        if any(a.version == 6 for i in n.interfaces.values() for a in i.addresses)])
        for node in topo.nodes.values():
            if node.tunsrc is not None:
                self._tunsrc(node)
            for rule in node.rules:
                self._rule(node, rule)
            for route in node.routes:
                self._route(node, route)
        # srl2 devices come up last: up before the route to their first SID
        # exists, they would count what the bridge hands them meanwhile (the
        # node's own MLD and ND) as tx_carrier_errors and tx_dropped.
        for node in topo.nodes.values():
            self._up(node, [n for n in self._all_ifnames(node) if n in node.srl2])
        # The bridge enables a port when linkwatch reports its carrier, which
        # the kernel may defer for up to a second: a frame sent before that
        # is dropped, so the lab is not ready until every port forwards.
        self._wait_for("bridge ports not forwarding", self._bridge_ports_forward,
                       [n.name for n in topo.nodes.values() if any(b.ports for b in n.bridges.values())])

    def _wait_for(self, what: str, ready: Callable[[str], bool], nodes: list[str], timeout: float = 5.0) -> None:
        """Poll (no event exists for these states) until `ready(node)` holds for every node."""
        waiting = set(nodes)

        def check() -> bool:
            waiting.difference_update([n for n in sorted(waiting) if ready(n)])
            return not waiting

        if not until(check, timeout):
            raise LabError(f"{what} in {', '.join(sorted(waiting))} after {timeout:.0f} s")

    def _bridge_ports_forward(self, node: str) -> bool:
        # a port the topology keeps down (`up: false`) never forwards
        ports = [m for m in self.ns[node].ipr.get_links()
                 if m.get_attr("IFLA_MASTER") and _bridge_port(m) and m["flags"] & IFF_UP]
        return all(_port_state(m) == BR_STATE_FORWARDING for m in ports)

    def _addresses_settled(self, node: str) -> bool:
        return not any(m["flags"] & IFA_F_TENTATIVE for m in self.ns[node].ipr.get_addr(family=socket.AF_INET6))

    # ---- requests -----------------------------------------------------

    def _req(self, node: Node, where: Where, what: str, fn: Callable[..., T]) -> T:
        """Run one rtnetlink request in the node; a refusal becomes a LabError
        carrying the kernel's message and the YAML place."""
        try:
            return fn(self.ns[node.name].ipr)
        except NetlinkError as e:
            raise LabError(f"{node.name}: {what}: kernel said: {kernel_text(e)}", where) from None

    def ifindex(self, node: str, ifname: str) -> int:
        """Index of a node's interface; one link dump per miss, not per call
        (bring-up asks dozens of times and interfaces are never renamed)."""
        ns = self.node(node)  # a clear error for an unknown node
        cache = self._ifindexes.setdefault(node, {})
        if ifname not in cache:
            cache.update((m.get_attr("IFLA_IFNAME"), m["index"]) for m in ns.ipr.get_links())
            if ifname not in cache:
                raise LabError(f"lab {self.name!r}: node {node} has no interface {ifname!r} "
                               f"(interfaces: {', '.join(sorted(cache))})")
        return cache[ifname]

    def _sysctls(self, node: Node, values: dict[str, str]) -> None:
        try:
            self.ns[node.name].write_sysctls(values)
        except OSError as e:
            key = next(iter(values))
            raise LabError(f"{node.name}: sysctl {e.filename or key}: {e.strerror}", node.where) from None

    def _links(self) -> None:
        assert self.topo is not None
        for i, link in enumerate(self.topo.links):
            a, b = self.topo.nodes[link.a.node], self.topo.nodes[link.b.node]
            peer_fd = self.ns[b.name].fd()
            try:
                # Distinct ifindexes on the two ends (the peer's, chosen by the
                # kernel, stays small): the kernel then treats a veth's carrier
                # change as urgent instead of deferring it up to a second
                # (linkwatch_urgent_event: ifindex != iflink), so bridge ports
                # forward at once.
                peer = {"ifname": link.b.ifname, "net_ns_fd": peer_fd}
                extra = {"index": VETH_INDEX_BASE + i}
                if link.mtu:
                    peer["mtu"] = extra["mtu"] = link.mtu
                self._req(a, link.where, f"veth {link.a} -- {link.b}",
                          lambda ipr: ipr.link("add", ifname=link.a.ifname, kind="veth", peer=peer, **extra))
            finally:
                os.close(peer_fd)

    def _bridges(self, node: Node) -> None:
        for br in node.bridges.values():
            opts = {}
            if br.vlan_filtering:
                opts["br_vlan_filtering"] = 1
            if not br.mcast_snooping:
                opts["br_mcast_snooping"] = 0
            self._req(node, br.where, f"bridge {br.name}",
                      lambda ipr: ipr.link("add", ifname=br.name, kind="bridge", **opts))
            br_index = self.ifindex(node.name, br.name)
            for port in br.ports:
                if port.name in node.srl2:
                    continue  # made by the datapath; enslaved in _srl2_ports
                self._port(node, br_index, port)

    def _port(self, node: Node, br_index: int, port) -> None:
        index = self.ifindex(node.name, port.name)
        if defaults.port_without_ipv6(node, port.name):
            with contextlib.suppress(FileNotFoundError):  # MTU < 1280: the device has no IPv6 at all
                self.ns[node.name].write_proc(defaults.disable_ipv6_path(port.name), "1")
        self._req(node, port.where, f"{port.name} master bridge",
                  lambda ipr: ipr.link("set", index=index, master=br_index))
        for vid in port.vlans:
            self._req(node, port.where, f"bridge vlan {vid} on {port.name}",
                      lambda ipr: ipr.vlan_filter("add", index=index, vlan_info={"vid": vid}))
        if port.pvid is not None:
            flags = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED
            self._req(node, port.where, f"bridge pvid {port.pvid} on {port.name}",
                      lambda ipr: ipr.vlan_filter("add", index=index,
                                                  vlan_info={"vid": port.pvid, "flags": flags}))

    def _datapath_start(self, node: Node) -> None:
        assert self.datapath is not None and self.topo is not None
        try:
            sids = [dataclasses.replace(s, dev=defaults.sid_dev(self.topo, node.name, s)) for s in node.sids]
            # hmac_keys only where there are some: a datapath may not take them
            keys = {"hmac_keys": list(node.hmac_keys.values())} if node.hmac_keys else {}
            self.datapath.start_node(self.ns[node.name], list(node.srl2.values()), sids, **keys)
        except DatapathError as e:
            raise LabError(f"{node.name}: {e}", e.where) from None

    def _srl2_ports(self, node: Node) -> None:
        for br in node.bridges.values():
            for port in br.ports:
                if port.name in node.srl2:
                    self._port(node, self.ifindex(node.name, br.name), port)

    def _vrfs(self, node: Node) -> None:
        """VRF devices and their ports, once bridges and srl2 devices exist
        and before addresses: enslaving cycles a device down and up, which
        removes its IPv6 addresses."""
        for vrf in node.vrfs.values():
            self._req(node, vrf.where, f"VRF {vrf.name} (table {vrf.table})",
                      lambda ipr: ipr.link("add", ifname=vrf.name, kind="vrf", vrf_table=vrf.table))
            vrf_index = self.ifindex(node.name, vrf.name)
            for port in vrf.ports:
                index = self.ifindex(node.name, port)
                self._req(node, vrf.where, f"{port} master VRF {vrf.name}",
                          lambda ipr: ipr.link("set", index=index, master=vrf_index))

    def _interfaces(self, node: Node) -> None:
        """Per-interface settings and addresses; then the per-interface
        sysctls (so that they act before the first packet); then everything
        up but the srl2 devices (see _build)."""
        for ifname in self._all_ifnames(node):
            conf = node.interfaces.get(ifname)
            if conf is None:
                continue
            index = self.ifindex(node.name, ifname)
            attrs: dict[str, str | int] = {}
            if conf.mac:
                attrs["address"] = conf.mac
            if conf.mtu:
                attrs["mtu"] = conf.mtu
            if attrs:
                self._req(node, conf.where, f"set {ifname} {attrs}",
                          lambda ipr: ipr.link("set", index=index, **attrs))
            for addr in conf.addresses:
                self._req(node, conf.where, f"address {addr} on {ifname}",
                          lambda ipr: ipr.addr("add", index=index, address=str(addr.ip),
                                               prefixlen=addr.network.prefixlen,
                                               flags=IFA_F_NODAD if addr.version == 6 else 0))
        self._sysctls(node, defaults.late_sysctls(node))
        self._up(node, [n for n in self._all_ifnames(node) if n not in node.srl2])

    def _up(self, node: Node, ifnames: list[str]) -> None:
        """Set the interfaces up, except those the topology keeps down."""
        for ifname in ifnames:
            conf = node.interfaces.get(ifname)
            if conf is None or conf.up:
                index = self.ifindex(node.name, ifname)
                self._req(node, conf.where if conf else node.where, f"set {ifname} up",
                          lambda ipr: ipr.link("set", index=index, state="up"))

    def _all_ifnames(self, node: Node) -> list[str]:
        assert self.topo is not None
        names = [end.ifname for _, end, _ in self.topo.veth_ends(node.name)]
        names += list(node.bridges) + list(node.srl2) + list(node.vrfs)
        names += [n for n in node.interfaces if n not in names and n != "lo"]
        if "lo" in node.interfaces:
            names.append("lo")
        return names

    def _tunsrc(self, node: Node) -> None:
        assert node.tunsrc is not None  # called only for a node that sets one
        genl = Seg6Genl(self.ns[node.name].socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_GENERIC))
        try:
            genl.set_tunsrc(node.tunsrc)
        except NetlinkError as e:
            raise LabError(f"{node.name}: sr tunsrc {node.tunsrc}: kernel said: {kernel_text(e)}",
                           node.where) from None
        finally:
            genl.close()

    def _rule(self, node: Node, rule) -> None:
        family = socket.AF_INET6 if rule.family == 6 else socket.AF_INET
        kw = {"family": family, "table": rule.lookup, "action": "FR_ACT_TO_TBL"}
        if rule.prio is not None:
            kw["priority"] = rule.prio
        if rule.to is not None:
            kw.update(dst=str(rule.to.network_address), dst_len=rule.to.prefixlen)
        if rule.src is not None:
            kw.update(src=str(rule.src.network_address), src_len=rule.src.prefixlen)
        self._req(node, rule.where, "rule", lambda ipr: ipr.rule("add", **kw))

    def route_request(self, node: str, route) -> dict:
        """The pyroute2 keyword arguments for a model Route."""
        kw: dict = {"dst": str(route.dst), "type": ROUTE_TYPES[route.type],
                    "family": socket.AF_INET6 if route.family == 6 else socket.AF_INET}
        if route.table is not None:
            kw["table"] = route.table
        if route.metric is not None:
            kw["priority"] = route.metric
        if route.via is not None:
            kw["gateway"] = str(route.via)
        elif route.family == 4 and route.type == "unicast":
            kw["scope"] = RT_SCOPE_LINK  # as iproute2: a directly connected IPv4 route
        if route.dev is not None:
            kw["oif"] = self.ifindex(node, route.dev)
        if route.src is not None:
            kw["prefsrc"] = str(route.src)
        if route.hoplimit is not None:
            kw["metrics"] = {"hoplimit": route.hoplimit}
        if route.encap is not None:
            kw["encap"] = seg6_route_encap(route.encap.mode, route.encap.segs)
        return kw

    def _route(self, node: Node, route) -> None:
        kw = self.route_request(node.name, route)
        self._req(node, route.where, f"route {route.dst}", lambda ipr: ipr.route("add", **kw))

    # ---- use ----------------------------------------------------------

    def node(self, name: str) -> linux.Netns:
        try:
            return self.ns[name]
        except KeyError:
            raise LabError(f"lab {self.name!r} has no node {name!r} "
                           f"(nodes: {', '.join(sorted(self.ns))})") from None

    def mac(self, node: str, ifname: str) -> str:
        """The MAC address of a node's interface, as the kernel has it."""
        link = self.node(node).ipr.get_links(self.ifindex(node, ifname))[0]
        return link.get_attr("IFLA_ADDRESS")

    def counters(self, node: str, ifname: str) -> dict[str, int]:
        if self.datapath is None:
            raise LabError(f"lab {self.name!r} has no datapath devices")
        return self.datapath.counters(self.node(node), ifname)

    def datapath_for_status(self) -> Datapath | None:
        """The lab's datapath, re-created from the record in another process."""
        if self.datapath is None and self.record.datapath in ("kernel", "ref"):
            from testbed.datapaths.select import attach

            self.datapath = attach(self.record.datapath, self.record.rundir)
        return self.datapath

    def close(self) -> None:
        """Forget the lab in this process, leaving it running."""
        for ns in self.ns.values():
            ns.close()

    # ---- teardown -----------------------------------------------------

    def down(self) -> list[str]:
        """Remove everything this lab made; safe to call twice.  Ctrl-C and
        SIGTERM wait until it is done: a teardown cut in half leaks."""
        with deferred_signals():
            if self.datapath is not None:
                with contextlib.suppress(Exception):
                    self.datapath.stop()
            self.close()
            with state.locked():
                return state.reap(self.record)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP for the body: their handlers run
    after it, once each.  (Handlers are swapped rather than the signals
    blocked: a signal blocked in one thread is delivered to another, and
    Python runs its handler in the main thread all the same.)  Outside the
    main thread a no-op: handlers never run there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)
