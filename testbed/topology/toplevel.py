"""The document and its top level (docs/topology.md "Top level"): the YAML
must compose into a mapping of known keys; then the lab name, description
datapath and revision."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

from yaml.nodes import ScalarNode

from testbed import model
from testbed.model import Where
from testbed.topology.inventory import Load
from testbed.topology.vocabulary import DATAPATHS, DEFAULTS, LAB_NAME_MAX, LAB_NAME_RE, REVISIONS, TOP_KEYS
from testbed.topology.yamlpos import T_NULL, compose, describe, quote


def parse_document(load: Load) -> None:
    """Pass "document": YAML into a node tree whose root is a mapping.
    Nothing else can be read when this fails."""
    ctx = load.ctx
    load.stop = True  # until the root is known to be a mapping
    root = compose(ctx, load.text)
    if ctx.diags:
        return
    if root is None:
        ctx.err(Where(ctx.file, 1, 1), "the file is empty; expected a topology (name, nodes, links)")
        return
    top = ctx.mapping(root, "a topology: a mapping with name, nodes, links")
    if top is None:
        return
    load.stop = False
    load.root, load.top = root, top
    load.topo = model.Topology(name="", nodes={}, source=ctx.file, where=ctx.where(root))


def parse_header(load: Load) -> None:
    """Pass "header": known top-level keys; lab name (argument > YAML > file stem), description,
    datapath, revision (argument > YAML > auto)."""
    ctx, top, root, topo = load.ctx, load.top, load.root, load.topo
    assert root is not None and topo is not None
    ctx.known_keys(top, TOP_KEYS, "the topology")
    name_node = top["name"][1] if "name" in top else None
    lab: Optional[str]
    if load.name is not None:
        lab, at, origin = load.name, (name_node or root), "given by the caller"
    elif name_node is not None:
        lab, at, origin = ctx.str_(name_node, "a lab name"), name_node, ""
    else:
        lab, at, origin = Path(ctx.file).stem, root, "taken from the file name; set name: to choose one"
    if lab is not None:
        problem = None
        if not LAB_NAME_RE.match(lab):
            problem = "lowercase letters, digits and '-', starting with a letter or digit"
        elif len(lab) > LAB_NAME_MAX:
            problem = f"at most {LAB_NAME_MAX} characters, got {len(lab)}"
        if problem:
            ctx.err(at, f"lab name {quote(lab)}" + (f" ({origin})" if origin else "")
                        + f" is invalid: expected {problem}")
        topo.name = lab

    if "description" in top:
        d = top["description"][1]
        if isinstance(d, ScalarNode):
            topo.description = "" if d.tag == T_NULL else d.value
        else:
            ctx.err(d, f"expected a description (text), got {describe(d)}")
    if "datapath" in top:
        # choice() returns one of vocabulary.yaml's datapaths (typed str), which model.Datapath lists
        topo.datapath = cast(model.Datapath, ctx.choice(top["datapath"][1], "datapath", DATAPATHS)
                             or DEFAULTS["datapath"])
    rev_node = top["revision"][1] if "revision" in top else None
    if rev_node is not None:
        topo.revision = ctx.choice(rev_node, "revision", REVISIONS) or DEFAULTS["revision"]
    if load.revision is not None:
        if load.revision in REVISIONS:
            topo.revision = load.revision
        else:
            ctx.err(rev_node or root, f"revision {quote(load.revision)} (given by the caller) is not one of "
                                      f"{', '.join(REVISIONS)}")
