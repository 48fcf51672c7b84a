"""One self-contained HTML page of a run (docs: README, "Results, reports
and comparisons"): the findings, the catalogue table, and per failure the
field-by-field diff of its checks, the kernel's lines, the lab's picture
and links to the pcaps.  No script, no external file: it opens from a CI
artefact or a mail attachment as it is.
"""
from __future__ import annotations

import difflib
import os
import re
from html import escape

from testbed import catalogue
from testbed.results.findings import SECTIONS as FINDING_TITLES
from testbed.results.findings import findings, kernel_lines, passed_with_kernel_problems
from testbed.results.record import Case, Record
from testbed.results.verdicts import catalogue_ids, cells, id_verdicts, title

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 0 0 .4em; font-family: ui-monospace, monospace; }
.meta { color: #555; margin: 0; }
table { border-collapse: collapse; margin: .5em 0; }
table.findings td.case { min-width: 14em; }
.id { white-space: nowrap; }
th, td { border: 1px solid #ddd; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr.area td { background: #fafafa; font-weight: 600; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .6em; overflow-x: auto; font-size: 13px; }
code, .mono { font-family: ui-monospace, monospace; font-size: 13px; }
.v { font-weight: 700; font-size: 12px; padding: .15em .5em; border-radius: 3px; white-space: nowrap; }
.v.PASS, .v.passed { background: #e3f4e1; color: #1d6b1d; } .v.FAIL, .v.failed { background: #fbe1e1; color: #a11; }
.v.CRASH, .v.crashed { background: #5b1010; color: #fff; } .v.ERROR, .v.error { background: #fde9cf; color: #8a4b00; }
.v.NOTE { background: #e1ecfb; color: #124a9a; } .v.SKIP, .v.skipped { background: #eee; color: #666; }
.none { color: #bbb; }
.counts .v { margin-right: .4em; font-size: 13px; }
table.facts th, table.facts td { border: 0; padding: .05em .8em .05em 0; background: none; font-weight: normal; }
table.facts th { color: #666; }
article { border: 1px solid #ddd; border-left: 5px solid #c33; padding: .8em 1em; margin: 1em 0; }
article.crashed { border-left-color: #5b1010; } article.error { border-left-color: #d98a00; }
mark { background: #ffd2d2; padding: 0 1px; } mark.exp { background: #d6f0d6; }
.crash pre { background: #fff4f4; border-color: #e8bcbc; }
.muted { color: #777; } figure { margin: .5em 0; } figcaption { font-size: 13px; color: #555; }
nav a { margin-right: 1em; }
"""

_TOKEN = re.compile(r"\s+|[,;=()\[\]{}:]|[^\s,;=()\[\]{}:]+")


def _v(word: str) -> str:
    cls = word.rstrip("*")
    return f'<span class="v {escape(cls)}">{escape(word)}</span>'


def diff_pair(expected: str, seen: str) -> tuple[str, str]:
    """Expected and seen as HTML, the tokens that differ marked on both sides."""
    a, b = _TOKEN.findall(expected), _TOKEN.findall(seen)
    ea, eb = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left, right = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            ea.append(left)
            eb.append(right)
        else:
            ea.append(f'<mark class="exp">{left}</mark>' if left else "")
            eb.append(f"<mark>{right}</mark>" if right else "")
    return "".join(ea), "".join(eb)


def _nodeid(nodeid: str) -> str:
    """A node id as HTML that may wrap only after `::`, `/` and `_` (a <wbr>
    there): a long one does not widen its table, and neither a name nor a
    parameter such as `[ref]` is broken mid-word as `word-break: break-all`
    or `overflow-wrap: anywhere` would."""
    return "<wbr>".join(escape(part) for part in re.split(r"(?<=::)|(?<=/)|(?<=_)", nodeid))


def _anchor(n: int) -> str:
    return f"case-{n}"


def _short_nodeid(nodeid: str) -> str:
    """`cases/test_x.py::test_y[kernel]` -> `test_x.py::test_y[kernel]`: the table stays narrow."""
    path, sep, rest = nodeid.partition("::")
    return f"{os.path.basename(path)}{sep}{rest}"


def _table(head: list[tuple[str, str]], rows: list[list[str]], cls: str = "") -> str:
    """A table of (title, cell class) columns and rows of cell HTML, without
    the columns empty in every row (no clause texts yet, no expected/seen
    for plain asserts)."""
    keep = [i for i in range(len(head)) if any(r[i] for r in rows)]
    out = [f"<table class='{cls}'><tr>" + "".join(f"<th>{head[i][0]}</th>" for i in keep) + "</tr>"]
    out += ["<tr>" + "".join(f"<td class='{head[i][1]}'>{r[i]}</td>" for i in keep) + "</tr>" for r in rows]
    return "".join(out) + "</table>"


def _findings_table(record: Record, anchors: dict[str, int]) -> str:
    found = findings(record)
    if not found:
        return "<p>No findings: every case that ran passed.</p>"
    rows = []
    for f in found:
        # a side left empty (a note of what was seen) is no difference to mark
        exp, seen = diff_pair(f.expected, f.seen) if f.expected and f.seen else (escape(f.expected), escape(f.seen))
        name = _nodeid(_short_nodeid(f.nodeid))
        link = f'<a href="#{_anchor(anchors[f.nodeid])}" title="{escape(f.nodeid)}">{name}</a>' \
            if f.nodeid in anchors else name
        word = {"crash": "CRASH", "fail": "FAIL", "error": "ERROR", "note": "NOTE"}[f.kind]
        rows.append([_v(word), f"<b>{escape(f.id)}</b>", escape(f.clause), escape(f.what), exp, seen, link])
    head = [("", ""), ("ID", "id"), ("clause", ""), ("what", ""), ("expected", "mono"), ("seen", "mono"),
            ("case", "mono case")]
    return _table(head, rows, "findings")


_FIELD = re.compile(r"(?P<field>[\w.\-\[\]]+): expected (?P<expected>.+?), (?:got|seen) (?P<seen>[^;]+)")


def fields_from_message(message: str) -> list[tuple[str, str, str]]:
    """(field, expected, seen) from a plain failure message written as
    `IPv6.hlim: expected 64, got 1` (the packet comparison's words), for a
    case without per-ID checks; pytest's own `assert ...` lines repeat them
    and are left out."""
    out: list[tuple[str, str, str]] = []
    for line in message.splitlines():
        if line.lstrip().startswith("assert "):
            continue
        for m in _FIELD.finditer(line):
            field = (m["field"], m["expected"].strip(), m["seen"].strip())
            if field not in out:
                out.append(field)
    return out


def _kernel_notes(record: Record) -> str:
    cases = passed_with_kernel_problems(record)
    if not cases:
        return ""
    items = "".join(f"<li><code>{_nodeid(c.nodeid)}</code><pre>{escape(chr(10).join(kernel_lines(c)))}</pre></li>"
                    for c in cases)
    return f"<p><b>Kernel problems logged while passing cases ran</b> (the case judged them)</p><ul>{items}</ul>"


def _catalogue_table(record: Record) -> str:
    dps, cell = cells(record.cases)
    head = "".join(f"<th>{escape(dp)}</th>" for dp in dps)
    rows, area = [], ""
    for cid in catalogue_ids(record.cases):
        if cid[0] != area:
            area = cid[0]
            rows.append(f'<tr class="area"><td colspan="{len(dps) + 2}">{escape(area)}: '
                        f"{escape(catalogue.AREAS.get(area, ''))}</td></tr>")
        tds = "".join(f"<td>{_v(cell[(cid, dp)])}</td>" if (cid, dp) in cell else '<td class="none">-</td>'
                      for dp in dps)
        rows.append(f'<tr><td class="id"><b>{escape(cid)}</b></td>{tds}<td>{escape(title(cid))}</td></tr>')
    return (f"<table><tr><th>ID</th>{head}<th>behaviour</th></tr>" + "".join(rows) + "</table>"
            '<p class="muted">PASS* = some cases for this ID were skipped on this datapath; '
            "NOTE = a finding recorded without failing; ERROR = the case could not run its checks.</p>")


def _check_rows(checks: list[dict]) -> list[list[str]]:
    rows = []
    for c in checks:
        exp, seen = str(c.get("expected", "")), str(c.get("seen", ""))
        verdict = str(c.get("verdict", "")).upper()
        exp, seen = diff_pair(exp, seen) if verdict == "FAIL" else (escape(exp), escape(seen))
        rows.append([_v(verdict), f"<b>{escape(str(c.get('id', '')))}</b>", escape(str(c.get("clause", ""))),
                     escape(str(c.get("what", ""))), exp, seen])
    return rows


_CHECK_HEAD = [("", ""), ("ID", "id"), ("clause", ""), ("field", ""), ("expected", "mono"), ("seen", "mono")]


def _checks_table(case: Case) -> str:
    """The failed checks and notes field by field, the passing ones folded
    away (a case may check thirty fields to fail on one)."""
    if not case.checks:
        return _message_fields_table(case)
    shown = [c for c in case.checks if c.get("verdict") != "pass"]
    passing = [c for c in case.checks if c.get("verdict") == "pass"]
    out = _table(_CHECK_HEAD, _check_rows(shown), "checks") if shown else ""
    if passing:
        out += (f"<details><summary>{len(passing)} passing check{'s' * (len(passing) != 1)}</summary>"
                f"{_table(_CHECK_HEAD, _check_rows(passing), 'checks')}</details>")
    return out


def _message_fields_table(case: Case) -> str:
    fields = fields_from_message(case.message)
    if not fields:
        return ""
    rows = []
    for name, exp, seen in fields:
        e, v = diff_pair(exp, seen)
        rows.append(f"<tr><td class=mono>{escape(name)}</td><td class=mono>{e}</td><td class=mono>{v}</td></tr>")
    return "<table><tr><th>field</th><th>expected</th><th>seen</th></tr>" + "".join(rows) + "</table>"


def _crash_block(case: Case) -> str:
    crash = case.crash
    if crash is None:
        return ""
    lines = crash.lines or [crash.title, crash.rip, "Call Trace:", *crash.trace]
    return (f'<div class="crash"><p><b>kernel {escape(crash.kind)}</b> on boot {crash.boot}: '
            f"<code>{escape(crash.title)}</code></p><pre>{escape(chr(10).join(lines))}</pre></div>")


def _pcap(path: str, base: str, record_dir: str) -> str:
    """A link to a kept pcap, relative to the page (`base`); a relative path
    in the record is taken from the record's directory.  A pcap that is not
    there (a record from another machine, such as the committed baseline,
    or one copied without its results directory) is named, not linked: no
    dead link."""
    where = path if os.path.isabs(path) else os.path.join(record_dir, path)
    name = escape(os.path.basename(path))
    if not os.path.isfile(where):
        return f"<span class='muted'>{name} (pcap not kept)</span>"
    return f'<a href="{escape(os.path.relpath(where, base))}">{name}</a>'


def _case_article(case: Case, n: int, base: str, record_dir: str) -> str:
    verdicts = " ".join(f'<span class="id">{escape(i)} {_v(v)}</span>' for i, v in id_verdicts(case).items())
    parts = [f'<article class="{escape(case.outcome)}" id="{_anchor(n)}">',
             f"<h3>{_nodeid(case.nodeid)}</h3>",
             f"<p>{_v(case.outcome)} datapath <b>{escape(case.datapath)}</b> · {verdicts or 'no IDs'} · "
             f"{case.duration:.1f} s · boot {case.boot}</p>",
             _crash_block(case), _checks_table(case)]
    if case.message and case.outcome != "crashed":
        parts.append(f"<details{' open' if not case.checks else ''}><summary>failure message</summary>"
                     f"<pre>{escape(case.message)}</pre></details>")
    if case.kernel_problems:
        lines = "\n".join(kernel_lines(case))
        parts.append(f"<p><b>kernel problems while it ran</b></p><pre>{escape(lines)}</pre>")
    for lab in case.labs:
        if lab.get("picture"):
            parts.append(f"<figure><figcaption>lab <code>{escape(lab.get('name', ''))}</code> from "
                         f"<code>{escape(lab.get('source', ''))}</code></figcaption>"
                         f"<pre>{escape(lab['picture'])}</pre></figure>")
    if case.pcaps:
        parts.append("<p><b>pcaps</b>: " + ", ".join(_pcap(p, base, record_dir) for p in case.pcaps) + "</p>")
    parts.append("</article>")
    return "\n".join(p for p in parts if p)


def _plain_list(cases: list[Case], reason: bool) -> str:
    rows = "".join(f"<tr><td class=mono>{_nodeid(c.nodeid)}</td><td>"
                   f"{escape(c.skip_reason) if reason else f'{c.duration:.1f} s'}</td></tr>" for c in cases)
    return f"<table>{rows}</table>"


def _facts(record: Record) -> str:
    """What the run ran on, as a small table under the title."""
    h = record.header
    where = "a testbed vm guest" if h.machine == "guest" else f"the host ({h.hostname or '?'})"
    facts = [("kernel", h.release or "?"), ("datapath", ", ".join(record.datapaths() or h.datapaths) or h.datapath),
             ("expectations", f"--spec {h.spec}"), ("ran in", where), ("started", h.started or "?"),
             ("boots", str(record.boots)), ("record", record.path)]
    rows = "".join(f"<tr><th>{escape(k)}</th><td class=mono>{escape(v)}</td></tr>" for k, v in facts if v)
    return f'<table class="facts">{rows}</table>'


def page(record: Record, base: str = ".") -> str:
    """The page; `base` is the directory it will be written to (pcap links are relative to it)."""
    h = record.header
    record_dir = os.path.dirname(os.path.abspath(record.path)) if record.path else os.getcwd()
    bad = [c for c in record.cases if c.bad]
    bad.sort(key=lambda c: ("crashed", "failed", "error").index(c.outcome))
    anchors = {c.nodeid: n for n, c in enumerate(bad, 1)}
    counts = "".join(f'<span class="v {o}">{n} {o}</span>' for o, n in record.counts().items() if n)
    skipped = [c for c in record.cases if c.outcome == "skipped"]
    passed = [c for c in record.cases if c.outcome == "passed"]
    kinds = sorted({f.kind for f in findings(record)}, key=list(FINDING_TITLES).index)
    body = [
        f"<h1>srl2 conformance: kernel {escape(h.release or '?')}</h1>",
        _facts(record),
        f'<p class="counts">{len(record.cases)} cases: {counts}</p>',
        '<nav><a href="#findings">findings</a><a href="#catalogue">catalogue</a>'
        '<a href="#failures">failures</a><a href="#skipped">skipped</a><a href="#passed">passed</a></nav>',
        '<h2 id="findings">Findings</h2>',
        f"<p class=muted>{escape(', '.join(FINDING_TITLES[k] for k in kinds))}</p>" if kinds else "",
        _findings_table(record, anchors), _kernel_notes(record),
        '<h2 id="catalogue">Catalogue</h2>', _catalogue_table(record),
        f'<h2 id="failures">Failures ({len(bad)})</h2>',
        *[_case_article(c, anchors[c.nodeid], base, record_dir) for c in bad],
        f'<h2 id="skipped">Skipped ({len(skipped)})</h2>', _plain_list(skipped, True),
        f'<h2 id="passed">Passed ({len(passed)})</h2>',
        f"<details><summary>{len(passed)} cases</summary>{_plain_list(passed, False)}</details>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>srl2 conformance: {escape(h.release or '?')}</title><style>{STYLE}</style></head>"
            "<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")


def write(record: Record, path: str) -> None:
    base = os.path.dirname(os.path.abspath(path))
    os.makedirs(base, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(record, base))
