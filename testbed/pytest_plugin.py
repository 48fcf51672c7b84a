"""pytest plugin of srl2 testbed (registered by the top-level conftest.py).

- options: --datapath ref|kernel|both|auto, --spec linux|rfc8986, --ktap FILE,
  --catalogue, --results DIR, --ref-fault NAME;
- markers: conformance(*IDS), kernel_only(reason), needs(*features);
- fixtures: `datapath` (parametrised by --datapath, skipping with the
  probe's reason where a datapath lacks what the case needs), `lab` (labs
  from topologies/ or inline YAML on that datapath, unique names, removed
  on pass, fail and Ctrl-C), `capture` (armed captures whose pcaps are kept
  when the case fails), `make_lab` (for tests of the engine itself);
- reports: KTAP (one line per case, like a kselftest) and the catalogue
  table (pass/fail/skip per ID and datapath).
"""
from __future__ import annotations

import os
import re
import uuid
from collections import defaultdict

import pytest

from testbed.catalogue import AREAS, CATALOGUE

DATAPATH_CHOICES = ("auto", "kernel", "ref", "both")
SPECS = ("linux", "rfc8986")
ENV_FAULTS = "TESTBED_REF_FAULTS"
ENV_ICMP = "TESTBED_REF_ICMP_ERRORS"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("testbed", "srl2 testbed")
    group.addoption("--datapath", choices=DATAPATH_CHOICES, default="auto",
                    help="datapath under test: auto (kernel where it has srl2 and End.DT2U, else ref), "
                         "kernel, ref, or both side by side")
    group.addoption("--spec", choices=SPECS, default="linux",
                    help="expectation where Linux and RFC 8986 differ (E3, E4): linux = silent drop, "
                         "rfc8986 = ICMPv6 Parameter Problem (default linux)")
    group.addoption("--ktap", metavar="FILE", help="write a KTAP report (one line per case) to FILE")
    group.addoption("--catalogue", action="store_true",
                    help="print the conformance catalogue with pass/fail/skip per ID and datapath")
    group.addoption("--results", metavar="DIR", default="test-results",
                    help="where pcaps of failing cases are kept (default test-results/)")
    group.addoption("--ref-fault", action="append", default=[], metavar="NAME",
                    help="run the reference datapath deliberately broken (tests of the suite itself): "
                         "sid_travel_order, copy_inner_hoplimit, no_loop_check, no_decap_sl_check")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "conformance(*ids): catalogue IDs this case checks")
    config.addinivalue_line("markers", "kernel_only(reason): needs what a userspace model cannot see")
    config.addinivalue_line("markers", "needs(*features): datapath features the case uses "
                                       "(srl2, End, End.X, End.DX2, End.DT2U)")
    # The reference datapath reads these when a lab starts it (also in xdist workers).
    if config.getoption("ref_fault"):
        os.environ[ENV_FAULTS] = ",".join(config.getoption("ref_fault"))
    if config.getoption("spec") == "rfc8986":
        os.environ[ENV_ICMP] = "1"
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Reporter(config), "testbed-reporter")


