"""Resuming a run after the kernel under test crashed (docs: README,
"Results, reports and comparisons").

`testbed vm` appends one JSON line per crash to OUT/crashes.jsonl, with the
marker labels that were open (`case <nodeid>`, several under pytest -n),
boots again and reruns the same command with TESTBED_VM_BOOT=2, 3, ...
A case is charged with a crash when it was the only case open in it, or
when two crashes had it, and only it, open in common.  Every other open
case is a suspect: it runs again, and suspects take turns (never two side
by side under pytest -n), so that its next crash, if any, names it alone.
"""
from __future__ import annotations

import json
import os

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
