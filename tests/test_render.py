"""testbed.render: the standalone bash script, the DOT graph and the ASCII
picture.

The script is checked three ways: its text (the commands p2p.yaml implies,
`bash -n`, shellcheck when installed); a real run of a topology that this
kernel can build, inspected through `ip -j` while the script holds the lab
(TESTBED_RENDER_HOLD fifo), then torn down; and the skip protocol (exit 4,
"SKIP: ..." on stderr, nothing left behind) where the kernel lacks what the
topology needs.

Some hosts' kernels have no seg6 lwtunnels (CONFIG_IPV6_SEG6_LWTUNNEL unset:
no route-based `encap seg6`, no seg6local SIDs).  small() uses both; the
runs that only need *a* lab build small() where the host has seg6 and
small() without its seg6 routes elsewhere (`buildable_small`), and the run
that checks the seg6 objects themselves skips there, with the reason, after
checking that the script skips for the same one.  A fake `ip` on PATH that
refuses seg6 routes tests the script's seg6 skips on every host.

Runs that could leave namespaces behind when they go wrong are run in a
private mount namespace with a tmpfs on /run/netns: every namespace the
script pins lives only there, so "nothing left behind" is checked exactly
(even with other labs coming and going) and nothing leaks whatever happens.
"""
from __future__ import annotations

import ipaddress as ia
import os
import pty
import re
import selectors
import shlex
import shutil
import subprocess
import time

import pytest

from testbed import model as m
from testbed import topology
from testbed.render import (KSFT_SKIP, RenderError, ascii, ns_variables, render_dot, render_script,
                            render_svg)
from tests.netsnap import ip_json, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P2P = os.path.join(ROOT, "topologies", "p2p.yaml")
E = m.Endpoint


def A(s: str):
    return ia.ip_interface(s)


def N(s: str):
    return ia.ip_network(s)


def p2p() -> m.Topology:
    return topology.load(P2P)


def small() -> m.Topology:
    """Two hosts and a router that this kernel can build (no srl2, no
    End.DT2U, no VLAN filtering): a bridge, IPv4+IPv6, lo address, tunsrc,
    rules of both families, routes with table/metric/hoplimit/src/blackhole/
    seg6 encap, End.DX2 and End SIDs, sysctls (netns-wide and per interface),
    link MTU and a MAC, parallel links (drawn as arcs)."""
    h1 = m.Node("h1", "host", interfaces={
        "veth0": m.Interface("veth0", [A("10.1.0.1/24"), A("fd00:1::1/64")]),
        "veth1": m.Interface("veth1", mac="02:00:00:00:01:01"),
    }, routes=[
        m.Route(N("fd00:12::/64"), via=ia.ip_address("fd00:1::2")),
        m.Route(N("10.12.0.0/24"), via=ia.ip_address("10.1.0.2")),
    ])
    h2 = m.Node("h2", "host", interfaces={
        "veth0": m.Interface("veth0", [A("10.1.0.2/24"), A("fd00:1::2/64")]),
        "veth1": m.Interface("veth1", [A("10.12.0.2/24"), A("fd00:12::2/64")]),
    })
    r1 = m.Node(
        "r1", "router",
        interfaces={
            "br0": m.Interface("br0", [A("10.9.0.1/24"), A("fd00:9::1/64")]),
            "up0": m.Interface("up0", [A("10.12.0.1/24"), A("fd00:12::1/64")], mac="02:00:00:00:00:12"),
            "lo": m.Interface("lo", [A("fc00:1::1/128")]),
        },
        bridges={"br0": m.Bridge("br0", [m.BridgePort("p1"), m.BridgePort("p2")])},
        routes=[
            m.Route(N("fc00:2::/48"), via=ia.ip_address("fd00:12::2"), table=100, metric=10, hoplimit=33),
            m.Route(N("fd00:77::/64"), dev="up0",
                    encap=m.Seg6Encap("encap", [ia.IPv6Address("fc00:2::100"), ia.IPv6Address("fc00:2::200")])),
            m.Route(N("10.99.0.0/16"), type="blackhole", table=100),
            m.Route(N("10.20.0.0/16"), via=ia.ip_address("10.12.0.2"), src=ia.ip_address("10.12.0.1")),
        ],
        rules=[
            m.Rule(100, prio=1000, to=N("fc00:2::/48")),
            m.Rule(100, prio=1001, src=N("10.1.0.0/24"), family=4),
        ],
        sids=[
            m.Sid(ia.IPv6Network("fc00:1::d2/128"), "End.DX2", oif="ac0", count=True),
            m.Sid(ia.IPv6Network("fc00:1::e/128"), "End", table=100),
        ],
        sysctls={"net.ipv6.seg6_flowlabel": "1", "net.ipv6.conf.up0.accept_ra": "0"},
        tunsrc=ia.IPv6Address("fc00:1::1"),
    )
    links = [
        m.Link(E("h1", "veth0"), E("r1", "p1")),
        m.Link(E("h2", "veth0"), E("r1", "p2")),
        m.Link(E("h2", "veth1"), E("r1", "up0"), mtu=1400),
        m.Link(E("h1", "veth1"), E("r1", "ac0")),
    ]
    return m.Topology("small", {"h1": h1, "h2": h2, "r1": r1}, links,
                      description="render test: two hosts, one router, no srl2")