def unique_lab_name(prefix: str = "t") -> str:
    """Short (netns names show up in `ip netns`), unique across workers and runs."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# ---- which datapaths ----------------------------------------------------


def selected_datapaths(config) -> list[str]:
    choice = config.getoption("datapath")
    if choice == "both":
        return ["kernel", "ref"]
    if choice != "auto":
        return [choice]
    if os.geteuid() != 0:
        return ["ref"]
    from testbed.datapaths.kernel import KernelDatapath

    probe = KernelDatapath.probe()
    return ["kernel"] if probe.has("srl2") and probe.has("End.DT2U") else ["ref"]


def pytest_generate_tests(metafunc) -> None:
    if "datapath" in metafunc.fixturenames:
        dps = selected_datapaths(metafunc.config)
        metafunc.parametrize("datapath", dps, ids=dps, indirect=True)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for mark in item.iter_markers("conformance"):
            unknown = [i for i in mark.args if i not in CATALOGUE]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: unknown catalogue IDs {unknown}")


@pytest.fixture
def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")


@pytest.fixture
def datapath(request, need_root) -> str:
    """The datapath this case runs on; skips (with the reason) where it
    cannot run: kernel-only cases on ref, missing kernel features."""
    name = request.param
    kernel_only = request.node.get_closest_marker("kernel_only")
    if kernel_only and name == "ref":
        pytest.skip(f"kernel-only: {kernel_only.args[0]}")
    needs = [f for m in request.node.iter_markers("needs") for f in m.args]
    if name == "kernel":
        from testbed.datapaths.kernel import KernelDatapath

        reason = KernelDatapath.probe().reason(needs)
    else:
        from testbed.datapaths.ref import RefDatapath

        reason = RefDatapath.probe().reason(needs)
    if reason:
        pytest.skip(reason)
    return name


@pytest.fixture
def spec(request) -> str:
    """linux or rfc8986 (--spec)."""
    return request.config.getoption("spec")


def _make_labs(request, datapath: str | None):
    from testbed import topology
    from testbed.lab import Lab

    labs = []

    def make(source, datapath: str | None = datapath, name: str | None = None):
        """source: a topology file path, inline YAML text, or a Topology."""
        if isinstance(source, str) and "\n" in source:
            topo = topology.loads(source, f"<{request.node.name}>")
        elif isinstance(source, (str, os.PathLike)):
            path = str(source)
            if not os.path.isabs(path) and not os.path.exists(path):
                path = str(request.config.rootpath / path)  # topologies/ of the project, from any cwd
            topo = topology.load(path)
        else:
            topo = source
        lab = Lab.up(topo, name=name or unique_lab_name(), datapath=datapath)
        labs.append(lab)
        return lab

    return make, labs


@pytest.fixture
def lab(request, datapath):
    """lab(source) -> a running Lab on this case's datapath; removed at teardown."""
    make, labs = _make_labs(request, datapath)
    yield make
    for lab_ in reversed(labs):
        lab_.down()


@pytest.fixture
def make_lab(request, need_root):
    """make_lab(source, datapath=None) for tests of the engine (no parametrisation)."""
    make, labs = _make_labs(request, None)
    yield make
    for lab_ in reversed(labs):
        lab_.down()


@pytest.fixture(scope="session", autouse=True)
def _reap_stale_labs():
    """Labs left by a run that was SIGKILLed are removed before this run starts."""
    if os.geteuid() == 0:
        from testbed import state

        state.reap_stale()
    yield


@pytest.fixture
def kernel_log():
    """testbed.kmsg.KernelLog of what the kernel logs during the case
    (.messages(), .problems()); the log is the machine's, so filter for what
    the case can cause."""
    from testbed.kmsg import KernelLog

    log = KernelLog()
    yield log
    log.close()


# ---- captures, kept when a case fails -----------------------------------


@pytest.fixture
def capture(request):
    """capture(lab, node, ifname) -> an armed testbed.capture.Capture; its
    frames are written to --results as pcap when the case fails."""
    from testbed.capture import Capture

    caps: list[tuple[str, Capture]] = []
    request.node._testbed_captures = caps

    def make(lab_, node: str, ifname: str) -> Capture:
        cap = Capture(lab_.node(node), ifname)
        caps.append((f"{lab_.name}-{node}-{ifname}", cap))  # two labs of one case: two files
        return cap

    yield make
    for _, cap in caps:
        cap.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """In a `testbed vm` guest, mark each case's start and end in the kernel
    log, so that a warning or oops is reported against the case that ran."""
    in_vm = os.environ.get("TESTBED_VM") == "1"
    if in_vm:
        from testbed.kmsg import case_marker, kmsg_marker

        kmsg_marker(case_marker("START", item.nodeid))
    yield
    if in_vm:
        kmsg_marker(case_marker("END", item.nodeid))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup":
        _tag(item)
    if rep.failed and rep.when == "call":
        caps = getattr(item, "_testbed_captures", [])
        if caps:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
            outdir = os.path.join(item.config.getoption("results"), "pcaps", safe)
            paths = [cap.write_pcap(os.path.join(outdir, f"{label}.pcap")) for label, cap in caps]
            rep.sections.append(("pcaps of this failure", "\n".join(paths)))


