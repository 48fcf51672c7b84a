"""The reference srl2 / End.DT2U / End.DX2 / End datapath: one process per node.

Runs inside the node's network namespace.  Owns:
- one TAP per srl2 device (frames the bridge sends to it are encapsulated:
  outer IPv6 + SRH + the whole frame, sent into the node's IPv6 stack through
  a header-included raw socket; srl2_ref.transmit);
- one TUN carrying every SID (`SID/128 dev TUN table T`): packets routed to a
  SID are checked and decapsulated, the inner frame written into the l2dev TAP
  (End.DT2U) or sent out of oif (End.DX2), or rewritten and re-injected (End;
  srl2_ref.receive);
- a rtnetlink monitor socket that invalidates the route cache;
- a unix control socket for counters (srl2_ref.control).
This module sets them up, runs the loop that feeds them, and closes them.
"""
from __future__ import annotations

import json
import os
import select
import socket
import sys

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import counting, fibtable
from .config import Config
from .control import ControlServer
from .devices import Device, Sid, raw6
from .receive import Receiver
from .routecache import RouteCache, Seg6Genl, drain, open_monitor
from .transmit import Transmitter
from .tun import open_tun

POLL_TIMEOUT = 0.5


class SetupError(Exception):
    pass


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.faults = cfg.faults
        self.devices: list[Device] = []
        self.sids: list[Sid] = []
        self.tun_fd = -1
        self.stop = False
        self.internal_errors = 0
        self.ipr: IPRoute | None = None
        self.genl: Seg6Genl | None = None
        self.mon: socket.socket | None = None
        self.routes: RouteCache | None = None
        self.tx: Transmitter | None = None
        self.rx: Receiver | None = None
        self.ctl: ControlServer | None = None
        self.sockets: list[socket.socket] = []  # closed with the daemon
        self.rules: list[tuple[int, int]] = []  # (table, mark) of the rules it added (srl2_ref.fibtable)

    # ---- set-up ---------------------------------------------------------
    def setup(self) -> None:
        ipr = self.ipr = IPRoute()
        self.genl = Seg6Genl()
        self.mon = open_monitor()  # before anything changes, so nothing is missed
        self.routes = RouteCache(ipr, self.genl)
        drops = counting.drops(self.cfg.revision)
        marks = self._table_rules(ipr)
        for dc in self.cfg.devices:
            try:
                mark = marks.get(dc.table, 0) if dc.table is not None else 0
                dev = Device(dc, self.faults, self.cfg.hmac_keys, drops, mark)
            except OSError as e:
                raise SetupError(f"device {dc.name}: cannot create TAP: {e.strerror}") from None
            dev.revision_vrf = self.cfg.revision.vrf_lookup
            self.devices.append(dev)
            try:
                dev.ifindex = ipr.link_lookup(ifname=dc.name)[0]
                kw: dict[str, int | str] = {"mtu": dc.effective_mtu}
                if dc.mac:
                    kw["address"] = dc.mac
                ipr.link("set", index=dev.ifindex, **kw)
                # N1: srl2 is a queueless virtual device (IFF_NO_QUEUE), like
                # veth or a bridge; a TAP would get the default qdisc when up.
                ipr.tc("replace", "noqueue", dev.ifindex, 0)
            except (NetlinkError, IndexError) as e:
                raise SetupError(f"device {dc.name}: {e}") from None
        self.tx = Transmitter(self.devices, self.routes, ipr, self.faults, self.cfg.revision.tx_bytes_inner)
        if self.cfg.sids:
            self._setup_sids()
            reinject = self._own(raw6())
            icmp = self._own(socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                           socket.IPPROTO_ICMPV6)) if self.cfg.icmp_errors else None
            self.rx = Receiver(self.tun_fd, self.sids, reinject, icmp, self.faults, self.cfg.hmac_keys)
        if self.cfg.control:
            self.ctl = ControlServer(self.cfg.control, self.command)

    def _table_rules(self, ipr: IPRoute) -> dict[int, int]:
        """table -> the mark of the rule that sends the packets of the
        devices with that table through it (srl2_ref.fibtable)."""
        if "table_ignored" in self.faults:
            return {}
        tables = sorted({d.table for d in self.cfg.devices if d.table is not None})
        marks = {t: fibtable.mark_of(i) for i, t in enumerate(tables, 1)}
        for table, mark in marks.items():
            try:
                fibtable.add_rule(ipr, table, mark)
            except NetlinkError as e:
                raise SetupError(f"rule for table {table}: {os.strerror(e.code)}") from None
            self.rules.append((table, mark))
        return marks

    def _own(self, sock: socket.socket) -> socket.socket:
        self.sockets.append(sock)
        return sock

    def _setup_sids(self) -> None:
        ipr = self.ipr
        assert ipr is not None  # setup() opened it
        try:
            self.tun_fd, _ = open_tun(self.cfg.tun, tap=False)
        except OSError as e:
            raise SetupError(f"SID device {self.cfg.tun}: cannot create TUN: {e.strerror}") from None
        tun_ifindex = ipr.link_lookup(ifname=self.cfg.tun)[0]
        ipr.link("set", index=tun_ifindex, mtu=65535, state="up")
        # An SRv6 node forwards: packets to a SID are routed (ip6_forward) into the TUN.
        with open("/proc/sys/net/ipv6/conf/all/forwarding", "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
        devs = {d.name: d for d in self.devices}
        for sc in self.cfg.sids:
            sid = Sid(sc)
            if sc.action == "End.DT2U":
                assert sc.l2dev is not None  # config.load requires it
                sid.l2dev = devs[sc.l2dev]
            if sc.action in ("End.DX2", "End.X"):
                assert sc.oif is not None  # config.load requires it
                idx = ipr.link_lookup(ifname=sc.oif)
                if not idx:
                    raise SetupError(f"SID {sc.sid}: oif {sc.oif} not found")
                sid.oif = idx[0]
                if sc.action == "End.DX2":
                    sid.out = self._own(socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0))
                    sid.out.bind((sc.oif, 0))
                else:
                    sid.out = self._own(raw6())
                    sid.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sc.oif.encode())
            kw: dict[str, int | str] = {"dst": str(sc.sid.network_address), "dst_len": sc.sid.prefixlen,
                                        "oif": tun_ifindex, "family": socket.AF_INET6}
            if sc.table is not None:
                kw["table"] = sc.table
            try:
                ipr.route("add", **kw)
            except NetlinkError as e:
                raise SetupError(f"SID {sc.sid}: route to {self.cfg.tun} in table {sc.table or 'main'}: "
                                 f"{os.strerror(e.code)}") from None
            self.sids.append(sid)

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
        for d in self.devices:
            d.close()
        for sock in self.sockets:
            sock.close()
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
        if self.mon is not None:
            self.mon.close()
        if self.tx is not None:
            self.tx.close()
        for table, mark in self.rules:
            assert self.ipr is not None  # the rules were added through it
            fibtable.del_rule(self.ipr, table, mark)
        if self.genl:
            self.genl.close()
        if self.ipr:
            self.ipr.close()

    # ---- the loop -------------------------------------------------------
    def run(self, wake_fd: int) -> None:
        mon, routes, tx, rx, ctl = self.mon, self.routes, self.tx, self.rx, self.ctl
        assert mon is not None and routes is not None and tx is not None  # setup() made them
        ep = select.epoll()
        by_fd = {d.fd: d for d in self.devices}
        for fd in by_fd:
            ep.register(fd, select.EPOLLIN)
        if self.tun_fd >= 0:
            ep.register(self.tun_fd, select.EPOLLIN)
        ep.register(mon.fileno(), select.EPOLLIN)
        ep.register(wake_fd, select.EPOLLIN)
        if ctl is not None:
            ep.register(ctl.fileno(), select.EPOLLIN)
        ppid = os.getppid()
        mon_fd, tun_fd = mon.fileno(), self.tun_fd
        ctl_fd = ctl.fileno() if ctl is not None else -1
        clients = ctl.clients if ctl is not None else {}
        while not self.stop:
            events = ep.poll(POLL_TIMEOUT)
            if os.getppid() != ppid:
                break
            # routing changes first: a frame read in this round must see them
            if any(fd == mon_fd for fd, _ in events):
                drain(mon)
                routes.invalidate()
            for fd, ev in events:
                try:
                    dev = by_fd.get(fd)
                    if dev is not None and ev & select.EPOLLERR:
                        # N5: the TAP was deleted (ip link del): its fd only
                        # reports EPOLLERR from now on; stop polling it.
                        ep.unregister(fd)
                        del by_fd[fd]
                    elif dev is not None:
                        tx.send_burst(dev)
                    elif fd == tun_fd and rx is not None:
                        rx.receive_burst()
                    elif fd == ctl_fd and ctl is not None:
                        ctl.accept(ep)
                    elif fd in clients and ctl is not None:
                        ctl.serve(fd, ep)
                    elif fd == wake_fd:
                        try:
                            os.read(wake_fd, 64)
                        except OSError:
                            pass
                except Exception as e:  # never die on input: report and go on
                    self.internal_errors += 1
                    if self.internal_errors <= 10:
                        print(f"srl2-ref: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        ep.close()

    # ---- what the control socket answers ------------------------------
    def command(self, cmd: str) -> str:
        if cmd == "ping":
            return "pong\n"
        if cmd == "counters":
            return json.dumps(self.counters(), sort_keys=True) + "\n"
        if cmd == "info":
            assert self.routes is not None  # setup() made it
            return json.dumps({
                "pid": os.getpid(),
                "revision": self.cfg.revision.name,
                # srh: as on the wire (reduced: without the first SID; HMAC zero);
                # mode as the kernel shows it: only where the revision has several
                "devices": {d.name: {"ifindex": d.ifindex, "segs": [str(s) for s in d.conf.segs],
                                     "srh": d.template.srh.hex(), "kind": self.cfg.revision.kind,
                                     "mode": d.conf.mode if len(self.cfg.revision.modes) > 1 else None,
                                     "table": d.conf.table, "hmac": d.conf.hmac}
                            for d in self.devices},
                "tun": self.cfg.tun if self.tun_fd >= 0 else None,
                "sids": {s.key: s.action for s in self.sids},
                "faults": sorted(self.faults),
                "route_lookups": self.routes.lookups,
                "unknown_sid": self.rx.unknown_sid if self.rx is not None else 0,
                "internal_errors": self.internal_errors,
            }, sort_keys=True) + "\n"
        return f"error: unknown command {cmd!r} (ping, counters, info)\n"

    def counters(self) -> dict:
        out: dict[str, dict[str, dict[str, int]]] = {"devices": {}, "sids": {}}
        ring = self._ring_drops()
        for d in self.devices:
            c = dict(d.c)
            # frames the TAP's queue dropped before the process read them
            c["tx_dropped"] += ring.get(d.ifindex, 0)
            out["devices"][d.name] = c
        for s in self.sids:
            if s.conf.count:
                out["sids"][s.key] = {"packets": s.packets, "bytes": s.bytes, "errors": s.errors}
        return out

    def _ring_drops(self) -> dict[int, int]:
        out: dict[int, int] = {}
        assert self.ipr is not None  # setup() opened it
        for d in self.devices:
            try:
                link = self.ipr.get_links(d.ifindex)[0]
                st = link.get_attr("IFLA_STATS64")
                out[d.ifindex] = st["tx_dropped"] if st else 0
            except (NetlinkError, IndexError, KeyError, TypeError):
                pass
        return out
