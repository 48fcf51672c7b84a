"""The conformance suite can fail: each fault the reference datapath offers
(srl2_ref.config.FAULTS, `--ref-fault NAME`) must make the cases that check
that behaviour FAIL, and the same cases must pass without it.

The suite runs itself in subprocesses (`python3 -m pytest cases/ --datapath
ref [--ref-fault NAME]`, one with and one without each fault), all at
once (they mostly wait on packets), each selecting the cases by catalogue
ID: a small plugin written next to the run's JUnit file keeps only the
cases whose `conformance` marker names one of the IDs (pytest's -m cannot
select by marker arguments; IDs stay right when cases are renamed or moved
between files).  Outcomes and IDs are read back from the JUnit XML, where
the testbed plugin records each case's IDs as a property, and the per-ID
checks (testbed.checks) as another: a fault must fail the IDs it breaks and
no others (a wrong hop limit fails H5 and T5, never H1, H3 or H4).
"""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from srl2_ref.config import FAULTS

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 85.0  # seconds for all runs together (they run side by side)

# fault -> (IDs of the cases to run, groups of IDs: each group needs a failing
# check, the IDs that may fail: every other ID of those cases must pass)
EXPECT: dict[str, tuple[set[str], list[set[str]], set[str]]] = {
    # the list on the wire in travel order: one SID looks the same, so the
    # cases over several SIDs (S2, H3's two- and three-segment devices) must
    # catch it, and so must the comparison with the kernel's own l2encap
    # over two SIDs (D2)
    "sid_travel_order": ({"H3", "S2", "D2"}, [{"S2"}, {"D2"}, {"H3"}], {"H3", "S2", "D2"}),
    # outer hop limit copied from an IPv6 header inside the frame (H5), so
    # an MLD frame (hop limit 1) dies at the first router (T5)
    "copy_inner_hoplimit": ({"H5", "T5"}, [{"H5"}, {"T5"}], {"H5", "T5"}),
    # the route to the first SID leads back into the device (L1)
    "no_loop_check": ({"L1"}, [{"L1"}], {"L1"}),
    # End.DT2U / End.DX2 accept Segments Left != 0 (E3); counted as what
    # the SID did, so E8 stays green
    "no_decap_sl_check": ({"E3"}, [{"E3"}], {"E3"}),
    # the second revision's model (run with --revision sr6): reduced mode
    # repeats the first SID in the SRH (R1), the post-encapsulation lookup
    # ignores the device's table (R2), the HMAC is computed over the wrong
    # bytes (R4: the independent computation differs)
    "reduced_repeats_first_sid": ({"R1"}, [{"R1"}], {"R1"}),
    "table_ignored": ({"R2"}, [{"R2"}], {"R2"}),
    "hmac_wrong_bytes": ({"R4"}, [{"R4"}], {"R4"}),
}
# The revision a fault's model needs (the others: the first revision's).
REVISION = {"reduced_repeats_first_sid": "sr6", "table_ignored": "sr6", "hmac_wrong_bytes": "sr6"}

SELECT_PLUGIN = '''\
"""Keep only the cases whose conformance marker names one of $SUITE_SELECT_IDS."""
import os

WANT = set(os.environ["SUITE_SELECT_IDS"].split(","))


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        ids = {i for m in item.iter_markers("conformance") for i in m.args}
        (keep if ids & WANT else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
'''


@dataclass
class Case:
    name: str
    ids: set[str]
    outcome: str  # passed, failed, error, skipped
    checks: list[dict] = field(default_factory=list)  # testbed.checks, as recorded
    message: str = ""  # the first line of its failure

    def failed_ids(self) -> set[str]:
        """The IDs this case failed: those of its failed checks, or all its
        IDs when it failed without recording a failed check."""
        if self.outcome not in ("failed", "error"):
            return set()
        by_check = {c["id"] for c in self.checks if c["verdict"] == "fail"}
        return by_check or set(self.ids)


@dataclass
class Run:
    fault: str | None
    ids: set[str]
    proc: subprocess.Popen
    junit: Path
    log: Path
    cases: list[Case] = field(default_factory=list)

    def describe(self) -> str:
        return f"--ref-fault {self.fault}" if self.fault else "no fault"

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def start(tmp: Path, fault: str | None, ids: set[str], tag: str, revision: str = "srl2") -> Run:
    junit, log = tmp / f"{tag}.xml", tmp / f"{tag}.log"
    cmd = [sys.executable, "-m", "pytest", "cases", "--datapath", "ref", "--revision", revision,
           "-p", "no:cacheprovider",
           "-p", "suite_select", "-q", "-o", "addopts=", f"--junitxml={junit}",
           "--results", str(tmp / f"{tag}-results")]
    if fault:
        cmd += ["--ref-fault", fault]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TESTBED_")) and k != "COV_CORE_SOURCE"}
    env["SUITE_SELECT_IDS"] = ",".join(sorted(ids))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return Run(fault, ids, proc, junit, log)


def read_junit(path: Path) -> list[Case]:
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        outcome, message = "passed", ""
        for child, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            if tc.find(child) is not None:
                outcome, message = name, (tc.find(child).get("message") or "").split("\n", 1)[0]
                break
        ids = set(filter(None, props.get("conformance", "").split(",")))
        checks = ast.literal_eval(props["testbed_checks"]) if "testbed_checks" in props else []
        cases.append(Case(f"{tc.get('classname')}::{tc.get('name')}", ids, outcome, checks, message))
    return cases


