"""pytest plugin: a test run leaves no lab behind, however it ends
(registered by the top-level conftest.py).

CI systems stop a job with SIGTERM to pytest alone (then SIGKILL); a
terminal sends SIGINT to the whole process group.  Either way, and with or
without xdist (`-n`):

- the controller becomes a *run* (testbed.guardian.begin): every lab made
  in the run records it, and a guardian process reaps what is left once
  the run is over, also after a SIGKILL nothing inside the run can see;
- SIGTERM and SIGHUP turn into KeyboardInterrupt, the teardown Ctrl-C gets,
  in the controller and in xdist workers; the controller passes an
  interrupt on to its workers at once (xdist alone would only interrupt
  them 5 s after it stops talking to them, and SIGKILL them at 10 s);
- a worker whose controller dies interrupts itself;
- a process that ends while it still owns labs (its teardown was itself
  cut short) reaps them before it exits.
"""
from __future__ import annotations

import os
import signal
import sys

import pytest

EXIT_INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_run = None  # testbed.state.Proc of this process's run, once configured


def pytest_configure(config) -> None:
    global _run
    from testbed import guardian
    from testbed.linux import is_root_capable

    if is_root_capable() is not None:
        return  # no labs without root: nothing to guard
    if hasattr(config, "workerinput"):
        _run = guardian.current()
        if _run is None:
            return
        guardian.register(_run)
        guardian.watch(_run, lambda: os.kill(os.getpid(), signal.SIGTERM))
        _handle(_worker_signal)
    else:
        try:
            _run = guardian.begin()
        except OSError as e:  # a read-only /run, no setsid: say so, run anyway
            print(f"testbed: no guardian for this run ({e}); labs of a killed run are reaped by the next one")
            return
        _handle(_controller_signal)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Labs this process still owns at its end are leaks: reap them.  A
    worker whose controller is gone then exits at once: nobody is left to
    report to, and execnet would keep it for another 15 s before it gives up."""
    from testbed import guardian, state

    if _run is None:
        return
    me = state.Proc.of(os.getpid())
    if any(guardian.same(rec.owner, me) for rec in state.all_records()):  # rare: no lock otherwise
        with state.locked():
            for rec in state.all_records():
                if guardian.same(rec.owner, me):
                    state.reap(rec)
    if hasattr(config, "workerinput"):
        guardian.unregister(_run)
        if not _run.alive():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)


def _handle(handler) -> None:
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup, background jobs: keep ignoring
            signal.signal(sig, handler)


_interrupted = False


def _controller_signal(signum, frame) -> None:
    """Interrupt the workers too, then this process, as Ctrl-C would."""
    global _interrupted
    from testbed import guardian

    if not _interrupted and _run is not None:
        _interrupted = True
        for worker in guardian.members(_run):
            try:
                os.kill(worker.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _worker_signal(signum, frame) -> None:
    """The first stop signal interrupts the worker; the ones after it (the
    terminal's SIGINT and the controller's, xdist's own) must not cut the
    teardown that the first one started."""
    global _interrupted
    if not _interrupted:
        _interrupted = True
        raise KeyboardInterrupt(signal.Signals(signum).name)
