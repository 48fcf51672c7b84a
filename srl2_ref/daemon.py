"""The reference srl2 / End.DT2U / End.DX2 / End datapath: one process per node.

Runs inside the node's network namespace.  Owns:
- one TAP per srl2 device (frames the bridge sends to it are encapsulated:
  outer IPv6 + SRH + the whole frame, sent into the node's IPv6 stack through
  a header-included raw socket);
- one TUN carrying every SID (`SID/128 dev TUN table T`): packets routed to a
  SID are checked and decapsulated, the inner frame written into the l2dev TAP
  (End.DT2U) or sent out of oif (End.DX2), or rewritten and re-injected (End);
- a rtnetlink monitor socket that invalidates the route cache;
- a unix control socket for counters.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import socket
import struct
import sys
import time
from ipaddress import IPv6Address

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import decap, encap, frag
from .config import Config, DeviceConf, SidConf
from .mmsg import Burst, sockaddr_in6
from .routecache import ANY, RouteCache, Seg6Genl, drain, open_monitor
from .tun import open_tun

COUNTERS = ("rx_packets", "rx_bytes", "rx_errors", "rx_dropped", "tx_packets", "tx_bytes",
            "tx_errors", "tx_dropped", "tx_carrier_errors", "collisions")
SLOTS = 64
POLL_TIMEOUT = 0.5
LOOP_FAULT_CAP = 100  # frames/s a device may send into itself under fault no_loop_check
IPV6_FREEBIND = 78
ETH_P_ALL = 0x0003
FLOWLABEL_SYSCTL = "/proc/sys/net/ipv6/seg6_flowlabel"
UNREACH_ERRNOS = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EPERM, errno.EINVAL)
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
IFF_UP = 1
ETH_P_802_3_MIN_HI = 0x06  # high byte of ETH_P_802_3_MIN (0x0600): below it is an 802.3 length


def _ifmtu(sock: socket.socket, ifname: str) -> int:
    """The MTU of IFNAME now (End.DX2 checks every frame against it)."""
    import fcntl
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, struct.pack("16si20x", ifname.encode(), 0))
    except OSError:
        return 0
    return struct.unpack_from("i", res, 16)[0]


class SetupError(Exception):
    pass


def _raw6() -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


class Device:
    def __init__(self, conf: DeviceConf, faults: frozenset[str]):
        self.conf = conf
        self.name = conf.name
        self.fd, _ = open_tun(conf.name, tap=True)
        self.ifindex = 0
        self.template = encap.Template(conf.segs, "sid_travel_order" in faults)
        self.dst = self.template.dst
        self.sockaddr = sockaddr_in6(self.dst.packed)
        self.src: IPv6Address | None = None
        self.tail = ctypes.create_string_buffer(len(self.template.tail(ANY)))
        self.raw = _raw6()
        self.c = dict.fromkeys(COUNTERS, 0)
        self.loop_window = 0.0
        self.loop_sent = 0

    def set_src(self, src: IPv6Address) -> None:
        if src == self.src:
            return
        self.src = src
        ctypes.memmove(self.tail, self.template.tail(src), len(self.tail))
        try:  # so that the kernel's send-path lookup sees the same source (policy rules)
            self.raw.bind((str(src), 0)) if src != ANY else None
        except OSError:
            pass

    def is_up(self) -> bool:
        import fcntl
        try:
            res = fcntl.ioctl(self.raw.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", self.name.encode(), 0))
        except OSError:
            return False
        return bool(struct.unpack_from("H", res, 16)[0] & IFF_UP)

    def close(self) -> None:
        os.close(self.fd)
        self.raw.close()


class Sid:
    def __init__(self, conf: SidConf):
        self.conf = conf
        self.key = conf.key
        self.action = conf.action
        self.l2dev: Device | None = None
        self.out: socket.socket | None = None  # End.DX2: AF_PACKET on oif
        self.oif = 0
        self.packets = self.bytes = self.errors = 0


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.faults = cfg.faults
        self.devices: list[Device] = []
        self.by_fd: dict[int, Device] = {}
        self.sids: list[Sid] = []
        self.sid_exact: dict[bytes, Sid] = {}
        self.sid_prefix: list[Sid] = []
        self.tun_fd = -1
        self.tun_ifindex = 0
        self.ctl: socket.socket | None = None
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.stop = False
        self.burst = Burst(SLOTS)
        self.bufl = [[v] for v in self.burst.views]
        self.lens = [0] * SLOTS
        self.unknown_sid = 0
        self.internal_errors = 0
        self.reasm = frag.Reassembler()  # T4: outer fragments to End.DT2U / End.DX2 SIDs
        self.frag_ident = int.from_bytes(os.urandom(4), "big")
        self.ipr: IPRoute | None = None
        self.genl: Seg6Genl | None = None
        self.mon: socket.socket | None = None
        self.reinject: socket.socket | None = None
        self.icmp: socket.socket | None = None
        self.fl_fd = -1
        self.control_path = cfg.control

    # ---- set-up ---------------------------------------------------------
    def setup(self) -> None:
        ipr = self.ipr = IPRoute()
        self.genl = Seg6Genl()
        self.mon = open_monitor()  # before anything changes, so nothing is missed
        self.routes = RouteCache(ipr, self.genl)
        try:
            self.fl_fd = os.open(FLOWLABEL_SYSCTL, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fl_fd = -1
        for dc in self.cfg.devices:
            try:
                dev = Device(dc, self.faults)
            except OSError as e:
                raise SetupError(f"device {dc.name}: cannot create TAP: {e.strerror}") from None
            self.devices.append(dev)
            self.by_fd[dev.fd] = dev
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
        if self.cfg.sids:
            self._setup_sids()
        self.reinject = _raw6()
        if self.cfg.icmp_errors:
            self.icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_ICMPV6)
        if self.control_path:
            self._setup_control(self.control_path)

    def _setup_sids(self) -> None:
        ipr = self.ipr
        assert ipr is not None  # setup() opened it
        try:
            self.tun_fd, _ = open_tun(self.cfg.tun, tap=False)
        except OSError as e:
            raise SetupError(f"SID device {self.cfg.tun}: cannot create TUN: {e.strerror}") from None
        self.tun_ifindex = ipr.link_lookup(ifname=self.cfg.tun)[0]
        ipr.link("set", index=self.tun_ifindex, mtu=65535, state="up")
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
                    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
                    sid.out = out
                    out.bind((sc.oif, 0))
                else:
                    out = _raw6()
                    sid.out = out
                    out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sc.oif.encode())
            kw: dict[str, int | str] = {"dst": str(sc.sid.network_address), "dst_len": sc.sid.prefixlen,
                                        "oif": self.tun_ifindex, "family": socket.AF_INET6}
            if sc.table is not None:
                kw["table"] = sc.table
            try:
                ipr.route("add", **kw)
            except NetlinkError as e:
                raise SetupError(f"SID {sc.sid}: route to {self.cfg.tun} in table {sc.table or 'main'}: "
                                 f"{os.strerror(e.code)}") from None
            self.sids.append(sid)
            if sc.sid.prefixlen == 128:
                self.sid_exact[sc.sid.network_address.packed] = sid
            else:
                self.sid_prefix.append(sid)
        self.sid_prefix.sort(key=lambda s: -s.conf.sid.prefixlen)

    def _setup_control(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                raise SetupError(f"control socket {path} is in use by another process")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(path)
            finally:
                probe.close()
        ctl = self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        ctl.bind(path)
        ctl.listen(16)

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            try:
                if self.control_path:  # always set when ctl is
                    os.unlink(self.control_path)
            except OSError:
                pass
        for client, _ in self.clients.values():
            client.close()
        for d in self.devices:
            d.close()
        for sid in self.sids:
            if sid.out is not None:
                sid.out.close()
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
        for sock in (self.mon, self.reinject, self.icmp):
            if sock is not None:
                sock.close()
        if self.genl:
            self.genl.close()
        if self.ipr:
            self.ipr.close()
        if self.fl_fd >= 0:
            os.close(self.fl_fd)

    # ---- the loop -------------------------------------------------------
    def run(self, wake_fd: int) -> None:
        mon = self.mon
        assert mon is not None  # setup() opened it
        ep = self.ep = select.epoll()
        for d in self.devices:
            ep.register(d.fd, select.EPOLLIN)
        if self.tun_fd >= 0:
            ep.register(self.tun_fd, select.EPOLLIN)
        ep.register(mon.fileno(), select.EPOLLIN)
        ep.register(wake_fd, select.EPOLLIN)
        if self.ctl is not None:
            ep.register(self.ctl.fileno(), select.EPOLLIN)
        ppid = os.getppid()
        mon_fd, tun_fd = mon.fileno(), self.tun_fd
        ctl_fd = self.ctl.fileno() if self.ctl is not None else -1
        by_fd = self.by_fd
        while not self.stop:
            events = ep.poll(POLL_TIMEOUT)
            if os.getppid() != ppid:
                break
            # routing changes first: a frame read in this round must see them
            if any(fd == mon_fd for fd, _ in events):
                drain(mon)
                self.routes.invalidate()
            for fd, ev in events:
                try:
                    dev = by_fd.get(fd)
                    if dev is not None and ev & select.EPOLLERR:
                        # N5: the TAP was deleted (ip link del): its fd only
                        # reports EPOLLERR from now on; stop polling it.
                        ep.unregister(fd)
                        del by_fd[fd]
                    elif dev is not None:
                        self.encap_burst(dev)
                    elif fd == tun_fd:
                        self.decap_burst()
                    elif fd == ctl_fd:
                        self.accept()
                    elif fd in self.clients:
                        self.serve(fd, ep)
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

    def flowlabel_mode(self) -> int:
        if self.fl_fd < 0:
            return 0
        try:
            return int(os.pread(self.fl_fd, 16, 0))
        except (OSError, ValueError):
            return 0

    def encap_burst(self, dev: Device) -> None:
        burst, bufl, lens, fd = self.burst, self.bufl, self.lens, dev.fd
        readv = os.readv
        n = 0
        while n < SLOTS:
            try:
                ln = readv(fd, bufl[n])
            except BlockingIOError:
                break
            except OSError:
                break
            if ln <= 0:
                break
            lens[n] = ln
            n += 1
        if n == 0:
            return
        c = dev.c
        route = self.routes.get(dev.dst)
        if not route.ok:  # L2: no usable route
            c["tx_carrier_errors"] += n
            c["tx_dropped"] += n
            return
        assert route.src is not None  # RouteCache.lookup sets it on every usable route
        if route.oif == dev.ifindex:  # L1: the route leads back into this device
            if "no_loop_check" not in self.faults:
                c["collisions"] += n
                c["tx_dropped"] += n
                return
            now = time.monotonic()  # the fault skips the check, but stays bounded
            if now - dev.loop_window >= 1.0:
                dev.loop_window, dev.loop_sent = now, 0
            allowed = max(0, min(n, LOOP_FAULT_CAP - dev.loop_sent))
            dev.loop_sent += allowed
            if allowed < n:
                c["collisions"] += n - allowed
                c["tx_dropped"] += n - allowed
                n = allowed
                if n == 0:
                    return
        dev.set_src(route.src)
        burst.set_device(dev.tail, dev.sockaddr)
        mode = self.flowlabel_mode()
        hl = route.hoplimit or encap.DEFAULT_HOPLIMIT
        copy_hl = "copy_inner_hoplimit" in self.faults
        srhlen = len(dev.template.srh)
        heads, views, pack_into = burst.head_views, burst.views, encap.FIRST8.pack_into
        frame_iovs = burst._frame_iovs
        word = encap.VERSION_WORD
        nbytes = 0
        for i in range(n):
            ln = lens[i]
            v = views[i]
            h = hl
            if mode == 0:
                if v[12] == 0x86 and v[13] == 0xDD and ln >= 18:
                    w = word | ((v[15] & 0x0F) << 16) | (v[16] << 8) | v[17]
                    if copy_hl and ln >= 54:
                        h = v[21]
                else:
                    w = word
            elif mode > 0:
                w = word | encap.hash_flowlabel(v[:ln])
            else:
                w = word
            if copy_hl and mode != 0 and ln >= 54 and v[12] == 0x86 and v[13] == 0xDD:
                h = v[21]
            pack_into(heads[i], 0, w, srhlen + ln, 43, h)
            frame_iovs[i].len = ln
            nbytes += ln
        start = failed = 0
        raw = dev.raw.fileno()
        while start < n:
            try:
                sent = burst.send(raw, start, n - start)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                if e.errno == errno.EMSGSIZE and self.send_fragments(dev, route.oif, start, lens[start]):
                    start += 1
                    continue
                failed += 1
                c["tx_errors"] += 1
                c["tx_dropped"] += 1
                if e.errno in UNREACH_ERRNOS:
                    c["tx_carrier_errors"] += 1
                nbytes -= lens[start]
                start += 1
                continue
            start += sent
        c["tx_packets"] += n - failed
        c["tx_bytes"] += nbytes

    def send_fragments(self, dev: Device, oif, i: int, ln: int) -> bool:
        """T4: slot i's packet exceeds the MTU of the route's device (the raw
        socket said EMSGSIZE): send it as fragments (srl2_ref.frag).  Only a
        frame the device accepts (up to its MTU + 14 + two VLAN tags) going
        to the underlay: a route into one of our own devices is a loop (L5),
        whose packets grow each round and must die at the MTU."""
        if oif is None or any(d.ifindex == oif for d in self.devices):
            return False
        ipr = self.ipr
        assert ipr is not None  # setup() opened it
        try:
            mtu = ipr.get_links(oif)[0].get_attr("IFLA_MTU")
            if ln > ipr.get_links(dev.ifindex)[0].get_attr("IFLA_MTU") + 14 + 8:
                return False
        except (NetlinkError, IndexError, TypeError):
            return False
        packet = bytes(self.burst.head_views[i]) + dev.tail.raw + bytes(self.burst.views[i][:ln])
        self.frag_ident = (self.frag_ident + 1) & 0xFFFFFFFF
        pieces = frag.fragment(packet, mtu, self.frag_ident)
        try:
            for piece in pieces:
                dev.raw.sendto(piece, (str(dev.dst), 0))
        except OSError:
            return False
        return bool(pieces)

    def decap_burst(self) -> None:
        for _ in range(SLOTS):
            try:
                pkt = os.read(self.tun_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            self.decap_one(pkt)

    def find_sid(self, da: bytes) -> Sid | None:
        sid = self.sid_exact.get(da)
        if sid is not None or not self.sid_prefix:
            return sid
        try:
            a = IPv6Address(da)
        except ValueError:
            return None
        for s in self.sid_prefix:
            if a in s.conf.sid:
                return s
        return None

    def decap_one(self, pkt: bytes) -> None:
        sid = self.find_sid(pkt[24:40]) if len(pkt) >= 40 else None
        if sid is None:
            self.unknown_sid += 1
            return
        if sid.action in ("End.DT2U", "End.DX2"):
            pkt = self.reasm.feed(pkt)  # the whole packet, or None while fragments are missing
            if pkt is None:
                return
        v = decap.classify(pkt, sid.action, check_sl="no_decap_sl_check" not in self.faults)
        if not v.ok:
            sid.errors += 1
            if self.icmp is not None and v.icmp is not None:
                self.send_icmp(pkt, v.icmp)
            return
        try:
            if sid.action == "End.DT2U":
                dev = sid.l2dev
                assert dev is not None  # set up for every End.DT2U SID
                if not dev.is_up():  # E5
                    dev.c["rx_dropped"] += 1
                    sid.errors += 1
                    return
                frame = pkt[v.start:v.end]
                try:
                    os.write(dev.fd, frame)
                except OSError:
                    dev.c["rx_dropped"] += 1
                    sid.errors += 1
                    return
                dev.c["rx_packets"] += 1
                dev.c["rx_bytes"] += len(frame)
            elif sid.action == "End.DX2":
                # As Linux input_action_end_dx2: Ethernet II frames only
                # (eth_proto_is_802_3), and no longer after the Ethernet
                # header than oif's MTU (a VLAN tag counts).
                out = sid.out
                assert out is not None and sid.conf.oif is not None  # set up for every End.DX2 SID
                if pkt[v.start + 12] < ETH_P_802_3_MIN_HI or v.end - v.start - 14 > _ifmtu(out, sid.conf.oif):
                    sid.errors += 1
                    return
                out.send(pkt[v.start:v.end])
            else:  # End, End.X: the rewritten packet goes back into the stack
                out = sid.out if sid.action == "End.X" else self.reinject
                assert out is not None and v.packet is not None  # set up / an ok End verdict carries it
                out.sendto(v.packet, (str(IPv6Address(v.packet[24:40])), 0))
        except OSError:
            sid.errors += 1
            return
        sid.packets += 1
        sid.bytes += len(pkt)

    def send_icmp(self, pkt: bytes, icmp: tuple[int, int, int]) -> None:
        _type, code, pointer = icmp
        assert self.icmp is not None  # only called when icmp_errors opened it
        try:
            src = str(IPv6Address(pkt[8:24]))
            self.icmp.sendto(decap.icmp_param_problem(pkt, code, pointer), (src, 0))
        except (OSError, ValueError):
            pass

    # ---- control socket -------------------------------------------------
    def accept(self) -> None:
        assert self.ctl is not None  # only polled when it exists
        while True:
            try:
                s, _ = self.ctl.accept()
            except (BlockingIOError, OSError):
                return
            s.setblocking(False)
            self.clients[s.fileno()] = (s, bytearray())
            self.ep.register(s.fileno(), select.EPOLLIN)

    def serve(self, fd: int, ep) -> None:
        s, buf = self.clients[fd]
        try:
            data = s.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or len(buf) > 65536:
            ep.unregister(fd)
            s.close()
            del self.clients[fd]
            return
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self.command(line.decode(errors="replace").strip())
            s.setblocking(True)
            s.settimeout(1.0)
            try:
                s.sendall(reply.encode())
            except OSError:
                pass
            s.setblocking(False)

    def command(self, cmd: str) -> str:
        if cmd == "ping":
            return "pong\n"
        if cmd == "counters":
            return json.dumps(self.counters(), sort_keys=True) + "\n"
        if cmd == "info":
            return json.dumps({
                "pid": os.getpid(),
                "devices": {d.name: {"ifindex": d.ifindex, "segs": [str(s) for s in d.conf.segs],
                                     "srh": d.template.srh.hex()} for d in self.devices},
                "tun": self.cfg.tun if self.tun_fd >= 0 else None,
                "sids": {s.key: s.action for s in self.sids},
                "faults": sorted(self.faults),
                "route_lookups": self.routes.lookups,
                "unknown_sid": self.unknown_sid,
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
