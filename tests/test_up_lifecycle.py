"""`testbed up` from start to end, as a separate process with real pipes and
namespaces: what a closed stdout does to the lab (`up | head -1`), how a
foreground `up` ends (`testbed down` of its lab, SIGTERM, SIGINT), and that a
refused `up` leaves nothing behind.

Readiness is always an event: a line on the process's stdout or stderr, or
its exit; pipes whose reading end is closed before the process starts make
every write fail at once (EPIPE), with no race against a reader."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from testbed import linux, state
from testbed.pytest_plugin import unique_lab_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P2P = os.path.join(ROOT, "topologies", "p2p.yaml")
CLI = [sys.executable, "-m", "testbed.cli"]
OUTPUT_LOST = 128 + signal.SIGPIPE  # `up`'s status when its stdout could not be written
DEADLINE = 60.0

pytestmark = pytest.mark.usefixtures("need_root", "private_state")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def closed_pipe() -> int:
    """The writing end of a pipe nobody reads any more: a write to it fails
    with EPIPE (as `up | head -1` finds it once head has gone)."""
    r, w = os.pipe()
    os.close(r)
    return w


def run_with_closed_stdout(*args: str) -> subprocess.CompletedProcess:
    w = closed_pipe()
    try:
        p = subprocess.run([*CLI, *args], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def read_until(proc: subprocess.Popen, stream, needle: str, timeout: float = DEADLINE) -> str:
    """What STREAM (a pipe of PROC) says up to and including the line holding NEEDLE."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} within {timeout} s: {seen.decode(errors='replace')}"
        if select.select([stream], [], [], left)[0]:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"{needle!r} never came (exit {proc.wait()}): {seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode()


def gone(name: str) -> bool:
    """Nothing of lab NAME is left: record, log, run directory, namespaces."""
    left = [f for f in os.listdir(state.STATE_DIR) if f == name or f.startswith(f"{name}.")]
    netns = [ns for ns in linux.list_netns() if ns.startswith(f"{name}-")]
    return not left and not netns


def guardian_done() -> None:
    """A foreground `up` is a run (testbed.guardian): wait until its
    guardian, once the run is over, has removed the run's directory (its
    last act), so that it never writes into a state directory the test's
    fixture has removed.  Polled: the guardian tells nobody."""
    runs = os.path.join(state.STATE_DIR, "runs")
    deadline = time.monotonic() + DEADLINE
    while os.path.isdir(runs) and os.listdir(runs):
        assert time.monotonic() < deadline, f"the guardian left {os.listdir(runs)}"
        time.sleep(0.05)


def end(proc: subprocess.Popen, name: str) -> None:
    """Whatever a test left running: the foreground up, the lab, the guardian."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    cli("down", name)
    guardian_done()


# ---- a closed stdout (bug: the lab was removed and `up` exited 0) -----------------


@pytest.mark.parametrize("fmt", [[], ["--json"]], ids=["text", "json"])
def test_up_whose_stdout_is_closed_keeps_the_lab_and_says_so(fmt):
    """The keeper has the lab when `up` prints it: an output that cannot be
    written does not take the lab away, but `up` must not claim success."""
    name = unique_lab_name("p")
    try:
        p = run_with_closed_stdout("up", P2P, "--datapath", "ref", "--name", name, *fmt)
        assert p.returncode == OUTPUT_LOST, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"testbed: lab {name} is up, but "), p.stderr
        assert "Broken pipe" in lines[0] and f"testbed down {name}" in lines[0]
        status = cli("status", name, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["lab"] == name
        assert state.load(name).owner.alive()
    finally:
        down = cli("down", name)
    assert down.returncode == 0 and f"removed lab {name}" in down.stdout, down.stderr
    assert gone(name)


def test_refused_up_whose_stdout_is_closed_still_fails():
    """A refusal printed as JSON on a closed stdout: the error goes to
    stderr and the status stays the refusal's (it was 0)."""
    name = unique_lab_name("p")
    first = cli("up", P2P, "--datapath", "ref", "--name", name)
    assert first.returncode == 0, first.stderr
    try:
        p = run_with_closed_stdout("up", P2P, "--datapath", "ref", "--name", name, "--json")
        assert p.returncode == 1
        assert p.stderr.strip().splitlines() == [f"testbed: error: lab {name!r} is already up (owner pid "
                                                 f"{state.load(name).owner.pid}); choose another name with "
                                                 f"--name, or run: testbed down {name}"]
        assert cli("status", name).returncode == 0  # the first lab is untouched
    finally:
        cli("down", name)
    assert gone(name)


