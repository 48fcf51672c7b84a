"""What the passes of one load share: the file's reader, the document's
top-level keys, the topology being built and, per node, what its YAML said
before the cross-checks (testbed/topology/__init__.py runs the passes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from yaml.nodes import Node, ScalarNode

from testbed import model
from testbed.model import Where
from testbed.topology.values import Ctx
from testbed.topology.yamlpos import quote


@dataclass
class Load:
    """One file being loaded; each pass reads and extends it."""

    ctx: Ctx
    text: str
    name: Optional[str] = None  # the caller's lab name, overriding the file's
    revision: Optional[str] = None  # the caller's revision (--revision), overriding the file's
    root: Optional[Node] = None
    top: dict[str, tuple[ScalarNode, Node]] = field(default_factory=dict)
    topo: Optional[model.Topology] = None
    states: dict[str, "NodeState"] = field(default_factory=dict)
    stop: bool = False  # set by a pass that leaves nothing the next passes could read


class NodeState:
    """What one node's YAML said, before cross-checks."""

    def __init__(self, node: model.Node, keynode: ScalarNode, body: Optional[dict]):
        self.node = node
        self.keynode = keynode
        self.body = body or {}
        # ifname -> (description of what made it, where)
        self.made: dict[str, tuple[str, Where]] = {"lo": ("the loopback device", model.NOWHERE)}
        self.configured: list[tuple[str, ScalarNode, model.Interface]] = []
        # (ifname, yaml node, what refers to it, check) checked once links are known
        self.refs: list[tuple[str, Node, str, str]] = []
        # port name -> (bridge name, where) ; for "a port in two bridges"
        self.port_of: dict[str, tuple[str, Node]] = {}
        self.srl2_bridge: list[tuple[model.Srl2, Node]] = []
        # (device, key) -> the value's node, for mode/table/hmac: where a revision's refusal points
        self.srl2_at: dict[tuple[str, str], Node] = {}
        # (device, its `hmac:` value) checked against the node's keys once they are known
        self.srl2_hmac: list[tuple[model.Srl2, Node]] = []
        # every HMAC key id the node's hmac_keys name, also those whose settings were wrong
        self.hmac_ids: set[int] = set()

    def make(self, ctx: Ctx, name: str, what: str, at: Node) -> bool:
        where = ctx.where(at)
        if name in self.made:
            prev, pw = self.made[name]
            if name == "lo":
                ctx.err(at, f"interface 'lo' of node {quote(self.node.name)} is the loopback device; "
                            f"it cannot also be {what}")
            elif prev == what == "a link end":
                ctx.err(at, f"interface {quote(name)} of node {quote(self.node.name)} is already an end "
                            f"of the link on line {pw.line}; one interface cannot end two links")
            else:
                ctx.err(at, f"interface {quote(name)} of node {quote(self.node.name)} is already "
                            f"{prev} (line {pw.line}); it cannot also be {what}")
            return False
        self.made[name] = (what, where)
        return True
