"""Running probes against a live lab.  Each kind is a pair, as in netlab:
`exec_KIND` runs the probe in the lab and returns what it saw, `judge_KIND`
turns that into a verdict and a detail for the report line (pure, so it is
tested on its own).  Counters are read before the first probe and judged
after the last."""
from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass
from typing import Callable, Optional

from testbed.capture import Capture
from testbed.errors import LabError, TestbedError
from testbed.lab import Lab
from testbed.model import Topology
from testbed.validate import frames
from testbed.validate.plan import CountersProbe, FrameProbe, LinkProbe, PingProbe, Probe
from testbed.validate.report import Result

PING_INTERVAL = "0.2"  # seconds between echo requests (root may go below 0.2)
# What ping says when the kernel has no route: a host that must not reach
# an address may have none (ping then sends nothing and exits 2).
UNREACHABLE = re.compile(r"Network is unreachable|No route to host")


# ---------------------------------------------------------------- ping / no_ping

@dataclass
class PingSeen:
    rc: int
    transmitted: int
    received: int
    output: str  # ping's stdout and stderr


def ping_command(probe: PingProbe) -> list[str]:
    """ping's arguments: `ping` sends until `count` replies or `timeout` s
    (-w); `no_ping` sends `count` requests, each waited for `timeout` s (-W)."""
    wait = "-w" if probe.expect_replies else "-W"
    dev = ["-I", probe.dev] if probe.dev else []
    return ["ping", "-n", "-q", *dev, "-c", str(probe.count), "-i", PING_INTERVAL, wait, str(probe.timeout),
            str(probe.address)]


def exec_ping(lab: Lab, probe: PingProbe) -> PingSeen:
    cmd = ["ip", "netns", "exec", lab.node(probe.src).name, *ping_command(probe)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=probe.count * probe.timeout + 30)
    except FileNotFoundError as e:
        raise LabError(f"cannot run {e.filename}: not installed (iproute2 and iputils-ping are needed)") from None
    return parse_ping(proc.returncode, proc.stdout + proc.stderr)


def parse_ping(rc: int, output: str) -> PingSeen:
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    tx, rx = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return PingSeen(rc, tx, rx, output.strip())


def judge_ping(probe: PingProbe, seen: PingSeen) -> tuple[bool, str]:
    replies = f"{seen.received}/{probe.count} replies"
    loss = re.search(r"\d+(?:\.\d+)?% packet loss", seen.output)
    why = loss.group(0) if loss else (seen.output.splitlines() or [f"ping exited {seen.rc}"])[-1]
    if probe.expect_replies:
        if seen.received >= probe.count:
            return True, replies
        return False, f"{replies} ({probe.src}: {why})"
    if seen.received == 0 and (seen.transmitted or UNREACHABLE.search(seen.output)):
        return True, f"{replies}, as expected"
    if seen.received == 0:  # nothing sent: no evidence either way
        return False, f"ping sent nothing in {probe.src} ({why})"
    return False, f"{replies}: {probe.src} reaches {probe.address}, which it must not"


# ---------------------------------------------------------------- frame

def exec_frame(lab: Lab, probe: FrameProbe) -> dict[str, list[bytes]]:
    """Arm a capture on every end, send the frame from its source with a
    packet socket, and collect the frames carrying its marker per end."""
    f = probe.frame
    marker = frames.new_marker()
    caps: dict[str, Capture] = {}
    try:
        for end in f.to + f.not_to:
            caps[str(end)] = Capture(lab.node(end.node), end.ifname)
        with lab.node(f.src.node).socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as tx:
            tx.bind((f.src.ifname, 0))
            tx.send(frames.build(f.kind, tx.getsockname()[4], marker, f.src_ip, f.target_ip,
                                 f.ethertype, f.vlan))

        def match(fr) -> bool:
            return marker in fr.data and not fr.outgoing

        seen = {str(e): [fr.data for fr in caps[str(e)].wait_for(match, timeout=f.timeout)] for e in f.to}
        # absence is shown by waiting: briefly once the frame went through, else the whole timeout
        arrived = bool(f.to) and all(seen.values())
        wait = frames.LEAK_WAIT if arrived else (f.timeout if not f.to else 0.0)
        for i, e in enumerate(f.not_to):
            seen[str(e)] = [fr.data for fr in caps[str(e)].wait_for(match, timeout=wait if i == 0 else 0)]
        return seen
    finally:
        for cap in caps.values():
            cap.close()


