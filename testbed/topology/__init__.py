"""YAML topology -> validated `testbed.model.Topology`; no side effects.
The format is described in docs/topology.md.

    load(path, name=None, revision=None) -> Topology
    loads(text, filename, name=None, revision=None) -> Topology
    revision_errors(topo, revision) -> list[Diagnostic]   # after `auto` is resolved
    check_revision(topo, revision)                        # the same, raising TopologyError

Both raise `testbed.diagnostics.TopologyError` listing *every* problem
found, each as ``FILE:LINE:COL: message`` (FILE as given by the caller),
sorted by position.  No input gives any other exception.

Loading runs named passes, in order, over one shared `Load` (netlab's
augment shape).  Every pass runs even when an earlier one found mistakes,
so that a file's mistakes are reported together; the load stops early only
when a pass sets `load.stop` (nothing left that the next could read, e.g.
the file is not YAML).  Each pass lives in the module of its concern.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

from testbed import model
from testbed.diagnostics import Diagnostic, TopologyError
from testbed.topology import checks, crosscheck, links, nodes, revision as revision_pass, toplevel
from testbed.topology.inventory import Load
from testbed.topology.revision import check_revision, revision_errors
from testbed.topology.values import Ctx
from testbed.topology.yamlpos import read_file

__all__ = ["load", "loads", "revision_errors", "check_revision", "TopologyError", "Diagnostic", "PASSES"]

Pass = Callable[[Load], None]

PASSES: tuple[tuple[str, Pass], ...] = (
    ("document", toplevel.parse_document),
    ("header", toplevel.parse_header),
    ("nodes", nodes.parse_nodes),
    ("links", links.parse_links),
    ("interfaces", nodes.parse_all_interfaces),
    ("cross-checks", crosscheck.check_nodes),
    ("revision", revision_pass.check),
    ("checks", checks.parse_checks),
)


def loads(text: str, filename: str = "<string>", name: Optional[str] = None,
          revision: Optional[str] = None) -> model.Topology:
    """Parse and validate a topology given as text; `filename` is used in
    messages and for the default lab name (its stem).  `name` overrides the
    file's `name:`, `revision` (auto, srl2, sr6: what `--revision` says)
    its `revision:`; the devices are checked against that revision here,
    except `auto`, which is resolved and checked by the engine
    (revision_errors)."""
    ctx = Ctx(os.fspath(filename))
    load = Load(ctx=ctx, text=text, name=name, revision=revision)
    for _name, run in PASSES:
        run(load)
        if load.stop:
            break
    if ctx.diags:
        raise TopologyError(ctx.diags)
    assert load.topo is not None
    return load.topo


def load(path: str | os.PathLike, name: Optional[str] = None, revision: Optional[str] = None) -> model.Topology:
    """Read and validate a topology file (see loads).  Messages show `path` as given."""
    filename = os.fspath(path)
    return loads(read_file(filename), filename, name, revision)
