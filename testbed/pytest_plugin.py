"""pytest plugin of srl2 testbed (registered by the top-level conftest.py).

- options: --datapath ref|kernel|both|auto, --spec linux|rfc8986, --ktap FILE,
  --catalogue, --results DIR, --record FILE, --shard K/N, --shard-durations RECORD,
  --ref-fault NAME;
- markers: conformance(*IDS), kernel_only(reason), needs(*features);
- fixtures: `datapath` (parametrised by --datapath, skipping with the
  probe's reason where a datapath lacks what the case needs), `lab` (labs
  from topologies/ or inline YAML on that datapath, unique names, removed
  on pass, fail and Ctrl-C), `capture` (armed captures whose pcaps are kept
  when the case fails), `make_lab` (for tests of the engine itself);
- the record of the run (testbed/results/record.py), one JSON line per case
  as it ends; KTAP and the catalogue table (per ID and datapath) are
  derived from it; inside `testbed vm`, a boot after a kernel crash resumes
  the run (testbed/results/resume.py).
"""
from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import asdict

import pytest

from testbed.catalogue import CATALOGUE
from testbed.results import resume, shard
from testbed.results.session import Reporter, choose_record, crash_message, resume_items

_RECORD = pytest.StashKey[tuple]()
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
    group.addoption("--record", metavar="FILE",
                    help="write the record of the run (JSON lines, one per case as it ends) to FILE; "
                         f"default ${resume.ENV_OUT}/{resume.RECORD_FILE} inside `testbed vm`, else none")
    group.addoption("--revision", choices=("auto", "srl2", "sr6"), default=None,
                    help="revision of the series under test (testbed.revisions): auto = what the "
                         "kernel has (the newest), else srl2; the reference models the one asked for "
                         "(default: $TESTBED_REVISION, else auto)")
    group.addoption("--shard", type=shard.option_type, default=None, metavar="K/N",
                    help="run shard K of N (from 1): a split of the selected cases every job computes alike, "
                         "balanced by --shard-durations; `testbed report` merges the shards' records")
    group.addoption("--shard-durations", metavar="RECORD",
                    help="weigh the cases of --shard by their durations in this record (e.g. the baseline); "
                         "default: equal weights")
    group.addoption("--ref-fault", action="append", default=[], metavar="NAME",
                    help="run the reference datapath deliberately broken (tests of the suite itself): "
                         "sid_travel_order, copy_inner_hoplimit, no_loop_check, no_decap_sl_check")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "conformance(*ids): catalogue IDs this case checks")
    config.addinivalue_line("markers", "kernel_only(reason): needs what a userspace model cannot see")
    config.addinivalue_line("markers", "revision_has(*features): what the series' revision must have "
                                       "(table, hmac, changelink, reduced, ...); SKIPs naming it otherwise")
    config.addinivalue_line("markers", "needs(*features): datapath features the case uses "
                                       "(srl2, End, End.X, End.DX2, End.DT2U)")
    # Labs, probes and the reference read these (also in xdist workers,
    # which inherit the environment).
    if config.getoption("revision"):
        from testbed import revisions

        os.environ[revisions.ENV] = config.getoption("revision")
    if config.getoption("ref_fault"):
        os.environ[ENV_FAULTS] = ",".join(config.getoption("ref_fault"))
    if config.getoption("spec") == "rfc8986":
        os.environ[ENV_ICMP] = "1"
    config.stash[_RECORD] = choose_record(config)
    if not hasattr(config, "workerinput"):
        path, resuming = config.stash[_RECORD]
        config.pluginmanager.register(Reporter(config, path, resuming, selected_datapaths), "testbed-reporter")


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


@pytest.hookimpl(trylast=True)  # after -k and -m: a shard is a part of what they selected
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for mark in item.iter_markers("conformance"):
            unknown = [i for i in mark.args if i not in CATALOGUE]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: unknown catalogue IDs {unknown}")
    shard.deselect(config, items)  # on the whole selection, before resuming drops what is done
    path, resuming = config.stash[_RECORD]
    if resuming:
        resume_items(config, items, path)


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
    lacking = _revision_lacks(request.node)
    if lacking:
        pytest.skip(lacking)
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


def _revision_lacks(item) -> str | None:
    """Why the revision under test cannot run a case marked
    `revision_has(feature, ...)` (a Revision field: table, hmac, changelink,
    or a mode name such as "reduced"), else None."""
    wanted = [f for m in item.iter_markers("revision_has") for f in m.args]
    if not wanted:
        return None
    from testbed import revisions
    from testbed.datapaths.kernel import KernelDatapath

    rev = KernelDatapath.revision_of()
    for feature in wanted:
        has = feature in rev.modes if feature in ("full", "reduced") else getattr(rev, feature)
        if not has:
            others = [r.name for r in revisions.all_revisions()
                      if (feature in r.modes if feature in ("full", "reduced") else getattr(r, feature))]
            return (f"revision {rev.name} has no {feature} ({', '.join(others)} has it: "
                    f"--revision {others[-1]} on the reference, or a kernel with it)")
    return None


@pytest.fixture
def revision(datapath):
    """The revision of the series (testbed.revisions.Revision) this case's
    devices are: --revision resolved on this kernel (auto: what it has,
    else srl2, which the reference then models).  Cases take what differs
    between revisions (link kind, MTU formula, counters per error, ...)
    from it and never name a revision."""
    from testbed.datapaths.kernel import KernelDatapath

    return KernelDatapath.revision_of()


