"""Which datapath a lab gets: `datapath: auto|kernel|ref` (or an override)."""
from __future__ import annotations

import os

from testbed import revisions
from testbed.datapaths import ENCAP_SEG6, HOST_FEATURES, VRF, Datapath, DatapathError
from testbed.errors import MissingCapability
from testbed.model import Topology, Where

CHOICES = ("auto", "kernel", "ref")


def kernel_objects(topo: Topology, datapath: str) -> list[tuple[str, str, Where]]:
    """What of `topo` the host's kernel must make itself on `datapath`,
    in file order: (feature, what, where).  Route-based encapsulation and
    VRFs are the kernel's on every datapath; srl2 devices and SIDs only on
    the kernel datapath (the reference models them)."""
    found: list[tuple[str, str, Where]] = []
    for node in topo.nodes.values():
        found += [(VRF, f"{node.name}: VRF {v.name} (table {v.table})", v.where) for v in node.vrfs.values()]
        for route in node.routes:
            if route.encap is not None:
                found.append((ENCAP_SEG6, f"{node.name}: route {route.dst} (encap seg6 mode {route.encap.mode})",
                              route.where))
        if datapath == "kernel":
            found += [("srl2", f"{node.name}: srl2 {d.name}", d.where) for d in node.srl2.values()]
            found += [(s.action, f"{node.name}: SID {s.sid} ({s.action})", s.where) for s in node.sids]
    return sorted(found, key=lambda f: (f[2].file, f[2].line, f[2].col))


def require(topo: Topology, datapath: str) -> None:
    """Refuse, before anything is built, a lab that needs of the host's
    kernel what it lacks: one message at the first object (file:line:col)
    that needs it, the probe's reason (the missing option) and what to do."""
    needs = kernel_objects(topo, datapath)
    if not needs:
        return
    from testbed.datapaths.kernel import KernelDatapath

    probe = KernelDatapath.probe(revision=revision_asked(topo))
    for feature, what, where in needs:
        if not probe.has(feature):
            hint = "" if feature in HOST_FEATURES else "; use `--datapath ref` for the reference datapath"
            raise MissingCapability(f"{what} needs the kernel's {feature}: {probe.missing[feature]}{hint}",
                                    where)


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


def revision_asked(topo: Topology) -> str:
    """--revision / TESTBED_REVISION, else the topology's `revision:`, else auto."""
    return revisions.asked(os.environ.get(revisions.ENV) or (None if topo.revision == "auto" else topo.revision))


def revision_for(topo: Topology) -> "revisions.Revision":
    """The revision `topo`'s devices get: auto resolves to what the kernel
    has (the newest), else srl2 (which the reference then models)."""
    from testbed.datapaths.kernel import KernelDatapath

    asked = revision_asked(topo)
    if asked != "auto":
        return revisions.get(asked)
    rev = KernelDatapath.revision_of(asked)
    if rev.name not in kernel_has_revisions():
        # No device of any revision in this kernel: the reference models
        # the oldest revision that has everything the topology asks for.
        from testbed.topology.revision import revision_errors

        rev = next((r for r in revisions.all_revisions() if not revision_errors(topo, r)), rev)
    return rev


def kernel_has_revisions() -> list[str]:
    from testbed.datapaths.kernel import KernelDatapath, kernel_revisions

    return kernel_revisions(KernelDatapath._raw(False))


def require_revision(topo: Topology, revision: "revisions.Revision") -> None:
    """Refuse, before anything is built, a device asking for what the
    revision lacks (mode, table, hmac): the first one, at its key."""
    from testbed.topology.revision import revision_errors

    errors = revision_errors(topo, revision)
    if errors:
        why = "" if revision.name not in kernel_has_revisions() else " (this kernel's revision)"
        raise MissingCapability(f"{errors[0].message}{why}", errors[0].where)


def choose(topo: Topology, override: str | None, rundir: str) -> Datapath | None:
    """The datapath for `topo`, or None if it has no srl2 device or SID.

    auto = kernel where this kernel has every feature the topology uses,
    else ref.  kernel when the kernel lacks one fails fast with the probe's
    reason.  The TESTBED_DATAPATH environment variable overrides the YAML
    (as --datapath does)."""
    choice, source = _asked(topo, override)
    if choice not in CHOICES:
        raise DatapathError(f"datapath must be one of {', '.join(CHOICES)}, not {choice!r}")
    require(topo, "ref")  # what every datapath needs of the kernel (route-based encap)
    used = features_used(topo)
    if not used:
        return None
    dp: Datapath
    revision = revision_for(topo)
    require_revision(topo, revision)
    if choice in ("auto", "kernel"):
        from testbed.datapaths.kernel import KernelDatapath

        reason = KernelDatapath.probe(revision=revision.name).reason(used)
        if reason is None:
            dp = KernelDatapath(revision)
            dp.why = source if choice == "kernel" else f"auto: this kernel has {', '.join(used)}"
            return dp
        if choice == "kernel":
            require(topo, "kernel")  # raises, at the first device or SID the kernel cannot make
            raise DatapathError(f"{reason}; use `--datapath ref` for the reference datapath")
        why = f"auto: {reason.removeprefix('kernel datapath: ')}"
    else:
        why = source
    from testbed.datapaths.ref import RefDatapath

    reason = RefDatapath.probe().reason(used)
    if reason is not None:
        raise DatapathError(reason)
    dp = RefDatapath(rundir, revision)
    dp.why = why
    return dp


def host_lacks(topo: Topology, datapath: str = "auto") -> str | None:
    """Why this host cannot build `topo` on `datapath` (the message `up`
    would refuse with), or None: for tests and tools that skip instead."""
    try:
        require(topo, "ref")
        if datapath == "kernel":
            require(topo, "kernel")
    except MissingCapability as e:
        return str(e)
    return None


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
