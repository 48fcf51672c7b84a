"""JUnit XML from a run's record, in the form xunit2 readers accept
(docs: README, "Results, reports and comparisons").

xunit2 has no properties on a test case (pytest's default family drops
them), so what a reviewer needs travels in what it keeps: a failure's
message is its first finding line, its text has every per-ID line; the
per-ID verdicts, notes, kernel problems and pcaps go in <system-out>.  A
crashed case is a failure of type "kernel crash" whose text holds the
kernel's first line, RIP and call trace.
"""
from __future__ import annotations

import os
import re
import socket
import xml.etree.ElementTree as ET

from testbed.results.findings import expected_seen, findings_of, first_line
from testbed.results.record import Case, Record
from testbed.results.verdicts import id_verdicts

# characters XML 1.0 does not allow, which kernel lines may hold
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(el: ET.Element) -> None:
    for node in el.iter():
        if node.text:
            node.text = _NOT_XML.sub("?", node.text)
        for k, v in node.attrib.items():
            node.attrib[k] = _NOT_XML.sub("?", v)


def names(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's own JUnit writer makes them."""
    parts = nodeid.split("::")
    path = parts[0].removesuffix(".py").replace("/", ".").replace("\\", ".").lstrip(".")
    return ".".join([path, *parts[1:-1]]), parts[-1]


def crash_text(case: Case) -> str:
    crash = case.crash
    if crash is None:
        return ""
    if crash.lines:
        return "\n".join(crash.lines)
    return "\n".join([crash.title, crash.rip, "Call Trace:", *[f" {t}" for t in crash.trace]])


def system_out(case: Case) -> str:
    """Everything xunit2 would otherwise drop: per-ID verdicts, notes, kernel lines, pcaps."""
    out = [f"datapath: {case.datapath}; IDs: {', '.join(case.all_ids()) or '-'}; boot {case.boot}"]
    verdicts = id_verdicts(case)
    if verdicts:
        out.append("per ID: " + ", ".join(f"{i} {v}" for i, v in verdicts.items()))
    for c in case.checks:
        both = expected_seen(c.get("expected", ""), c.get("seen", ""))
        out.append(f"{c.get('verdict', '?').upper():4} {c.get('id', '-')} [{c.get('clause', '')}] "
                   f"{c.get('what', '')}{': ' + both if both else ''}")
    out += [f"kernel {p.get('kind', '?')}: {p.get('line', '')}" for p in case.kernel_problems]
    out += [f"pcap: {p}" for p in case.pcaps]
    return "\n".join(out)


def testcase(case: Case) -> ET.Element:
    classname, name = names(case.nodeid)
    el = ET.Element("testcase", classname=classname, name=name, time=f"{case.duration:.3f}")
    found = findings_of(case)
    if case.outcome == "crashed":
        crash = case.crash
        title = crash.title if crash else "kernel crashed"
        sub = ET.SubElement(el, "failure", message=f"kernel crash: {title}", type="kernel crash")
        sub.text = crash_text(case)
    elif case.outcome == "failed":
        lines = [f.line() for f in found if f.kind == "fail"]
        sub = ET.SubElement(el, "failure", message=lines[0] if lines else first_line(case.message),
                            type="conformance")
        sub.text = "\n".join(lines + (["", case.message] if case.message else []))
    elif case.outcome == "error":
        sub = ET.SubElement(el, "error", message=first_line(case.message) or "error", type="error")
        sub.text = case.message
    elif case.outcome == "skipped":
        ET.SubElement(el, "skipped", message=case.skip_reason, type="pytest.skip")
    ET.SubElement(el, "system-out").text = system_out(case)
    return el


def junit(record: Record) -> str:
    """The whole JUnit document, one <testsuite> holding every case."""
    counts = record.counts()
    h = record.header
    attrs: dict[str, str] = dict(
        name="srl2-testbed", tests=str(len(record.cases)),
        failures=str(counts["failed"] + counts["crashed"]), errors=str(counts["error"]),
        skipped=str(counts["skipped"]), time=f"{sum(c.duration for c in record.cases):.3f}",
        timestamp=h.started.removesuffix("Z"), hostname=h.hostname or socket.gethostname())
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key, value in (("kernel_release", h.release), ("datapath", ",".join(record.datapaths()) or h.datapath),
                       ("spec", h.spec), ("machine", h.machine), ("boots", str(record.boots))):
        ET.SubElement(props, "property", name=key, value=value)
    for case in record.cases:
        suite.append(testcase(case))
    _clean(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(record: Record, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(junit(record))
