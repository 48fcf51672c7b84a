"""The benchmarks run to the end on any kernel: a figure this kernel cannot
measure says SKIP and why (the rendered script exits 4 without srl2; the
kernel's route-based encap seg6 needs CONFIG_IPV6_SEG6_LWTUNNEL).  And none
leaves anything behind, however it ends: done, a forced error (one line,
no traceback) or a stop signal.

Each run is isolated so that "nothing left" is exact while other labs come
and go on the machine: a private mount namespace whose /run/netns is a
fresh tmpfs (every namespace the bench pins lives there: what is in it at
the end is what it leaked, and the leak dies with the test), a TMPDIR of
its own (temporary files, and the bench's lab records under it), and a
token in its environment that every process it starts inherits (what
still has the token at the end is a process it left)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from typing import Callable

import pytest

from testbed import wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN_VAR = "TESTBED_BENCH_TEST"

pytestmark = pytest.mark.usefixtures("need_root")


@dataclass
class Run:
    rc: int
    out: str
    err: str
    netns: list[str]  # still pinned when it ended
    procs: dict[int, str]  # pid -> command line, of the processes it left
    files: list[str]  # left in its TMPDIR


def token_procs(token: str) -> dict[int, str]:
    """pid -> command line of every process whose environment has the token."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"{TOKEN_VAR}={token}".encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found[int(pid)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return found


