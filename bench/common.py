"""What the benchmarks share: how they end, and what this host lets them measure.

Every benchmark ends in one of three ways, always with nothing left behind
(namespaces, labs and their records, processes, temporary files):

- 0: it measured, and printed its figures; a figure this host cannot
  measure is a `SKIP` line with the reason (e.g. a kernel without seg6
  lwtunnels cannot make route-based `encap seg6` routes);
- 4 (SKIP, as kselftest): this host let it measure nothing; the reasons are
  its SKIP lines;
- 1 (2 for a bad option, 128+N when stopped by signal N): one line on
  stderr, `PROG: error: ...` (or `PROG: stopped by SIGTERM`), no traceback.

Ctrl-C, SIGTERM and SIGHUP all raise `Stopped` in the main thread, so the
benchmark's `finally` blocks run and tear down what it made; a child it
runs is stopped with SIGTERM (its own cleanup runs: the rendered script's
trap, `testbed up`'s teardown), not SIGKILLed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from typing import Callable, Iterator, TypeVar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

T = TypeVar("T")
SKIP = 4  # kselftest's KSFT_SKIP: nothing could be measured here
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The kernel probe's features (testbed/datapaths/kernel.py) that a
# route-based `encap seg6` route needs: "encap seg6" itself, and End, which
# comes with the same CONFIG_IPV6_SEG6_LWTUNNEL (a probe that does not
# report "encap seg6" still tells by End).
ENCAP_SEG6 = ("encap seg6", "End")


class BenchError(Exception):
    """A benchmark cannot go on; its message is the one line it prints."""


class Stopped(BaseException):
    """A stop signal arrived (BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (`PROG: error: MESSAGE`), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


_stopped_by: list[int] = []


def _stop(signum, frame) -> None:
    # Once: a second signal must not cut the cleanup the first one started.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    _stopped_by[:] = [signum]
    raise Stopped(signum)


def _stop_again(signum, frame) -> None:
    raise Stopped(_stopped_by[0])


def _unraisable(u) -> None:
    """Python runs a signal handler between any two bytecodes, also inside
    a finalizer or a weakref callback, which print an exception raised
    there and drop it ("Exception ignored in ...": seen in 1 of 20 stops
    of bring_up.py): the bench would run on.  Raise it again a moment
    later, from a timer (again if that lands in one too)."""
    if isinstance(u.exc_value, Stopped):
        signal.signal(signal.SIGALRM, _stop_again)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return
    sys.__unraisablehook__(u)


def describe(e: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(e, subprocess.CalledProcessError):
        said = "; ".join(line.strip() for line in (e.stderr or "").splitlines() if line.strip())
        return f"{shlex.join(map(str, e.cmd))} failed (exit {e.returncode})" + (f": {said}" if said else "")
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.filename}: not found" + (" on PATH" if os.sep not in str(e.filename) else "")
    from testbed.errors import TestbedError

    if isinstance(e, (BenchError, TestbedError, OSError)):
        return str(e)
    # a bug: where it is, in the one line
    last = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    place = f" at {os.path.relpath(last.filename, ROOT)}:{last.lineno}" if last else ""
    return f"{type(e).__name__}: {e}{place}"


def main(prog: str, body: Callable[[], int]) -> int:
    """Run body() with the stop signals turned into Stopped; its exit
    status, or the one-line error's."""
    for s in STOP_SIGNALS:
        signal.signal(s, _stop)
    sys.unraisablehook = _unraisable
    try:
        rc = body()
    except Stopped:
        rc = 0  # said below
    except Exception as e:
        print(f"{prog}: error: {describe(e)}", file=sys.stderr)
        rc = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # no late Stopped once it is over
    if _stopped_by:  # (also when the body ended before a dropped Stopped came again)
        print(f"{prog}: stopped by {signal.Signals(_stopped_by[0]).name}", file=sys.stderr)
        return 128 + _stopped_by[0]
    return rc


def uncut(fn: Callable[..., T], *args, **kw) -> T:
    """fn(*args, **kw) with the stop signals held until it returns, then
    acted on: the engine's and pyroute2's netlink calls must not be cut
    halfway (a bring_up.py stopped inside Lab.up hung for good in pyroute2's
    epoll_wait while tearing down; an engine call takes a second at most)."""
    from testbed.lab import deferred_signals

    with deferred_signals():
        return fn(*args, **kw)


def run(cmd: list[str], stdout=subprocess.DEVNULL, **kw) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, check=True) with stderr kept for the error
    message; a bench stopped meanwhile stops the child with SIGTERM and
    waits for its cleanup (SIGKILL only if it takes over 30 s)."""
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, **kw) as p:
        try:
            out, err = p.communicate()
        except BaseException:
            p.terminate()
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
            raise
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd, out, err)
    return subprocess.CompletedProcess(cmd, 0, out, err)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[str]:
    """A directory of the bench's own, removed with all in it at the end.
    Its state/ holds the records of the labs it makes (TESTBED_STATE_DIR,
    inherited by the CLI it runs): on a shared machine another testbed
    process that takes a lab for stale must not pull a record from under a
    run, and a record cannot outlive the bench."""
    from testbed import state

    path = tempfile.mkdtemp(prefix=prefix)
    try:
        os.environ["TESTBED_STATE_DIR"] = state.STATE_DIR = os.path.join(path, "state")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_lab(name: str) -> None:
    """Take lab NAME down if it is still up, whoever holds it now: this
    process (stopped between up and down), the keeper of a `testbed up` it
    ran, or nobody (a CLI stopped mid-build)."""
    from testbed import state
    from testbed.cli.down import stop

    rec = state.load(name)
    if rec is not None:
        uncut(stop, rec)


def host_lacks(topo) -> str | None:
    """Why this host cannot build `topo` on the datapath it would get, or
    None.  Route-based `encap seg6` routes are the host kernel's own on
    every datapath (the reference models srl2 devices and SIDs, not them);
    srl2 devices and SIDs need the kernel only on the kernel datapath
    (`datapath: auto` falls back to the reference)."""
    from testbed.datapaths.kernel import KernelDatapath
    from testbed.datapaths.ref import RefDatapath
    from testbed.datapaths.select import features_used

    kernel = uncut(KernelDatapath.probe)
    if any(r.encap is not None for n in topo.nodes.values() for r in n.routes):
        reason = kernel.reason(ENCAP_SEG6)
        if reason:
            return reason
    used = features_used(topo)
    if not used:
        return None
    choice = os.environ.get("TESTBED_DATAPATH") or topo.datapath
    if choice == "kernel" or (choice == "auto" and kernel.reason(used) is None):
        return kernel.reason(used)
    return uncut(RefDatapath.probe).reason(used)