def without_seg6(topo: m.Topology) -> m.Topology:
    """TOPO without what needs the kernel's seg6 lwtunnels: routes with
    `encap seg6` and SIDs (seg6local routes).  Changes TOPO in place."""
    for node in topo.nodes.values():
        node.routes = [r for r in node.routes if r.encap is None]
        node.sids = []
    return topo


# The kernel probe's features that need CONFIG_IPV6_SEG6_LWTUNNEL, in the
# order a reason is looked for: route-based encapsulation, then seg6local.
# (A probe that does not report "encap seg6" yet still reports End, which
# the same option provides.)
SEG6_FEATURES = ("encap seg6", "End", "End.DX2")


def host_seg6_missing() -> str | None:
    """Why this host's kernel cannot make seg6 routes (route-based encap and
    seg6local SIDs), from the kernel datapath's own probe; None if it can."""
    from testbed.datapaths.kernel import KernelDatapath

    return KernelDatapath.probe().reason(SEG6_FEATURES)


def seg6_skip_reason(missing: str) -> str:
    """A skip's reason: the probe's (the missing option), and where the test runs."""
    hint = "" if "testbed vm" in missing else "; run it on a kernel with it, e.g. testbed vm --kernel IMAGE -- CMD"
    return f"needs the host kernel's seg6 lwtunnels: {missing}{hint}"


def buildable_small() -> m.Topology:
    """small(), without its seg6 routes where the host's kernel cannot make
    them: for tests that need a lab, not seg6."""
    return small() if host_seg6_missing() is None else without_seg6(small())


# What a rendered script says when the kernel has no seg6 lwtunnels.
NO_SEG6_SKIP = (r"SKIP: this kernel has no (seg6 lwtunnel encapsulation|seg6local routes) "
                r"\(CONFIG_IPV6_SEG6_LWTUNNEL\): Error: lwt encapsulation type not supported; "
                r"run it on a kernel with it \(e\.g\. testbed vm --kernel IMAGE -- bash \S+\.sh\)")


def write(tmp_path, text: str, name: str = "lab.sh") -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def kernel_has_srl2() -> bool:
    """Ask the kernel (in a throw-away netns) whether it knows the srl2 link kind."""
    r = subprocess.run(["unshare", "--net", "ip", "link", "add", "x", "type", "srl2"],
                       capture_output=True, text=True)
    return "Unknown device type" not in r.stderr


def run_isolated(script: str, *args: str, timeout: float = 120, env: dict | None = None, setsid: bool = False):
    """Run SCRIPT in a private mount namespace whose /run/netns is a fresh
    tmpfs; returns (rc, stdout, stderr, namespaces still pinned at exit).
    `setsid`: the script leads a process group of its own (a test that
    signals it finds it as its group's leader)."""
    wrapper = ('mkdir -p /run/netns && mount -t tmpfs testbed-render-test /run/netns || exit 99\n'
               + ('setsid -w ' if setsid else '') + 'bash "$0" "$@" </dev/null; rc=$?\n'
               'echo "@@left: $(ls -A /run/netns | tr "\\n" " ")" >&2\n'
               'exit $rc\n')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapper, script, *args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode != 99, r.stderr
    mo = re.search(r"^@@left: (.*)$", r.stderr, re.M)
    assert mo, r.stderr
    left = mo.group(1).split()
    return r.returncode, r.stdout, r.stderr[:mo.start()], left


def lab_vars(stdout: str) -> dict[str, str]:
    """The NODE_VAR=NETNS lines printed after "lab up"."""
    return dict(re.findall(r"^(\w+)=(\S+)", stdout, re.M))


# ---- text -------------------------------------------------------------------


