"""The kernel log: reading /dev/kmsg records and recognising the ones that
mean a kernel bug.  Used by `testbed vm` (copying the guest's log,
attributing problems to cases) and by cases that check "no warning"."""
from __future__ import annotations

import os
import re

# Kernel messages that mean a kernel bug, most specific first.  Matched on
# the message without its timestamp.
PROBLEMS: tuple[tuple[str, re.Pattern], ...] = tuple((kind, re.compile(rx)) for kind, rx in (
    ("panic", r"Kernel panic - not syncing"),
    ("Oops", r"^Oops: |general protection fault|^BUG: unable to handle"),
    ("BUG", r"kernel BUG at |(^|: )BUG: "),
    ("WARNING", r"^WARNING: |\bWARNING: CPU: \d+ PID: "),
    ("dead loop", r"(?i)\bdead loop\b"),
    ("UBSAN", r"^UBSAN: "),
    ("KASAN", r"^BUG: KASAN: |^KASAN: "),
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