def run_bench(script: str, *args: str, path_env: str | None = None,
              stop: Callable[[int, str], None] | None = None) -> Run:
    """Run bench/SCRIPT ARGS isolated (see the module docstring).  `path_env`:
    the bench's PATH.  `stop(pid, token)`: called with the bench's pid while
    it runs (to signal it)."""
    token = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="tb")  # short: srl2_ref's control sockets go below it (108-byte limit)
    wrapper = ('mkdir -p /run/netns && mount -t tmpfs testbed-bench-test /run/netns || exit 99\n'
               '"$@"; rc=$?\n'
               'echo "@@left: $(ls -A /run/netns | tr "\\n" " ")" >&2\n'
               'exit $rc\n')
    cmd = [sys.executable, os.path.join(ROOT, "bench", script), *args]
    if path_env is not None:
        cmd = ["env", f"PATH={path_env}", *cmd]
    env = {**os.environ, "TMPDIR": tmp, TOKEN_VAR: token}
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapper, "bench", *cmd],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stop is not None:
            # the bench's interpreter itself (not unshare or env before they exec)
            prog = f"{sys.executable} {os.path.join(ROOT, 'bench', script)}"
            bench = wait.until(lambda: [pid for pid, c in token_procs(token).items() if c.startswith(prog)],
                               timeout=60)
            assert bench, "the bench did not start"
            stop(bench[0], token)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
        # (before reading to the end: a process left holds the pipes open)
        left = token_procs(token)
        for pid in left:  # ours: whatever the bench left must not outlive the test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.stdout and not p.stdout.closed:
            p.communicate(timeout=60)
        files = sorted(os.listdir(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    assert p.returncode != 99, err
    mo = re.search(r"^@@left: (.*)$", err, re.M)
    assert mo, err
    return Run(p.returncode, out, err[:mo.start()], mo.group(1).split(), left, files)


def assert_nothing_left(r: Run) -> None:
    assert (r.netns, r.procs, r.files) == ([], {}, []), r.err


def seg6_missing() -> str | None:
    from tests.test_render import host_seg6_missing

    return host_seg6_missing()


def test_bring_up_of_p2p_reports_the_script_skip():
    from tests.test_render import kernel_has_srl2

    p = run_bench("bring_up.py", "topologies/p2p.yaml", "--runs", "1")
    assert p.rc == 0, p.err
    assert re.search(r"^  engine +\d+\.\d ms", p.out, re.M) and re.search(r"^  cli +\d+\.\d ms", p.out, re.M)
    if kernel_has_srl2():
        assert re.search(r"^  script +\d+\.\d ms", p.out, re.M), p.out
    else:
        assert "  script      SKIP   (SKIP: this kernel has no srl2 link kind)" in p.out, p.out
    assert_nothing_left(p)


# ---- quick runs: the reference parts run, the kernel's seg6 parts SKIP where it has none -----


def test_bring_up_of_mesh4_measures_or_skips_with_the_reason():
    """mesh4's routes are route-based encap seg6: every figure needs the host's seg6."""
    p = run_bench("bring_up.py", "topologies/mesh4.yaml", "--runs", "1")
    assert_nothing_left(p)
    if seg6_missing():
        assert p.rc == 4, p.err  # nothing could be measured
        for method in ("engine", "cli"):
            assert re.search(rf"^  {method} +SKIP +\(SKIP: kernel datapath: .*CONFIG_IPV6_SEG6_LWTUNNEL", p.out, re.M)
        assert re.search(r"^  script +SKIP +\(SKIP: this kernel has no seg6 lwtunnel encapsulation "
                         r"\(CONFIG_IPV6_SEG6_LWTUNNEL\)", p.out, re.M), p.out
    else:
        assert p.rc == 0, p.err
        for method in ("engine", "cli", "script"):
            assert re.search(rf"^  {method} +\d+\.\d ms", p.out, re.M), p.out
    assert p.err == ""


def test_teardown_measures_p2p_and_measures_or_skips_mesh4():
    p = run_bench("teardown.py", "topologies/p2p.yaml", "topologies/mesh4.yaml", "--runs", "1")
    assert p.rc == 0, p.err
    assert re.search(r"^\| p2p\.yaml \| 4 \| (ref|kernel) \| \d+ ms \(\d+\) \| \d+ ms \(\d+\) \|$", p.out, re.M), p.out
    if seg6_missing():
        assert re.search(r"^\| mesh4\.yaml \| 6 \| SKIP: kernel datapath: .*CONFIG_IPV6_SEG6_LWTUNNEL.* \| \| \|$",
                         p.out, re.M), p.out
    else:
        assert re.search(r"^\| mesh4\.yaml \| 6 \| \w+ \| \d+ ms", p.out, re.M), p.out
    assert p.err == ""
    assert_nothing_left(p)


def test_ref_pps_measures_the_reference_and_the_kernel_or_says_why_not():
    p = run_bench("ref_pps.py", "--window", "0.1", "--sizes", "64", "--segs", "1", "--no-plots")
    assert p.rc == 0, p.err
    row = re.search(r"^ +64 +1 +(\d+) +(\d+) +(\S+) +(\S+)$", p.out, re.M)
    assert row and int(row.group(1)) > 0, p.out
    if seg6_missing():
        assert row.group(3) == "SKIP", p.out
        assert re.search(r"^kernel l2encap: SKIP: kernel datapath: .*CONFIG_IPV6_SEG6_LWTUNNEL", p.out, re.M), p.out
    else:
        assert int(row.group(3)) > 0, p.out
    assert_nothing_left(p)


# ---- errors: one line, nothing left ---------------------------------------------------


BAD_ROUTE = """\
name: badroute
nodes:
  hs-1:
    interfaces:
      veth0: {addresses: ["cafe::1/64"]}
    routes:
      - {dst: "fd00:88::/64", via: "fd00:99::1"}
  hs-2:
    interfaces:
      veth0: {addresses: ["cafe::2/64"]}
links:
  - [hs-1:veth0, hs-2:veth0]
"""


@pytest.mark.parametrize("script, args, path_env, expected", [
    ("bring_up.py", ["nonexistent.yaml", "--runs", "1"], None,
     r"bring_up: error: nonexistent\.yaml: cannot read: No such file or directory"),
    ("bring_up.py", ["topologies/p2p.yaml", "--runs", "0"], None,
     r"bring_up: error: --runs: at least 1 \(see --help\)"),
    ("bring_up.py", ["topologies/p2p.yaml", "--runs", "1"], "/nonexistent",
     r"bring_up: error: bash: not found on PATH"),
    # the rendered script builds, the kernel refuses a route, the script tears down
    ("bring_up.py", ["BAD_ROUTE", "--runs", "1"], None,
     r"bring_up: error: bash \S+/lab\.sh --no-wait failed \(exit 1\): .*FAIL: line \d+: "
     r"ip -n hs-1-\w+ -6 route add fd00:88::/64 via fd00:99::1 \(exit 2\)"),
    ("teardown.py", ["nonexistent.yaml"], None, r"teardown: error: nonexistent\.yaml: cannot read: .*"),
    # `testbed up` fails mid-build
    ("teardown.py", ["BAD_ROUTE", "--runs", "1"], None,
     r"teardown: error: \S+ -m testbed\.cli up \S+ --name bench\d+ failed \(exit 1\): "
     r"testbed: error: .*fd00:88::/64.*"),
    ("ref_pps.py", ["--window", "-1"], None, r"ref_pps: error: --window must be above 0 .*"),
    # after the namespaces exist: no ip, or srl2_ref refusing the device
    ("ref_pps.py", ["--window", "0.1", "--sizes", "64", "--segs", "1", "--no-plots"], "/nonexistent",
     r"ref_pps: error: ip: not found on PATH"),
    ("ref_pps.py", ["--window", "0.1", "--sizes", "64", "--segs", "200", "--no-plots"], None,
     r"ref_pps: error: srl2_ref did not start: error: devices\[0\]\.segs: 200 segments, at most 127"),
], ids=["bring_up-no-file", "bring_up-runs-0", "bring_up-no-bash", "bring_up-script-fails",
        "teardown-no-file", "teardown-up-fails", "ref_pps-window", "ref_pps-no-ip", "ref_pps-200-sids"])
def test_a_forced_error_is_one_line_and_leaves_nothing(tmp_path, script, args, path_env, expected):
    bad = tmp_path / "badroute.yaml"
    bad.write_text(BAD_ROUTE)
    p = run_bench(script, *[str(bad) if a == "BAD_ROUTE" else a for a in args], path_env=path_env)
    assert p.rc in (1, 2), p.err
    assert re.fullmatch(expected, p.err.strip()), p.err
    assert "Traceback" not in p.err and len(p.err.strip().splitlines()) == 1
    assert_nothing_left(p)


# ---- stopped by a signal while it holds namespaces, labs, processes ------------------------


def netns_of(pid: int) -> list[str]:
    """The namespaces pinned in PID's mount namespace (its private /run/netns)."""
    try:
        return os.listdir(f"/proc/{pid}/root/run/netns")
    except OSError:
        return []


def stop_when(held: Callable[[int, str], bool], signum: int) -> Callable[[int, str], None]:
    def stop(pid: int, token: str) -> None:
        assert wait.until(lambda: held(pid, token), timeout=120), "never got that far"
        os.kill(pid, signum)
    return stop


def _holds_netns(pid: int, token: str) -> bool:
    return bool(netns_of(pid))


def _cli_running(pid: int, token: str) -> bool:
    return bool(netns_of(pid)) and any("testbed.cli" in c for c in token_procs(token).values())


def _ref_running(pid: int, token: str) -> bool:
    return any("srl2_ref" in c for c in token_procs(token).values())


@pytest.mark.parametrize("script, args, held, signum", [
    ("bring_up.py", ["topologies/p2p.yaml", "--runs", "20"], _holds_netns, signal.SIGTERM),
    ("bring_up.py", ["topologies/p2p.yaml", "--runs", "20"], _holds_netns, signal.SIGINT),
    ("teardown.py", ["topologies/p2p.yaml", "--runs", "20"], _cli_running, signal.SIGTERM),
    ("ref_pps.py", ["--window", "5", "--sizes", "64", "--segs", "1", "--no-plots"], _ref_running, signal.SIGTERM),
], ids=["bring_up-TERM", "bring_up-INT", "teardown-TERM", "ref_pps-TERM"])
def test_a_stopped_bench_leaves_nothing(script, args, held, signum):
    p = run_bench(script, *args, stop=stop_when(held, signum))
    name = script.removesuffix(".py")
    assert (p.rc, p.err.strip()) == (128 + signum, f"{name}: stopped by {signal.Signals(signum).name}")
    assert_nothing_left(p)