def test_p2p_script_has_the_commands_in_engine_order(tmp_path):
    script = render_script(p2p())
    assert script.startswith("#!/bin/bash\n")
    # header: description and picture
    assert "srl2 pseudowire between two routers" in script
    assert re.search(r"^# .*\[hs-1\] \|veth0-+veth-hs\| \(rt-1\) \|", script, re.M)
    # setup_ns-style names and the trap
    for var, prefix in [("hs_1", "hs-1"), ("hs_2", "hs-2"), ("rt_1", "rt-1"), ("rt_2", "rt-2")]:
        assert f"\n{var}={prefix}-$(mktemp -u XXXXXX)\n" in script
    assert "\ntrap cleanup EXIT\n" in script
    expected = [
        'add_ns "$hs_1"',
        'run ip netns exec "$rt_1" sysctl -wq \\\n\tnet.ipv6.conf.all.accept_dad=0 \\\n'
        '\tnet.ipv6.conf.default.accept_dad=0 \\\n\tnet.ipv4.ip_forward=1 \\\n'
        '\tnet.ipv6.conf.all.forwarding=1 \\\n\tnet.ipv6.conf.all.seg6_enabled=1 \\\n'
        '\tnet.ipv6.conf.default.seg6_enabled=1\n',
        'run ip -n "$rt_1" link set dev lo up',
        'run ip -n "$hs_1" link add dev veth0 type veth peer name veth-hs netns "$rt_1"',
        'run ip -n "$rt_1" link add dev veth-rt2 type veth peer name veth-rt1 netns "$rt_2"',
        'run ip -n "$rt_1" link add dev br0 type bridge\n',
        'run ip netns exec "$rt_1" sysctl -ewq net/ipv6/conf/veth-hs/disable_ipv6=1',
        'run ip -n "$rt_1" link set dev veth-hs master br0',
        'run ip -n "$rt_1" link add dev srl2-0 type srl2 segs fcff:2::d20',
        'run ip netns exec "$rt_1" sysctl -ewq net/ipv6/conf/srl2-0/disable_ipv6=1',
        'run ip -n "$rt_1" link set dev srl2-0 master br0',
        'run ip -n "$rt_1" -4 addr add 10.0.0.254/24 dev br0\n',
        'run ip -n "$rt_1" -6 addr add cafe::254/64 dev br0 nodad',
        'run ip -n "$rt_1" -6 rule add to fcff::/16 lookup 90 prio 999',
        'run ip -n "$rt_1" -6 route add fcff:2::/32 via fcf0:0:1:2::2 table 90',
        'run ip -n "$rt_1" -6 route add fcff:1::d20 table 90 encap seg6local action End.DT2U '
        'l2dev srl2-0 dev veth-rt2',
        # up only once the route to its first SID exists (no tx_carrier_errors
        # from what the bridge floods to it meanwhile), as the engine does
        'run ip -n "$rt_1" link set dev srl2-0 up',
    ]
    at = 0
    for e in expected:
        i = script.find(e, at)
        assert i >= 0, f"missing or out of order: {e!r}"
        at = i
    # hosts get no router sysctls
    hs1 = script[script.index('run ip netns exec "$hs_1"'):]
    assert "forwarding" not in hs1[:hs1.index("link set dev lo up")]
    # the YAML places are in the comments
    assert re.search(r"^# rt-1: SID fcff:1::d20/128 End\.DT2U \(.*p2p\.yaml:\d+:\d+\)$", script, re.M)
    # the srl2 guard comes before any node namespace
    assert script.index('skip "this kernel has no srl2 link kind"') < script.index('add_ns "$hs_1"')
    assert "exit 4" in script or "ksft_skip=4" in script
    path = write(tmp_path, script)
    subprocess.run(["bash", "-n", path], check=True)
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", path], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_small_script_text(tmp_path):
    script = render_script(small())
    for e in [
        'run ip -n "$h2" link add dev veth1 mtu 1400 type veth peer name up0 mtu 1400 '
        'address 02:00:00:00:00:12 netns "$r1"',
        'run ip -n "$h1" link add dev veth1 address 02:00:00:00:01:01 type veth peer name ac0 netns "$r1"',
        'run ip -n "$r1" -6 addr add fc00:1::1/128 dev lo nodad',
        'run ip -n "$r1" sr tunsrc set fc00:1::1',
        'run ip -n "$r1" -4 rule add from 10.1.0.0/24 lookup 100 prio 1001',
        'run ip -n "$r1" -6 route add fc00:2::/48 via fd00:12::2 table 100 metric 10 hoplimit 33',
        'run ip -n "$r1" -6 route add fd00:77::/64 dev up0 encap seg6 mode encap segs fc00:2::100,fc00:2::200',
        'run ip -n "$r1" -4 route add blackhole 10.99.0.0/16 table 100',
        'run ip -n "$r1" -4 route add 10.20.0.0/16 via 10.12.0.2 src 10.12.0.1',
        'run ip -n "$r1" -6 route add fc00:1::d2 encap seg6local action End.DX2 oif ac0 count dev ac0',
        'run ip -n "$r1" -6 route add fc00:1::e table 100 encap seg6local action End dev up0',
    ]:
        assert e in script, e
    # netns-wide sysctls with the namespace, per-interface ones after the interfaces
    assert script.index("net.ipv6.seg6_flowlabel=1") < script.index("link add dev veth0")
    assert script.index("net.ipv6.conf.up0.accept_ra=0") > script.index("peer name up0")
    # the seg6 probes (its encap route, its SIDs), no srl2 probe or guard;
    # no probe at all when nothing needs one: test_seg6_probes_follow_the_topology
    assert "probe_srl2" not in script and "type srl2" not in script
    assert "\nprobe_encap encap\n" in script and "\nprobe_seg6local\n" in script
    subprocess.run(["bash", "-n", write(tmp_path, script)], check=True)


def with_encap_mode(topo: m.Topology, mode: str) -> m.Topology:
    """TOPO with every encap route in MODE.  Changes TOPO in place."""
    for node in topo.nodes.values():
        for r in node.routes:
            if r.encap is not None:
                r.encap.mode = mode  # type: ignore[assignment]
    return topo


