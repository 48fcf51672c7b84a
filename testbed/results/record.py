"""The record of a run: JSON lines, one header per boot, one line per case.

    {"type": "header", "format": "srl2-testbed-record", "version": 1, "boot": 1,
     "release": "6.12.117-srl2rfc", "machine": "guest", "datapath": "kernel",
     "datapaths": ["kernel"], "spec": "linux", "started": "2026-...Z", ...}
    {"type": "case", "nodeid": "cases/test_headers.py::test_x[kernel]",
     "ids": ["H5"], "datapath": "kernel", "outcome": "failed", "checks": [...], ...}

The pytest plugin appends a case line as each case ends, flushed and
fsynced, so a kernel crash in the middle of a run keeps everything done
before it; a resumed boot appends its own header and goes on.

Reading checks the whole record once (`parse`): the header first, the
format and version, and every field the reports read, types included, so
that no report, comparison or resume meets a value it cannot use; anything
else is one RecordError naming the file, the line and what was expected.
The one thing tolerated is a last line cut short by a crash mid-write (no
newline after it, the start of a JSON object): `Record.cut_line` says so,
and the verbs that read the record tell it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from testbed.checks import VERDICTS
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
    revision: str = ""         # of the series the devices were (testbed.revisions); "" in older records
    started: str = ""          # UTC, ISO 8601
    shard: str = ""            # "K/N" of a run split in shards (--shard), else ""
    argv: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        if not self.shard:  # an unsharded run's header reads as it always has
            del data["shard"]
        return {"type": "header", "format": FORMAT, "version": VERSION, **data}

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
    cut_line: int = 0          # the number of the last line when it was cut short (a crash mid-write)

    @property
    def truncated(self) -> bool:
        return self.cut_line > 0

    def cut_text(self) -> str:
        """`FILE:N: the last line is cut short ...`, for the verbs to tell."""
        return (f"{self.path}:{self.cut_line}: the last line is cut short "
                "(the run was interrupted while writing it)")

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


# The fields of each line that the reports read, with their JSON types: str
# a string, int an integer, float a number, [x] a list of x, {...} an object
# with these fields, a tuple the values allowed.  A field may be absent (the
# dataclass default); unknown fields are ignored (a newer writer's).
_STRINGS = [str]
HEADER_FIELDS: dict[str, Any] = {
    "format": (FORMAT,), "version": (VERSION,), "boot": int, "release": str, "machine": str, "hostname": str,
    "datapath": str, "datapaths": _STRINGS, "spec": str, "revision": str, "started": str, "shard": str,
    "argv": _STRINGS}
CASE_FIELDS: dict[str, Any] = {
    "nodeid": str, "outcome": OUTCOMES, "ids": _STRINGS, "datapath": str, "skip_reason": str, "message": str,
    "checks": [{"id": str, "clause": str, "verdict": VERDICTS, "what": str, "expected": str, "seen": str}],
    "pcaps": _STRINGS, "kernel_problems": [{"kind": str, "line": str}],
    "crash": {"kind": str, "title": str, "rip": str, "trace": _STRINGS, "lines": _STRINGS, "boot": int,
              "release": str},
    "labs": [{"name": str, "source": str, "picture": str}], "duration": float, "boot": int}
REQUIRED = {"header": ("format", "version"), "case": ("nodeid", "outcome")}
NULLABLE = ("crash",)          # Case.to_dict leaves it out; null means no crash too
_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"), float: ("a number", "numbers")}


def _expected(schema) -> str:
    if isinstance(schema, tuple):
        values = ", ".join(json.dumps(v) for v in schema)
        return values if len(schema) == 1 else f"one of {values}"
    if isinstance(schema, list):
        return "a list of " + ("objects" if isinstance(schema[0], dict) else _NAMES[schema[0]][1])
    if isinstance(schema, dict):
        return "an object"
    return _NAMES[schema][0]


def _fits(value, schema) -> bool:
    """A JSON scalar against str, int, float or a tuple of allowed values
    (a bool is none of them, though Python counts it as an int)."""
    if isinstance(value, bool):
        return False
    if isinstance(schema, tuple):
        return any(type(value) is type(v) and value == v for v in schema)
    return isinstance(value, (int, float) if schema is float else schema)


def _mismatch(value, schema, name: str) -> tuple[str, str, Any] | None:
    """(field, what was expected, what was found) of the first field of
    `value` that does not fit `schema`, or None."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return name, _expected(schema), value
        for key, sub in schema.items():
            if key in value and not (key in NULLABLE and value[key] is None):
                bad = _mismatch(value[key], sub, f"{name}.{key}" if name else key)
                if bad:
                    return bad
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return name, _expected(schema), value
        for i, item in enumerate(value):
            bad = _mismatch(item, schema[0], f"{name}[{i}]")
            if bad:
                return bad
        return None
    return None if _fits(value, schema) else (name, _expected(schema), value)


