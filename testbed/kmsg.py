"""The kernel log: reading /dev/kmsg records, writing the testbed's markers
into it, telling the messages that mean a kernel bug from information, and
attributing them to the work (cases) that was running.  Used by `testbed vm`
(copying the guest's log, watching its console, attributing problems) and by
cases that check "no kernel warning".  Knows nothing of VMs beyond the
guest's environment variable.  The markers and kinds are a contract between
parts of the project (the README's "Testing a kernel")."""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

ENV_VM = "TESTBED_VM"  # "1" inside a `testbed vm` guest
MARKER_PREFIX = "testbed: "
CMD_START = "vm command START"
CMD_END = "vm command END"
# Before generic markers, cases were marked `testbed: case START <nodeid>`;
# logs of that form are still understood (the label is the bare nodeid).
CASE_START = "case START"
CASE_END = "case END"

# Kernel messages that mean a kernel bug, most specific first (a KASAN
# report and a soft lockup also start with "BUG:").  Matched on the message
# without its timestamp.  Everything else is information: bridge port
# states, allmulticast and promiscuous mode, link up and down, and so on.
PROBLEMS: tuple[tuple[str, re.Pattern], ...] = tuple((kind, re.compile(rx)) for kind, rx in (
    ("panic", r"Kernel panic - not syncing"),
    ("KASAN", r"^BUG: KASAN: |^KASAN: "),
    ("soft lockup", r"BUG: soft lockup - CPU#|watchdog: BUG: soft lockup"),
    ("hard lockup", r"[Ww]atchdog detected hard LOCKUP on cpu"),
    ("Oops", r"^Oops: |general protection fault|^BUG: unable to handle"),
    ("BUG", r"kernel BUG at |(^|: )BUG: "),
    ("WARNING", r"^WARNING: |\bWARNING: CPU: \d+ PID: "),
    ("dead loop", r"(?i)\bdead loop\b"),
    ("UBSAN", r"^UBSAN: "),
    ("refcount", r"^refcount_t: "),
    ("RCU stall", r"rcu: INFO: \S+ (self-)?detected stall|rcu_\w+ self-detected stall"),
    ("hung task", r"INFO: task .* blocked for more than"),
    ("refcount leak", r"unregister_netdevice: waiting for .* to become free"),
    ("memory leak", r"kmemleak: \d+ new suspected memory leaks"),
))


def problem(message: str) -> str | None:
    """The kind of kernel problem a message reports (WARNING, BUG, ...), or None."""
    for kind, rx in PROBLEMS:
        if rx.search(message):
            return kind
    return None


def message(record: str) -> str:
    """The text of a /dev/kmsg record ("prio,seq,usec,flags;text\\n KEY=val")."""
    return record.split(";", 1)[-1].split("\n", 1)[0].strip()


class KernelLog:
    """Records of /dev/kmsg written from now on (or from the oldest one kept,
    with `from_start`): the kernel's own cursor, no parsing of old dmesg
    lines.  Where /dev/kmsg cannot be read, there are no records."""

    def __init__(self, from_start: bool = False):
        self.lost = 0  # records overwritten before they were read
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            if not from_start:
                os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as e:
            self.fd = -1
            self.error = e.strerror

    def records(self) -> list[str]:
        """Every record available now, raw."""
        out = []
        while self.fd >= 0:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while we read: go on from the oldest kept
                self.lost += 1
                continue
            except OSError:
                break
            if not rec:
                break
            out.append(rec.decode(errors="replace"))
        return out

    def messages(self) -> list[str]:
        """The text of every record available now."""
        return [message(r) for r in self.records()]

    def problems(self) -> list[str]:
        """The messages available now that report a kernel problem."""
        return [m for m in self.messages() if problem(m)]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---- markers, and what the log says about each case ----------------------

def in_vm() -> bool:
    """True in a `testbed vm` guest (set by the guest runner)."""
    return os.environ.get(ENV_VM) == "1"


def kmsg_marker(text: str, path: str = "/dev/kmsg") -> bool:
    """Write one line `testbed: TEXT` into the kernel log (prefix added
    unless present); False, silently, where /dev/kmsg is not writable.  On a
    host it writes to the host's log too: use marked(), which writes only in
    a `testbed vm` guest, or call it `if in_vm()`."""
    msg = " ".join(str(text).split())
    if not msg.startswith(MARKER_PREFIX):
        msg = MARKER_PREFIX + msg
    data = f"<5>{msg}\n".encode()[:976]  # a record is at most ~1 KiB
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def start_marker(label: str) -> str:
    """`testbed: START <label>`: label is `case <pytest nodeid>` for a
    conformance case, `fuzz <input id>` for a fuzz input, anything else for
    other work."""
    return f"{MARKER_PREFIX}START {' '.join(str(label).split())}"


def end_marker(label: str) -> str:
    """`testbed: END <label>`, the end of what start_marker(label) began."""
    return f"{MARKER_PREFIX}END {' '.join(str(label).split())}"


@contextlib.contextmanager
def marked(label: str, path: str = "/dev/kmsg") -> Iterator[None]:
    """START before and END after the block, in a `testbed vm` guest only
    (elsewhere the kernel log is the machine's: nothing is written)."""
    if not in_vm():
        yield
        return
    kmsg_marker(start_marker(label), path)
    try:
        yield
    finally:
        kmsg_marker(end_marker(label), path)


