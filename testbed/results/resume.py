"""Resuming a run after the kernel under test crashed (docs: README,
"Results, reports and comparisons").

`testbed vm` appends one JSON line per crash to OUT/crashes.jsonl, with the
marker labels that were open (`case <nodeid>`, several under pytest -n),
boots again and reruns the same command with TESTBED_VM_BOOT=2, 3, ...
A case is charged with a crash when it was the only case open in it, or
when two crashes had it, and only it, open in common.  Every other open
case is a suspect: on the next boot the suspects run first, one at a time
and alone (no other case open beside them under pytest -n), and only then
the rest, in parallel; so that a suspect's next crash names it alone and
the crash costs one boot (Turns).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time

from testbed.results.record import Crash

ENV_BOOT = "TESTBED_VM_BOOT"
ENV_OUT = "TESTBED_VM_OUT"
CRASHES_FILE = "crashes.jsonl"
RECORD_FILE = "record.jsonl"
CASE_LABEL = "case "


def boot_number(environ=os.environ) -> int:
    """This boot's number in a `testbed vm` run (1 outside a VM or when unset)."""
    try:
        return max(1, int(environ.get(ENV_BOOT, "1")))
    except ValueError:
        return 1


def read_crashes(path: str) -> list[dict]:
    """The crash lines of crashes.jsonl; a missing file is no crash, a line
    cut short (the host died mid-write) is skipped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def open_cases(crash: dict) -> list[str]:
    """The nodeids of the cases open when the kernel crashed."""
    return [label[len(CASE_LABEL):].strip() for label in crash.get("open") or []
            if isinstance(label, str) and label.startswith(CASE_LABEL)]


def crash_of(data: dict) -> Crash:
    """The record's form of one crashes.jsonl line."""
    return Crash(kind=str(data.get("kind", "")), title=str(data.get("title", "")),
                 rip=str(data.get("rip", "")), trace=[str(t) for t in data.get("trace") or []],
                 lines=[str(ln) for ln in data.get("lines") or []],
                 boot=int(data.get("boot") or 0), release=str(data.get("release", "")))


def crashed_cases(crashes: list[dict]) -> dict[str, Crash]:
    """nodeid -> the crash it is charged with: the only case open in a
    crash, or the only case two crashes had open in common (charged with
    the later one).  The same pair open twice charges neither."""
    out: dict[str, Crash] = {}
    earlier: list[set[str]] = []
    for data in crashes:
        cases = set(open_cases(data))
        common = [cases & before for before in earlier if len(cases & before) == 1]
        for nodeid in cases:
            if len(cases) == 1 or {nodeid} in common:
                out[nodeid] = crash_of(data)
        earlier.append(cases)
    return out


def suspects(crashes: list[dict]) -> set[str]:
    """The cases open in a crash and not charged with one: they run again,
    taking turns."""
    charged = crashed_cases(crashes)
    return {nodeid for data in crashes for nodeid in open_cases(data)} - set(charged)


def suspects_first(items: list, suspects: set[str]) -> None:
    """Reorder pytest items in place: the suspects first (in their order),
    then the rest.  Under xdist's load scheduling every worker's queue is
    a slice of this order, so no worker holds a case before a suspect."""
    items.sort(key=lambda item: item.nodeid not in suspects)


class Turns:
    """Who may run when, on a boot that has suspects: a suspect runs alone
    (an exclusive flock, which every other case holds shared while it
    runs), and no other case starts before every suspect has ended (each
    suspect leaves a mark as it ends; the others wait for all marks).  The
    lock is taken before a case's start marker goes into the kernel log, so
    a crash during a suspect has it, and only it, open.

    The marks and the lock live in a directory of the guest's own /tmp (not
    the 9p-shared results), named after the run so that the workers of one
    pytest -n find the same one; the controller removes it at the end.
    `wait_first` is off for xdist's other schedulers (loadscope, ...), whose
    queues may hold a case before a suspect: waiting there could never end;
    the deadline is the last guard."""

    POLL = 0.1          # s between looks at the marks
    DEADLINE = 1800.0   # s at most a case waits for the suspects (then it runs anyway)

    def __init__(self, suspects: set[str], run_key: str, wait_first: bool = True):
        self.suspects = set(suspects)
        self.dir = os.path.join(tempfile.gettempdir(),
                                "testbed-turns-" + hashlib.sha1(run_key.encode()).hexdigest()[:12])
        self.wait_first = wait_first

    def _mark(self, nodeid: str) -> str:
        return os.path.join(self.dir, hashlib.sha1(nodeid.encode()).hexdigest())

    def _suspects_done(self) -> bool:
        return all(os.path.exists(self._mark(n)) for n in self.suspects)

    @contextlib.contextmanager
    def turn(self, nodeid: str):
        """Hold this case's turn while it runs (nothing when no suspects)."""
        if not self.suspects:
            yield
            return
        os.makedirs(self.dir, exist_ok=True)
        suspect = nodeid in self.suspects
        if not suspect and self.wait_first:
            deadline = time.monotonic() + self.DEADLINE
            while not self._suspects_done() and time.monotonic() < deadline:
                time.sleep(self.POLL)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if suspect else fcntl.LOCK_SH)
            try:
                yield
            finally:
                if suspect:
                    with open(self._mark(nodeid), "w"):
                        pass
        finally:
            os.close(fd)  # releases the turn

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
