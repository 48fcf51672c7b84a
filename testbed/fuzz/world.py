"""The fuzz lab at work: every input journaled and marked in the kernel log
before it runs, every step journaled before it runs, and the invariants
checked after each step (docs/fuzz.md "Invariants"):

- the kernel's log shows no problem (testbed.kmsg.problem: WARNING, BUG, ...);
- the datapath is alive (rtnetlink answers; srl2_ref's process runs);
- device counters never go down while the device lives;
- a step returns (a step stuck in the kernel is a hang);
- after an input's teardown nothing it made is left (interfaces, routes).

A broken invariant raises `Finding`, which the hypothesis machine lets
through to be shrunk, and the runner records."""
from __future__ import annotations

import concurrent.futures
import os
import time

from testbed import kmsg
from testbed.fuzz.journal import Journal, problem_block, signature
from testbed.fuzz.steps import Step

TIME_SCALE = float(os.environ.get("TESTBED_TIME_SCALE", "1"))
STEP_TIMEOUT = 20.0   # seconds a step may take before it counts as a hang (scaled)
SETTLE = 0.3          # seconds to watch the log after an input for delayed work (scaled)
GRACE = 1.0           # seconds a step may still take once the kernel reported a fatal problem (scaled)
FATAL = ("panic", "Oops", "BUG")


class Finding(Exception):
    """A broken invariant: kind, one-line title, report lines, and the steps
    of the input up to the one that broke it."""

    def __init__(self, kind: str, title: str, lines: list[str], steps: list[Step], wedged: bool = False):
        super().__init__(f"{kind}: {title}")
        self.kind, self.title, self.lines, self.steps, self.wedged = kind, title, lines, list(steps), wedged
        self.sig = signature(kind, title, lines)


def _marker(event: str, label: str) -> None:
    """`testbed: START fuzz <id>` / END into the guest's kernel log
    (the VM runner's crash records name the inputs open at a crash);
    only in a `testbed vm` guest."""
    if os.environ.get("TESTBED_VM") != "1":
        return
    kmsg.kmsg_marker(kmsg.start_marker(label) if event == "START" else kmsg.end_marker(label))


