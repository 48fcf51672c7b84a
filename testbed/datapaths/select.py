"""Which datapath a lab gets: `datapath: auto|kernel|ref` (or an override)."""
from __future__ import annotations

import os

from testbed.datapaths import Datapath, DatapathError
from testbed.model import Topology

CHOICES = ("auto", "kernel", "ref")


def features_used(topo: Topology) -> list[str]:
    """The datapath features a topology needs, in a stable order."""
    used: list[str] = []
    for node in topo.nodes.values():
        if node.srl2 and "srl2" not in used:
            used.append("srl2")
        for sid in node.sids:
            if sid.action not in used:
                used.append(sid.action)
    return used


def choose(topo: Topology, override: str | None, rundir: str) -> Datapath | None:
    """The datapath for `topo`, or None if it has no srl2 device or SID.

    auto = kernel where this kernel has every feature the topology uses,
    else ref.  kernel when the kernel lacks one fails fast with the probe's
    reason.  The TESTBED_DATAPATH environment variable overrides the YAML
    (as --datapath does)."""
    choice, source = _asked(topo, override)
    if choice not in CHOICES:
        raise DatapathError(f"datapath must be one of {', '.join(CHOICES)}, not {choice!r}")
    used = features_used(topo)
    if not used:
        return None
    dp: Datapath
    if choice in ("auto", "kernel"):
        from testbed.datapaths.kernel import KernelDatapath

        reason = KernelDatapath.probe().reason(used)
        if reason is None:
            dp = KernelDatapath()
            dp.why = source if choice == "kernel" else f"auto: this kernel has {', '.join(used)}"
            return dp
        if choice == "kernel":
            raise DatapathError(f"{reason}; use `--datapath ref` for the reference datapath")
        why = f"auto: {reason.removeprefix('kernel datapath: ')}"
    else:
        why = source
    from testbed.datapaths.ref import RefDatapath

    reason = RefDatapath.probe().reason(used)
    if reason is not None:
        raise DatapathError(reason)
    dp = RefDatapath(rundir)
    dp.why = why
    return dp


def _asked(topo: Topology, override: str | None) -> tuple[str, str]:
    """The datapath asked for, and who asked (for `up` to say why)."""
    if override:
        return override, f"asked for by --datapath {override}"
    env = os.environ.get("TESTBED_DATAPATH")
    if env:
        return env, f"asked for by TESTBED_DATAPATH={env}"
    return topo.datapath, f"asked for by the topology (datapath: {topo.datapath})"


def attach(name: str, rundir: str) -> Datapath:
    """The datapath of a lab built by another process (for status/counters)."""
    if name == "kernel":
        from testbed.datapaths.kernel import KernelDatapath

        return KernelDatapath()
    from testbed.datapaths.ref import RefDatapath

    return RefDatapath.attach(rundir)
