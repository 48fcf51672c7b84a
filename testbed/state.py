"""What each lab made, on disk, so that `down` and stale reaping work from
any process, even after the owner was SIGKILLed.

One JSON record per lab under STATE_DIR, written (atomically) before the
first kernel object is made and updated as the lab grows.  A lab is stale
when its owner process is gone (pid + start time, so a recycled pid does not
keep a dead lab alive).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import time
from dataclasses import asdict, dataclass, field, fields

from testbed import linux

STATE_DIR = os.environ.get("TESTBED_STATE_DIR", "/run/testbed")


def caller_uid() -> int:
    """The user a lab belongs to: the real uid of the process, or, for root
    under sudo, the uid of the user who ran sudo (SUDO_UID).  On a machine
    where everyone works as root through sudo, that is what tells one
    person's labs from another's (`down --all` removes only the caller's)."""
    uid = os.getuid()
    sudo_uid = os.environ.get("SUDO_UID", "")
    if uid == 0 and sudo_uid.isdigit():
        return int(sudo_uid)
    return uid


@dataclass
class Proc:
    pid: int
    start: int | None  # /proc/PID/stat start time, guards against pid reuse
    what: str = ""

    @classmethod
    def of(cls, pid: int, what: str = "") -> "Proc":
        return cls(pid, linux.process_start_time(pid), what)

    def alive(self) -> bool:
        return linux.pid_alive(self.pid, self.start)

    def pidfd(self) -> int | None:
        """A pidfd of this very process (readable once it exits), or None
        if it is gone already (or its pid now names another process)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if not self.alive():  # checked after opening: the fd cannot name a recycled pid
            os.close(fd)
            return None
        return fd

    def __str__(self) -> str:
        return f"{self.pid}:{self.start}"

    @classmethod
    def parse(cls, text: str, what: str = "") -> "Proc | None":
        """The inverse of str(); None for anything else."""
        pid, _, start = text.partition(":")
        if not (pid.isdigit() and start.isdigit()):
            return None
        return cls(int(pid), int(start), what)


@dataclass
class Record:
    name: str
    topology: str
    owner: Proc
    netns: dict[str, str]  # node -> netns name
    datapath: str = ""
    datapath_why: str = ""  # why `datapath` was chosen (the kernel probe's reason, ...)
    revision: str = ""  # of the series (testbed.revisions) the lab's devices are
    uid: int | None = field(default_factory=caller_uid)  # the user who made it
    run: Proc | None = None  # the test run this lab belongs to, if any (dies with it)
    created: float = field(default_factory=time.time)
    procs: list[Proc] = field(default_factory=list)
    rundir: str = ""  # per-lab directory (control sockets, configs)

    @property
    def path(self) -> str:
        return record_path(self.name)

    def stale(self) -> bool:
        return not self.owner.alive()

    def save(self) -> None:
        os.makedirs(STATE_DIR, exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, self.path)

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        # Keys this version does not know are a newer testbed's, not damage:
        # labs of two versions share STATE_DIR (reading them as foreign
        # files would reap a live lab's record from under it).
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["owner"] = Proc(**data["owner"])
        data["procs"] = [Proc(**p) for p in data.get("procs", [])]
        if data.get("run"):
            data["run"] = Proc(**data["run"])
        data.setdefault("uid", None)  # a record from before uids were kept: nobody's
        return cls(**data)


def record_path(name: str) -> str:
    return os.path.join(STATE_DIR, f"{name}.json")


def load(name: str) -> Record | None:
    try:
        with open(record_path(name)) as f:
            return Record.from_json(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        # A half-written or foreign file: treat as a dead lab of that name.
        return Record(name=name, topology="?", owner=Proc(0, None), netns={})


# inotify(7): what a record's removal (reap) or replacement (save's
# os.replace, a rename onto it) looks like in STATE_DIR.
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_DELETE = 0x40, 0x80, 0x200


def watch_records() -> int | None:
    """A non-blocking fd that becomes readable whenever a file in STATE_DIR
    is removed or renamed (a record reaped or replaced): a process that
    must notice its lab's record going (`up --foreground`) waits on it, then
    reads the record again and `drain()`s it.  None if inotify is not
    available (no instances left): the caller then looks periodically."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)  # IN_NONBLOCK, IN_CLOEXEC are these
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(STATE_DIR), _IN_MOVED_FROM | _IN_MOVED_TO | _IN_DELETE) < 0:
        os.close(fd)
        return None
    return fd


def drain(fd: int) -> None:
    """Discard the events waiting on a watch_records() fd (which files
    changed does not matter: the reader looks at its record again)."""
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 65536):
            pass


def all_records() -> list[Record]:
    try:
        names = sorted(f[:-5] for f in os.listdir(STATE_DIR) if f.endswith(".json"))
    except FileNotFoundError:
        return []
    return [r for r in (load(n) for n in names) if r is not None]


@contextlib.contextmanager
def locked():
    """Serialise claiming and reaping of lab names across processes."""
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(os.path.join(STATE_DIR, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LabExists(Exception):
    pass


def claim(record: Record) -> None:
    """Write the record of a new lab; refuse if a live lab has the name or
    one of its namespaces already exists (a stale one is reaped first)."""
    with locked():
        old = load(record.name)
        if old is not None:
            if not old.stale():
                raise LabExists(
                    f"lab {record.name!r} is already up (owner pid {old.owner.pid}); "
                    f"choose another name with --name, or run: testbed down {record.name}")
            reap(old)
        taken = sorted(set(record.netns.values()) & set(linux.list_netns()))
        if taken:
            raise LabExists(
                f"network namespace {taken[0]} already exists and is not testbed's lab "
                f"{record.name!r}; remove it (ip netns del {taken[0]}) or choose another --name")
        record.save()


def kill(proc: Proc, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, a process we started."""
    if not proc.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    if not wait_exit(proc.pid, grace) and proc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait (without polling) until PID exits; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def reap(record: Record) -> list[str]:
    """Remove everything a record says its lab made.  Idempotent."""
    removed = []
    for proc in record.procs:
        kill(proc)
    for ns in record.netns.values():
        if linux.delete_netns(ns):
            removed.append(ns)
    if record.rundir:
        with contextlib.suppress(FileNotFoundError):
            for f in os.listdir(record.rundir):
                os.unlink(os.path.join(record.rundir, f))
            os.rmdir(record.rundir)
    for leftover in (record.path, os.path.join(STATE_DIR, f"{record.name}.log")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    return removed


def reap_stale() -> list[Record]:
    """Reap every lab whose owner is dead; return their records."""
    reaped = []
    with locked():
        for rec in all_records():
            if rec.stale():
                reap(rec)
                reaped.append(rec)
    return reaped
