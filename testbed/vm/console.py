"""The guest's console, read as it streams: which work is running (the
markers of testbed/kmsg.py), and when the kernel crashes, the crash block
(first line, RIP, call trace) that becomes one line of OUT/crashes.jsonl.

The console is the one channel a dying kernel still writes to: a BUG in a
worker that holds the RTNL leaves user space (and the guest's copy of the
kernel log) stuck, and a panic ends the guest at once.  Pure: fed lines and
the host's clock, it decides; the runner (runner.py) acts.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

from testbed.kmsg import CMD_END, CMD_START, parse_marker, problem

CRASH_FILE = "crashes.jsonl"
# Crashes before the command started: the boot failed, no work was lost and
# the runner boots again (session.py); kept apart from the command's crashes.
BOOT_CRASH_FILE = "boot-crashes.jsonl"
# Once a crash has started, the block ends at the kernel's own end line, or
# when the console has been quiet this long (host seconds), or at this size.
QUIET_END = 3.0
MAX_BLOCK_LINES = 400
# Lines before the first crash line that belong to it ("cut here", the
# skb_over_panic message of a BUG in skb_panic): printed within this many
# kernel seconds of it, at most this many.
LEAD_SECONDS = 1.0
LEAD_LINES = 8

_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_END = re.compile(r"---\[ end (trace|Kernel panic)")
_FRAME = re.compile(r"^\s*(\? )?([\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\w+\])?)")
# What ends a guest: a panic, an oops (general protection fault included),
# a BUG() ("kernel BUG at") and the BUGs that are oopses.
_FATAL_BUG = re.compile(r"kernel BUG at |^BUG: kernel NULL pointer dereference|^BUG: unable to handle")


def kernel_line(line: str) -> Optional[tuple[float, str]]:
    """(kernel seconds, message) of a console line "[  41.123456] msg"; None
    for anything else (vng's and qemu's own messages)."""
    m = _TS.match(line)
    return (float(m.group(1)), line[m.end():].rstrip()) if m else None


def crash_kind(msg: str, stop_on_warning: bool = False) -> Optional[str]:
    """The kind of crash a console message starts (panic, Oops, BUG; WARNING
    with stop_on_warning), or None (including for non-fatal BUG reports such
    as "BUG: sleeping function called from invalid context")."""
    kind = problem(msg)
    if kind in ("panic", "Oops"):
        return kind
    if kind == "BUG" and _FATAL_BUG.search(msg):
        return kind
    if kind == "WARNING" and stop_on_warning:
        return kind
    return None


@dataclass
class Crash:
    """One line of OUT/crashes.jsonl (README, "Testing a kernel")."""
    boot: int
    kind: str            # panic, Oops, BUG, WARNING, hang
    title: str           # the first crash line, without its timestamp
    rip: str = ""        # "RIP: 0010:skb_panic+0x4c/0x50"
    trace: list[str] = field(default_factory=list)   # call trace, reliable frames
    lines: list[str] = field(default_factory=list)   # every console line of the block
    open: list[str] = field(default_factory=list)    # labels STARTed and not ENDed
    release: str = ""
    elapsed: float = 0.0  # host seconds since the first boot started
    # host seconds from the first crash line (or the hang's detection) on
    # the console to the VM being gone: how fast a crash ends a boot
    stop_seconds: float = 0.0

    def record(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """`kernel BUG during case cases/x.py::t[kernel]: kernel BUG at ...!`"""
        what = "guest hang" if self.kind == "hang" else f"kernel {self.kind}"
        where = " and ".join(self.open) if self.open else "no marked work (between cases)"
        return f"{what} during {where}: {self.title}"


def parse_block(lines: Iterable[str]) -> tuple[str, str, str, list[str]]:
    """(kind, title, rip, trace) of a crash block's console lines: the first
    crash line, the first RIP line, the frames of the first call trace
    (those the unwinder is sure of: no "? ")."""
    kind = title = rip = ""
    trace: list[str] = []
    in_trace, trace_done = False, False
    for line in lines:
        parsed = kernel_line(line)
        msg = parsed[1] if parsed else line.rstrip()
        k = crash_kind(msg, stop_on_warning=True)
        if k and not kind:
            kind, title = k, msg.strip()
        if not rip and msg.lstrip().startswith("RIP: "):
            rip = msg.strip()
        if trace_done:
            continue
        if msg.strip() == "Call Trace:":
            in_trace = True
            continue
        if in_trace:
            m = _FRAME.match(msg)
            if m:
                if not m.group(1):
                    trace.append(m.group(2))
            elif msg.strip() in ("<TASK>", "<IRQ>", "</IRQ>", "<NMI>", "</NMI>", "<SOFTIRQ>",
                                 "</SOFTIRQ>"):
                continue
            elif trace:
                in_trace, trace_done = False, True
    return kind, title, rip, trace


class ConsoleWatch:
    """Follows the console of one boot.  feed() each line with the host's
    monotonic clock; crash() says when a crash block is complete."""

    def __init__(self, stop_on_warning: bool = False):
        self.stop_on_warning = stop_on_warning
        self.open: list[str] = []           # labels STARTed and not ENDed, in order
        self.command_started = False
        self.command_ended = False
        self.block: list[str] = []          # the crash block being collected
        self.block_open: list[str] = []     # the labels open when it started
        self.block_ended = False
        self.block_started_at = 0.0         # host clock of the block's first crash line
        self.last_line_at = 0.0
        self._recent: deque[tuple[float, str]] = deque(maxlen=LEAD_LINES)

    @property
    def crashing(self) -> bool:
        return bool(self.block)

    def feed(self, line: str, now: float) -> None:
        line = line.rstrip("\r\n")
        self.last_line_at = now
        parsed = kernel_line(line)
        if self.block:
            if not self.block_ended and len(self.block) < MAX_BLOCK_LINES:
                self.block.append(line)
                if parsed and _END.search(parsed[1]):
                    self.block_ended = True
            return
        if not parsed:
            return
        ts, msg = parsed
        mark = parse_marker(msg)
        if mark:
            event, label = mark
            if event == CMD_START:
                self.command_started = True
            elif event == CMD_END:
                self.command_ended = True
            elif event == "START":
                self.open.append(label)
            elif label in self.open:
                self.open.remove(label)
            return
        if crash_kind(msg, self.stop_on_warning):
            lead = [ln for t, ln in self._recent if ts - t <= LEAD_SECONDS]
            self.block = [*lead, line]
            self.block_open = list(self.open)
            self.block_started_at = now
            return
        self._recent.append((ts, line))

    def complete(self, now: float) -> bool:
        """Is the crash block being collected complete (its end line seen,
        the console quiet for QUIET_END s, or MAX_BLOCK_LINES long)?"""
        if not self.block:
            return False
        return (self.block_ended or len(self.block) >= MAX_BLOCK_LINES
                or now - self.last_line_at >= QUIET_END)

    def crash(self, boot: int, release: str, elapsed: float) -> Optional[Crash]:
        """The crash collected so far (None when there is none)."""
        if not self.block:
            return None
        kind, title, rip, trace = parse_block(self.block)
        return Crash(boot, kind or "Oops", title or self.block[0], rip, trace, list(self.block),
                     list(self.block_open), release, round(elapsed, 1))


def emulator_hint(crash: Crash, kvm: bool) -> str:
    """Why a crash may be the emulator's rather than the kernel's, or "".

    An int3 oops under software emulation: the kernel turns static keys on
    and off by patching live code through an int3 (text_poke_bp), and QEMU's
    multi-threaded TCG has been seen here to run the int3 on another vCPU
    after the kernel had already written the final bytes (the oops' Code:
    line then shows a NOP where the int3 was, e.g. at sched_clock_tick+0x5
    when the clock turns stable 3 s into boot: 1 boot in 13 here)."""
    if kvm or crash.kind != "Oops" or not crash.title.startswith("Oops: int3"):
        return ""
    return ("an int3 oops under software emulation, most likely QEMU's: a vCPU ran a breakpoint "
            "the kernel had already patched away from live code")


def hang(boot: int, seconds: float, open_labels: list[str], tail: list[str], release: str,
         elapsed: float) -> Crash:
    """The record of a guest that showed no output and no progress for seconds."""
    return Crash(boot, "hang", f"no console output and no progress for {seconds:g} s", "", [],
                 list(tail), list(open_labels), release, round(elapsed, 1))
