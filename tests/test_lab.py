"""The lab engine with real labs: up/status/exec/down through the CLI, labs
side by side, stale reaping after SIGKILL, kernel refusals reported against
the YAML line, and nothing left behind."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

from testbed import linux, state, topology
from testbed.errors import MissingCapability
from testbed.lab import Lab, LabError
from testbed.pytest_plugin import unique_lab_name

pytestmark = pytest.mark.usefixtures("need_root")

# Two hosts behind two routers joined by an SRv6 underlay with SIDs (End.DX2,
# a counting End): the kernel's where it has seg6local, else the reference
# datapath's, so the engine's life cycle is tested on any host.
UNDERLAY = textwrap.dedent("""\
    name: under
    nodes:
      hs-1:
        interfaces:
          veth0: {addresses: [10.0.0.1/24, "cafe::1/64"]}
        routes:
          - {dst: default, via: 10.0.0.254}
      hs-2:
        interfaces:
          veth0: {addresses: [10.0.1.2/24]}
        routes:
          - {dst: default, via: 10.0.1.254}
      rt-1:
        kind: router
        interfaces:
          veth-hs: {addresses: [10.0.0.254/24, "cafe::254/64"]}
          veth-rt2: {addresses: ["fcf0:0:1:2::1/64"]}
        routes:
          - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}
        rules:
          - {to: "fcff::/16", lookup: 90, prio: 999}
        sids:
          - {sid: "fcff:1::100", action: End.DX2, oif: veth-hs, table: 90}
      rt-2:
        kind: router
        tunsrc: "fcf0:0:1:2::2"
        interfaces:
          veth-hs: {addresses: [10.0.1.254/24]}
          veth-rt1: {addresses: ["fcf0:0:1:2::2/64"]}
        routes:
          - {dst: "fcff:1::/32", via: "fcf0:0:1:2::1"}
        sids:
          - {sid: "fcff:2::100", action: End, count: true}
    links:
      - [hs-1:veth0, rt-1:veth-hs]
      - [rt-1:veth-rt2, rt-2:veth-rt1]
      - [rt-2:veth-hs, hs-2:veth0]
    """)


# The same with rt-1 sending hs-1's IPv4 packets to rt-2's End SID through a
# route-based `encap seg6`: a kernel object on every datapath (the host's
# seg6 lwtunnel), inserted after the route to fcff:2::/32.
ROUTE_ENCAP = UNDERLAY.replace(
    """      - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}\n""",
    """      - {dst: "fcff:2::/32", via: "fcf0:0:1:2::2", table: 90}\n"""
    """      - {dst: 10.0.1.0/24, dev: veth-rt2, encap: {type: seg6, mode: encap, segs: ["fcff:2::100"]}}\n""")
assert ROUTE_ENCAP != UNDERLAY


def sids_as_configured(sids: list[dict]) -> list[dict]:
    """A node's SIDs from `status --json`, less what only one datapath reports."""
    return [{k: v for k, v in s.items() if k in ("sid", "action", "table", "oif", "l2dev", "nh6")} for s in sids]


