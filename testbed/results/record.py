"""The record of a run: JSON lines, one header per boot, one line per case.

    {"type": "header", "format": "srl2-testbed-record", "version": 1, "boot": 1,
     "release": "6.12.117-srl2rfc", "machine": "guest", "datapath": "kernel",
     "datapaths": ["kernel"], "spec": "linux", "started": "2026-...Z", ...}
    {"type": "case", "nodeid": "cases/test_headers.py::test_x[kernel]",
     "ids": ["H5"], "datapath": "kernel", "outcome": "failed", "checks": [...], ...}

The pytest plugin appends a case line as each case ends, flushed and
fsynced, so a kernel crash in the middle of a run keeps everything done
before it; a resumed boot appends its own header and goes on.  Reading
tolerates a last line cut short by a crash mid-write.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from testbed.errors import TestbedError

FORMAT = "srl2-testbed-record"
VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "crashed", "error")
BAD_OUTCOMES = ("failed", "crashed", "error")


class RecordError(TestbedError):
    """A record file that cannot be read (missing, not a record)."""


def _known(cls, data: dict) -> dict:
    """The keys of `data` that `cls` has: newer records may carry more."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Header:
    """What a run (or one boot of it) ran on and how it was asked."""
    boot: int = 1
    release: str = ""          # kernel release the cases ran on (uname -r)
    machine: str = "host"      # "guest" inside `testbed vm`, else "host"
    hostname: str = ""
    datapath: str = ""         # --datapath as given (auto, kernel, ref, both)
    datapaths: list[str] = field(default_factory=list)  # what it resolved to
    spec: str = "linux"
    started: str = ""          # UTC, ISO 8601
    argv: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"type": "header", "format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Header":
        return cls(**_known(cls, data))


@dataclass
class Crash:
    """The kernel crash a case is charged with (from `testbed vm`'s crashes.jsonl)."""
    kind: str = ""             # BUG, Oops, panic, general protection fault, hang, ...
    title: str = ""            # the kernel's first line: "kernel BUG at net/core/skbuff.c:209!"
    rip: str = ""              # "RIP: 0010:skb_panic+0x4c/0x50"
    trace: list[str] = field(default_factory=list)  # call trace, innermost first
    lines: list[str] = field(default_factory=list)  # every console line of the crash block
    boot: int = 0              # the boot it happened in
    release: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "Crash":
        return cls(**_known(cls, data))


@dataclass
class Case:
    """One case's result."""
    nodeid: str
    outcome: str = "passed"    # one of OUTCOMES
    ids: list[str] = field(default_factory=list)
    datapath: str = "-"
    skip_reason: str = ""
    message: str = ""          # the failure's own words, short
    checks: list[dict] = field(default_factory=list)  # per-ID verdicts (docs: INTERFACES §3 shape)
    pcaps: list[str] = field(default_factory=list)
    kernel_problems: list[dict] = field(default_factory=list)  # {"kind", "line"}
    crash: Crash | None = None
    labs: list[dict] = field(default_factory=list)  # {"name", "source", "picture"}
    duration: float = 0.0
    boot: int = 1

    @property
    def bad(self) -> bool:
        return self.outcome in BAD_OUTCOMES

    def all_ids(self) -> list[str]:
        """The case's catalogue IDs, then any its checks name besides."""
        out = list(self.ids)
        for c in self.checks:
            if c.get("id") and c["id"] not in out:
                out.append(c["id"])
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.crash is None:
            del data["crash"]
        return {"type": "case", **data}

    @classmethod
    def from_dict(cls, data: dict) -> "Case":
        kw = _known(cls, data)
        if isinstance(kw.get("crash"), dict):
            kw["crash"] = Crash.from_dict(kw["crash"])
        return cls(**kw)


@dataclass
class Record:
    """A whole run: its headers (one per boot) and its cases in the order they ended."""
    headers: list[Header] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    path: str = ""
    truncated: bool = False    # the last line was cut short (a crash mid-write)

    @property
    def header(self) -> Header:
        return self.headers[0] if self.headers else Header()

    @property
    def boots(self) -> int:
        return max([h.boot for h in self.headers] + [c.boot for c in self.cases] + [1])

    def by_nodeid(self) -> dict[str, Case]:
        return {c.nodeid: c for c in self.cases}

    def datapaths(self) -> list[str]:
        return sorted({c.datapath for c in self.cases if c.datapath != "-"})

    def counts(self) -> dict[str, int]:
        out = {o: 0 for o in OUTCOMES}
        for c in self.cases:
            out[c.outcome] = out.get(c.outcome, 0) + 1
        return out


def parse_lines(lines: Iterable[str], path: str = "<record>") -> Record:
    """A record from its lines.  A line that is not JSON is tolerated only
    as the last one (cut short by a crash); anywhere else it is an error."""
    rec = Record(path=path)
    lines = list(lines)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) or all(not ln.strip() for ln in lines[n:]):
                rec.truncated = True
                break
            raise RecordError(f"{path}:{n}: not a JSON line of a run record") from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "header":
            if data.get("format", FORMAT) != FORMAT:
                raise RecordError(f"{path}:{n}: not a run record (format {data.get('format')!r})")
            rec.headers.append(Header.from_dict(data))
        elif kind == "case":
            rec.cases.append(Case.from_dict(data))
        else:
            raise RecordError(f"{path}:{n}: a line that is neither a header nor a case")
    if not rec.headers and not rec.cases and not rec.truncated:
        raise RecordError(f"{path}: empty: not a run record")
    return rec


def read(path: str) -> Record:
    """The record in a file (docs: README, "Results, reports and comparisons")."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except IsADirectoryError:
        raise RecordError(f"{path}: a directory, not a record") from None
    except OSError as e:
        raise RecordError(f"{path}: {e.strerror}") from None
    return parse_lines(text.splitlines(), path)


def _trim_partial_line(path: str) -> None:
    """Drop a last line without its newline (a write cut short by a crash),
    so that the next line starts on a line of its own."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class RecordWriter:
    """Appends lines to a record, each flushed and fsynced before the next
    case runs.  `resume` keeps what an earlier boot wrote."""

    def __init__(self, path: str, header: Header, resume: bool = False):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        if resume and os.path.exists(path):
            _trim_partial_line(path)
            mode = "a"
        else:
            mode = "w"
        self._f = open(path, mode, encoding="utf-8")
        self.write_line(header.to_dict())

    def write_line(self, data: dict[str, Any]) -> None:
        self._f.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def write(self, case: Case) -> None:
        self.write_line(case.to_dict())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