@pytest.fixture
def spec(request) -> str:
    """linux or rfc8986 (--spec)."""
    return request.config.getoption("spec")


def _make_labs(request, datapath: str | None):
    from testbed import topology
    from testbed.errors import MissingCapability
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
        try:
            lab = Lab.up(topo, name=name or unique_lab_name(), datapath=datapath)
        except MissingCapability as e:
            # The host's kernel lacks what this lab needs (e.g. seg6
            # lwtunnel): nothing was built; the case cannot run here.
            pytest.skip(f"this host cannot build the lab: {e}")
        labs.append(lab)
        _note_lab(request.node, lab.name, source, topo)
        return lab

    return make, labs


def _note_lab(item, name: str, source, topo) -> None:
    """Remember the case's labs: a failure's report shows their pictures."""
    src = "<inline YAML>" if isinstance(source, str) and "\n" in source else str(getattr(source, "name", source))
    if not hasattr(item, "_testbed_labs"):
        item._testbed_labs = []
    item._testbed_labs.append((name, src, topo))


def _lab_pictures(item) -> list[dict]:
    from testbed.render.ascii import picture

    out = []
    for name, src, topo in getattr(item, "_testbed_labs", []):
        try:
            pic = picture(topo)
        except Exception as e:  # a picture is a nicety: never fail a report over it
            pic = f"(no picture: {e})"
        out.append({"name": name, "source": src, "picture": pic})
    return out


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
    the case can cause.

    Cases that judge the log take turns (an exclusive flock on /dev/kmsg,
    across pytest -n workers): L5 provokes "dead loop" lines on purpose,
    and L1, running beside it, would read them as its own."""
    import fcntl

    from testbed.kmsg import KernelLog

    try:
        turn = os.open("/dev/kmsg", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        turn = -1  # no kernel log to judge, nothing to take turns on
    if turn >= 0:
        fcntl.flock(turn, fcntl.LOCK_EX)
    log = KernelLog()
    try:
        yield log
    finally:
        log.close()
        if turn >= 0:
            os.close(turn)  # releases the turn


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
    log, so that a warning or oops is reported against the case that ran.
    On a boot after a crash, the case first waits for its turn
    (resume.Turns: suspects first and alone), outside its markers."""
    in_vm = os.environ.get("TESTBED_VM") == "1"
    turns = getattr(item.config, "_testbed_turns", None)
    with turns.turn(item.nodeid) if turns else contextlib.nullcontext():
        if in_vm:
            from testbed.kmsg import case_marker, kmsg_marker

            kmsg_marker(case_marker("START", item.nodeid))
        yield
        if in_vm:
            kmsg_marker(case_marker("END", item.nodeid))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """A case charged with a kernel crash on an earlier boot fails here,
    before its fixtures, with the kernel's lines; inside a VM, the kernel
    log is read from here to the end of the case's teardown.  (A plain
    hook, not a wrapper: failing inside every wrapper lets their teardown
    halves find what their setup halves made.)"""
    crash = getattr(item, "_testbed_crash", None)
    if crash is not None:
        item.user_properties.append(("testbed_crash", asdict(crash)))
        pytest.fail(crash_message(crash), pytrace=False)
    if os.environ.get("TESTBED_VM") == "1":
        from testbed.kmsg import KernelLog

        item._testbed_kmsg = KernelLog()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Kernel problems logged while the case ran (inside a VM, where the log
    is the guest's: under -n the other worker's case shares it)."""
    try:
        return (yield)
    finally:
        log = getattr(item, "_testbed_kmsg", None)
        if log is not None:
            from testbed.kmsg import problem

            found = [{"kind": problem(m), "line": m} for m in log.messages() if problem(m)]
            log.close()
            if found:
                item.user_properties.append(("testbed_kernel_problems", found))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup":
        _tag(item, rep)
    if rep.failed and rep.when in ("setup", "call") and getattr(item, "_testbed_labs", None):
        entry = ("testbed_labs", _lab_pictures(item))  # only for failures: pytest's JUnit shows every property
        item.user_properties.append(entry)
        rep.user_properties.append(entry)
    if rep.failed and rep.when == "call":
        caps = getattr(item, "_testbed_captures", [])
        if caps:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
            outdir = os.path.join(item.config.getoption("results"), "pcaps", safe)
            paths = [cap.write_pcap(os.path.join(outdir, f"{label}.pcap")) for label, cap in caps]
            rep.sections.append(("pcaps of this failure", "\n".join(paths)))
            entry = ("testbed_pcaps", [os.path.abspath(p) for p in paths])
            item.user_properties.append(entry)
            rep.user_properties.append(entry)


def _tag(item, rep) -> None:
    """Carry catalogue IDs and datapath to the controller (also under xdist)."""
    if any(k in ("conformance", "datapath") for k, _ in item.user_properties):
        return
    ids = [i for m in item.iter_markers("conformance") for i in m.args]
    callspec = getattr(item, "callspec", None)
    dp = callspec.params.get("datapath") if callspec else None
    tags = ([("conformance", ",".join(ids))] if ids else []) + ([("datapath", dp)] if dp or ids else [])
    tags = [(k, v or "-") for k, v in tags]
    item.user_properties += tags
    rep.user_properties += tags  # the setup report is made: it carries them too
