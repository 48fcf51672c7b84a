"""The commands that build a topology, in the engine's order (testbed/lab.py
builds the same lab through rtnetlink): sections of blocks of iproute2
command lines, each block commented with the YAML place that asked for
it.  testbed/render/__init__.py puts them into lab.sh.j2."""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from testbed import defaults, model
from testbed.render.shell import Var, sh
from testbed.render.shell import word as _word

# Names the script uses for itself; a node variable never takes one of these.
_RESERVED = {
    "KEEP", "WAIT", "NS_CREATED", "PROBE_NS", "ns", "rc", "out", "probe", "arg",
    "run", "skip", "fail", "cleanup", "add_ns", "probe_srl2", "probe_dt2u",
    "probe_encap", "probe_seg6local", "no_seg6",
    "ksft_pass", "ksft_fail", "ksft_skip", "PATH", "HOME", "IFS", "PWD", "SHELL",
    "checks_rc",  # and the checks' functions (checks.sh.j2): bash keeps functions apart
}


class RenderError(Exception):
    """The topology cannot be rendered (or graphviz is missing for SVG)."""


def ns_variables(topo: model.Topology) -> dict[str, str]:
    """node name -> the shell variable that holds its namespace name
    (hs-1 -> hs_1), unique and never one of the script's own names."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in topo.nodes:
        v = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if not v or v[0].isdigit() or v in _RESERVED or keyword.iskeyword(v) or v.isupper():
            v = "ns_" + v
        base, i = v, 2
        while v in used:
            v = f"{base}_{i}"
            i += 1
        used.add(v)
        out[name] = v
    return out


def ns_prefix(node: str) -> str:
    """The part of a namespace name before the random suffix."""
    p = re.sub(r"[^A-Za-z0-9_.-]", "-", node).strip("-.") or "node"
    return p



# ---- the plan ---------------------------------------------------------------


@dataclass
class Block:
    """Commands for one object of the topology, with a comment saying which."""

    comment: str
    commands: list[str] = field(default_factory=list)


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, comment: str, *commands: str) -> Block:
        b = Block(comment, list(commands))
        self.blocks.append(b)
        return b


def _at(where: model.Where) -> str:
    return "" if where == model.NOWHERE else f" ({where})"


def _dst(net: model.Network) -> str:
    return "default" if net.prefixlen == 0 else str(net)


def _fam(version: int) -> str:
    return "-6" if version == 6 else "-4"


class Plan:
    """The sections of commands for one topology (`build()`), the namespace
    variable of each node, and whether the `bridge` command is needed."""

    def __init__(self, topo: model.Topology, revision=None):
        from testbed import revisions

        self.topo = topo
        # the series' revision whose `ip` syntax the devices are written in
        self.revision = revision or revisions.get("srl2")
        self.var = ns_variables(topo)
        self.sections: list[Section] = []
        self.needs_bridge_cmd = False

    def ip(self, node: str, *args: object) -> str:
        return "run " + sh("ip", "-n", Var(self.var[node]), *args)

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s

    def build(self) -> list[Section]:
        topo = self.topo
        nodes = list(topo.nodes.values())

        s = self.section("namespaces and sysctls")
        for node in nodes:
            b = s.add(f"{node.name} ({node.kind}){_at(node.where)}",
                      "add_ns " + _word(Var(self.var[node.name])))
            lo = node.interfaces.get("lo")
            early = defaults.early_sysctls(node)
            b.commands.append(self._sysctl(node.name, early))
            if lo is None or lo.up:
                b.commands.append(self.ip(node.name, "link", "set", "dev", "lo", "up"))

        s = self.section("veth links")
        for link in topo.links:
            s.add(f"{link.a} -- {link.b}{_at(link.where)}", self._veth(link))

        s = self.section("bridges and their ports")
        for node in nodes:
            for br in node.bridges.values():
                cmd: list[object] = ["link", "add", "dev", br.name, "type", "bridge"]
                if br.vlan_filtering:
                    cmd += ["vlan_filtering", "1"]
                if not br.mcast_snooping:
                    cmd += ["mcast_snooping", "0"]
                b = s.add(f"{node.name}: bridge {br.name}{_at(br.where)}", self.ip(node.name, *cmd))
                for port in br.ports:
                    if port.name in node.srl2:
                        continue  # an srl2 device: made and enslaved below
                    b.commands.extend(self._port(node, br, port))

        keyed = [n for n in nodes if n.hmac_keys]
        if keyed:  # `ip sr hmac set` reads the secret from its standard input
            s = self.section("HMAC keys (ip sr hmac)")
            for node in keyed:
                for key in node.hmac_keys.values():
                    s.add(f"{node.name}: hmac key {key.keyid}{_at(key.where)}",
                          "printf '%s\\n' " + sh(key.secret) + " | " +
                          self.ip(node.name, "sr", "hmac", "set", key.keyid, key.algorithm).removeprefix("run "))

        srl2_nodes = [n for n in nodes if n.srl2]
        if srl2_nodes:
            s = self.section("srl2 devices (each a bridge port where asked)")
            for node in srl2_nodes:
                for dev in node.srl2.values():
                    cmd = ["link", "add", "dev", dev.name]
                    if dev.mtu is not None:
                        cmd += ["mtu", dev.mtu]
                    if dev.mac:
                        cmd += ["address", dev.mac]
                    cmd += ["type", self.revision.kind]
                    if len(self.revision.modes) > 1:  # required where there is a choice
                        cmd += ["mode", dev.mode or self.revision.modes[0]]
                    cmd += ["segs", ",".join(str(a) for a in dev.segs)]
                    if dev.table is not None:
                        cmd += ["table", dev.table]
                    if dev.hmac is not None:
                        cmd += ["hmac", dev.hmac]
                    b = s.add(f"{node.name}: {self.revision.kind} {dev.name}{_at(dev.where)}",
                              self.ip(node.name, *cmd))
                    for br in node.bridges.values():
                        ports = [p for p in br.ports if p.name == dev.name]
                        if dev.bridge == br.name and not ports:
                            ports = [model.BridgePort(dev.name)]
                        for port in ports:
                            b.commands.extend(self._port(node, br, port))

        vrf_nodes = [n for n in nodes if n.vrfs]
        if vrf_nodes:  # before addresses: enslaving a device to a VRF removes its IPv6 addresses
            s = self.section("VRFs and their ports")
            for node in vrf_nodes:
                for vrf in node.vrfs.values():
                    b = s.add(f"{node.name}: VRF {vrf.name}{_at(vrf.where)}",
                              self.ip(node.name, "link", "add", "dev", vrf.name, "type", "vrf", "table", vrf.table))
                    b.commands.extend(self.ip(node.name, "link", "set", "dev", port, "master", vrf.name)
                                      for port in vrf.ports)

        s = self.section("interface settings and addresses")
        for node in nodes:
            late = defaults.late_sysctls(node)
            for ifname in self._settable(node):
                conf = node.interfaces.get(ifname)
                if conf is None:
                    continue
                cmds = []
                attrs: list[object] = []
                if conf.mac and not self._veth_end(node.name, ifname):
                    attrs += ["address", conf.mac]
                if conf.mtu is not None and not self._veth_end(node.name, ifname):
                    attrs += ["mtu", conf.mtu]
                if attrs:
                    cmds.append(self.ip(node.name, "link", "set", "dev", ifname, *attrs))
                for addr in conf.addresses:
                    extra = ["nodad"] if addr.version == 6 else []
                    cmds.append(self.ip(node.name, _fam(addr.version), "addr", "add", str(addr),
                                        "dev", ifname, *extra))
                if cmds:
                    s.add(f"{node.name}: {ifname}{_at(conf.where)}", *cmds)
            if late:
                s.add(f"{node.name}: per-interface sysctls{_at(node.where)}", self._sysctl(node.name, late))

        s = self.section("everything up (srl2 devices last, below)")
        for node in nodes:
            cmds = []
            for ifname in self._settable(node):
                if ifname == "lo" or ifname in node.srl2:
                    continue  # up with the namespace; after the routes
                conf = node.interfaces.get(ifname)
                if conf is None or conf.up:
                    cmds.append(self.ip(node.name, "link", "set", "dev", ifname, "up"))
            if cmds:
                s.add(node.name, *cmds)

        tun = [n for n in nodes if n.tunsrc is not None]
        if tun:
            s = self.section("SRv6 tunnel source")
            for node in tun:
                s.add(f"{node.name}{_at(node.where)}", self.ip(node.name, "sr", "tunsrc", "set", str(node.tunsrc)))

        s = self.section("rules")
        for node in nodes:
            for rule in node.rules:
                cmd = [_fam(rule.family), "rule", "add"]
                if rule.src is not None:
                    cmd += ["from", str(rule.src)]
                if rule.to is not None:
                    cmd += ["to", str(rule.to)]
                cmd += ["lookup", rule.lookup]
                if rule.prio is not None:
                    cmd += ["prio", rule.prio]
                s.add(f"{node.name}: rule{_at(rule.where)}", self.ip(node.name, *cmd))

        s = self.section("routes")
        for node in nodes:
            for route in node.routes:
                s.add(f"{node.name}: route {_dst(route.dst)}{_at(route.where)}",
                      self.ip(node.name, *self._route(route)))

        s = self.section("SIDs (seg6local routes)")
        for node in nodes:
            for sid in node.sids:
                b = s.add(f"{node.name}: SID {sid.sid} {sid.action}{_at(sid.where)}")
                sid_dev = defaults.sid_dev(self.topo, node.name, sid)
                if sid_dev in node.srl2:  # the kernel refuses a route whose device is down; the engine ups it too
                    b.commands.append(self.ip(node.name, "link", "set", "dev", sid_dev, "up"))
                b.commands.append(self.ip(node.name, *self._sid(node.name, sid)))

        # An srl2 device up before the route to its first SID would count
        # every frame the bridge floods to it meanwhile (hosts' router
        # solicitations, MLD) as tx_carrier_errors and tx_dropped: a fresh
        # lab would look faulty.  The engine keeps the same order.
        s = self.section("srl2 devices up (after the routes to their first SIDs)")
        for node in srl2_nodes:
            cmds = [self.ip(node.name, "link", "set", "dev", dev.name, "up")
                    for dev in node.srl2.values()
                    if (conf := node.interfaces.get(dev.name)) is None or conf.up]
            s.add(node.name, *cmds)

        for sec in self.sections:
            sec.blocks = [b for b in sec.blocks if b.commands]
        return [sec for sec in self.sections if sec.blocks]

    # ---- pieces ----

    def _sysctl(self, node: str, values: dict[str, str]) -> str:
        words: list[object] = ["ip", "netns", "exec", Var(self.var[node]), "sysctl", "-wq"]
        lines = ["run " + sh(*words)] + [_word(f"{k}={v}") for k, v in values.items()]
        return " \\\n\t".join(lines)

    def _veth_end(self, node: str, ifname: str) -> bool:
        return any(e.ifname == ifname for _, e, _ in self.topo.veth_ends(node))

    def _veth(self, link: model.Link) -> str:
        def opts(end: model.Endpoint) -> list[object]:
            conf = self.topo.nodes[end.node].interfaces.get(end.ifname)
            mtu = conf.mtu if conf and conf.mtu is not None else link.mtu
            out: list[object] = []
            if mtu is not None:
                out += ["mtu", mtu]
            if conf and conf.mac:
                out += ["address", conf.mac]
            return out

        cmd: list[object] = ["link", "add", "dev", link.a.ifname, *opts(link.a),
                             "type", "veth", "peer", "name", link.b.ifname, *opts(link.b)]
        if link.b.node != link.a.node:
            cmd += ["netns", Var(self.var[link.b.node])]
        return self.ip(link.a.node, *cmd)

    def _port(self, node: model.Node, br: model.Bridge, port: model.BridgePort) -> list[str]:
        out = []
        if defaults.port_without_ipv6(node, port.name):
            # slash form: interface names may contain dots; -e: a device with
            # an MTU below 1280 has no IPv6 (and no such key) at all
            out.append("run " + sh("ip", "netns", "exec", Var(self.var[node.name]), "sysctl", "-ewq",
                                   defaults.disable_ipv6_path(port.name).removeprefix("/proc/sys/") + "=1"))
        out.append(self.ip(node.name, "link", "set", "dev", port.name, "master", br.name))
        for vid in port.vlans:
            out.append(self._bridge(node.name, "vlan", "add", "dev", port.name, "vid", vid))
        if port.pvid is not None:
            out.append(self._bridge(node.name, "vlan", "add", "dev", port.name, "vid", port.pvid,
                                    "pvid", "untagged"))
        return out

    def _bridge(self, node: str, *args: object) -> str:
        self.needs_bridge_cmd = True
        return "run " + sh("bridge", "-n", Var(self.var[node]), *args)

    def _settable(self, node: model.Node) -> list[str]:
        """Every interface of the node, in the engine's order."""
        names = [e.ifname for _, e, _ in self.topo.veth_ends(node.name)]
        names += [n for n in list(node.bridges) + list(node.srl2) + list(node.vrfs) if n not in names]
        names += [n for n in node.interfaces if n not in names and n != "lo"]
        if "lo" in node.interfaces:
            names.append("lo")
        return names

    def _route(self, r: model.Route) -> list[object]:
        cmd: list[object] = [_fam(r.family), "route", "add"]
        if r.type != "unicast":
            cmd.append(r.type)
        cmd.append(_dst(r.dst))
        if r.via is not None:
            if r.via.version != r.family:
                cmd += ["via", "inet6" if r.via.version == 6 else "inet", str(r.via)]
            else:
                cmd += ["via", str(r.via)]
        if r.dev:
            cmd += ["dev", r.dev]
        if r.table is not None:
            cmd += ["table", r.table]
        if r.metric is not None:
            cmd += ["metric", r.metric]
        if r.src is not None:
            cmd += ["src", str(r.src)]
        if r.hoplimit is not None:
            cmd += ["hoplimit", r.hoplimit]
        if r.encap is not None:
            cmd += ["encap", "seg6", "mode", r.encap.mode, "segs", ",".join(str(a) for a in r.encap.segs)]
        return cmd

    def _sid(self, node: str, s: model.Sid) -> list[object]:
        dst = str(s.sid.network_address) if s.sid.prefixlen == 128 else str(s.sid)
        cmd: list[object] = ["-6", "route", "add", dst]
        if s.table is not None:
            cmd += ["table", s.table]
        cmd += ["encap", "seg6local", "action", s.action]
        if s.action == "End.X":
            if s.nh6 is None:
                raise RenderError(f"{s.where}: End.X SID {s.sid} has no nh6")
            cmd += ["nh6", str(s.nh6)]
        elif s.action == "End.DX2":
            if not s.oif:
                raise RenderError(f"{s.where}: End.DX2 SID {s.sid} has no oif")
            cmd += ["oif", s.oif]
        elif s.action == "End.DT2U":
            if not s.l2dev:
                raise RenderError(f"{s.where}: End.DT2U SID {s.sid} has no l2dev")
            cmd += ["l2dev", s.l2dev]
        if s.count:
            cmd.append("count")
        dev = defaults.sid_dev(self.topo, node, s)
        cmd += ["dev", dev]
        return cmd
