"""`testbed fuzz`: one boot's work (docs/fuzz.md).

Inside `testbed vm` (TESTBED_VM_OUT, TESTBED_VM_BOOT) the VM runner boots
again with the same command after a crash; each boot then (1) reads the
runner's crashes.jsonl and the journal and turns every new crash into a
finding or a shrinking result, (2) runs pending shrink trials and reproducer
replays, (3) fuzzes until the time box ends.  On a host (reference
datapath) there is one "boot" and hypothesis shrinks findings itself."""
from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from testbed import revisions
from testbed.fuzz import repro
from testbed.fuzz.choose import KERNEL_FEATURES, choose_target
from testbed.fuzz.findings import FindingRecord, State
from testbed.fuzz.journal import (CRASHES, JOURNAL, Journal, crash_signature, fuzz_labels,
                                  read_crashes, read_journal, step_mix)
from testbed.fuzz.steps import Step
from testbed.fuzz.world import TIME_SCALE, Finding, World


@dataclass
class Options:
    target: str = "kernel"          # kernel | ref
    revision: str = revisions.NAMES[0]  # the series' revision under test (testbed.revisions)
    time: float = 600.0             # seconds of fuzzing, over all boots
    seed: int = 0
    out: str = "fuzz-results"
    steps: int = 10                 # steps per example
    shrink_boots: int = 8           # boots one finding's shrinking may end
    shrink_trials: int = 60
    ip: str = "ip"                  # iproute2 with the revision's link kind, for replaying reproducers
    verify: bool = True
    max_srh: int = 0                # > 0: device SRHs kept within this many bytes
    stop_at_finding: bool = False   # end the fuzzing at the first finding (a CI smoke needs no second)
    log: object = None

    def say(self, msg: str) -> None:
        print(f"testbed fuzz: {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, opts: Options):
        self.o = opts
        self.boot = int(os.environ.get("TESTBED_VM_BOOT", "1") or 1)
        self.in_vm = os.environ.get("TESTBED_VM") == "1"
        os.makedirs(opts.out, exist_ok=True)
        state = State.load(opts.out) if self.boot > 1 else None
        if state is not None and state.revision != opts.revision:
            from testbed.errors import TestbedError

            raise TestbedError(f"{opts.out} holds a fuzz run of revision {state.revision}, this one is of "
                               f"{opts.revision}: give another --out")
        self.state = state or State(seed=opts.seed, revision=opts.revision)
        self.state.boots += 1
        self.rev = revisions.get(opts.revision)
        self.journal = Journal(os.path.join(opts.out, JOURNAL))
        self.journal.write(ev="boot", boot=self.boot, time=time.time(), seed=self.state.seed,
                           target=opts.target, revision=self.rev.name)
        self.release = os.uname().release
        self.world: World | None = None
        self.lab = None
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fuzz-lab")

    # ---- crashes of earlier boots -------------------------------------------

    def absorb_crashes(self) -> None:
        crashes = read_crashes(os.path.join(self.o.out, CRASHES))
        new = crashes[self.state.crashes_seen:]
        if not new:
            return
        inputs = read_journal(os.path.join(self.o.out, JOURNAL))
        for crash in new:
            self._absorb(crash, inputs)
        self.state.crashes_seen = len(crashes)
        self.state.save(self.o.out)

    def _absorb(self, crash: dict, inputs: dict) -> None:
        sig = crash_signature(crash)
        labels = [x for x in fuzz_labels(crash) if x in inputs]
        if not labels:  # no marker open: the last input of that boot that did not end
            open_ = [i for i in inputs.values() if i.boot == crash.get("boot") and not i.ended]
            labels = [open_[-1].id] if open_ else []
        inp = inputs[labels[-1]] if labels else None
        self.o.say(f"boot {crash.get('boot')} crashed: {crash.get('title', crash.get('kind'))} "
                   f"(input {inp.id if inp else 'unknown'})")
        steps = [s.to_json() for s in inp.steps] if inp else []
        if inp is not None and inp.kind in ("trial", "verify") and inp.finding in self.state.findings:
            f = self.state.findings[inp.finding]
            if inp.kind == "verify":
                f.status = "verified" if sig == f.sig else "unverified"
                f.note = ("replayed in a fresh boot: same crash" if sig == f.sig
                          else f"replay crashed differently: {sig}")
                return
            sh = f.shrink
            if sh is not None and sh.pending == inp.id:
                sh.pending = None
                sh.crash_boots += 1
                if sig == f.sig:
                    sh.reproduced(steps)
                    self.write_repro(f)
                else:
                    sh.failed()
        if inp is None or inp.kind == "fuzz" or sig not in self.state.findings:
            report = crash.get("lines") or []
            if crash.get("trace"):  # the essentials, not every console line of the block
                report = [crash.get("title", ""), crash.get("rip", ""), "Call Trace:",
                          *(f" {t}" for t in crash["trace"])]
            rec, new = self.state.record(sig, crash.get("kind", "crash"), crash.get("title", ""),
                                         report, steps,
                                         inp.outcomes if inp else {}, inp.id if inp else "?",
                                         self.o.target, crash.get("release", ""), shrink=bool(steps))
            if new:
                self.write_repro(rec)

    # ---- reproducers ---------------------------------------------------------

    def write_repro(self, f: FindingRecord) -> None:
        steps = [Step.from_json(s) for s in (f.shrink.cur if f.shrink else f.steps)]
        about = [f"found by `testbed fuzz` on {f.release or self.release} ({f.target} datapath, "
                 f"revision {self.rev.name}), input {f.input}; {len(steps)} of {len(f.steps)} steps "
                 f"after shrinking ({f.status})",
                 f"signature: {f.sig}", "kernel report:"]
        about += [f"  {line}" for line in f.lines[:40]]
        text = repro.render(steps, f"testbed fuzz finding: {f.title}", about, self.rev)
        d = os.path.join(self.o.out, "repro")
        os.makedirs(d, exist_ok=True)
        f.repro = os.path.join(d, f.slug + ".sh")
        with open(f.repro, "w") as fh:
            fh.write(text)
        os.chmod(f.repro, 0o755)
        f.commands = repro.command_count(text)

    # ---- the world -------------------------------------------------------------

    @property
    def live(self) -> World:
        """The world of this boot, for the steps that only run inside one."""
        assert self.world is not None, "no world: call world() first"
        return self.world


    def up(self) -> World:
        """The lab, made on the one worker thread every later netlink request
        runs on (pyroute2's sync sockets belong to the thread that made them)."""
        from testbed.fuzz.lab import topology
        from testbed.lab import Lab

        def make():
            self.lab = Lab.up(topology(self.rev), name=f"fz{os.getpid() % 100000}")
            if self.o.target == "ref":
                from testbed.fuzz.ref import RefTarget

                return RefTarget(self.lab, self.rev)
            from testbed.fuzz.kernel import KernelTarget

            return KernelTarget(self.lab, self.rev)

        target = self.worker.submit(make).result()
        watch = self.o.target == "kernel" or self.in_vm
        self.world = World(target, self.journal, self.boot, watch_kernel=watch, worker=self.worker)
        self.world.known.update(self.state.findings)
        return self.world

    def down(self) -> None:
        wedged = False
        if self.world is not None:
            self.state.inputs += self.world.inputs
            self.state.steps += self.world.steps_run
            wedged = self.world.wedged
            if not wedged:
                self.worker.submit(self.world.target.stop).result(60)
            self.world = None
        if self.lab is not None:
            if wedged and self.in_vm:
                pass  # the kernel is broken and the guest ends with this command
            elif wedged:
                # The worker is stuck in the kernel, and so may be anything
                # else that takes RTNL: try from a spare thread, for a while.
                spare = concurrent.futures.ThreadPoolExecutor(1)
                try:
                    spare.submit(self.lab.down).result(30)
                except Exception as e:  # noqa: BLE001 - the kernel is broken; say so and go
                    self.o.say(f"could not remove the lab after the kernel broke: {e!r}")
                spare.shutdown(wait=False)
            else:
                self.worker.submit(self.lab.down).result(120)
            self.lab = None
        self.worker.shutdown(wait=not wedged, cancel_futures=True)
        self.state.save(self.o.out)
        self.journal.close()

    def in_boot(self, f: Finding, input_id: str, outcomes: dict | None = None) -> FindingRecord:
        """A finding seen while the kernel lived on: recorded, to be shrunk
        by trials in this boot (shrink_pending)."""
        rec, new = self.state.record(f.sig, f.kind, f.title, f.lines, [s.to_json() for s in f.steps],
                                     outcomes or {}, input_id, self.o.target, self.release,
                                     shrink=bool(f.steps) and not f.wedged)
        self.live.known.add(f.sig)
        if new:
            self.o.say(f"finding: {f.sig}")
            self.write_repro(rec)
        self.state.save(self.o.out)
        return rec

    # ---- shrinking and replaying across boots -------------------------------------

    def shrink_pending(self) -> None:
        self.live.trial = True
        try:
            self._shrink_pending()
        finally:
            self.live.trial = False

    def _shrink_pending(self) -> None:
        for f in list(self.state.findings.values()):
            if self.live.wedged:
                return
            sh = f.shrink
            while f.status == "shrinking" and sh is not None:
                if self.live.wedged:
                    return
                cand = sh.candidate()
                if cand is None or sh.trials >= self.o.shrink_trials or sh.crash_boots >= self.o.shrink_boots:
                    f.status = "shrunk"
                    self.write_repro(f)
                    self.state.save(self.o.out)
                    self.o.say(f"shrunk {f.sig} to {len(sh.cur)} steps: {f.repro}")
                    break
                sh.trials += 1
                ident = self.live.begin("trial", finding=f.sig)
                sh.pending = ident
                self.state.save(self.o.out)  # the next boot must know which trial crashed
                got = self._run_steps([Step.from_json(s) for s in cand])
                sh.pending = None
                if got is not None and got.sig == f.sig:
                    sh.reproduced([s.to_json() for s in got.steps])
                else:
                    sh.failed()
                    if got is not None and got.sig not in self.state.findings:
                        self.in_boot(got, ident)
                self.state.save(self.o.out)

    def _run_steps(self, steps: list[Step]) -> Finding | None:
        got = None
        try:
            for s in steps:
                self.live.step(s)
        except Finding as e:
            got = e
        try:
            self.live.end()
        except Finding as e:
            got = got or e
        return got

    def verify_pending(self) -> None:
        """Replay every shrunk reproducer once, in this boot, as its own input."""
        if not (self.o.verify and self.o.target == "kernel"):
            return
        for f in list(self.state.findings.values()):
            if f.status != "shrunk" or not f.repro or f.kind in ("leak", "counters", "fuzzer"):
                continue
            self.write_repro(f)  # rendered by this version of the fuzzer
            f.status = "unverified"
            f.note = "replaying..."
            self.live.trial = True
            self.live.begin("verify", finding=f.sig)
            self.state.save(self.o.out)
            env = dict(os.environ, IP=self.o.ip)
            proc = subprocess.Popen(["bash", f.repro], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            got = None
            try:
                # The replay's steps run outside the world: watch the kernel log
                # while it runs (a BUG may leave it stuck on RTNL for ever).
                got = self.live.watch(proc, 120 * TIME_SCALE)
                if got is None:
                    self.live.check()
                    self.live.end()
                    f.note = f"replayed: exit {proc.returncode}, the kernel survived"
            except Finding as e:
                got = e
            if got is not None:
                same = got.sig == f.sig
                f.status = "verified" if same else "unverified"
                f.note = "replayed: same problem" if same else f"replay showed another problem: {got.sig}"
                if self.live.current is not None:
                    try:
                        self.live.end(check=False)
                    except Finding:
                        pass
            self.live.trial = False
            self.state.save(self.o.out)
            if self.live.wedged:
                return

    # ---- fuzzing ------------------------------------------------------------------

    def fuzz(self) -> None:
        from hypothesis import HealthCheck, Phase, Verbosity, settings
        from hypothesis.database import DirectoryBasedExampleDatabase
        from hypothesis.stateful import run_state_machine_as_test

        from testbed.fuzz.machine import FuzzMachine, TimeUp, seed_only

        seed_only()

        deadline = self.state.started + self.o.time
        # One hypothesis run per boot, until the time box ends it (TimeUp);
        # after a finding (recorded, shrunk), another run.  Each run starts
        # with hypothesis' simplest input, so runs are few and long.
        cfg = settings(max_examples=10**6, stateful_step_count=self.o.steps, deadline=None,
                       suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                       database=DirectoryBasedExampleDatabase(os.path.join(self.o.out, "hypothesis")),
                       report_multiple_bugs=False,
                       # findings are shrunk by trials (shrink_pending), the same way
                       # in a boot and across boots
                       phases=[Phase.explicit, Phase.reuse, Phase.generate])
        FuzzMachine.world = self.world
        FuzzMachine.deadline = deadline
        FuzzMachine.max_srh = self.o.max_srh
        run = 0
        while not self.found_enough() and time.time() < deadline and not self.live.wedged:
            run += 1
            FuzzMachine._hypothesis_internal_use_seed = hash((self.state.seed, self.boot, run)) & 0xFFFFFFFF
            self.live.raised = None
            try:
                run_state_machine_as_test(FuzzMachine, settings=cfg)
            except BaseException as e:  # noqa: BLE001 - sorted out below
                if isinstance(e, KeyboardInterrupt):
                    raise
                # Hypothesis replays a failing input once; when the kernel (or
                # the clock, for TimeUp) answers differently the second time it
                # says "flaky" instead of re-raising: the world knows what it raised.
                f = _finding_in(e, Finding) or self.live.raised
                if f is None and (_finding_in(e, TimeUp) is not None or time.time() >= deadline):
                    break
                if f is None:
                    import traceback

                    tb = "".join(traceback.format_exception(e)).splitlines()
                    first = str(e).splitlines()[0] if str(e) else ""
                    f = Finding("fuzzer", f"{type(e).__name__}: {first}", tb, self.live.steps)
                ident = self.live.last
                if self.live.current is not None:
                    try:
                        self.live.end(check=False)
                    except Finding:
                        pass
                outcomes = _outcomes(self.o.out, ident)
                self.in_boot(f, ident, outcomes)
                if not self.live.wedged:
                    self.shrink_pending()
                    self.verify_pending()

    def found_enough(self) -> bool:
        """--stop-at-finding and a finding is recorded (this boot's or, after
        a crash, an earlier boot's)."""
        return self.o.stop_at_finding and bool(self.state.findings)

    def run(self) -> int:
        self.absorb_crashes()
        self.up()
        wedged = False
        try:
            self.shrink_pending()
            self.verify_pending()
            self.fuzz()
        finally:
            wedged = self.world is not None and self.live.wedged
            self.down()
        status = self.summary()
        if wedged:  # threads stuck in the kernel would keep the interpreter from exiting
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status

    def summary(self) -> int:
        st = self.state
        # From the journal: a boot that crashed never counted its own inputs.
        inputs = read_journal(os.path.join(self.o.out, JOURNAL)).values()
        st.inputs = sum(1 for i in inputs if i.kind == "fuzz")
        st.steps = sum(len(i.steps) for i in inputs if i.kind == "fuzz")
        st.boots = max(st.boots, self.boot)
        trials = sum(1 for i in inputs if i.kind != "fuzz")
        lines = [f"{st.inputs} inputs ({st.steps} steps; {trials} shrink trials and replays) in {st.boots} boot(s), "
                 f"{time.time() - st.started:.0f} s; seed {st.seed}; revision {st.revision}; "
                 f"{len(st.findings)} finding(s) (deduplicated by kernel stack)",
                 "  steps (accepted/run): " + step_mix(i for i in inputs if i.kind == "fuzz")]
        for f in st.findings.values():
            lines.append(f"  [{f.status}] {f.sig}  x{f.count}")
            lines.append(f"      {f.title}")
            if f.repro:
                lines.append(f"      reproducer: {f.repro} ({f.commands} commands; {f.note or 'not replayed'})")
        text = "\n".join(lines)
        with open(os.path.join(self.o.out, "fuzz-summary.txt"), "w") as fh:
            fh.write(text + "\n")
        print(f"testbed fuzz: {text}", flush=True)
        return 1 if st.findings else 0


def _outcomes(out: str, ident: str) -> dict[int, str]:
    inp = read_journal(os.path.join(out, JOURNAL)).get(ident)
    return inp.outcomes if inp else {}


def _finding_in(e: BaseException, kind=Finding):
    """The exception of type `kind` inside what hypothesis raised (itself,
    inside a Flaky exception group, or as its cause)."""
    seen = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, kind):
            return x
        stack.extend(getattr(x, "exceptions", ()) or ())
        stack += [x.__cause__, x.__context__]
    return None


__all__ = ["KERNEL_FEATURES", "Options", "Runner", "choose_target"]