def cli(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (a separate process)."""
    p = subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True,
                       timeout=60, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"testbed {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def lab_traces(name: str) -> list[str]:
    """Everything of lab NAME still on the machine: netns, record, log."""
    left = [ns for ns in linux.list_netns() if ns.startswith(f"{name}-")]
    left += [p for p in (state.record_path(name), os.path.join(state.STATE_DIR, f"{name}.log"),
                         os.path.join(state.STATE_DIR, name)) if os.path.exists(p)]
    return left


@pytest.fixture
def underlay_file(tmp_path):
    path = tmp_path / "under.yaml"
    path.write_text(UNDERLAY)
    return str(path)


@pytest.fixture
def cli_lab(underlay_file):
    """A lab brought up with `testbed up`, always taken down."""
    name = unique_lab_name("c")
    cli("up", underlay_file, "--name", name)
    yield name
    cli("down", name, check=False)
    assert lab_traces(name) == []


def test_cli_up_status_exec_down(underlay_file):
    name = unique_lab_name("c")
    up = cli("up", underlay_file, "--name", name)
    try:
        assert "hs-1" in up.stdout and f"{name}-rt-1" in up.stdout
        info = json.loads(cli("status", name, "--json").stdout)
        assert info["lab"] == name and info["owner"]["kind"] == "keeper" and info["owner"]["alive"]
        assert {n: v["netns"] for n, v in info["nodes"].items()} == {
            n: f"{name}-{n}" for n in ("hs-1", "hs-2", "rt-1", "rt-2")}
        rt1 = info["nodes"]["rt-1"]
        ifs = {i["name"]: i for i in rt1["interfaces"]}
        assert ifs["veth-rt2"]["addresses"] == ["fcf0:0:1:2::1/64"]
        assert ifs["veth-hs"]["state"] == "UP"
        assert {"prio": 999, "lookup": 90, "family": 6, "to": "fcff::/16"} in rt1["rules"]
        assert sids_as_configured(rt1["sids"]) == [
            {"sid": "fcff:1::100/128", "action": "End.DX2", "table": 90, "oif": "veth-hs"}]
        text = cli("status", name).stdout
        assert "fcff:2::/32 via fcf0:0:1:2::2 dev veth-rt2 table 90" in text

        # exec runs inside the node: its interfaces, its routes, its exit status
        ping = cli("exec", name, "hs-1", "--", "ping", "-c1", "-W5", "cafe::254")
        assert "1 received" in ping.stdout
        under = cli("exec", name, "rt-1", "--", "ping", "-c1", "-W5", "fcf0:0:1:2::2")
        assert "1 received" in under.stdout
        links = cli("exec", name, "rt-2", "--", "ip", "-o", "link", "show").stdout
        assert "veth-rt1" in links and "veth-rt2" not in links
        fail = cli("exec", name, "hs-1", "--", "sh", "-c", "exit 7", check=False)
        assert fail.returncode == 7
        keeper = info["owner"]["pid"]
    finally:
        cli("down", name)
    assert lab_traces(name) == []
    assert not linux.pid_alive(keeper)


def test_same_file_twice_side_by_side(underlay_file, cli_lab):
    """--name gives a second copy of the same topology; both work at once."""
    other = unique_lab_name("c")
    cli("up", underlay_file, "--name", other)
    try:
        for name in (cli_lab, other):
            assert "1 received" in cli("exec", name, "hs-1", "--", "ping", "-c1", "-W5", "cafe::254").stdout
        # the taken name is refused with a clear message, the first lab untouched
        again = cli("up", underlay_file, "--name", other, check=False)
        assert again.returncode == 1
        assert f"lab {other!r} is already up" in again.stderr and "Traceback" not in again.stderr
    finally:
        cli("down", other)
    assert lab_traces(other) == []
    assert "1 received" in cli("exec", cli_lab, "hs-1", "--", "ping", "-c1", "-W5", "cafe::254").stdout


def test_many_labs_at_once(underlay_file):
    """Several `testbed up` at the same moment, as pytest -n auto does."""
    names = [unique_lab_name("p") for _ in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", underlay_file, "--name", n],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for n in names]
    try:
        for p in procs:
            assert p.wait(60) == 0, p.stderr.read()
        for n in names:
            assert len([ns for ns in linux.list_netns() if ns.startswith(f"{n}-")]) == 4
    finally:
        cli("down", *names[:1])
        for n in names[1:]:
            cli("down", n, check=False)
    assert all(lab_traces(n) == [] for n in names)


OWNER = """
import sys
from testbed import topology
from testbed.lab import Lab
lab = Lab.up(topology.load(sys.argv[1]), name=sys.argv[2])
print("ready", flush=True)
sys.stdin.read()
"""


def test_stale_lab_reaped_after_sigkill(underlay_file, tmp_path, monkeypatch):
    """An owner killed with SIGKILL leaves its lab; `down --stale` removes it all.
    (Its own state directory: any other testbed process, such as a pytest
    session starting, would rightly reap the stale lab first.  A short one
    under /tmp: the reference datapath's control sockets live there, and a
    Unix socket path has at most 107 bytes.)"""
    private = tempfile.mkdtemp(prefix="tbs", dir="/tmp")
    monkeypatch.setattr(state, "STATE_DIR", private)
    env = {**os.environ, "TESTBED_STATE_DIR": private}
    name = unique_lab_name("s")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, underlay_file, name], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline() == "ready\n"  # handshake: the lab is up
        assert lab_traces(name)
        owner.kill()
        owner.wait()
        info = json.loads(cli("status", name, "--json", env=env).stdout)
        assert info["owner"]["alive"] is False
        out = cli("down", "--stale", env=env).stdout
        assert f"removed stale lab {name}" in out
        assert lab_traces(name) == []
    finally:
        owner.kill()
        state.reap_stale()
        shutil.rmtree(private, ignore_errors=True)


def test_killed_keeper_is_stale_and_up_reaps_it(underlay_file):
    """SIGKILL of a `testbed up` keeper: the next `up` of that name reaps and rebuilds."""
    name = unique_lab_name("k")
    cli("up", underlay_file, "--name", name)
    try:
        keeper = state.load(name).owner.pid
        os.kill(keeper, signal.SIGKILL)
        assert state.wait_exit(keeper, 10)
        cli("up", underlay_file, "--name", name)
        assert state.load(name).owner.pid != keeper
    finally:
        cli("down", name, check=False)
    assert lab_traces(name) == []


def test_kernel_refusal_names_yaml_line_and_removes_partial_lab(tmp_path):
    """A gateway the kernel cannot reach: its message, the route's line, nothing left."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        name: bad
        nodes:
          a:
            interfaces:
              eth0: {addresses: [10.0.0.1/24]}
            routes:
              - {dst: 10.9.0.0/16, via: 10.1.1.1}
          b: {}
        links:
          - [a:eth0, b:eth0]
        """))
    name = unique_lab_name("e")
    with pytest.raises(LabError) as err:
        Lab.up(topology.load(str(bad)), name=name)
    msg = str(err.value)
    assert msg.startswith(f"{bad}:7:")
    assert "route 10.9.0.0/16" in msg and "kernel said:" in msg and "(ENETUNREACH)" in msg
    assert lab_traces(name) == []
    p = cli("up", str(bad), "--name", name, check=False)
    assert p.returncode == 1 and "kernel said" in p.stderr and "Traceback" not in p.stderr
    assert lab_traces(name) == []


def test_without_privileges_one_clear_line(underlay_file):
    """Root without CAP_NET_ADMIN/CAP_SYS_ADMIN (as an unprivileged user would be)."""
    p = subprocess.run(["setpriv", "--bounding-set", "-net_admin,-sys_admin", "--inh-caps", "-all",
                        sys.executable, "-m", "testbed.cli", "up", underlay_file],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "testbed: error: testbed needs root: this process lacks CAP_NET_ADMIN and CAP_SYS_ADMIN, "
        "which creating network namespaces requires; run it as root (for example with sudo)")


def test_topology_error_builds_nothing(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: typo\nnodes:\n  a: {kindd: router}\n")
    p = cli("up", str(bad), check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"{bad}:3:" in p.stderr and "kindd" in p.stderr
    assert "nothing was built" in p.stderr


def test_in_process_lab_sysctl_defaults(make_lab, underlay_file):
    """Defaults: forwarding and seg6_enabled on routers only, no DAD."""
    lab = make_lab(underlay_file)
    rt2 = lab.node("rt-2")
    assert rt2.read_sysctl("net.ipv6.conf.all.forwarding") == "1"
    assert rt2.read_sysctl("net.ipv6.conf.default.seg6_enabled") == "1"
    assert lab.node("hs-1").read_sysctl("net.ipv6.conf.all.forwarding") == "0"
    assert lab.node("hs-1").read_sysctl("net.ipv6.conf.all.accept_dad") == "0"


def test_route_based_encap_reaches_the_end_sid(make_lab, tmp_path):
    """The routed SRv6 path: rt-1 encapsulates hs-1's IPv4 packets towards
    fcff:2::100 (policy rule -> table 90 -> underlay), rt-2's counting End
    SID receives every one of them.  With one segment, Segments Left is 0 at
    the End SID, so the kernel drops each packet and counts it as an error
    (RFC 8754 4.3.1.1).  Needs the host's seg6 lwtunnel (make_lab SKIPs
    with the probe's reason where it is missing)."""
    path = tmp_path / "encap.yaml"
    path.write_text(ROUTE_ENCAP)
    lab = make_lab(str(path))
    rt2 = lab.node("rt-2")
    end_sid = lab.topo.nodes["rt-2"].sids[0]
    before = lab.datapath.sid_counters(rt2, end_sid)
    p = subprocess.run(["ip", "netns", "exec", lab.node("hs-1").name, "ping", "-c3", "-i0.2", "-W1",
                        "10.0.1.2"], capture_output=True, text=True)
    assert p.returncode == 1 and "0 received" in p.stdout
    after = lab.datapath.sid_counters(rt2, end_sid)
    assert after["errors"] - before["errors"] == 3
    assert after["packets"] == before["packets"]


def test_a_record_with_fields_of_a_newer_version_is_read_not_reaped():
    """Labs of two testbed versions share the state directory: keys this
    version does not know are skipped, not taken for a damaged record (a
    damaged record reads as a dead lab, which any process then reaps)."""
    rec = state.Record(name="x", topology="t.yaml", owner=state.Proc(1, 2, "keeper"), netns={"a": "x-a"},
                       uid=1000, run=state.Proc(3, 4, "run"))
    data = json.loads(json.dumps(dataclasses.asdict(rec)))
    back = state.Record.from_json({**data, "added_by_a_later_version": [1, 2]})
    assert back == rec
    old = {k: v for k, v in data.items() if k not in ("uid", "run", "datapath_why")}
    assert state.Record.from_json(old).uid is None  # from before uids: nobody's, not the reader's


def test_route_encap_refused_before_building_where_the_kernel_lacks_seg6(tmp_path):
    """On a host without seg6 lwtunnel, `up` of a topology with a route-based
    `encap seg6` refuses before building anything, in one message: the
    route's file:line:col, the missing option and what to do; the same
    topology without that route comes up on the reference datapath."""
    from testbed.datapaths.kernel import KernelDatapath

    if KernelDatapath.probe().has("encap seg6"):
        pytest.skip(f"kernel {os.uname().release} has seg6 lwtunnel: nothing to refuse; "
                    "boot one without it: testbed vm --kernel ../shared/kernels/no-seg6-6.12/bzImage")
    path = tmp_path / "encap.yaml"
    path.write_text(ROUTE_ENCAP)
    line = ROUTE_ENCAP.splitlines().index(
        """      - {dst: 10.0.1.0/24, dev: veth-rt2, encap: {type: seg6, mode: encap, segs: ["fcff:2::100"]}}""") + 1
    name = unique_lab_name("n")
    p = cli("up", str(path), "--name", name, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    msg = p.stderr.strip()
    assert msg.startswith(f"testbed: error: {path}:{line}:9: rt-1: route 10.0.1.0/24 (encap seg6 mode encap) "
                          "needs the kernel's encap seg6: kernel "), msg
    assert "has no seg6 encapsulation routes" in msg and "CONFIG_IPV6_SEG6_LWTUNNEL" in msg, msg
    assert "testbed vm --kernel" in msg and len(msg.splitlines()) == 1, msg
    assert lab_traces(name) == []
    # the same refusal on either datapath asked for (in this process: each
    # CLI process costs ~30 s of imports in an emulated VM, where CI runs this)
    for datapath in ("ref", "kernel"):
        with pytest.raises(MissingCapability) as exc:
            Lab.up(topology.load(str(path)), name=name, datapath=datapath)
        assert f"testbed: error: {exc.value}" == msg
        assert lab_traces(name) == []