def case_marker(event: str, nodeid: str) -> str:
    """The marker line for a case, event "START" or "END":
    `testbed: START case <nodeid>` (start_marker(f"case {nodeid}"))."""
    if event not in ("START", "END"):
        raise ValueError(f"event must be START or END, not {event!r}")
    label = f"case {nodeid}"
    return start_marker(label) if event == "START" else end_marker(label)


def parse_marker(msg: str) -> Optional[tuple[str, str]]:
    """(event, label) of a marker message: event START, END, CMD_START or
    CMD_END; the old `case START <nodeid>` form gives START with the bare
    nodeid.  None for any other message."""
    m = _MARK.match(msg)
    if not m:
        return None
    if m.group(1):
        return m.group(1), m.group(2).strip()
    what, arg = m.group(3), (m.group(4) or "").strip()
    if what in (CMD_START, CMD_END):
        return what, arg
    return ("START" if what == CASE_START else "END"), arg


_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_KMSG = re.compile(r"^\d+,\d+,\d+(,[^;]*)?;")
_MARK = re.compile(r"^testbed: (?:(START|END) (\S.*)|(case START|case END|vm command START|vm command END)(?: (.*))?)$")


@dataclass(frozen=True)
class KernelProblem:
    kind: str                 # WARNING, BUG, Oops, panic, dead loop, ...
    line: str                 # the kernel's line, as in dmesg.txt
    cases: tuple[str, ...]    # the case(s) running (several under pytest -n)
    where: str                # "case", "boot" (before the command), "between" (no case open)
    after: str = ""           # for "between": the last case that ended, if any

    def __str__(self) -> str:
        if self.where == "case":
            return f"kernel {self.kind} during {' and '.join(self.cases)}: {self.line}"
        if self.where == "boot":
            return f"kernel {self.kind} during boot: {self.line}"
        if self.where == "after":
            return f"kernel {self.kind} after the command: {self.line}"
        ctx = f"after {self.after}" if self.after else "before the first case"
        return f"kernel {self.kind} outside any case ({ctx}): {self.line}"


def _message(line: str) -> str:
    m = _TS.match(line) or _KMSG.match(line)
    return line[m.end():] if m else line


def kernel_problems(log: str | Iterable[str]) -> list[KernelProblem]:
    """Scan a kernel log (dmesg.txt lines "[  sec.usec] msg", raw /dev/kmsg
    records, or bare messages) for warnings, BUGs, oopses, panics, "dead
    loop" and the like, and attribute each to the labels (cases) between
    whose `testbed: START <label>` and `testbed: END <label>` markers it was
    printed.  Before `testbed: vm command START` (if that marker is present)
    is boot; after `vm command END` is "after"."""
    lines = log.splitlines() if isinstance(log, str) else list(log)
    has_cmd_marker = any((parse_marker(_message(ln)) or ("",))[0] == CMD_START for ln in lines)
    phase = "boot" if has_cmd_marker else "run"
    running: list[str] = []
    last = ""
    found: list[KernelProblem] = []
    for raw in lines:
        line = raw.rstrip("\n")
        msg = _message(line)
        mark = parse_marker(msg)
        if mark:
            what, arg = mark
            if what == CMD_START:
                phase = "run"
            elif what == CMD_END:
                phase = "after"
            elif what == "START":
                running.append(arg)
            elif arg in running:
                running.remove(arg)
                last = arg
            continue
        kind = problem(msg)
        if not kind:
            continue
        if phase == "boot":
            found.append(KernelProblem(kind, line.strip(), (), "boot"))
        elif phase == "after" and not running:
            found.append(KernelProblem(kind, line.strip(), (), "after"))
        elif running:
            found.append(KernelProblem(kind, line.strip(), tuple(running), "case"))
        else:
            found.append(KernelProblem(kind, line.strip(), (), "between", last))
    return found


def kmsg_to_dmesg(record: str) -> Optional[str]:
    """One /dev/kmsg record ("prio,seq,usec,flags;message\\n KEY=val...") as a
    dmesg line "[  sec.usec] message"; None for continuation lines."""
    head, sep, rest = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        usec = int(fields[2])
    except (IndexError, ValueError):
        return None
    msg = rest.split("\n", 1)[0]
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {msg}"


class KmsgTee:
    """Copies the kernel log, from its start, into a file, line by line."""

    def __init__(self, out_path: str):
        self.out = open(out_path, "w", buffering=1)
        self.log = KernelLog(from_start=True)
        if self.log.fd < 0:
            self.out.write(f"# testbed: cannot read /dev/kmsg: {self.log.error}\n")

    def pump(self) -> None:
        """Copy every record available now."""
        lost = self.log.lost
        for rec in self.log.records():
            line = kmsg_to_dmesg(rec)
            if line is not None:
                self.out.write(line + "\n")
        if self.log.lost != lost:
            self.out.write("# testbed: kernel log records lost (ring buffer overrun)\n")

    def close(self) -> None:
        self.pump()
        self.log.close()
        self.out.close()
