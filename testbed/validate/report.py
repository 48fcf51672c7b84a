"""What `testbed validate` prints: one line per probe (`ok   TITLE: DETAIL`
or `FAIL TITLE: DETAIL`), a summary line, or all of it as JSON."""
from __future__ import annotations

from dataclasses import dataclass

from testbed.validate.plan import CountersProbe, FrameProbe, LinkProbe, PingProbe, Probe


@dataclass
class Result:
    probe: Probe
    ok: bool
    detail: str

    @property
    def kind(self) -> str:
        p = self.probe
        if isinstance(p, PingProbe):
            return "ping" if p.expect_replies else "no_ping"
        if isinstance(p, CountersProbe):
            return "counters"
        if isinstance(p, LinkProbe):
            return "link"
        assert isinstance(p, FrameProbe)
        return "frame"


def line(result: Result) -> str:
    return f"{'ok  ' if result.ok else 'FAIL'} {result.probe.title}: {result.detail}"


def summary(lab: str, results: list[Result]) -> str:
    failed = sum(not r.ok for r in results)
    n = len(results)
    verdict = "all ok" if not failed else f"{failed} FAILED"
    return f"validate {lab}: {n} check{'s' if n != 1 else ''}, {verdict}"


def as_json(lab: str, topology: str, results: list[Result]) -> dict:
    return {
        "lab": lab,
        "topology": topology,
        "ok": all(r.ok for r in results),
        "passed": sum(r.ok for r in results),
        "failed": sum(not r.ok for r in results),
        "results": [{"check": r.probe.check, "kind": r.kind, "title": r.probe.title,
                     "ok": r.ok, "detail": r.detail} for r in results],
    }
