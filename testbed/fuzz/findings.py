"""Findings across boots: OUT/fuzz-state.json (rewritten atomically), each
finding keyed by its kernel stack signature, with its steps, the state of
its shrinking and its reproducer (docs/fuzz.md "Findings").

Shrinking across reboots is delta debugging (complement removal, as in
Zeller's ddmin) over the crashing input's steps: each candidate is tried as
a "trial" input; trials that do not crash run one after another in the same
boot, a trial that crashes ends the boot and becomes the new smallest input
when the next boot reads the crash.  The first candidate drops every step
the kernel refused.  Then each remaining step is tried without its optional
parameters (SRH edit, MAC, MTU, table, HMAC key).  Pure bookkeeping: the runner runs the trials."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

STATE = "fuzz-state.json"
SIMPLIFY = ("edit", "mac", "mtu", "table", "hmac")  # step parameters the simplify phase drops


@dataclass
class Shrink:
    cur: list[dict]                     # smallest crashing steps so far (JSON)
    n: int = 2                          # ddmin granularity
    i: int = 0                          # next chunk to leave out
    first: list[dict] | None = None     # the no-refused-steps candidate, tried first
    trials: int = 0
    crash_boots: int = 0                # boots ended by a trial of this finding
    pending: str | None = None          # id of the trial running when the boot ended
    j: int = 0                          # simplify phase: next step to simplify (after ddmin)

    def _ddmin(self) -> list[dict] | None:
        if len(self.cur) <= 1:
            return None
        n = min(self.n, len(self.cur))
        if self.i >= n:
            return None
        size = len(self.cur) / n
        lo, hi = int(round(self.i * size)), int(round((self.i + 1) * size))
        return self.cur[:lo] + self.cur[hi:]

    def _simplified(self) -> list[dict] | None:
        """cur with step j's optional parameters dropped (a plain `ip link
        add ... segs ...` instead of raw bytes), skipping steps with none."""
        while self.j < len(self.cur):
            step = self.cur[self.j]
            simple = {k: (None if k in SIMPLIFY and v is not None else v) for k, v in step.items()}
            if simple != step:
                return self.cur[:self.j] + [simple] + self.cur[self.j + 1:]
            self.j += 1
        return None

    def candidate(self) -> list[dict] | None:
        """The next steps to try, or None when nothing smaller or simpler is left."""
        if self.first is not None:
            return self.first
        return self._ddmin() or self._simplified()

    def failed(self) -> None:
        """The candidate did not reproduce: the next one."""
        if self.first is not None:
            self.first = None
            return
        if self._ddmin() is None:
            self.j += 1
            return
        self.i += 1
        n = min(self.n, len(self.cur))
        if self.i >= n and n < len(self.cur):
            self.n, self.i = min(len(self.cur), 2 * n), 0

    def reproduced(self, steps: list[dict]) -> None:
        """The candidate (cut at the step that broke the kernel) reproduced."""
        simplifying = self.first is None and self._ddmin() is None
        self.first = None
        self.cur = list(steps)
        if simplifying:
            self.j += 1
        else:
            self.n, self.i = max(self.n - 1, 2), 0


@dataclass
class FindingRecord:
    sig: str
    kind: str
    title: str
    lines: list[str]
    steps: list[dict]
    input: str
    target: str
    release: str = ""
    count: int = 1
    status: str = "shrinking"    # shrinking | shrunk | verified | unverified
    note: str = ""
    repro: str = ""
    commands: int = 0
    shrink: Shrink | None = None

    @property
    def slug(self) -> str:
        return f"{self.kind.lower().replace(' ', '-')}-{hashlib.sha1(self.sig.encode()).hexdigest()[:8]}"


@dataclass
class State:
    started: float = field(default_factory=time.time)
    seed: int = 0
    revision: str = "srl2"  # the series' revision fuzzed (testbed.revisions); older states: the first
    crashes_seen: int = 0
    inputs: int = 0
    steps: int = 0
    boots: int = 0
    findings: dict[str, FindingRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, out: str) -> "State | None":
        try:
            with open(os.path.join(out, STATE)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        findings = {}
        for sig, d in data.pop("findings", {}).items():
            sh = d.pop("shrink", None)
            findings[sig] = FindingRecord(**d, shrink=Shrink(**sh) if sh else None)
        return cls(**data, findings=findings)

    def save(self, out: str) -> None:
        path = os.path.join(out, STATE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def record(self, sig: str, kind: str, title: str, lines: list[str], steps: list[dict],
               outcomes: dict[int, str], input_id: str, target: str, release: str,
               shrink: bool) -> tuple[FindingRecord, bool]:
        """Add a finding (or count one more of a known one); (record, new?)."""
        if sig in self.findings:
            self.findings[sig].count += 1
            return self.findings[sig], False
        rec = FindingRecord(sig, kind, title, list(lines), list(steps), input_id, target, release,
                            status="shrinking" if shrink else "shrunk")
        if shrink:
            kept = [s for i, s in enumerate(steps)
                    if not outcomes.get(i, "").startswith("refused") or i == len(steps) - 1]
            rec.shrink = Shrink(cur=list(steps), first=kept if len(kept) < len(steps) else None)
        self.findings[sig] = rec
        return rec, True


__all__ = ["State", "FindingRecord", "Shrink", "STATE"]
