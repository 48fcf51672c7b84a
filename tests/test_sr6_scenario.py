"""The sr6 series' scenario as topologies (docs/sr6-scenario.md): VRFs in
the topology language, the engine's refusal on a kernel without them, what
`testbed render` writes for them, ping from an interface (`dev`), the
`link` check, and the reference's lookup in the VRF of a device's master
chain.  Building the scenario needs VRF and the sr6 kernel:
tests/test_validate.py runs every shipped topology (and SKIPs these with
the refusal's reason on a kernel without VRF); .ci/vm-scenario.sh runs them
on the sr6 kernel."""
from __future__ import annotations

import ipaddress as ia
from pathlib import Path

import pytest

from testbed import checkmodel as cm
from testbed import topology
from testbed.datapaths.select import host_lacks
from testbed.render import render_script
from testbed.validate import plan
from testbed.validate.run import judge_link, ping_command

ROOT = Path(__file__).resolve().parent.parent
L2VPN = ROOT / "topologies" / "sr6-l2vpn.yaml"


def test_the_scenario_loads_with_its_vrfs_tables_and_checks():
    topo = topology.load(L2VPN)
    assert topo.revision == "sr6"
    vrfs = {n: [(v.name, v.table, v.ports) for v in node.vrfs.values()] for n, node in topo.nodes.items()}
    assert vrfs["rt-2"] == vrfs["rt-4"] == [("vrf-100", 100, ["br0"])]
    assert vrfs["rt-1"] == vrfs["rt-3"] == []
    devs = {n: topo.nodes[n].srl2["sr6-0"] for n in ("rt-1", "rt-2", "rt-3", "rt-4")}
    assert [(d.mode, len(d.segs), d.table) for d in devs.values()] == \
        [("reduced", 1, None), ("full", 2, None), ("full", 2, 200), ("reduced", 3, 200)]
    # the route to each first SID is where its lookup mode looks, a blackhole where it must not
    to_first = sorted((r.table or 254, r.type) for r in topo.nodes["rt-4"].routes if str(r.dst) == "fcff:2::/32")
    assert to_first == [(100, "blackhole"), (200, "unicast")]
    to_first = sorted((r.table or 254, r.type) for r in topo.nodes["rt-2"].routes if str(r.dst) == "fcff:4::/32")
    assert to_first == [(100, "unicast"), (254, "blackhole")]
    kinds = [c.kind for c in topo.checks]
    assert {"ping", "no_ping", "frame", "counters", "link"} <= set(kinds)
    titles = [p.title for p in plan.probes(topo)]
    assert "ping rt-2 dev br0 -> 10.0.0.201 (IPv4)" in titles
    assert "link rt-4 sr6-0: mtu 1406" in titles
    assert sum(t.startswith("no_ping hs-") for t in titles) == 16


def test_a_lab_with_a_vrf_is_refused_where_the_kernel_has_none():
    why = host_lacks(topology.load(L2VPN))
    if why is None:
        pytest.skip("this kernel has VRF devices (CONFIG_NET_VRF): nothing to refuse")
    assert why.startswith(f"{L2VPN}:") and "rt-2: VRF vrf-100 (table 100)" in why
    assert "CONFIG_NET_VRF" in why and "testbed vm --kernel" in why


def test_the_rendered_script_makes_the_vrfs_before_addresses_and_probes_for_them():
    script = render_script(topology.load(L2VPN), with_checks=True)
    make = script.index('link add dev vrf-100 type vrf table 100')
    assert make < script.index('link set dev br0 master vrf-100') < script.index("addr add cafe::202/64 dev br0")
    assert "link add dev vrf-probe type vrf" in script and "CONFIG_NET_VRF" in script
    assert "check_link 'link rt-1 sr6-0: mtu 1446'" in script
    assert '"$rt_2" 10.0.0.201 1 5 replies br0' in script  # check_ping ... DEV: ping -I br0


def test_ping_from_an_interface_and_the_link_check():
    probe = plan.PingProbe("c", "rt-2", "10.0.0.201", ia.ip_address("10.0.0.201"), 1, 5, True, "br0")
    cmd = ping_command(probe)
    assert cmd[cmd.index("-I") + 1] == "br0" and cmd[-1] == "10.0.0.201"
    assert "-I" not in ping_command(plan.PingProbe("c", "a", "b", ia.ip_address("10.0.0.1"), 1, 5, True))
    link = plan.LinkProbe("m", cm.Link("rt-1", "sr6-0", 1446))
    assert judge_link(link, {"mtu": 1446}) == (True, "mtu 1446")
    assert judge_link(link, {"mtu": 1422}) == (False, "mtu 1422, expected 1446")


class FakeLinks:
    """get_links() of a node: sr6-0 (3) in br0 (2) in vrf-100 (5); sr6-1 (4) alone."""

    class Msg(dict):
        def get_attr(self, name):
            return self.get(name)

    class Info(dict):
        def get_attr(self, name):
            return self.get(name)

    def __init__(self):
        links = {2: ("br0", 5, "bridge"), 3: ("sr6-0", 2, "tun"), 4: ("sr6-1", 0, "tun"), 5: ("vrf-100", 0, "vrf")}
        self.links = {i: self.Msg(IFLA_IFNAME=n, IFLA_MASTER=m or None,
                                  IFLA_LINKINFO=self.Info(IFLA_INFO_KIND=k)) for i, (n, m, k) in links.items()}
        self.asked = 0

    def get_links(self, index):
        self.asked += 1
        return [self.links[index]]


def test_the_reference_finds_the_vrf_of_a_devices_master_chain():
    from srl2_ref.routecache import RouteCache

    ipr = FakeLinks()
    routes = RouteCache(ipr, genl=None)  # type: ignore[arg-type]
    assert routes.vrf_of(3) == (5, "vrf-100")  # through its bridge
    assert routes.vrf_of(4) is None
    asked = ipr.asked
    assert routes.vrf_of(3) == (5, "vrf-100") and ipr.asked == asked  # cached until a change
    routes.invalidate()
    routes.vrf_of(3)
    assert ipr.asked > asked
