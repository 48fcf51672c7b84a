"""Interrupted runs leave nothing behind.

CI stops a job with SIGTERM to its command alone, then SIGKILL; `timeout -s
INT` sends SIGINT to it alone.  This test starts real runs — `pytest` on a
few lab-making tests, with and without `-n 2`, and `testbed up` — sends one
of SIGTERM, SIGINT, SIGKILL at a random moment, waits for everything the
run started to end (the run's own teardown, or its guardian's), and checks
that what the run made is gone: network namespaces, lab records and run
directories, srl2_ref and keeper processes, veths in the initial namespace.

Only what each run made is compared, never the whole machine (other labs
come and go beside it): each run gets

- a private mount namespace whose /run/netns is a fresh tmpfs (so every
  namespace it pins is visible there and nowhere else; the holder process
  keeps that mount namespace alive until it has been looked at),
- a state directory of its own (TESTBED_STATE_DIR),
- an environment tag inherited by every process it starts (workers,
  keepers, srl2_ref, the guardian): those are its processes.

TESTBED_INTERRUPT_SEED fixes the random choices (the seed is printed);
TESTBED_INTERRUPT_TRIALS (default 18: every entry point, signal and kind of
moment once) makes a heavier run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.wait import until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "TESTBED_INTERRUPT_TAG"

# Real lab-making tests: a reference-datapath lab, a lab made by the CLI
# (keeper), two conformance cases (lab + captures + traffic).
SELECTION = [
    "tests/test_ref_labs.py::test_p2p_ref_arp_and_nd_cross_the_pseudowire",
    "tests/test_lab.py::test_cli_up_status_exec_down",
    "cases/test_decap.py::test_end_dx2_sends_the_inner_frame_out_of_oif_unchanged",
    "cases/test_headers.py::test_outer_headers_of_a_frame_carrying_ipv6_hop_limit_1",
]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION]

# entry point -> (command, latest moment of the signal in seconds).  The
# moments span start-up, collection, workers starting, labs being built,
# traffic, teardown and (sometimes) the end of the run.  A machine where a
# run is faster than that gets moments within 90 % of its measured run
# (test_interrupted_runs_leave_nothing_behind times one clean run of each
# entry first): most signals must land mid-run.
ENTRIES = {
    "pytest": (PYTEST, 9.0),
    "pytest -n 2": (PYTEST + ["-n", "2"], 12.0),
    "testbed up": ([sys.executable, "-m", "testbed.cli", "up", "topologies/p2p.yaml", "--datapath", "ref"], 2.5),
}
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
LAB_WINDOW = 3.0  # latest moment after the first lab record appeared
# Long enough for the guardian's grace (20 s) and a loaded machine.
SETTLE = 90.0

pytestmark = pytest.mark.usefixtures("need_root")


@dataclasses.dataclass
class Trial:
    entry: str
    sig: signal.Signals
    delay: float
    anchor: str = "start"  # the delay counts from: "start" of the run, or its first "lab" record
    rc: int | None = None
    delivered: bool = False  # False: the run had ended before the signal
    settle: float = 0.0
    ran: float = 0.0  # seconds from the start of the run to its end
    leaks: list[str] = dataclasses.field(default_factory=list)

    def row(self) -> str:
        when = f"{self.anchor}+{self.delay:.1f} s" + ("" if self.delivered else " (after its end)")
        return (f"{self.entry:<12} {self.sig.name:<8} {when:<26} exit {self.rc!s:<4} "
                f"settled in {self.settle:4.1f} s  leaks: {', '.join(self.leaks) or 'none'}")


def trials(seed: int, n: int, latest: dict[str, float] | None = None) -> list[Trial]:
    """n trials spread over every (entry point, signal) pair, moments at
    random, at most `latest[entry]` seconds after the start (default: the
    ENTRIES' moments; the lab window is at most half of that)."""
    latest = {e: min(ENTRIES[e][1], (latest or {}).get(e, ENTRIES[e][1])) for e in ENTRIES}
    rng = random.Random(seed)
    pairs = [(e, s, a) for a in ("start", "lab") for e in ENTRIES for s in SIGNALS]
    rng.shuffle(pairs)
    chosen = [pairs[i % len(pairs)] for i in range(n)]
    # From the start: start-up, collection, workers starting.  From the
    # first lab record: labs being built, traffic, teardown, the next test.
    return [Trial(e, s, round(rng.uniform(0.0, latest[e] if a == "start" else min(LAB_WINDOW, latest[e] / 2)), 2),
                  a)
            for e, s, a in chosen]


def tagged(tag: str) -> list[int]:
    """Processes started by the run with this tag (it is in their environment)."""
    needle = f"{TAG}={tag}".encode() + b"\0"
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if needle in f.read() + b"\0":
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def init_veths() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def run_trial(trial: Trial, workdir: str) -> Trial:
    tag = uuid.uuid4().hex
    state_dir = os.path.join(workdir, tag[:8])
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs testbed-interrupt /run/netns && echo ready && exec sleep 3600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        # --root: entering a mount namespace resets the root directory to
        # the namespace's, which is not ours when we run in a chroot
        enter = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", f"--root=/proc/{holder.pid}/root",
                 f"--wd={ROOT}", "--"]
        env = {**os.environ, TAG: tag, "TESTBED_STATE_DIR": state_dir}
        cmd = list(ENTRIES[trial.entry][0])
        name = f"i{tag[:8]}"
        if trial.entry == "testbed up":
            cmd += ["--name", name]
        veths_before = init_veths()
        errfile = os.path.join(workdir, f"stderr-{tag[:8]}")
        with open(errfile, "wb") as errf:
            run = subprocess.Popen(enter + cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=errf)
        started = time.monotonic()
        if trial.anchor == "lab":
            until(lambda: run.poll() is not None or has_record(state_dir), 120)
        try:
            run.wait(trial.delay)  # the random moment (not a readiness wait)
        except subprocess.TimeoutExpired:
            run.send_signal(trial.sig)  # nsenter exec'd the command: same pid
            trial.delivered = True
        try:
            trial.rc = run.wait(120)
            trial.ran = time.monotonic() - started
        except subprocess.TimeoutExpired:
            trial.leaks.append("the run did not end within 120 s of its signal")
            run.kill()
            trial.rc = run.wait()
        with open(errfile, errors="replace") as f:
            err = f.read()
        t = time.monotonic()
        if trial.entry == "testbed up" and trial.rc == 0:
            # `up` finished: the lab is the user's, complete, until `down`.
            if not os.path.exists(os.path.join(state_dir, f"{name}.json")):
                trial.leaks.append(f"up exited 0 without a lab: {err.strip()}")
            subprocess.run(enter + [sys.executable, "-m", "testbed.cli", "down", name], cwd=ROOT, env=env,
                           capture_output=True, timeout=60)
        if not until(lambda: not tagged(tag), SETTLE):
            trial.leaks += [f"process {p} ({open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ')[:80]})"
                            for p in tagged(tag)]
        trial.settle = time.monotonic() - t
        left = subprocess.run(enter + ["ls", "-A", "/run/netns"], capture_output=True, text=True).stdout.split()
        trial.leaks += [f"netns {ns}" for ns in left]
        trial.leaks += [f"state {f}" for f in leftover_state(state_dir)]
        trial.leaks += [f"veth {v} in the initial namespace" for v in sorted(init_veths() - veths_before)
                        if v.startswith(name) or v in LAB_IFNAMES]
        return trial
    finally:
        holder.kill()  # its mount namespace goes, and with it anything still pinned there
        holder.wait()
        holder.stdout.close()


