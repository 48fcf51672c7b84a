"""What survives a guest crash: the fuzzer's journal (every step written,
flushed and fsynced before it runs), the VM runner's OUT/crashes.jsonl
(contract: docs/fuzz.md "Crashes"), and the kernel stack signature that
deduplicates findings.  Pure file and text handling.

Journal lines (JSON):

    {"ev": "boot", "boot": 2, "time": 1764660000.0, "seed": 1, "target": "kernel"}
    {"ev": "input", "id": "b2-7", "kind": "fuzz" | "trial" | "verify", "finding": SIG | null}
    {"ev": "step", "id": "b2-7", "i": 0, "step": {"op": "srl2_add", ...}}
    {"ev": "done", "id": "b2-7", "i": 0, "outcome": "ok" | "refused: ..."}
    {"ev": "end", "id": "b2-7", "result": "pass" | "finding", "sig": SIG | null}
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from testbed.fuzz.steps import Step

JOURNAL = "fuzz-journal.jsonl"
CRASHES = "crashes.jsonl"
TOP_FRAMES = 5  # call-trace functions that make a signature (enough to tell bugs apart,
                # few enough that one bug reached by two paths stays one finding)
_SUFFIX = re.compile(r"(\.(constprop|isra|part|cold|llvm)(\.\d+)?)+$")  # compiler clones

_FRAME = re.compile(r"^\s*(\? )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s*")
# Frames that say how the kernel got to the bug, not where it is.
_GENERIC = {"dump_stack_lvl", "dump_stack", "__warn", "report_bug", "handle_bug", "exc_invalid_op",
            "asm_exc_invalid_op", "die", "do_trap", "do_error_trap", "__die", "__die_body", "panic",
            "oops_end", "show_regs", "__report_bug"}


class Journal:
    """Append-only JSON lines, each flushed and fsynced (a crash right after
    `write` still leaves the line on disk)."""

    def __init__(self, path: str):
        self.path = path
        self.f = open(path, "a")

    def write(self, **entry) -> None:
        self.f.write(json.dumps(entry) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


@dataclass
class Input:
    """One input as the journal tells it: its steps up to the last started."""

    id: str
    kind: str = "fuzz"
    finding: str | None = None
    boot: int = 0
    steps: list[Step] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)
    ended: bool = False


def read_journal(path: str) -> dict[str, Input]:
    """Inputs by id, in journal order; a torn last line (crash while
    writing) is ignored."""
    inputs: dict[str, Input] = {}
    boot = 0
    try:
        f = open(path)
    except FileNotFoundError:
        return inputs
    with f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            ev = e.get("ev")
            if ev == "boot":
                boot = e.get("boot", boot)
            elif ev == "input":
                inputs[e["id"]] = Input(e["id"], e.get("kind", "fuzz"), e.get("finding"), boot)
            elif e.get("id") in inputs:
                inp = inputs[e["id"]]
                if ev == "step":
                    inp.steps.append(Step.from_json(e["step"]))
                elif ev == "done":
                    inp.outcomes[e["i"]] = e.get("outcome", "")
                elif ev == "end":
                    inp.ended = True
    return inputs


def step_mix(inputs) -> str:
    """Fuzz steps by op, "op accepted/run", most run first: what was exercised."""
    run: dict[str, int] = {}
    ok: dict[str, int] = {}
    for inp in inputs:
        for i, step in enumerate(inp.steps):
            run[step.op] = run.get(step.op, 0) + 1
            ok[step.op] = ok.get(step.op, 0) + (inp.outcomes.get(i) == "ok")
    return ", ".join(f"{op} {ok[op]}/{n}" for op, n in sorted(run.items(), key=lambda x: -x[1])) or "none"


def read_crashes(path: str) -> list[dict]:
    """The VM runner's crash records (one JSON object a line)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


def fuzz_labels(crash: dict) -> list[str]:
    """Input ids of the `fuzz <id>` markers open when the guest crashed."""
    return [label.split(" ", 1)[1] for label in crash.get("open", []) if label.startswith("fuzz ")]


def frames_of(lines) -> list[str]:
    """Reliable call-trace function names ('? ' guesses dropped) in order."""
    out = []
    for line in lines:
        m = _FRAME.match(_TS.sub("", line))
        if m and not m.group(1):
            out.append(_SUFFIX.sub("", m.group(2)))
    return out


def signature(kind: str, title: str, trace) -> str:
    """A finding's identity: its kind and the first call-trace functions
    past the trap machinery; without a trace, the title with numbers blurred
    (addresses, line numbers, pids and times differ between boots)."""
    names = [n for n in frames_of(trace) if n not in _GENERIC][:TOP_FRAMES]
    if names:
        return f"{kind}: " + " < ".join(names)
    blurred = re.sub(r"0x[0-9a-f]+|\d+", "N", _TS.sub("", title or "")).strip()
    return f"{kind}: {blurred}"


def crash_signature(crash: dict) -> str:
    trace = crash.get("trace") or crash.get("lines") or []
    return signature(crash.get("kind", "crash"), crash.get("title", ""), trace)


def problem_block(messages: list[str], problem) -> tuple[str, str, list[str]] | None:
    """The first kernel problem in `messages` (a kernel log read as message
    texts): (kind, its line, the lines of its report up to the end marker).
    `problem` is testbed.kmsg.problem."""
    for i, m in enumerate(messages):
        kind = problem(m)
        if kind:
            block = [m]
            for n in messages[i + 1:]:
                block.append(n)
                if n.startswith("---[ end trace") or len(block) > 80:
                    break
            return kind, m, block
    return None


__all__ = ["Journal", "Input", "read_journal", "step_mix", "read_crashes", "fuzz_labels", "frames_of",
           "signature", "crash_signature", "problem_block", "JOURNAL", "CRASHES"]