def routes_only(topo: m.Topology) -> m.Topology:
    """TOPO without its SIDs (seg6 encap routes only)."""
    for node in topo.nodes.values():
        node.sids = []
    return topo


def sids_only(topo: m.Topology) -> m.Topology:
    """TOPO without its encap routes (seg6local SIDs only)."""
    for node in topo.nodes.values():
        node.routes = [r for r in node.routes if r.encap is None]
    return topo


def test_seg6_probes_follow_the_topology(tmp_path):
    """The script probes, before the first namespace of the lab, each encap
    mode its routes use and seg6local if it has SIDs; nothing else."""
    def probes(topo: m.Topology) -> list[str]:
        script = render_script(topo)
        subprocess.run(["bash", "-n", write(tmp_path, script)], check=True)
        found = re.findall(r"^(probe_encap \S+|probe_seg6local)$", script, re.M)
        first_ns = script.index("\nadd_ns ")
        assert all(script.index(f"\n{p}\n") < first_ns for p in found)
        return found

    assert probes(small()) == ["probe_encap encap", "probe_seg6local"]
    assert probes(topology.load(os.path.join(ROOT, "topologies", "mesh4.yaml"))) == [
        "probe_encap l2encap.red", "probe_seg6local"]
    two = small()
    two.nodes["h1"].routes.append(m.Route(N("fd00:78::/64"), dev="veth0",
                                          encap=m.Seg6Encap("inline", [ia.IPv6Address("fc00:2::1")])))
    assert probes(two) == ["probe_encap inline", "probe_encap encap", "probe_seg6local"]  # h1's first
    assert probes(routes_only(small())) == ["probe_encap encap"]
    assert probes(sids_only(small())) == ["probe_seg6local"]
    # nothing of seg6 used: no seg6 probe, no probe namespace at all
    script = render_script(without_seg6(small()))
    assert "probe_encap" not in script and "probe_seg6local" not in script and "srl2probe" not in script
    if shutil.which("shellcheck"):
        for topo in (small(), two):
            r = subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", write(tmp_path, render_script(topo))],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stdout


def test_vlans_and_bridge_ports():
    topo = small()
    br = topo.nodes["r1"].bridges["br0"]
    br.vlan_filtering = True
    br.ports = [m.BridgePort("p1", pvid=10), m.BridgePort("p2", vlans=[20, 30], pvid=10)]
    script = render_script(topo)
    assert 'run ip -n "$r1" link add dev br0 type bridge vlan_filtering 1' in script
    assert 'run bridge -n "$r1" vlan add dev p1 vid 10 pvid untagged' in script
    assert 'run bridge -n "$r1" vlan add dev p2 vid 20\n' in script
    assert 'run bridge -n "$r1" vlan add dev p2 vid 30\n' in script
    assert "skip \"this kernel has no bridge VLAN filtering\"" in script
    assert "for cmd in ip sysctl mktemp bridge; do" in script


def test_ns_variables_are_unique_shell_names():
    nodes = {n: m.Node(n) for n in ["hs-1", "hs_1", "1st", "KEEP", "run", "if", "a.b"]}
    v = ns_variables(m.Topology("t", nodes))
    assert v["hs-1"] == "hs_1" and v["hs_1"] == "hs_1_2"
    assert v["1st"] == "ns_1st" and v["KEEP"] == "ns_KEEP" and v["run"] == "ns_run" and v["if"] == "ns_if"
    assert v["a.b"] == "a_b"
    assert all(re.fullmatch(r"[a-z_][A-Za-z0-9_]*", x) for x in v.values())
    assert len(set(v.values())) == len(v)


def test_quoting_of_odd_names(tmp_path):
    topo = small()
    topo.description = "it's a $(test) `lab`\nsecond line"
    topo.name = "we'ird $name"
    script = render_script(topo)
    assert "# it's a $(test) `lab`\n# second line\n" in script
    subprocess.run(["bash", "-n", write(tmp_path, script)], check=True)
    assert "echo 'lab up: we'\"'\"'ird $name'" in script


# ---- ASCII, DOT, SVG --------------------------------------------------------


def test_ascii_p2p():
    pic = ascii.picture(p2p())
    lines = pic.splitlines()
    assert len(lines) == 3
    assert re.match(r"\| \[hs-1\] \|veth0-+veth-hs\| \(rt-1\) \|veth-rt2-+veth-rt1\| \(rt-2\) \|"
                    r"veth-hs-+veth0\| \[hs-2\] \|$", lines[1][lines[1].index("|"):])
    text = ascii.render(p2p(), netns={"rt-1": "rt-1-abc"})
    assert "rt-1 (router)  netns rt-1-abc" in text
    assert "srl2 segs fcff:2::d20 => rt-2 End.DT2U" in text