# Interface names the selected labs use (a veth of theirs in the initial
# namespace would be a leak; veths of others there are none of our business).
LAB_IFNAMES = {"veth0", "veth1", "veth-hs", "veth-rt1", "veth-rt2", "eth0", "eth1", "up0"}


def has_record(state_dir: str) -> bool:
    try:
        return any(f.endswith(".json") for f in os.listdir(state_dir))
    except FileNotFoundError:
        return False


def leftover_state(state_dir: str) -> list[str]:
    """Anything in the run's state directory but the probe cache and the lock."""
    left = []
    for entry in sorted(os.listdir(state_dir)) if os.path.isdir(state_dir) else []:
        if entry in ("cache", ".lock"):
            continue
        path = os.path.join(state_dir, entry)
        if entry == "runs":
            left += [f"runs/{r}" for r in os.listdir(path)]
        else:
            left.append(entry)
    return left


def test_interrupted_runs_leave_nothing_behind():
    seed = int(os.environ.get("TESTBED_INTERRUPT_SEED") or random.randrange(1 << 32))
    n = int(os.environ.get("TESTBED_INTERRUPT_TRIALS", str(len(ENTRIES) * len(SIGNALS) * 2)))
    print(f"\ninterruption trials: seed {seed} (TESTBED_INTERRUPT_SEED={seed} repeats them), {n} runs")
    # A short directory: the runs' state directories hold the reference
    # datapath's control sockets, and AF_UNIX paths end at 108 bytes.
    workdir = tempfile.mkdtemp(prefix="tbi-")
    try:
        with ThreadPoolExecutor(2) as pool:  # two runs at a time: each is mostly waiting
            # one clean run of each entry: how long a run lasts on this machine
            clean = list(pool.map(lambda e: run_trial(Trial(e, signal.SIGTERM, 1e6), workdir), ENTRIES))
            latest = {tr.entry: 0.9 * tr.ran for tr in clean}
            print("clean runs: " + ", ".join(f"{tr.entry} {tr.ran:.1f} s" for tr in clean))
            planned = trials(seed, n, latest)
            done = list(pool.map(lambda tr: run_trial(tr, workdir), planned))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert not [tr for tr in clean if tr.leaks or tr.rc != 0], "\n".join(tr.row() for tr in clean)
    for tr in done:
        print("  " + tr.row())
    delivered = sum(tr.delivered for tr in done)
    leaky = [tr for tr in done if tr.leaks]
    print(f"{n} runs, {delivered} interrupted mid-run "
          f"({', '.join(f'{s.name} {sum(tr.delivered and tr.sig == s for tr in done)}' for s in SIGNALS)}), "
          f"{len(leaky)} with leaks")
    assert not leaky, "\n".join(tr.row() for tr in leaky)
    assert delivered >= n // 2, "most runs ended before their signal: the moments no longer cover the runs"