def _tag(item) -> None:
    """Carry catalogue IDs and datapath to the controller (also under xdist)."""
    ids = [i for m in item.iter_markers("conformance") for i in m.args]
    if ids and not any(k == "conformance" for k, _ in item.user_properties):
        item.user_properties.append(("conformance", ",".join(ids)))
        callspec = getattr(item, "callspec", None)
        dp = callspec.params.get("datapath") if callspec else None
        item.user_properties.append(("datapath", dp or "-"))


# ---- KTAP and the catalogue ---------------------------------------------


class Reporter:
    """Collects one outcome per case on the controller; writes KTAP and the
    catalogue table at the end."""

    def __init__(self, config):
        self.config = config
        self.cases: dict[str, dict] = {}  # nodeid -> {"outcome", "reason", "ids", "datapath"}

    def pytest_runtest_logreport(self, report) -> None:
        case = self.cases.setdefault(report.nodeid, {"outcome": "passed", "reason": "", "ids": [],
                                                     "datapath": "-"})
        props = dict(report.user_properties)
        if "conformance" in props:
            case["ids"] = props["conformance"].split(",")
            case["datapath"] = props.get("datapath", "-")
        if report.skipped and case["outcome"] == "passed":
            case["outcome"] = "skipped"
            longrepr = report.longrepr
            case["reason"] = longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else ""
        elif report.failed:
            case["outcome"] = "failed"

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        path = self.config.getoption("ktap")
        if path:
            with open(path, "w") as f:
                f.write(ktap(self.cases))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.config.getoption("catalogue"):
            terminalreporter.write_sep("=", "conformance catalogue")
            for line in catalogue_table(self.cases):
                terminalreporter.write_line(line)


def ktap(cases: dict[str, dict]) -> str:
    """KTAP version 1: `ok N name`, `not ok N name`, `ok N name # SKIP reason`."""
    lines = ["KTAP version 1", f"1..{len(cases)}"]
    for n, (nodeid, case) in enumerate(cases.items(), 1):
        name = re.sub(r"\s+", "_", nodeid)
        if case["outcome"] == "failed":
            lines.append(f"not ok {n} {name}")
        elif case["outcome"] == "skipped":
            reason = " ".join(case["reason"].split())
            lines.append(f"ok {n} {name} # SKIP {reason}")
        else:
            lines.append(f"ok {n} {name}")
    return "\n".join(lines) + "\n"


def catalogue_table(cases: dict[str, dict]) -> list[str]:
    """One row per catalogue ID, one column per datapath: PASS if every case
    for it passed, FAIL if any failed, SKIP if all skipped, '-' if none ran."""
    by: dict[tuple[str, str], list[str]] = defaultdict(list)
    dps: list[str] = []
    for case in cases.values():
        for cid in case["ids"]:
            by[(cid, case["datapath"])].append(case["outcome"])
        if case["ids"] and case["datapath"] not in dps:
            dps.append(case["datapath"])
    dps = sorted(dps) or ["-"]
    rows = [["ID", *dps, "behaviour"]]
    for cid, title in CATALOGUE.items():
        cells = []
        for dp in dps:
            outcomes = by.get((cid, dp), [])
            if not outcomes:
                cells.append("-")
            elif "failed" in outcomes:
                cells.append("FAIL")
            elif all(o == "skipped" for o in outcomes):
                cells.append("SKIP")
            else:
                cells.append("PASS" if "skipped" not in outcomes else "PASS*")
        rows.append([cid, *cells, title])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        if r[0] != "ID" and r[0][1:] == "1":
            out.append(f"{r[0][0]}: {AREAS[r[0][0]]}")
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    out.append("  PASS* = some cases for this ID were skipped on this datapath")
    return out