def test_bad_topology_as_json_on_a_closed_stdout_still_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes:\n  a: {kindd: router}\n")
    p = run_with_closed_stdout("up", str(bad), "--json")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["testbed: error: 1 error(s) in the topology; nothing was built"]


# ---- --foreground ---------------------------------------------------------------


def foreground(name: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "up", P2P, "--datapath", "ref", "--name", name, "--foreground"],
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)


def test_foreground_up_ends_when_its_lab_is_taken_down():
    name = unique_lab_name("f")
    proc = foreground(name)
    try:
        read_until(proc, proc.stdout, f"lab {name} is up in the foreground")
        assert cli("status", name).returncode == 0
        down = cli("down", name)
        assert down.returncode == 0, down.stderr
        assert proc.wait(DEADLINE) == 0
        out, err = proc.communicate()
        assert out.decode().strip().splitlines() == [f"lab {name} was taken down (testbed down); "
                                                     f"the foreground up ends"]
        assert err == b""
        assert gone(name)
    finally:
        end(proc, name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_foreground_up_interrupted_removes_its_lab_and_says_so(sig):
    """As a background `up` interrupted while it builds: one line, 128+signal."""
    name = unique_lab_name("f")
    proc = foreground(name)
    try:
        read_until(proc, proc.stdout, f"lab {name} is up in the foreground")
        assert state.load(name) is not None
        proc.send_signal(sig)
        assert proc.wait(DEADLINE) == 128 + sig
        err = proc.stderr.read().decode()
        assert err.strip().splitlines() == [f"testbed: interrupted ({sig.name})"], err
        assert gone(name)
    finally:
        end(proc, name)


def test_foreground_up_whose_stdout_is_closed_keeps_its_lab_until_down():
    name = unique_lab_name("f")
    w = closed_pipe()
    try:
        proc = foreground(name, stdout=w)
    finally:
        os.close(w)
    try:
        line = read_until(proc, proc.stderr, "\n")
        assert line.startswith(f"testbed: lab {name} is up in the foreground, but ") and "Broken pipe" in line
        assert cli("status", name).returncode == 0
        assert cli("down", name).returncode == 0
        assert proc.wait(DEADLINE) == OUTPUT_LOST  # the lab ended as asked, but its output was lost
        assert proc.stderr.read() == b""
        assert gone(name)
    finally:
        end(proc, name)


# ---- a refused up leaves nothing --------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--foreground"]], ids=["keeper", "foreground"])
def test_up_refused_for_a_foreign_netns_leaves_nothing(mode):
    name = unique_lab_name("n")
    foreign = f"{name}-hs-1"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        p = cli("up", P2P, "--datapath", "ref", "--name", name, *mode)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert p.stderr.strip().splitlines() == [
            f"testbed: error: network namespace {foreign} already exists and is not testbed's lab "
            f"{name!r}; remove it (ip netns del {foreign}) or choose another --name"]
        assert foreign in linux.list_netns()  # not ours: left as it was
        guardian_done()
        # The lock and the datapath probe's cache are the state directory's own.
        assert set(os.listdir(state.STATE_DIR)) <= {".lock", "cache", "runs"}, os.listdir(state.STATE_DIR)
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)
