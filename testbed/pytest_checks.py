"""pytest side of testbed.checks (registered in conftest.py's pytest_plugins).

- fixture `checks`: a testbed.checks.Checks for the case, bound to the IDs
  of its conformance marker;
- the case fails at the end of its body when a check failed, with one line
  per failed check (and the lines are added to the report when the body
  failed on something else as well);
- the checks travel to the controller (also under xdist) as one
  user_properties entry ("testbed_checks", [...]);
- a case tagged with one ID that fails on a plain assert gets a failed
  check of that ID made from the assert (its message is the "what"; for
  `assert seen == expected` the two sides), so every failure names its ID
  and clause in the reports;
- on the controller, the notes (findings that do not fail) are listed in
  the terminal summary, one line each with the case, so they are seen.
"""
from __future__ import annotations

import pytest

import re

from testbed.checks import PROPERTY, Check, Checks, from_properties
from testbed.catalogue import CLAUSES


@pytest.fixture
def checks(request) -> Checks:
    """Per-ID checks of this case (testbed.checks.Checks)."""
    ids = [i for m in request.node.iter_markers("conformance") for i in m.args]
    made = Checks(ids)
    request.node._testbed_checks = made
    return made


def _of(item) -> Checks | None:
    return getattr(item, "_testbed_checks", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # re-raises what the body raised: the checks are then reported beside it
    made = _of(item)
    if made is not None and made.failed():
        pytest.fail(made.message(), pytrace=False)
    return result


def check_of_assert(cid: str, error: AssertionError) -> Check:
    """The failed check a plain assert of a single-ID case stands for."""
    text = str(error)
    what, _, explanation = text.partition("\nassert ")
    what = what.strip() or "an assertion without a message"
    m = re.match(r"(.+?) == (.+)", explanation.split("\n", 1)[0]) if explanation else None
    expected, seen = (m.group(2), m.group(1)) if m else ("the assertion to hold", explanation.split("\n", 1)[0]
                                                         or "it did not")
    return Check(cid, CLAUSES.get(cid, ""), "fail", what.splitlines()[0], expected, seen)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    made = _of(item)
    from_assert = None
    if call.when == "call":
        items = list(made.items) if made is not None else []
        ids = [i for m in item.iter_markers("conformance") for i in m.args]
        if (len(set(ids)) == 1 and call.excinfo is not None and call.excinfo.errisinstance(AssertionError)
                and not any(c.verdict == "fail" for c in items)):
            from_assert = check_of_assert(ids[0], call.excinfo.value)
            items.append(from_assert)
        if items and not any(name == PROPERTY for name, _ in item.user_properties):
            item.user_properties.append((PROPERTY, [c.as_dict() for c in items]))
    report = yield
    if from_assert is not None:
        report.sections.append(("failed check", from_assert.line()))
    if (call.when == "call" and made is not None and made.failed() and call.excinfo is not None
            and not call.excinfo.errisinstance(pytest.fail.Exception)):
        report.sections.append(("failed checks (before the case stopped)", made.message()))
    return report


class NoteCollector:
    """Controller side: the notes of every case, for the terminal summary."""

    def __init__(self):
        self.notes: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "call":
            return
        for c in from_properties(report.user_properties):
            if c.verdict == "note":
                self.notes.append((report.nodeid, c.line()))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.notes:
            terminalreporter.write_sep("=", "findings noted by cases (not failures)")
            for nodeid, line in self.notes:
                terminalreporter.write_line(f"{line}  ({nodeid})")


def pytest_configure(config) -> None:
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(NoteCollector(), "testbed-check-notes")