def _found(value: Any) -> str:
    """A value as the error shows it: its JSON, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def check_line(data: Any, where: str) -> str:
    """The kind of a parsed line ("header" or "case"), or a RecordError
    saying what is wrong with it."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected a JSON object (a header or a case line), found {_found(data)}")
    kind = data.get("type")
    if kind not in ("header", "case"):
        found = _found(kind) if "type" in data else "nothing"
        raise RecordError(f'{where}: a line that is neither a header nor a case: '
                          f'expected "type": "header" or "case", found {found}')
    schema = HEADER_FIELDS if kind == "header" else CASE_FIELDS
    for key in REQUIRED[kind]:
        if key not in data:
            raise RecordError(f'{where}: {kind} field "{key}": expected {_expected(schema[key])}, found nothing')
    bad = _mismatch(data, schema, "")
    if bad:
        name, expected, value = bad
        raise RecordError(f'{where}: {kind} field "{name}": expected {expected}, found {_found(value)}')
    return kind


FIRST_LINE = f'{{"type": "header", "format": "{FORMAT}", ...}}'


def parse(data: bytes, path: str = "<record>") -> Record:
    """A record from a file's bytes (see the module's doc for what is checked)."""
    rec = Record(path=path)
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        # A crash mid-write leaves a prefix of one line and no newline after
        # it: only then is a line that does not parse a cut, not an error.
        may_be_cut = n == len(lines) and raw.lstrip().startswith(b"{")
        try:
            parsed = json.loads(raw.decode("utf-8"))  # a cut may split a character too
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if not may_be_cut:
                binary = isinstance(e, UnicodeDecodeError)
                raise RecordError(f"{where}: binary data, not a line of text: not a run record" if binary
                                  else f"{where}: not a JSON line of a run record") from None
            if not rec.headers:
                raise RecordError(f"{where}: expected the header line first ({FIRST_LINE}), "
                                  "found a line cut short") from None
            rec.cut_line = n
            break
        kind = check_line(parsed, where)
        if kind == "case" and not rec.headers:
            raise RecordError(f"{where}: expected the header line first ({FIRST_LINE}), found a case line")
        if kind == "header":
            rec.headers.append(Header.from_dict(parsed))
        else:
            rec.cases.append(Case.from_dict(parsed))
    if not rec.headers:
        raise RecordError(f"{path}:1: empty file: expected the header line of a run record")
    return rec


def parse_lines(lines: Iterable[str], path: str = "<record>") -> Record:
    """A record from its lines, the last without its newline (so it may be a cut)."""
    return parse("\n".join(lines).encode("utf-8"), path)


def read(path: str) -> Record:
    """The record in a file (docs: README, "Results, reports and comparisons")."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except IsADirectoryError:
        raise RecordError(f"{path}: a directory, not a record") from None
    except OSError as e:
        raise RecordError(f"{path}: {e.strerror}") from None
    return parse(data, path)


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