def test_ascii_arcs_and_fallback():
    pic = ascii.picture(small())
    # h1 - r1 - h2 in a row; the two parallel links as arcs below the boxes
    assert "veth1" in pic and "up0" in pic and "ac0" in pic
    rows = pic.splitlines()
    assert len(rows) > 3 and all(len(r) < 120 for r in rows)
    # a triangle: one link is not between row neighbours
    tri = m.Topology("tri", {n: m.Node(n) for n in "abc"}, [
        m.Link(E("a", "e0"), E("b", "e0")), m.Link(E("b", "e1"), E("c", "e0")),
        m.Link(E("c", "e1"), E("a", "e1"))])
    pic = ascii.picture(tri)
    assert "e1" in pic.splitlines()[-1] or "e1" in pic.splitlines()[-2]
    assert ascii.picture(tri, max_width=10).splitlines()[-1].strip() == "c:e1 ---- a:e1"
    assert ascii.picture(m.Topology("empty", {})) == "(no nodes)"


def test_dot_p2p():
    dot = render_dot(p2p())
    assert dot.startswith("//") and "graph \"p2p\" {" in dot
    assert '"hs-1" [shape=box, label="hs-1"];' in dot
    assert re.search(r'"rt-1" \[shape=ellipse, label="rt-1\\nfcff:1::d20 End\.DT2U srl2-0\\l"\];', dot)
    assert '"hs-1" -- "rt-1" [taillabel="veth0", headlabel="veth-hs"' in dot
    assert re.search(r'"rt-1" -- "rt-2" \[style=dashed, dir=forward.*label="srl2-0 -> fcff:2::d20"', dot)
    assert re.search(r'"rt-2" -- "rt-1" \[style=dashed, dir=forward.*label="srl2-0 -> fcff:1::d20"', dot)


def test_dot_pseudowire_to_unknown_sid():
    topo = p2p()
    topo.nodes["rt-2"].sids = []
    dot = render_dot(topo)
    assert '"?fcff:2::d20" [shape=plaintext' in dot
    assert re.search(r'"rt-1" -- "\?fcff:2::d20" \[style=dashed', dot)


def test_svg():
    if not shutil.which("dot"):
        with pytest.raises(RenderError, match="graphviz"):
            render_svg(p2p())
        return
    svg = render_svg(p2p())
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"rt&#45;1" in svg


def test_svg_without_graphviz(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match="graphviz is not installed"):
        render_svg(p2p())
    with pytest.raises(RenderError, match="cannot run"):
        render_svg(p2p(), dot="/nonexistent/dot")


