"""Fixtures shared by the tests of the engine and CLI (not the suite's)."""
from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.fixture
def private_state(monkeypatch):
    """Lab records in a directory of this test's own, for this process and
    the CLI processes it starts: another testbed process that takes a live
    lab's record for stale (seen here from `testbed vm` guests sharing the
    host's /run) must not make the lab vanish from under the CLI."""
    from testbed import state

    path = tempfile.mkdtemp(prefix="vz")  # short: control sockets live below it (108-byte limit)
    monkeypatch.setattr(state, "STATE_DIR", path)
    monkeypatch.setenv("TESTBED_STATE_DIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)