class World:
    """A target (testbed.fuzz.kernel / .ref) plus journal, markers and checks."""

    def __init__(self, target, journal: Journal, boot: int, watch_kernel: bool,
                 worker: concurrent.futures.ThreadPoolExecutor):
        self.target = target
        self.journal = journal
        self.boot = boot
        self.klog = kmsg.KernelLog() if watch_kernel else None
        self.inputs = 0
        self.steps_run = 0
        self.known: set[str] = set()   # findings already recorded: not raised again while fuzzing
        self.trial = False             # shrink trials and replays: every finding is raised
        self.current: str | None = None
        self.last = "?"
        self.steps: list[Step] = []
        self.prev: dict = {}
        self.wedged = False
        self.pending: tuple[str, str, list[str]] | None = None  # a problem block read while a step ran
        self.raised: Finding | None = None
        self.worker = worker  # the thread that made the lab: pyroute2's sockets stay with it

    # ---- inputs --------------------------------------------------------

    def begin(self, kind: str = "fuzz", finding: str | None = None) -> str:
        self.inputs += 1
        self.current = self.last = f"b{self.boot}-{self.inputs}"
        self.steps = []
        self.prev = {}
        self.journal.write(ev="input", id=self.current, kind=kind, finding=finding)
        _marker("START", f"fuzz {self.current}")
        return self.current

    def end(self, check: bool = True) -> None:
        """Tear down what the input made; check for leaks and late problems."""
        ident, self.current = self.current, None
        if ident is None:
            return
        result, sig = "pass", None
        try:
            if self.wedged:  # the worker is stuck in the kernel: nothing more can be done
                if self.raised is not None:
                    result, sig = "finding", self.raised.sig
                return
            self._guarded(self.target.cleanup, "teardown")
            if check and not self.wedged:
                dead = self._guarded(self.target.alive, "liveness check")
                if dead:
                    self.wedged = True
                    self._raise(Finding("dead", dead, [dead], self.steps, wedged=True))
                leaks = self._guarded(self.target.leaks, "leak check")
                if leaks:
                    self._raise(Finding("leak", "; ".join(leaks), leaks, self.steps))
                self._settle()
        except Finding as f:
            result, sig = "finding", f.sig
            raise
        finally:
            _marker("END", f"fuzz {ident}")
            self.journal.write(ev="end", id=ident, result=result, sig=sig)

    def step(self, step: Step) -> str:
        """Run one step of the current input and check the invariants."""
        if self.wedged and self.raised is not None:
            raise self.raised  # hypothesis replaying an input: the kernel cannot answer any more
        i = len(self.steps)
        self.steps.append(step)
        self.journal.write(ev="step", id=self.current, i=i, step=step.to_json())
        try:
            outcome = self._guarded(lambda: self.target.apply(step), str(step))
        except Finding:
            raise
        except Exception as e:  # noqa: BLE001 - a bug of the fuzzer or of srl2_ref's lab side
            import traceback

            lines = "".join(traceback.format_exception(e)).splitlines()
            raise Finding("fuzzer", f"{type(e).__name__}: {e}", lines, self.steps) from None
        self.steps_run += 1
        self.journal.write(ev="done", id=self.current, i=i, outcome=outcome)
        self.check()
        return outcome

    # ---- invariants ------------------------------------------------------

    def _raise(self, f: Finding) -> None:
        if f.sig not in self.known or f.wedged or self.trial:
            self.raised = f  # hypothesis may report it as "flaky" without it
            raise f

    def _guarded(self, fn, what: str):
        """fn() on the world's one worker thread, so that a step stuck in the
        kernel (a lock never released, a device that never unregisters)
        becomes a finding.  One thread for the whole run: a process it
        starts (srl2_ref) gets PR_SET_PDEATHSIG, which fires when the
        *thread* that started it ends."""
        future = self.worker.submit(fn)
        limit = time.monotonic() + STEP_TIMEOUT * TIME_SCALE
        broke = None  # when the kernel log first showed a fatal problem
        while True:
            try:
                return future.result(1.0)
            except concurrent.futures.TimeoutError:
                pass
            now = time.monotonic()
            if broke is None and self.klog is not None:
                block = problem_block(self.klog.messages(), kmsg.problem)
                if block:
                    self.pending = block
                    if block[0] in FATAL:
                        broke = now
            # A BUG in a worker that holds RTNL stops every later request: do not
            # wait the whole bound once the kernel said it broke.
            if now > limit or (broke is not None and now - broke > GRACE * TIME_SCALE):
                break
        self.wedged = True
        if self.pending:  # stuck because the kernel broke: that is the finding
            kind, line, lines = self._complete(self.pending)
            raise Finding(kind, line, lines, self.steps, wedged=True)
        raise Finding("hang", f"{what} did not return within {STEP_TIMEOUT * TIME_SCALE:.0f} s",
                      [], self.steps, wedged=True)

    def _next_problem(self):
        """The first problem in the kernel log not yet reported: one a step's
        wait already read (pending), else one read now."""
        block, self.pending = self.pending, None
        if block is None and self.klog is not None:
            block = problem_block(self.klog.messages(), kmsg.problem)
        return block

    def check(self) -> None:
        if self.klog is not None:
            block = self._next_problem()
            if block:
                kind, line, lines = self._complete(block)
                self._raise(self._kernel_finding(kind, line, lines))
        try:  # a dump of every node's links: also says rtnetlink still answers
            now = self._guarded(self.target.counters, "counters")
        except Finding:
            raise
        except Exception as e:  # noqa: BLE001 - whatever broke, the datapath is not alive
            self.wedged = True
            self._raise(Finding("dead", f"counters unreadable: {e}", [repr(e)], self.steps, wedged=True))
            return
        for key, counters in now.items():
            for name, value in counters.items():
                before = self.prev.get(key, {}).get(name)
                if value < 0 or (before is not None and value < before):
                    self._raise(Finding("counters", f"{key.split('#')[0]} {name} went from {before} to {value}",
                                        [f"{key} {name}: {before} -> {value}"], self.steps))
        self.prev = now

    def watch(self, proc, timeout: float) -> Finding | None:
        """Wait for a process (a reproducer's replay) while watching the
        kernel log: the first problem it shows, completed, or None once the
        process ended (or the time is up; then it is killed)."""
        deadline = time.monotonic() + timeout
        while True:
            block = self._next_problem()
            if block:
                return self._kernel_finding(*self._complete(block))
            if proc.poll() is not None:
                return None
            if time.monotonic() > deadline:
                proc.kill()
                return None
            time.sleep(0.2)

    def _kernel_finding(self, kind: str, line: str, lines: list[str]) -> Finding:
        """A problem in the kernel log.  After a BUG, oops or panic nothing the
        kernel does is trustworthy (a worker that died holding RTNL stops
        every later request): the world is wedged, as syzkaller ends its VM."""
        fatal = kind in FATAL
        self.wedged = self.wedged or fatal
        return Finding(kind, line, lines, self.steps, wedged=fatal)

    def _complete(self, block):
        """The block with the rest of its report (the call trace is printed
        after the first line, maybe after we read it), up to its end line."""
        kind, line, lines = block
        deadline = time.monotonic() + 2.0 * TIME_SCALE
        while self.klog is not None and not any(x.startswith("---[ end trace") for x in lines):
            more = self.klog.messages()
            lines = lines + more
            if not more:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        return kind, line, lines[:120]

    def _settle(self) -> None:
        """Watch the kernel log a moment for work the input scheduled (MLD
        reports, timers), so that it is blamed on this input, not the next."""
        if self.klog is None:
            return
        deadline = time.monotonic() + SETTLE * TIME_SCALE
        while time.monotonic() < deadline:
            block = self._next_problem()
            if block:
                kind, line, lines = self._complete(block)
                self._raise(self._kernel_finding(kind, line, lines))
            time.sleep(0.05)


__all__ = ["World", "Finding", "STEP_TIMEOUT", "SETTLE"]
