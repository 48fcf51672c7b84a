"""Labs that cannot outlive the run that made them.

A *run* is a process whose labs must all be gone when it ends, however it
ends (SIGKILL included): pytest's controller, or `testbed up --foreground`.
It calls `begin()`, which

- puts TESTBED_RUN=PID:START in its environment, so that every lab made by
  it or by its descendants (xdist workers, the keepers of `testbed up` in a
  test) records the run (`state.Record.run`);
- starts a guardian: a small detached process (`python -m testbed.guardian
  RUN`) that waits for the run's process to end, then for the run's other
  processes (registered workers, keepers) to finish their own teardown —
  SIGTERM, then SIGKILL, for those that do not within GRACE seconds — and
  reaps every lab of the run that is left.

Workers register under STATE_DIR/runs/RUN/ (`register`), so that the run can
interrupt them (`members`) and the guardian can wait for them.  A keeper
whose lab names a run tears the lab down when the run ends (testbed.keeper).
Signals sent to a run turn into the same teardown as Ctrl-C
(testbed.pytest_cleanup); the guardian is for what no handler can see.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from testbed import state

RUN_ENV = "TESTBED_RUN"
SCALE = float(os.environ.get("TESTBED_TIME_SCALE", "1"))
GRACE = 20.0 * SCALE  # for the run's processes to tear their labs down themselves
KILL_GRACE = 5.0 * SCALE  # between SIGTERM and SIGKILL of those that do not


def current() -> state.Proc | None:
    """The run this process belongs to (from its environment), if any."""
    return state.Proc.parse(os.environ.get(RUN_ENV, ""), "run")


def begin() -> state.Proc:
    """Make this process a run: its descendants' labs record it, and a
    guardian reaps them once it is gone."""
    run = state.Proc.of(os.getpid(), "run")
    os.environ[RUN_ENV] = str(run)
    # setsid -f: the guardian is nobody's child (no zombie, no wait) and in
    # a session of its own (a signal to the run's process group spares it);
    # its stdio is /dev/null, so it holds no pipe of whoever runs the run.
    # TESTBED_GUARDIAN_LOG: where it says what it reaped (for debugging).
    log = os.environ.get("TESTBED_GUARDIAN_LOG")
    err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log else subprocess.DEVNULL
    try:
        subprocess.run(["setsid", "-f", sys.executable, "-m", "testbed.guardian", str(run)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                       check=True, close_fds=True)
    finally:
        if log:
            os.close(err)
    # Made once the guardian is there to remove it, whenever this run dies.
    os.makedirs(run_dir(run), exist_ok=True)
    return run


def run_dir(run: state.Proc) -> str:
    return os.path.join(state.STATE_DIR, "runs", f"{run.pid}-{run.start}")


def register(run: state.Proc) -> None:
    """Make this process a member of RUN (an xdist worker)."""
    me = state.Proc.of(os.getpid())
    with contextlib.suppress(FileNotFoundError):  # the run is over already
        with open(os.path.join(run_dir(run), f"{me.pid}-{me.start}"), "w"):
            pass


def unregister(run: state.Proc) -> None:
    me = state.Proc.of(os.getpid())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(run_dir(run), f"{me.pid}-{me.start}"))


def members(run: state.Proc) -> list[state.Proc]:
    """The run's registered processes that are still alive."""
    try:
        names = os.listdir(run_dir(run))
    except FileNotFoundError:
        return []
    procs = [state.Proc.parse(n.replace("-", ":", 1), "worker") for n in names]
    return [p for p in procs if p is not None and p.alive()]


def same(a: state.Proc | None, b: state.Proc | None) -> bool:
    return a is not None and b is not None and (a.pid, a.start) == (b.pid, b.start)


def watch(proc: state.Proc, on_exit: Callable[[], None]) -> threading.Thread:
    """Call on_exit() from a daemon thread once PROC has exited (at once if it has)."""
    def wait() -> None:
        fd = proc.pidfd()
        if fd is not None:
            try:
                select.select([fd], [], [])
            finally:
                os.close(fd)
        on_exit()

    t = threading.Thread(target=wait, name=f"watch-{proc.pid}", daemon=True)
    t.start()
    return t


def follow(run: state.Proc) -> list[str]:
    """The guardian: wait for RUN to end, then for its processes, then reap
    its labs.  Returns the names of the labs it had to reap."""
    fd = run.pidfd()
    if fd is not None:
        select.select([fd], [], [])
        os.close(fd)
    _wait_for_the_rest(run)
    reaped = []
    with state.locked():
        for rec in state.all_records():
            if same(rec.run, run) and rec.stale():
                state.reap(rec)
                reaped.append(rec.name)
    shutil.rmtree(run_dir(run), ignore_errors=True)
    return reaped


def _stragglers(run: state.Proc) -> list[state.Proc]:
    """The run's processes still alive: its workers, and the live owners of its labs."""
    procs = {(p.pid, p.start): p for p in members(run)}
    for rec in state.all_records():
        if same(rec.run, run) and rec.owner.alive():
            procs[(rec.owner.pid, rec.owner.start)] = rec.owner
    return list(procs.values())


def _wait_for_the_rest(run: state.Proc) -> None:
    """Give the run's processes GRACE seconds to finish their own teardown
    (they notice the run's end by themselves), then SIGTERM, then SIGKILL."""
    deadline = time.monotonic() + GRACE
    sent: signal.Signals | None = None
    while procs := _stragglers(run):
        left = deadline - time.monotonic()
        if left <= 0:
            sent = signal.SIGKILL if sent else signal.SIGTERM
            print(f"guardian: run {run}: {sent.name} to {' '.join(str(p.pid) for p in procs)}",
                  file=sys.stderr, flush=True)
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, sent)
            deadline = time.monotonic() + KILL_GRACE
            left = KILL_GRACE
        fds = [fd for fd in (p.pidfd() for p in procs) if fd is not None]
        try:
            select.select(fds, [], [], left)
        finally:
            for fd in fds:
                os.close(fd)


def main(argv: list[str]) -> int:
    run = state.Proc.parse(argv[0] if argv else "", "run")
    if run is None:
        print("usage: python -m testbed.guardian PID:START", file=sys.stderr)
        return 2
    # Terminal and hang-up signals are for the run, not for its guardian.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reaped = follow(run)
    if reaped:
        print(f"guardian: run {run} ended; reaped {' '.join(reaped)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
