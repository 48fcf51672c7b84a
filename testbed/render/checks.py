"""The topology's checks (docs/topology.md "Checks") as lines of the
rendered selftest script: the same probes, in the same order and with the
same titles, as `testbed validate` (both come from testbed/validate/plan.py),
run by the bash helpers of checks.sh.j2 and reported as KTAP."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Optional

from testbed import model
from testbed.render.shell import Var, sh
from testbed.validate import frames, plan


@dataclass
class Step:
    comment: str  # the check this probe belongs to, with its YAML place; "" after the first
    command: str


@dataclass
class ScriptChecks:
    steps: list[Step] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)  # counters read before the first probe
    frame_py: str = ""  # testbed/validate/frames.py, when a frame check needs it
    source: str = ""


def script_checks(topo: model.Topology, var: dict[str, str]) -> Optional[ScriptChecks]:
    """The checks of `topo` for the script; `var` maps nodes to their
    namespace variables.  None when the topology has no checks."""
    probes = plan.probes(topo)
    if not probes:
        return None
    out = ScriptChecks(source=topo.source or "(built in Python)")
    checks = {c.name: c for c in topo.checks}
    commented: set[str] = set()
    for i, probe in enumerate(probes, 1):
        check = checks[probe.check]
        comment = ""
        if probe.check not in commented:
            commented.add(probe.check)
            comment = f"{check.name} ({check.where})" + (f": {check.description}" if check.description else "")
            comment = " ".join(comment.split())  # one comment line, whatever the YAML held
        if isinstance(probe, plan.PingProbe):
            cmd = sh("check_ping", probe.title, Var(var[probe.src]), str(probe.address), probe.count,
                     probe.timeout, "replies" if probe.expect_replies else "none", *([probe.dev] if probe.dev else []))
        elif isinstance(probe, plan.FrameProbe):
            cmd = _frame(probe, var)
            out.frame_py = inspect.getsource(frames)
        elif isinstance(probe, plan.LinkProbe):
            cmd = sh("check_link", probe.title, Var(var[probe.spec.node]), probe.spec.dev, probe.spec.mtu)
        else:
            s = probe.spec
            kind, obj = ("dev", s.dev) if s.dev else ("sid", f"{s.table or 'main'},{s.sid}")
            names = s.moved + s.unmoved
            out.saves.append(sh("counters_save", i, Var(var[s.node]), kind, obj, *names))
            cmd = sh("check_counters", probe.title, i, Var(var[s.node]), kind, obj,
                     ",".join(s.moved), ",".join(s.unmoved))
        out.steps.append(Step(comment, cmd))
    return out


def _frame(probe: plan.FrameProbe, var: dict[str, str]) -> str:
    f = probe.frame
    words: list[object] = ["check_frame", probe.title, "--from", Var(var[f.src.node]), f.src.ifname]
    for flag, ends in (("--to", f.to), ("--not-to", f.not_to)):
        for end in ends:
            words += [flag, Var(var[end.node]), end.ifname, str(end)]
    words += ["--kind", f.kind, "--timeout", f.timeout]
    if f.kind == "raw":
        words += ["--ethertype", f"0x{f.ethertype:04x}"]
    if f.src_ip is not None:
        words += ["--src-ip", str(f.src_ip), "--target-ip", str(f.target_ip)]
    if f.vlan:
        words += ["--vlan", f.vlan]
    return sh(*words)