def judge_frame(probe: FrameProbe, seen: dict[str, list[bytes]]) -> tuple[bool, str]:
    f = probe.frame
    return frames.judge(seen, [str(e) for e in f.to], [str(e) for e in f.not_to], f.vlan, f.timeout)


# ---------------------------------------------------------------- counters

def exec_counters(lab: Lab, topo: Topology, probe: CountersProbe) -> dict[str, int]:
    spec = probe.spec
    datapath = lab.datapath_for_status()
    if datapath is None:
        raise LabError(f"lab {lab.name!r} has no datapath devices to read counters of")
    ns = lab.node(spec.node)
    if spec.dev:
        return datapath.counters(ns, spec.dev)
    sid = next(s for s in topo.nodes[spec.node].sids if s.sid == spec.sid and s.table == spec.table)
    return datapath.sid_counters(ns, sid) or {}


def judge_counters(probe: CountersProbe, before: dict[str, int], after: dict[str, int]) -> tuple[bool, str]:
    problems, facts = [], []
    for name in probe.spec.moved + probe.spec.unmoved:
        b, a = before.get(name), after.get(name)
        if a is None or b is None:
            problems.append(f"{name} not reported")
            continue
        text = f"{name} {b} -> {a}"
        if name in probe.spec.moved and a <= b:
            problems.append(f"{name} did not move ({b} -> {a})")
        elif name in probe.spec.unmoved and a != b:
            problems.append(f"{name} moved ({b} -> {a})")
        else:
            facts.append(text)
    return (False, "; ".join(problems)) if problems else (True, "; ".join(facts))


# ---------------------------------------------------------------- link

def exec_link(lab: Lab, probe: LinkProbe) -> dict[str, int]:
    """The interface's attributes as the kernel has them now (IFLA_*)."""
    s = probe.spec
    (link,) = lab.node(s.node).ipr.get_links(lab.ifindex(s.node, s.dev))
    return {"mtu": link.get_attr("IFLA_MTU")}


def judge_link(probe: LinkProbe, seen: dict[str, int]) -> tuple[bool, str]:
    want = probe.spec.mtu
    got = seen.get("mtu")
    return (got == want), (f"mtu {got}" if got == want else f"mtu {got}, expected {want}")


# ---------------------------------------------------------------- the run

def run(lab: Lab, topo: Topology, probes: list[Probe],
        on_result: Optional[Callable[[Result], None]] = None) -> list[Result]:
    """Every probe, in order (counters last); a probe that cannot run is a
    failed check with the reason, and the others still run."""
    results: list[Result] = []

    def done(probe: Probe, ok: bool, detail: str) -> None:
        results.append(Result(probe, ok, detail))
        if on_result:
            on_result(results[-1])

    before: dict[int, dict[str, int] | str] = {}
    for i, probe in enumerate(probes):
        if isinstance(probe, CountersProbe):
            before[i] = _attempt(lambda p=probe: exec_counters(lab, topo, p))
    for i, probe in enumerate(probes):
        if isinstance(probe, PingProbe):
            seen = _attempt(lambda p=probe: exec_ping(lab, p))
            done(probe, *(judge_ping(probe, seen) if isinstance(seen, PingSeen) else (False, seen)))
        elif isinstance(probe, FrameProbe):
            seen = _attempt(lambda p=probe: exec_frame(lab, p))
            done(probe, *(judge_frame(probe, seen) if isinstance(seen, dict) else (False, seen)))
        elif isinstance(probe, LinkProbe):
            attrs = _attempt(lambda p=probe: exec_link(lab, p))
            done(probe, *(judge_link(probe, attrs) if isinstance(attrs, dict) else (False, attrs)))
        else:
            after = _attempt(lambda p=probe: exec_counters(lab, topo, p))
            b = before[i]
            if isinstance(b, str) or isinstance(after, str):
                done(probe, False, b if isinstance(b, str) else str(after))
            else:
                done(probe, *judge_counters(probe, b, after))
    return results


def _attempt(fn):
    """fn(), or the text of the error that stopped it."""
    try:
        return fn()
    except (TestbedError, OSError, subprocess.SubprocessError) as e:
        return f"could not run: {e}"