# ---- real runs --------------------------------------------------------------


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """stdout of PROC until PATTERN matches (or PROC exits, or TIMEOUT)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out.decode(errors="replace"), re.M):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def _sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", key],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.usefixtures("need_root")
@pytest.mark.parametrize("seg6", [True, False], ids=["small", "small-without-seg6"])
def test_small_lab_runs_and_is_what_the_topology_says(tmp_path, seg6):
    """small() as the topology says; and small() without its seg6 routes
    (encap route, SIDs), which builds on every host, for all the rest."""
    topo = small() if seg6 else without_seg6(small())
    path = write(tmp_path, render_script(topo))
    missing = host_seg6_missing()
    if seg6 and missing:
        # The script must see what the probe sees, skip, and leave nothing.
        rc, out, err, left = run_isolated(path)
        assert (rc, left) == (KSFT_SKIP, []), err
        assert re.fullmatch(NO_SEG6_SKIP, err.strip()), err
        pytest.skip(seg6_skip_reason(missing))
    fifo = str(tmp_path / "hold")
    os.mkfifo(fifo)
    proc = subprocess.Popen(["bash", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "TESTBED_RENDER_HOLD": fifo})
    names: dict[str, str] = {}
    try:
        out = _read_until(proc, r"^r1=\S+", timeout=120)
        assert "lab up: small" in out, (out, proc.poll(), proc.stderr.read().decode() if proc.poll() else "")
        v = ns_variables(topo)
        got = lab_vars(out)
        names = {node: got[v[node]] for node in topo.nodes}
        assert all(n.startswith(f"{node}-") for node, n in names.items())
        assert all(os.path.exists(f"/run/netns/{n}") for n in names.values())
        h1, r1 = names["h1"], names["r1"]

        snap = {node: snapshot(ns) for node, ns in names.items()}
        rl = snap["r1"]["links"]
        assert rl["br0"]["kind"] == "bridge" and rl["br0"]["up"]
        assert rl["p1"]["master"] == "br0" and rl["p2"]["master"] == "br0"
        assert rl["up0"]["mtu"] == 1400 and snap["h2"]["links"]["veth1"]["mtu"] == 1400
        assert rl["ac0"]["kind"] == "veth" and rl["ac0"]["master"] is None
        # every link the topology made is up (a kernel with built-in tunnel
        # drivers also has their fallback devices in every netns, down: sit0,
        # tunl0, ip6tnl0 on the srl2 RFC kernel)
        made = {node: {e.ifname for _, e, _ in topo.veth_ends(node)} | set(topo.nodes[node].bridges) | {"lo"}
                for node in topo.nodes}
        assert all(snap[node]["links"][ifname]["up"] for node in topo.nodes for ifname in made[node]), snap
        macs = {l["ifname"]: l["address"] for l in ip_json(r1, "link", "show")}
        assert macs["up0"] == "02:00:00:00:00:12"
        assert {l["ifname"]: l["address"] for l in ip_json(h1, "link", "show")}["veth1"] == "02:00:00:00:01:01"

        def addrs(node):
            return {(a["ifname"], a["address"]) for a in snap[node]["addresses"]}
        assert {("veth0", "10.1.0.1/24"), ("veth0", "fd00:1::1/64")} <= addrs("h1")
        assert {("br0", "10.9.0.1/24"), ("br0", "fd00:9::1/64"), ("up0", "fd00:12::1/64"),
                ("lo", "fc00:1::1/128")} <= addrs("r1")

        routes = snap["r1"]["routes"]

        def route(**kw):
            found = [r for r in routes if all(r.get(k) == x for k, x in kw.items())]
            assert len(found) == 1, (kw, routes)
            return found[0]
        r = route(dst="fc00:2::/48", table="100")
        assert r["gateway"] == "fd00:12::2" and r["metric"] == 10 and r["metrics"] == {"hoplimit": 33}
        route(dst="10.99.0.0/16", table="100", type="blackhole")
        assert route(dst="10.20.0.0/16")["prefsrc"] == "10.12.0.1"
        if seg6:
            r = route(dst="fd00:77::/64")
            assert (r["encap"], r["mode"], r["segs"], r["dev"]) == ("seg6", "encap", ["fc00:2::100", "fc00:2::200"],
                                                                    "up0")
            r = route(dst="fc00:1::d2")
            assert (r["encap"], r["action"], r["oif"], r["dev"]) == ("seg6local", "End.DX2", "ac0", "ac0")
            r = route(dst="fc00:1::e", table="100")
            assert (r["action"], r["dev"]) == ("End", "up0")
        else:
            assert not any("encap" in r for r in routes), routes
        assert any(r["dst"] == "fd00:12::/64" and r.get("gateway") == "fd00:1::2" for r in snap["h1"]["routes"])

        rules = snap["r1"]["rules"]
        assert {"priority": 1000, "src": "all", "dst": "fc00:2::", "dstlen": 48, "table": "100",
                "family": 6} in rules
        assert {"priority": 1001, "src": "10.1.0.0", "srclen": 24, "table": "100", "family": 4} in rules

        for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.all.seg6_enabled",
                    "net.ipv6.conf.default.seg6_enabled", "net.ipv6.seg6_flowlabel"]:
            assert _sysctl(r1, key) == "1", key
        assert _sysctl(r1, "net.ipv6.conf.up0.accept_ra") == "0"
        assert _sysctl(r1, "net.ipv6.conf.up0.seg6_enabled") == "1"  # inherited from default
        assert _sysctl(h1, "net.ipv6.conf.all.forwarding") == "0"
        assert _sysctl(h1, "net.ipv6.conf.veth0.accept_dad") == "0"
        tunsrc = subprocess.run(["ip", "-n", r1, "sr", "tunsrc", "show"], capture_output=True, text=True).stdout
        assert "fc00:1::1" in tunsrc

        # and it forwards: h1 -> h2 through r1's bridge
        for dst in ["10.1.0.2", "fd00:1::2"]:
            subprocess.run(["ip", "netns", "exec", h1, "ping", "-c", "1", "-W", "5", dst],
                           check=True, capture_output=True)

        with open(fifo, "w") as f:
            f.write("\n")
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
        assert not any(os.path.exists(f"/run/netns/{n}") for n in names.values())
    finally:
        if proc.poll() is None:
            proc.terminate()  # the script's TERM trap tears the lab down
            proc.wait(timeout=60)
        for n in names.values():
            assert not os.path.exists(f"/run/netns/{n}"), f"left behind: {n}"


@pytest.mark.usefixtures("need_root")
def test_p2p_skips_on_a_kernel_without_srl2(tmp_path):
    if kernel_has_srl2():
        pytest.skip("this kernel has srl2; the skip path is not taken")
    rc, out, err, left = run_isolated(write(tmp_path, render_script(p2p())))
    assert rc == KSFT_SKIP == 4
    assert err.strip() == "SKIP: this kernel has no srl2 link kind"
    assert "lab up" not in out
    assert left == []


@pytest.mark.usefixtures("need_root")
def test_dt2u_without_srl2_device_probes_dt2u(tmp_path):
    """End.DT2U on a plain bridge port: no srl2 probe, an End.DT2U probe."""
    topo = small()
    topo.nodes["r1"].sids.append(m.Sid(ia.IPv6Network("fc00:1::d20/128"), "End.DT2U", l2dev="p1"))
    script = render_script(topo)
    assert "probe_srl2" not in script and "probe_dt2u" in script
    rc, out, err, left = run_isolated(write(tmp_path, script))
    assert left == []
    if rc == 0:
        pytest.skip("this kernel and ip know End.DT2U")
    assert rc == KSFT_SKIP
    if host_seg6_missing():
        # no seg6 lwtunnels at all: the seg6 probes, before End.DT2U's, say so
        assert re.fullmatch(NO_SEG6_SKIP, err.strip()), err
        pytest.skip(seg6_skip_reason(host_seg6_missing() or ""))
    assert re.fullmatch(r"SKIP: (ip \(iproute2\) does not know|this kernel has no) seg6local End\.DT2U: .*",
                        err.strip(), re.S)


def fake_ip(tmp_path, error: str) -> dict[str, str]:
    """An environment whose `ip` refuses every seg6 route (encap seg6 or
    seg6local) with ERROR on stderr, exit 2, as ip reports a refusal (the
    kernel's or its own); any other command goes to the real ip."""
    real = shutil.which("ip")
    assert real
    d = tmp_path / "bin"
    d.mkdir()
    fake = d / "ip"
    fake.write_text('#!/bin/bash\n'
                    'case " $* " in\n'
                    f'*" encap seg6 "*|*" encap seg6local "*) echo {shlex.quote(error)} >&2; exit 2 ;;\n'
                    'esac\n'
                    f'exec {shlex.quote(real)} "$@"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{d}:{os.environ['PATH']}"}


LWT = "Error: lwt encapsulation type not supported."


@pytest.mark.usefixtures("need_root")
@pytest.mark.parametrize("topo, error, expected", [
    (small, LWT, r"SKIP: this kernel has no seg6 lwtunnel encapsulation \(CONFIG_IPV6_SEG6_LWTUNNEL\): "
                 r"Error: lwt encapsulation type not supported; run it on a kernel with it "
                 r"\(e\.g\. testbed vm --kernel IMAGE -- bash /\S+/lab\.sh\)"),
    (lambda: sids_only(small()), LWT,
     r"SKIP: this kernel has no seg6local routes \(CONFIG_IPV6_SEG6_LWTUNNEL\): "
     r"Error: lwt encapsulation type not supported; run it on a kernel with it "
     r"\(e\.g\. testbed vm --kernel IMAGE -- bash /\S+/lab\.sh\)"),
    (lambda: with_encap_mode(small(), "l2encap.red"), 'Error: argument "l2encap.red" is wrong: "mode" value is invalid',
     r'SKIP: ip \(iproute2\) does not know encap seg6 mode l2encap\.red: '
     r'Error: argument "l2encap\.red" is wrong: "mode" value is invalid'),
    (lambda: with_encap_mode(small(), "l2encap.red"), "RTNETLINK answers: Invalid argument",
     r"SKIP: this kernel has no encap seg6 mode l2encap\.red: RTNETLINK answers: Invalid argument"),
    (lambda: sids_only(small()), 'Error: argument "seg6local" is wrong: "encap type" value is invalid',
     r'SKIP: ip \(iproute2\) does not know encap seg6local: '
     r'Error: argument "seg6local" is wrong: "encap type" value is invalid'),
], ids=["no-lwtunnel-encap", "no-lwtunnel-seg6local", "mode-unknown-to-ip", "mode-unknown-to-kernel",
        "seg6local-unknown-to-ip"])
def test_seg6_refusals_skip_with_the_reason(tmp_path, topo, error, expected):
    """Whatever this host's kernel has: an ip that refuses seg6 routes as a
    kernel without CONFIG_IPV6_SEG6_LWTUNNEL (or an older ip or kernel)
    does makes the script skip before anything is built, one line naming
    what is missing, the probe namespace removed."""
    rc, out, err, left = run_isolated(write(tmp_path, render_script(topo())), env=fake_ip(tmp_path, error))
    assert (rc, left, out) == (KSFT_SKIP, [], ""), err
    assert re.fullmatch(expected, err.strip()), err


@pytest.mark.usefixtures("need_root")
def test_a_signal_while_probing_leaves_nothing(tmp_path):
    """SIGTERM while the seg6 probe runs: exit 143, probe namespace gone.
    The fake ip sends it to the script (its process group leader, by
    setsid), then answers; bash runs the trap once the command is done."""
    env = fake_ip(tmp_path, LWT)
    fake = tmp_path / "bin" / "ip"
    fake.write_text(fake.read_text().replace(
        "echo ", 'kill -TERM "$(ps -o pgid= -p $$ | tr -d " ")"; echo ', 1))
    path = write(tmp_path, render_script(small()))
    rc, out, err, left = run_isolated(path, env=env, setsid=True)
    assert (rc, left, out) == (143, [], ""), err
    assert "srl2probe" not in err  # no complaint from the cleanup


@pytest.mark.usefixtures("need_root")
def test_vlan_filtering_runs_or_skips(tmp_path):
    topo = buildable_small()
    br = topo.nodes["r1"].bridges["br0"]
    br.vlan_filtering = True
    br.ports = [m.BridgePort("p1", pvid=10), m.BridgePort("p2", vlans=[20], pvid=10)]
    rc, out, err, left = run_isolated(write(tmp_path, render_script(topo)))
    assert left == []
    if rc == KSFT_SKIP:
        assert err.strip() == "SKIP: this kernel has no bridge VLAN filtering"
    else:
        assert rc == 0, err
        assert "lab up: small" in out


@pytest.mark.usefixtures("need_root")
def test_a_failing_command_is_named_and_the_lab_removed(tmp_path):
    topo = buildable_small()
    # a gateway that is on no connected network: the kernel refuses the route
    topo.nodes["h2"].routes.append(m.Route(N("fd00:88::/64"), via=ia.ip_address("fd00:99::1")))
    path = write(tmp_path, render_script(topo))
    rc, out, err, left = run_isolated(path)
    assert rc == 1
    mo = re.search(r"^FAIL: line (\d+): ip -n h2-\w{6} -6 route add fd00:88::/64 via fd00:99::1 \(exit 2\)$",
                   err, re.M)
    assert mo, err
    line = open(path).read().splitlines()[int(mo.group(1)) - 1]
    assert line == 'run ip -n "$h2" -6 route add fd00:88::/64 via fd00:99::1'
    assert "lab up" not in out
    assert left == []


@pytest.mark.usefixtures("need_root")
def test_keep_leaves_the_lab(tmp_path):
    rc, out, err, left = run_isolated(write(tmp_path, render_script(buildable_small())), "--keep")
    assert rc == 0, err
    names = sorted(lab_vars(out).values())
    assert sorted(left) == names and len(names) == 3
    assert "kept; tear down with:" in out


@pytest.mark.usefixtures("need_root")
def test_on_a_terminal_it_waits_for_enter(tmp_path):
    """stdin a TTY: build, summary, wait for Enter, tear down."""
    path = write(tmp_path, render_script(buildable_small()))
    master, slave = pty.openpty()
    wrapper = ('mkdir -p /run/netns && mount -t tmpfs testbed-render-test /run/netns || exit 99\n'
               'bash "$0"; rc=$?; echo "@@left: $(ls -A /run/netns | tr "\\n" " ")"; exit $rc\n')
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapper, path],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    buf = b""
    try:
        sel = selectors.DefaultSelector()
        sel.register(master, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        sent = False
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            buf += chunk
            if not sent and b"Press Enter to tear the lab down" in buf:
                assert b"lab up: small" in buf
                os.write(master, b"\n")
                sent = True
        assert proc.wait(timeout=60) == 0, buf.decode(errors="replace")
        assert sent, buf.decode(errors="replace")
        assert re.search(rb"@@left: *\r?$", buf, re.M), buf.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.usefixtures("need_root")
def test_p2p_without_srl2_runs(tmp_path):
    """p2p.yaml as loaded (YAML places, loader-normalized interfaces), minus
    the srl2 devices and End.DT2U SIDs this kernel lacks: the rest builds."""
    topo = p2p()
    for node in topo.nodes.values():
        for name in node.srl2:
            node.interfaces.pop(name, None)
            for br in node.bridges.values():
                br.ports = [p for p in br.ports if p.name != name]
        node.srl2 = {}
        node.sids = []
    assert not topo.needs_srl2
    script = render_script(topo)
    # No srl2 probe, guard or command (the YAML places quoted in comments
    # name the file, whose path may well contain "srl2": srl2-testbed/...).
    code = "\n".join(line.split("#", 1)[0] for line in script.split("# ---- requirements")[1].splitlines())
    assert "srl2" not in code
    rc, out, err, left = run_isolated(write(tmp_path, script))
    assert rc == 0, err
    assert out.startswith("lab up: p2p\n")
    assert set(lab_vars(out)) == {"hs_1", "hs_2", "rt_1", "rt_2"}
    assert left == []


SR6_DEVICE = """\
name: sr6r
revision: sr6
nodes:
  rt-1:
    kind: router
    hmac_keys: {1: {secret: "s3cret x", algorithm: sha256}}
    srl2:
      s0: {segs: ["fcff:2::e", "fcff:3::d20"], mode: reduced, table: 100, hmac: 1}
      s1: {segs: ["fcff:2::d20"]}
"""


def test_sr6_devices_in_the_revisions_ip_syntax():
    """A topology of the second revision renders `type sr6 mode M segs ...
    table N hmac K` (mode always: sr6 requires it), sets its HMAC keys with
    `ip sr hmac set` fed the secret on stdin, and probes the sr6 link kind;
    the same devices without revision-2 settings render as srl2 by default."""
    from testbed import topology

    script = render_script(topology.loads(SR6_DEVICE, "sr6r.yaml"))
    assert 'link add dev s0 type sr6 mode reduced segs fcff:2::e,fcff:3::d20 table 100 hmac 1' in script
    assert 'link add dev s1 type sr6 mode full segs fcff:2::d20' in script
    assert "printf '%s\\n' 's3cret x' | ip -n \"$rt_1\" sr hmac set 1 sha256" in script
    assert 'skip "this kernel has no sr6 link kind"' in script
    assert "type sr6 mode full segs fc00::1" in script  # the probe
    plain = render_script(topology.loads(SR6_DEVICE.replace("revision: sr6\n", "")
                                         .replace(", mode: reduced, table: 100, hmac: 1", ""), "p.yaml"))
    assert "type srl2 segs fcff:2::e,fcff:3::d20" in plain and "type sr6" not in plain
