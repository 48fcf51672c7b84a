"""YAML with positions: the composed node tree (every value keeps its line
and column), the reader that turns nodes into values or diagnostics, and
YAML's own errors as diagnostics.  No knowledge of the topology format here
(docs/topology.md describes the format; testbed/topology/values.py adds
its networking values)."""
from __future__ import annotations

import difflib
import re
from typing import Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from testbed.diagnostics import Diagnostic, TopologyError
from testbed.model import Where

T_NULL = "tag:yaml.org,2002:null"
T_BOOL = "tag:yaml.org,2002:bool"
T_INT = "tag:yaml.org,2002:int"
T_FLOAT = "tag:yaml.org,2002:float"
T_MERGE = "tag:yaml.org,2002:merge"

_constructor = yaml.constructor.SafeConstructor()


# ---------------------------------------------------------------- helpers

def quote(s: str, limit: int = 40) -> str:
    """`s` in quotes for a message, as the user wrote it (a node `hs-ü` reads
    'hs-ü'), except what a terminal would not show as itself: control and
    other non-printable characters (a no-break space) are escaped, and so
    are quotes and backslashes, so that an escape in a message is one."""
    if len(s) > limit:
        s = s[: limit - 3] + "..."
    return "'" + "".join(_shown(c) for c in s) + "'"


def _shown(c: str) -> str:
    if c in "\\'":
        return "\\" + c
    return c if c.isprintable() else c.encode("unicode_escape").decode("ascii")


def describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)  # the only other kind of YAML node
    tag = node.tag
    if tag == T_NULL:
        return "nothing (null)"
    if tag == T_BOOL and yaml_bool(node) is not None:
        return f"a boolean ({node.value})"
    if tag == T_INT and yaml_int(node) is not None:
        return f"an integer ({quote(node.value)[1:-1]})"
    if tag == T_FLOAT:
        return f"a number ({quote(node.value)[1:-1]})"
    return f"a string {quote(node.value)}"


def yaml_int(node: ScalarNode) -> Optional[int]:
    """The YAML 1.1 integer (0x.., 0o.., 1_000, 1:30) of an int-tagged scalar;
    None if it is not one (explicit !!int on anything) or too long for int()."""
    try:
        v = _constructor.construct_yaml_int(node)
    except (ValueError, TypeError, IndexError):
        return None
    return v if isinstance(v, int) else None


def yaml_bool(node: ScalarNode) -> Optional[bool]:
    v = _constructor.bool_values.get(node.value.lower())
    return None if v is None else bool(v)


def suggest(word: str, candidates) -> Optional[str]:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates) -> str:
    s = suggest(word, candidates)
    return f"; did you mean {quote(s)}?" if s is not None else ""


# ---------------------------------------------------------------- the reader