def finish(runs: list[Run]) -> None:
    """Wait for every run until the shared deadline and read its report."""
    deadline = time.monotonic() + DEADLINE
    for run in runs:
        try:
            run.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the suite with {run.describe()} did not finish within {DEADLINE:.0f} s "
                        f"(a fault that storms?); its output ends:\n{run.tail()}")
        if not run.junit.exists():
            pytest.fail(f"the suite with {run.describe()} wrote no JUnit report (exit {run.proc.returncode}):\n"
                        f"{run.tail()}")
        run.cases = read_junit(run.junit)


def stop(runs: list[Run]) -> None:
    """End the runs still going (this test failed or was interrupted): Ctrl-C
    first, so that their fixtures remove their labs, then SIGKILL; each run
    is its own process group, made by start()."""
    alive = [r for r in runs if r.proc.poll() is None]
    for r in alive:
        os.killpg(r.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    for r in alive:
        try:
            r.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait()
    if alive:
        from testbed import state

        state.reap_stale()  # labs of a run that had to be killed


def names(cases) -> str:
    return ", ".join(c.name.removeprefix("cases.") for c in cases) or "none"


@pytest.mark.usefixtures("need_root")
def test_every_reference_fault_makes_its_cases_fail(tmp_path):
    """For each fault in srl2_ref.config.FAULTS: the cases tagged with the
    IDs that check it run on the faulty reference, a check of each expected
    group fails (sid_travel_order: S2, D2 and H3; copy_inner_hoplimit: H5
    and T5; no_loop_check: L1; no_decap_sl_check: E3; on the model of the
    second revision, --revision sr6: reduced_repeats_first_sid: R1;
    table_ignored: R2; hmac_wrong_bytes: R4) and no check of another ID
    fails (the cases also check H1, H4, E1, E7, E8, L3, ...).  The same
    cases pass on the reference without the fault.  A group whose every
    case SKIPs on this host (D2 compares with the kernel's own seg6) is
    reported as not checkable here (a warning), never as caught.  The runs
    go side by side and must end within 85 s."""
    assert set(EXPECT) == set(FAULTS), "a fault of srl2_ref has no expectation here (or the reverse)"
    (tmp_path / "suite_select.py").write_text(SELECT_PLUGIN)
    pairs: list[tuple[Run, Run]] = []
    runs: list[Run] = []
    try:
        for fault, (ids, _, _) in EXPECT.items():
            revision = REVISION.get(fault, "srl2")
            runs.append(start(tmp_path, None, ids, f"{fault}-baseline", revision))
            runs.append(start(tmp_path, fault, ids, fault, revision))
            pairs.append((runs[-2], runs[-1]))
        finish(runs)
    finally:
        stop(runs)

    problems: list[str] = []
    unchecked: list[str] = []  # groups whose every case SKIPs here: reported, not failed
    for baseline, run in pairs:
        ran = [c for c in baseline.cases if c.outcome != "skipped"]
        bad = [c for c in baseline.cases if c.outcome in ("failed", "error")]
        if bad:
            problems.append(f"without a fault these cases do not pass: {names(bad)}\n{baseline.tail()}")
        if not ran:
            problems.append(f"without a fault no case with IDs {sorted(baseline.ids)} ran\n{baseline.tail()}")
        _, groups, allowed = EXPECT[run.fault]
        failed = [c for c in run.cases if c.outcome == "failed"]
        for group in groups:
            tagged = [c for c in run.cases if c.ids & group]
            if not tagged:
                problems.append(f"{run.describe()}: no case tagged {'/'.join(sorted(group))} was collected")
            elif all(c.outcome == "skipped" for c in tagged):
                # e.g. D2's cases compare with the kernel's own seg6, which
                # this host may lack: nothing ran that could have caught it
                unchecked.append(f"{run.describe()}: {'/'.join(sorted(group))} not checkable on this host: "
                                 f"every case tagged with it SKIPped ({names(tagged)}; {tagged[0].message})")
            elif not [c for c in failed if c.failed_ids() & group]:
                problems.append(f"{run.describe()}: no check of {'/'.join(sorted(group))} failed "
                                f"(ran: {names(tagged)})")
        for c in failed:
            wrong = c.failed_ids() - allowed
            if wrong:
                lines = [f"{k['id']}: {k['what']}" for k in c.checks if k["verdict"] == "fail" and k["id"] in wrong]
                problems.append(f"{run.describe()}: {c.name} failed {', '.join(sorted(wrong))}, which the fault "
                                f"does not break: {'; '.join(lines) or 'no failed check, it stopped on ' + c.message}")
        errors = [c for c in run.cases if c.outcome == "error"]
        if errors:
            problems.append(f"{run.describe()}: cases errored instead of failing: {names(errors)}")
    report = "\n".join(f"{run.describe()}: failed {names(c for c in run.cases if c.outcome == 'failed')}; "
                       f"IDs {', '.join(sorted(set().union(*(c.failed_ids() for c in run.cases))))}"
                       for _, run in pairs)
    for line in unchecked:
        warnings.warn(line, pytest.PytestWarning, stacklevel=1)
    assert not problems, "\n".join(problems) + "\n-- what each fault failed --\n" + report
    print(report)
