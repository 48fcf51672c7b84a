"""Render a topology as a standalone bash script, a graphviz graph or an SVG.

* `render_script(topo, with_checks)`: a kselftest-style bash script
  (iproute2 only) that builds the same lab as `testbed up`, in the same
  order as the engine (testbed/lab.py; the commands: testbed/render/plan.py),
  and with `with_checks` runs the topology's checks
  (testbed/render/checks.py) as KTAP.  See the header of lab.sh.j2 for its command line, exit
  codes and the srl2 skip protocol.
* `render_dot(topo)`: graphviz DOT; hosts are boxes, routers ellipses (with
  their SIDs listed under the name), veth links are edges labelled with the
  interface names at each end, srl2 pseudowires are dashed arrows from the
  node of the srl2 device to the node owning its last SID.
* `render_svg(topo)`: `render_dot` run through graphviz `dot -Tsvg`.

Pure functions of the model (except `render_svg`, which runs `dot`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional

import jinja2

from testbed import model
from testbed.render import ascii
from testbed.render.checks import script_checks
from testbed.render.plan import Plan, RenderError, ns_prefix, ns_variables
from testbed.render.shell import word as _word

__all__ = ["render_script", "render_dot", "render_svg", "render_graph", "draw", "GRAPH_FORMATS", "ns_variables",
           "RenderError", "KSFT_PASS", "KSFT_FAIL", "KSFT_SKIP", "BASE_SYSCTLS", "ROUTER_SYSCTLS"]

# kselftest exit codes (tools/testing/selftests/kselftest.h)
KSFT_PASS = 0
KSFT_FAIL = 1
KSFT_SKIP = 4

# Same defaults as the engine (testbed/lab.py), through testbed.defaults, so
# that the renderer does not import the engine and its netlink stack.
from testbed.defaults import BASE_SYSCTLS, ROUTER_SYSCTLS  # noqa: E402  (re-exported)

_HERE = os.path.dirname(os.path.abspath(__file__))
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


# ---- public API -------------------------------------------------------------


def script_revision(topo: model.Topology, revision: str | None = None):
    """The revision whose `ip` syntax the script speaks: the one asked for
    (--revision, else the topology's `revision:`), else the oldest that has
    everything the topology asks for (a script may run on any kernel: it
    probes for that revision's device and SKIPs without it)."""
    from testbed import revisions
    from testbed.topology.revision import revision_errors

    asked = revision or (topo.revision if topo.revision != "auto" else None)
    if asked and asked != "auto":
        return revisions.get(asked)
    return next((r for r in revisions.all_revisions() if not revision_errors(topo, r)),
                revisions.all_revisions()[0])


def render_script(topo: model.Topology, with_checks: bool = False, revision: str | None = None) -> str:
    """A standalone bash script that builds `topo` with iproute2 (see
    lab.sh.j2); `with_checks`, it then runs the topology's checks and
    reports them as KTAP (checks.sh.j2): a selftest.  Without, it only
    builds (what the bring-up benchmark and the engine comparison time).
    The devices are written in the `ip` syntax of `revision`
    (script_revision)."""
    rev = script_revision(topo, revision)
    plan = Plan(topo, rev)
    sections = plan.build()
    var = plan.var
    header = "\n".join(ascii.comment(ascii.render(topo)))
    description = "\n".join(ascii.comment(topo.description.strip() or "(no description)"))
    nodes = [
        {"name": n, "var": var[n], "prefix": ns_prefix(n), "kind": node.kind}
        for n, node in topo.nodes.items()
    ]
    needs_srl2_kind = any(n.srl2 for n in topo.nodes.values())
    needs_vlan_filtering = any(b.vlan_filtering for n in topo.nodes.values() for b in n.bridges.values())
    needs_vrf = any(n.vrfs for n in topo.nodes.values())
    uses_dt2u = any(s.action == "End.DT2U" for n in topo.nodes.values() for s in n.sids)
    # What the kernel's seg6 lwtunnels must do (CONFIG_IPV6_SEG6_LWTUNNEL):
    # each encap mode the routes use (newer modes need newer kernels and
    # iproute2), and seg6local for the SIDs, which the script always
    # installs in the kernel.
    encap_modes = list(dict.fromkeys(r.encap.mode for n in topo.nodes.values() for r in n.routes if r.encap))
    uses_seg6local = any(n.sids for n in topo.nodes.values())
    checks = script_checks(topo, var) if with_checks else None
    return _env.get_template("lab.sh.j2").render(
        checks=checks,
        exit_status='"$checks_rc"' if checks else "0",
        name=topo.name,
        source=topo.source or "(built in Python)",
        description=description,
        picture=header,
        nodes=nodes,
        sections=sections,
        needs_srl2=topo.needs_srl2,
        needs_srl2_kind=needs_srl2_kind,
        kind=rev.kind,
        probe_mode="mode full " if len(rev.modes) > 1 else "",
        uses_dt2u=uses_dt2u,
        needs_vlan_filtering=needs_vlan_filtering,
        needs_vrf=needs_vrf,
        encap_modes=encap_modes,
        uses_seg6local=uses_seg6local,
        probes=(needs_srl2_kind or uses_dt2u or needs_vlan_filtering or needs_vrf or bool(encap_modes)
                or uses_seg6local),
        needs_bridge_cmd=plan.needs_bridge_cmd,
        needs_tunsrc=any(n.tunsrc is not None for n in topo.nodes.values()),
        ksft_fail=KSFT_FAIL,
        ksft_skip=KSFT_SKIP,
        word=_word,
    )


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(topo: model.Topology) -> str:
    """Graphviz DOT of the topology."""
    nodes = []
    for name, node in topo.nodes.items():
        lines = [name]
        if node.kind == "router":
            for s in node.sids:
                sid = str(s.sid.network_address) if s.sid.prefixlen == 128 else str(s.sid)
                arg = s.oif or s.l2dev or (str(s.nh6) if s.nh6 else "")
                lines.append(f"{sid} {s.action}" + (f" {arg}" if arg else ""))
        # "\l" left-justifies the SID lines under a centred name
        label = lines[0] if len(lines) == 1 else lines[0] + "\\n" + "\\l".join(
            _escape_label(l) for l in lines[1:]) + "\\l"
        nodes.append({
            "id": _dot_id(name),
            "label": label if len(lines) > 1 else _escape_label(name),
            "shape": "ellipse" if node.kind == "router" else "box",
        })
    links = [{
        "a": _dot_id(l.a.node), "b": _dot_id(l.b.node),
        "taillabel": _escape_label(l.a.ifname), "headlabel": _escape_label(l.b.ifname),
        "tooltip": _escape_label(f"{l.a} -- {l.b}"),
    } for l in topo.links]
    pws = []
    unknown = []
    for name, node in topo.nodes.items():
        for dev in node.srl2.values():
            if not dev.segs:
                continue
            owner = ascii.sid_owner(topo, dev.segs[-1])
            label = _escape_label(f"{dev.name} -> {dev.segs[-1]}")
            if owner is None:
                uid = _dot_id(f"?{dev.segs[-1]}")
                unknown.append({"id": uid, "label": _escape_label(f"{dev.segs[-1]}?")})
                pws.append({"a": _dot_id(name), "b": uid, "label": label})
            else:
                pws.append({"a": _dot_id(name), "b": _dot_id(owner[0]), "label": label})
    return _env.get_template("graph.dot.j2").render(
        name=_dot_id(topo.name), title=_escape_label(topo.description.strip() or topo.name),
        nodes=nodes, links=links, pseudowires=pws, unknown=unknown)


def _escape_label(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


GRAPH_FORMATS = ("svg", "png", "pdf")  # drawn by graphviz `dot -T<format>`


def render_svg(topo: model.Topology, dot: Optional[str] = None) -> bytes:
    """SVG of `render_dot(topo)`, by graphviz `dot` (path: `dot`, else $PATH)."""
    return render_graph(topo, "svg", dot)


def render_graph(topo: model.Topology, fmt: str, dot: Optional[str] = None) -> bytes:
    """`render_dot(topo)` drawn by graphviz `dot -T<fmt>`, fmt one of GRAPH_FORMATS."""
    return draw(render_dot(topo), fmt, dot)


def draw(text: str, fmt: str, dot: Optional[str] = None) -> bytes:
    """DOT `text` drawn by graphviz `dot -T<fmt>`, fmt one of GRAPH_FORMATS."""
    if fmt not in GRAPH_FORMATS:
        raise RenderError(f"graphviz output format must be one of {', '.join(GRAPH_FORMATS)}, not {fmt!r}")
    exe = dot or shutil.which("dot")
    if not exe:
        raise RenderError("graphviz is not installed: `dot` is not on PATH "
                          "(apt-get install graphviz); DOT needs no graphviz: `testbed graph TOPOLOGY -o FILE.dot`")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=text.encode(),
                              capture_output=True, check=False, timeout=60)
    except OSError as e:
        raise RenderError(f"cannot run {exe}: {e}") from None
    if proc.returncode != 0:
        raise RenderError(f"{exe} -T{fmt} failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
