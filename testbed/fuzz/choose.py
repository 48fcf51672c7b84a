"""Which datapath and which revision of the series `testbed fuzz` drives
(`--datapath`, `--revision`), chosen as `testbed up` chooses them."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from testbed.revisions import Revision

# What the kernel target drives: the revision's device and SIDs of
# machine.ACTIONS (not imported from there: machine needs hypothesis, which
# the CLI checks for after choosing the target).
KERNEL_FEATURES = ("srl2", "End", "End.DT2U", "End.DX2")


def choose_target(asked: str, revision: str | None = None) -> tuple[str, "Revision"]:
    """(kernel or ref, the revision under test) for `--datapath
    auto|kernel|ref` and `--revision auto|srl2|sr6` (None: TESTBED_REVISION,
    else auto), as `testbed up` chooses (testbed.datapaths.select): the
    revision is what the kernel has for auto (the first revision where it
    has none: the reference models it), else the one named; the datapath
    is the kernel where it has all of KERNEL_FEATURES for that revision,
    else ref.  kernel on a kernel without them is refused here, as `up`
    refuses it, with the probe's reason.  Fuzzing it anyway would only
    collect the kernel's refusals and end with "0 finding(s)", as if it
    had been tested."""
    from testbed.datapaths.kernel import KernelDatapath
    from testbed.errors import MissingCapability

    rev = KernelDatapath.revision_of(revision)
    if asked == "ref":
        return "ref", rev
    probe = KernelDatapath.probe(revision=rev.name)
    missing = [f for f in KERNEL_FEATURES if not probe.has(f)]
    if not missing:
        return "kernel", rev
    if asked == "kernel":
        what = rev.kind if missing[0] == "srl2" else missing[0]  # "srl2" is the probe's word for the device
        raise MissingCapability(f"fuzzing the kernel datapath needs the kernel's {what}: "
                                f"{probe.missing[missing[0]]}; use `--datapath ref` for the reference datapath")
    return "ref", rev


__all__ = ["KERNEL_FEATURES", "choose_target"]
