"""docs/catalogue.md matches the code: every catalogue ID has its entry,
and each entry names exactly the cases tagged with that ID."""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from testbed.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def tagged_cases() -> dict[str, set[str]]:
    """ID -> names of the cases whose conformance marker names it."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / "cases").glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for d in node.decorator_list:
                    if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "conformance":
                        for a in d.args:
                            out[a.value].add(node.name)
    return out


def documented_cases() -> dict[str, set[str]]:
    """ID -> names of the cases its bullet in docs/catalogue.md names."""
    text = (ROOT / "docs" / "catalogue.md").read_text()
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"^- \*\*([A-Z]\d)\*\* (.*?)(?=^- \*\*|^#|\Z)", text, re.S | re.M):
        if m.group(1) not in out:  # the first bullet is the definition; "Known findings" come later
            out[m.group(1)] = set(re.findall(r"`(test_\w+)`", m.group(2)))
    return out


def test_every_id_is_documented_with_exactly_its_cases():
    tagged, documented = tagged_cases(), documented_cases()
    assert set(documented) == set(CATALOGUE), sorted(set(CATALOGUE) ^ set(documented))
    wrong = {cid: {"undocumented": sorted(tagged[cid] - documented[cid]),
                   "not tagged": sorted(documented[cid] - tagged[cid])}
             for cid in CATALOGUE if tagged[cid] != documented[cid]}
    assert wrong == {}


def test_the_revision_table_names_every_expectation_that_differs():
    """docs/catalogue.md's "Which clause applies to which revision" has a
    row for every ID a revision module says it expects otherwise."""
    from testbed import revisions

    text = (ROOT / "docs" / "catalogue.md").read_text()
    table = text.split("## Which clause applies to which revision", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    differs = {d.id for r in revisions.all_revisions() for d in r.differs}
    assert differs and differs <= rows, sorted(differs - rows)