class Reader:
    """Reads YAML nodes of one file into values, collecting a diagnostic for
    every value that is not what was expected."""

    def __init__(self, filename: str):
        self.file = filename
        self.text = ""
        self.diags: list[Diagnostic] = []

    def where(self, node: Node) -> Where:
        m = node.start_mark
        return Where(self.file, m.line + 1, m.column + 1)

    def err(self, at: Node | Where, message: str) -> None:
        where = at if isinstance(at, Where) else self.where(at)
        self.diags.append(Diagnostic(where, message))

    # --- structure

    def mapping(self, node: Node, what: str) -> Optional[dict[str, tuple[ScalarNode, Node]]]:
        """key -> (key node, value node); None (after an error) if not a mapping.
        Duplicate keys are reported; merge keys (<<) are applied."""
        if not isinstance(node, MappingNode):
            self.err(node, f"expected {what}, got {describe(node)}")
            return None
        out: dict[str, tuple[ScalarNode, Node]] = {}
        merged: list[tuple[ScalarNode, Node]] = []
        self._collect(node, out, merged, {id(node)}, explicit=True)
        for k, v in merged:
            out.setdefault(k.value, (k, v))
        return out

    def _collect(self, node: MappingNode, out: dict, merged: list, seen: set, explicit: bool) -> None:
        for knode, vnode in node.value:
            if isinstance(knode, ScalarNode) and knode.tag == T_MERGE:
                sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
                for src in sources:
                    if not isinstance(src, MappingNode):
                        self.err(src, f"a merge key (<<) takes a mapping or a list of mappings, "
                                      f"got {describe(src)}")
                    elif id(src) not in seen:
                        seen.add(id(src))
                        sub: dict = {}
                        self._collect(src, sub, merged, seen, explicit=False)
                        merged.extend(sub.values())
                continue
            if not isinstance(knode, ScalarNode) or knode.tag == T_NULL:
                if explicit:
                    self.err(knode, f"keys must be names, got {describe(knode)}")
                continue
            key = knode.value
            if key in out:
                if explicit:
                    first = out[key][0].start_mark.line + 1
                    self.err(knode, f"duplicate key {quote(key)} (first given on line {first})")
                continue
            out[key] = (knode, vnode)

    def known_keys(self, pairs: dict, allowed: tuple[str, ...], where_: str) -> None:
        for key, (knode, _) in pairs.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                if not hint:
                    hint = f"; expected one of: {', '.join(allowed)}"
                self.err(knode, f"unknown key {quote(key)} in {where_}{hint}")

    def seq(self, node: Node, what: str) -> Optional[list[Node]]:
        if not isinstance(node, SequenceNode):
            self.err(node, f"expected a list of {what}, got {describe(node)}")
            return None
        return list(node.value)

    # --- scalars

    def str_(self, node: Node, what: str) -> Optional[str]:
        if isinstance(node, ScalarNode) and node.tag != T_NULL:
            return node.value
        self.err(node, f"expected {what}, got {describe(node)}")
        return None

    def int_(self, node: Node, what: str, lo: int, hi: int) -> Optional[int]:
        if not (isinstance(node, ScalarNode) and node.tag == T_INT):
            self.err(node, f"expected {what} (an integer {lo}..{hi}), got {describe(node)}")
            return None
        v = yaml_int(node)
        if v is None:
            if re.fullmatch(r"[-+]?[0-9_]+", node.value):  # too many digits for int()
                self.err(node, f"{what} {quote(node.value)} is out of range (expected {lo}..{hi})")
            else:
                self.err(node, f"expected {what} (an integer {lo}..{hi}), got {quote(node.value)}")
            return None
        if not lo <= v <= hi:
            self.err(node, f"{what} {v} is out of range (expected {lo}..{hi})")
            return None
        return v

    def bool_(self, node: Node, what: str) -> Optional[bool]:
        if isinstance(node, ScalarNode) and node.tag == T_BOOL:
            v = yaml_bool(node)
            if v is not None:
                return v
        self.err(node, f"expected {what} (true or false), got {describe(node)}")
        return None

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> Optional[str]:
        s = self.str_(node, f"{what} ({' | '.join(choices)})")
        if s is None:
            return None
        if s not in choices and len(choices) == 1:
            self.err(node, f"{what} {quote(s)} is not supported; expected {choices[0]}")
            return None
        if s not in choices:
            hint = did_you_mean(s, choices)
            self.err(node, f"{what} {quote(s)} is not one of {', '.join(choices)}{hint}")
            return None
        return s


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == T_NULL


# ---------------------------------------------------------------- the file itself

def yaml_error(ctx: Reader, e: yaml.YAMLError) -> None:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if isinstance(e, yaml.MarkedYAMLError):
        problem = e.problem or "invalid YAML"
        msg = f"invalid YAML: {problem}"
        if e.context and e.context_mark is not None and e.problem_mark is not None:
            cm = e.context_mark
            msg += f" ({e.context} at line {cm.line + 1}, column {cm.column + 1})"
        elif e.context:
            msg += f" ({e.context})"
        if mark is not None:
            ctx.err(Where(ctx.file, mark.line + 1, mark.column + 1), msg)
        else:
            ctx.err(Where(ctx.file, 1, 1), msg)
        return
    if isinstance(e, yaml.reader.ReaderError):
        ch = e.character
        code = ord(ch) if isinstance(ch, str) else ch
        ctx.err(offset_where(ctx, e.position), f"invalid YAML: {e.reason} (character U+{code:04X})")
        return
    ctx.err(Where(ctx.file, 1, 1), f"invalid YAML: {e}")


def offset_where(ctx: Reader, pos: int) -> Where:
    text = ctx.text
    before = text[:pos]
    line = before.count("\n") + 1
    col = pos - (before.rfind("\n") + 1) + 1
    return Where(ctx.file, line, col)


def compose(ctx: Reader, text: str) -> Optional[Node]:
    ctx.text = text
    try:
        # the pure-Python loader: its recursion is bounded by Python's limit
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        yaml_error(ctx, e)
    except RecursionError:
        ctx.err(Where(ctx.file, 1, 1), "invalid YAML: nested too deeply")
    return None


def read_file(filename: str) -> str:
    """The text of a topology file; an unreadable or non-UTF-8 file is a
    TopologyError naming the file (and the first bad byte)."""
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TopologyError([Diagnostic(Where(filename, 0, 0), f"cannot read: {e.strerror or e}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise TopologyError([Diagnostic(Where(filename, line, col),
                                        f"not UTF-8 text (byte 0x{data[e.start]:02x})")]) from None
