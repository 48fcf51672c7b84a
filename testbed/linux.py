"""The only place that makes namespace syscalls.

Python 3.11 has no os.setns, and pyroute2 forks a helper process for every
socket it opens in another namespace.  Creating namespaces from a thread and
opening sockets after a per-thread setns() costs microseconds instead, which
is what keeps lab bring-up fast.  setns(CLONE_NEWNET) only changes the calling
thread, so the rest of the process (other threads, pytest) never leaves the
initial namespace.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import threading
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from pyroute2.iproute.linux import IPRoute
NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_BIND = 0x1000
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so that the
    bind mounts below are seen by every mount namespace."""
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    d = NETNS_RUN_DIR.encode()
    if _libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), f"bind {NETNS_RUN_DIR}")
    _check(_libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), f"share {NETNS_RUN_DIR}")


_run_dir_ready = False


def _in_new_netns(then: Callable[[], T], name: str) -> T:
    """Run THEN in a throw-away thread that has unshared a new network
    namespace (the caller's thread stays where it was); return its result
    or raise its exception here."""
    result: list = []

    def body() -> None:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            result.append((True, then()))
        except BaseException as e:  # reported in the caller's thread
            result.append((False, e))

    t = threading.Thread(target=body, name=name)
    t.start()
    t.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


def create_netns(name: str) -> None:
    """`ip netns add NAME`, without a fork: a throw-away thread unshares and
    pins its new namespace by bind-mounting it onto /run/netns/NAME."""
    global _run_dir_ready
    if not _run_dir_ready:
        _share_run_dir()
        _run_dir_ready = True
    path = netns_path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    try:
        _in_new_netns(lambda: _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none",
                                                 MS_BIND, None), f"mount {path}"),
                      name=f"netns-{name}")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def scratch_rtnetlink() -> socket.socket:
    """An rtnetlink socket in a new network namespace that has no name.
    Nothing but the socket holds that namespace, so the kernel frees it
    (and all made in it) when the socket is closed, also when this process
    is SIGKILLed; a named scratch namespace would stay in /run/netns."""
    return _in_new_netns(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0),
                         name="netns-scratch")


def delete_netns(name: str) -> bool:
    """`ip netns del NAME`: unpin it; the kernel frees it (and every interface
    in it) once no process or socket holds it.  False if it was not there."""
    path = netns_path(name)
    if not os.path.exists(path):
        return False
    _libc.umount2(path.encode(), MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


@contextlib.contextmanager
def inside(name: str):
    """Run the body with the calling thread in netns NAME."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path(name), os.O_RDONLY)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def enter_for_exec(name: str) -> None:
    """What `ip netns exec` does before exec(): join the netns for good, and
    give the process a private /sys that shows this netns's interfaces."""
    fd = os.open(netns_path(name), os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)
    if _libc.unshare(CLONE_NEWNS) == 0:
        _libc.mount(b"", b"/", b"none", MS_SLAVE | MS_REC, None)
        _libc.umount2(b"/sys", MNT_DETACH)
        _libc.mount(name.encode(), b"/sys", b"sysfs", 0, None)


class Netns:
    """A handle on one named network namespace: its rtnetlink socket, sockets
    opened inside it, and its sysctls."""

    def __init__(self, name: str):
        self.name = name
        self.path = netns_path(name)
        self._ipr: IPRoute | None = None

    @property
    def ipr(self) -> "IPRoute":
        """rtnetlink in this netns (extack on, so errors carry the kernel's text)."""
        if self._ipr is None:
            from pyroute2.iproute.linux import IPRoute  # heavy: only verbs that talk netlink pay

            sock = self.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
            self._ipr = IPRoute(fileno=sock.detach(), ext_ack=True)
        return self._ipr

    def socket(self, family: int, type: int, proto: int = 0) -> socket.socket:
        """A socket that lives in this netns for its whole life."""
        with inside(self.name):
            return socket.socket(family, type, proto)

    def fd(self) -> int:
        """An open fd of the namespace (for IFLA_NET_NS_FD); caller closes it."""
        return os.open(self.path, os.O_RDONLY)

    def sysctl_path(self, key: str) -> str:
        return "/proc/sys/" + key.replace(".", "/")

    def write_sysctls(self, values: dict[str, str]) -> None:
        """Write sysctls as seen from inside this netns (/proc/sys/net is per netns)."""
        if not values:
            return
        with inside(self.name):
            for key, value in values.items():
                with open(self.sysctl_path(key), "w") as f:
                    f.write(str(value))

    def write_proc(self, path: str, value: str) -> None:
        """Write one /proc/sys file as seen from inside this netns."""
        with inside(self.name):
            with open(path, "w") as f:
                f.write(value)

    def read_sysctl(self, key: str) -> str:
        with inside(self.name):
            with open(self.sysctl_path(key)) as f:
                return f.read().strip()

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """Is PID running, and (if given) is it the same process that had
    `start_time` (field 22 of /proc/PID/stat), not a recycled pid?"""
    try:
        st = process_start_time(pid)
    except (FileNotFoundError, ProcessLookupError):
        return False
    if st is None:
        return False
    return start_time is None or st == start_time


def process_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    fields = data.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # zombie: dead for our purposes
        return None
    return int(fields[19])


def set_pdeathsig(sig: int) -> None:
    """Ask the kernel to send SIG to this process when its parent dies."""
    PR_SET_PDEATHSIG = 1
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def boot_id() -> str:
    """This boot of the host (caches of kernel probes are valid for one boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def is_root_capable() -> str | None:
    """None if this process may manage network namespaces, else one line
    saying what is missing (the effective capabilities, not the uid, decide)."""
    with open("/proc/self/status") as f:
        caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    missing = [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
               if not caps >> bit & 1]
    if missing:
        return (f"testbed needs root: this process lacks {' and '.join(missing)}, which creating "
                "network namespaces requires; run it as root (for example with sudo)")
    return None


__all__ = [
    "Netns", "create_netns", "delete_netns", "list_netns", "inside", "enter_for_exec",
    "pid_alive", "process_start_time", "set_pdeathsig", "is_root_capable", "errno",
]
