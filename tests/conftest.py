"""Fixtures shared by the tests of the engine and CLI (not the suite's)."""
from __future__ import annotations

import shutil
import signal
import tempfile

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Several tests press Ctrl-C on a run they start (SIGINT to it alone).
    A run started in the background by a non-interactive shell (`cmd &`, as
    some CI runners do) inherits SIGINT ignored, and so would every child it
    starts: those tests would then interrupt nothing.  A test run is never
    the target of a terminal's Ctrl-C from the background, so SIGINT is given
    back its default here (before testbed's own plugin installs its handler),
    and the children start with SIGINT as a terminal's would find it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
