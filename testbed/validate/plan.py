"""From a topology's checks to probes: one probe per line of the report
(a `ping` check pings per family and per direction).  Both runners use it:
`testbed validate` (testbed/validate/run.py) and the rendered script
(testbed/render/checks.py), so the two print the same titles."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional, Union

from testbed import checkmodel as cm
from testbed.model import Topology


@dataclass
class PingProbe:
    check: str
    src: str  # node
    dst: str  # node name or the address, for the title
    address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    count: int
    timeout: int
    expect_replies: bool
    dev: Optional[str] = None  # ping -I DEV in src

    @property
    def title(self) -> str:
        verb = "ping" if self.expect_replies else "no_ping"
        fam = f"IPv{self.address.version}"
        shown = f"{fam} {self.address}" if self.dst != str(self.address) else fam
        src = f"{self.src} dev {self.dev}" if self.dev else self.src
        return f"{verb} {src} -> {self.dst} ({shown})"


@dataclass
class FrameProbe:
    check: str
    frame: cm.Frame

    @property
    def title(self) -> str:
        f = self.frame
        what = f.kind if f.kind != "raw" else f"ethertype 0x{f.ethertype:04x}"
        if f.vlan:
            what += f" vlan {f.vlan}"
        dests = [str(e) for e in f.to] + [f"not {e}" for e in f.not_to]
        return f"frame {what} {f.src} -> {', '.join(dests)}"


@dataclass
class CountersProbe:
    check: str
    spec: cm.Counters

    @property
    def title(self) -> str:
        s = self.spec
        obj = s.dev if s.dev else f"SID {s.sid.network_address if s.sid and s.sid.prefixlen == 128 else s.sid}"
        parts = [f"{', '.join(s.moved)} moved"] if s.moved else []
        parts += [f"{', '.join(s.unmoved)} unmoved"] if s.unmoved else []
        return f"counters {s.node} {obj}: {'; '.join(parts)}"


@dataclass
class LinkProbe:
    check: str
    spec: cm.Link

    @property
    def title(self) -> str:
        s = self.spec
        return f"link {s.node} {s.dev}: mtu {s.mtu}"


Probe = Union[PingProbe, FrameProbe, CountersProbe, LinkProbe]


def first_address(topo: Topology, node: str, family: int):
    """The address a ping to `node` uses: its first of `family` (in the order
    of its interfaces), global before link-local."""
    addrs = [a.ip for i in topo.nodes[node].interfaces.values() for a in i.addresses if a.version == family]
    return sorted(addrs, key=lambda a: a.is_link_local)[0]


def probes(topo: Topology, names: Optional[list[str]] = None) -> list[Probe]:
    """The probes of the checks named (default: all), in file order, with the
    counters probes last (they judge what the others made move)."""
    out: list[Probe] = []
    last: list[Probe] = []
    for check in topo.checks:
        if names is not None and check.name not in names:
            continue
        spec = check.spec
        if isinstance(spec, cm.Ping):
            for family in spec.families:
                if spec.address is not None:
                    out.append(PingProbe(check.name, spec.src, str(spec.address), spec.address,
                                         spec.count, spec.timeout, spec.expect_replies, spec.dev))
                    continue
                assert spec.dst is not None
                pairs = [(spec.src, spec.dst)] + ([(spec.dst, spec.src)] if spec.both_ways else [])
                for a, b in pairs:
                    out.append(PingProbe(check.name, a, b, first_address(topo, b, family),
                                         spec.count, spec.timeout, spec.expect_replies,
                                         spec.dev if a == spec.src else None))
        elif isinstance(spec, cm.Frame):
            out.append(FrameProbe(check.name, spec))
        elif isinstance(spec, cm.Link):
            out.append(LinkProbe(check.name, spec))
        else:
            last.append(CountersProbe(check.name, spec))
    return out + last
