"""The series' revision a topology is built for (docs/topology.md
"Revisions"): what its srl2 devices ask for (an encapsulation mode, a
post-encapsulation table, HMAC) that the revision lacks.  The revisions
themselves, and what each has, are testbed/revisions/; this module only
asks them.

One code path for the messages, used twice:

* at load (pass "revision"), against the caller's revision (`--revision`),
  else the file's `revision:`, pointing at the key's value;
* by the engine, once it has resolved `auto` against the running kernel:
  `revision_errors(topo, revision)` / `check_revision(topo, revision)`, a
  pure function of the model, pointing at the device (the model keeps no
  position for its keys)."""
from __future__ import annotations

from typing import Mapping, Optional, Union

from testbed import model, revisions
from testbed.diagnostics import Diagnostic, TopologyError
from testbed.model import Where
from testbed.revisions import Revision
from testbed.topology.inventory import Load

# (node, device, key) -> where the key's value is
Positions = Mapping[tuple[str, str, str], Where]


def check(load: Load) -> None:
    """Pass "revision": the topology's devices against its revision.  `auto`
    is not known at load: it is what the running kernel has, which only the
    engine learns (`testbed up`); the engine calls revision_errors() after
    resolving it.  A revision given wrongly was reported by pass "header"
    and left `auto`."""
    topo = load.topo
    assert topo is not None  # pass "document" stops the load without one
    if topo.revision not in revisions.NAMES:
        return
    at = {(st.node.name, dev, key): load.ctx.where(node)
          for st in load.states.values() for (dev, key), node in st.srl2_at.items()}
    load.ctx.diags.extend(revision_errors(topo, topo.revision, at))


def revision_errors(topo: model.Topology, revision: Union[str, Revision],
                    at: Optional[Positions] = None) -> list[Diagnostic]:
    """What `topo` asks of its srl2 devices that `revision` (a name or a
    Revision; not `auto`) cannot make, one Diagnostic each, e.g.
    ``srl2-0: mode reduced: revision srl2 has no encapsulation mode
    'reduced' (it has full); sr6 has it``.  Each points at `at[(node,
    device, key)]` where given (the load knows where a value is), else at
    the device.  Pure: no system access."""
    rev = _revision(revision)
    out: list[Diagnostic] = []
    for node in topo.nodes.values():
        for dev in node.srl2.values():
            asked = (("mode", dev.mode, rev.refuses(mode=dev.mode)),
                     ("table", dev.table, rev.refuses(table=dev.table)),
                     ("hmac", dev.hmac, rev.refuses(hmac=dev.hmac)))
            for key, value, problem in asked:
                if problem is None:
                    continue
                where = (at or {}).get((node.name, dev.name, key), dev.where)
                out.append(Diagnostic(where, f"{dev.name}: {key} {value}: {problem}; {_who_has(key, value)}"))
    return out


def check_revision(topo: model.Topology, revision: Union[str, Revision]) -> None:
    """revision_errors() as the loader reports mistakes: a TopologyError
    listing every one (FILE:LINE:COL: message), or nothing."""
    diags = revision_errors(topo, revision)
    if diags:
        raise TopologyError(diags)


def _revision(revision: Union[str, Revision]) -> Revision:
    if isinstance(revision, Revision):
        return revision
    if revision not in revisions.NAMES:
        raise ValueError(f"a topology is checked against a resolved revision ({', '.join(revisions.NAMES)}), "
                         f"not {revision!r}")
    return revisions.get(revision)


def _who_has(key: str, value: object) -> str:
    """Which revisions have what `key: value` asks for."""
    if key == "mode":
        names = [r.name for r in revisions.all_revisions() if value in r.modes]
    else:
        names = revisions.having(key)
    if not names:
        return "no revision has it"
    if len(names) == 1:
        return f"{names[0]} has it"
    return f"{', '.join(names[:-1])} and {names[-1]} have it"


__all__ = ["check", "revision_errors", "check_revision", "Positions"]
