"""One verdict per catalogue ID inside a case (docs/catalogue.md, "Verdicts").

A case that checks several IDs records each check here instead of
asserting: every check runs, whatever an earlier one found, and only the
IDs whose check failed turn red.  A frame whose hop limit is wrong is an H5
failure; it must not also fail H1, H3 and H4.  At the end of the case (the
`checks` fixture, testbed.pytest_checks) the case fails if any check
failed, with one line per failed check, fit to paste into a review:

    H5 [RFC 2473 §6.3; srl2 patch] outer hop limit of a frame carrying IPv6 hop limit 1: expected 64, seen 1

A `note` records a finding that does not fail the case (N6: the RFC series
lets the device move to another netns; later revisions forbid it).

The list travels to the pytest controller as one `item.user_properties`
entry, ("testbed_checks", [dict per check]), each dict with the keys id,
clause, verdict (pass, fail, note), what, expected, seen.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

from testbed.catalogue import CATALOGUE, CLAUSES

PROPERTY = "testbed_checks"
VERDICTS = ("pass", "fail", "note")


def show(value: object) -> str:
    """A value as a reader expects it: text as is, numbers plain, the rest repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "nothing"
    if isinstance(value, (int, float)):
        return str(value)
    return repr(value)


@dataclass(frozen=True)
class Check:
    id: str
    clause: str
    verdict: str
    what: str
    expected: str
    seen: str

    def line(self) -> str:
        """The one line a reviewer pastes."""
        if self.verdict == "note":
            return f"{self.id} [{self.clause}] {self.what}: {self.seen}" + (
                f" (expected {self.expected})" if self.expected else "")
        return f"{self.id} [{self.clause}] {self.what}: expected {self.expected}, seen {self.seen}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Checks:
    """The checks of one case.  `ids`: the catalogue IDs the case is tagged
    with (its conformance marker); a check of another ID is a mistake in
    the case, reported at once."""

    def __init__(self, ids: Iterable[str] | None = None):
        self.ids = set(ids) if ids is not None else None
        self.items: list[Check] = []

    def _clause(self, cid: str) -> str:
        if cid not in CATALOGUE:
            raise ValueError(f"check of an unknown catalogue ID {cid!r}")
        if self.ids is not None and cid not in self.ids:
            raise ValueError(f"check of {cid}, which the case's conformance marker does not name "
                             f"({', '.join(sorted(self.ids)) or 'none'})")
        return CLAUSES[cid]

    def record(self, cid: str, verdict: str, what: str, expected: object, seen: object) -> Check:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
        c = Check(cid, self._clause(cid), verdict, what, show(expected), show(seen))
        self.items.append(c)
        return c

    def check(self, cid: str, what: str, ok: bool, expected: object, seen: object) -> bool:
        """Record a check of CID: passed when OK; returns OK (for a case that
        has nothing more to look at once a check failed)."""
        self.record(cid, "pass" if ok else "fail", what, expected, seen)
        return bool(ok)

    def equal(self, cid: str, what: str, expected: object, seen: object) -> bool:
        """A check that SEEN equals EXPECTED."""
        return self.check(cid, what, expected == seen, expected, seen)

    def note(self, cid: str, what: str, seen: object, expected: object = "") -> None:
        """A finding recorded without failing the case."""
        self.record(cid, "note", what, expected, seen)

    @contextlib.contextmanager
    def expect(self, cid: str, what: str, expected: str) -> Iterator[None]:
        """A check made of plain asserts: passed when the body ends, failed
        (seen = the assertion's message) when an assert in it fails.  The
        case goes on after the block either way."""
        try:
            yield
        except AssertionError as e:
            seen = str(e).split("\nassert ", 1)[0].strip() or "an assertion without a message failed"
            self.record(cid, "fail", what, expected, seen)
        else:
            self.record(cid, "pass", what, expected, expected)

    def failed(self) -> list[Check]:
        return [c for c in self.items if c.verdict == "fail"]

    def notes(self) -> list[Check]:
        return [c for c in self.items if c.verdict == "note"]

    def verdict(self, cid: str) -> str | None:
        """fail if any check of CID failed, pass if one passed, else None."""
        verdicts = {c.verdict for c in self.items if c.id == cid}
        return "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else None

    def message(self) -> str:
        """One line per failed check."""
        return "\n".join(c.line() for c in self.failed())

    def property(self) -> tuple[str, list[dict[str, str]]]:
        """The user_properties entry that carries the checks to the controller."""
        return PROPERTY, [c.as_dict() for c in self.items]


def from_properties(user_properties) -> list[Check]:
    """The checks of a report (its user_properties), for reports and tests."""
    for name, value in user_properties:
        if name == PROPERTY:
            return [Check(**d) for d in value]
    return []
