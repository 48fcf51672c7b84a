"""testbed.topology: YAML -> validated model.

Golden error cases: tests/errors/NAME.yaml with the exact expected message in
tests/errors/NAME.txt.  Regenerate the .txt files after a deliberate change
of wording with

    UPDATE_GOLDEN=1 python -m pytest tests/test_topology.py

and review the diff.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed import model, topology
from testbed.diagnostics import Diagnostic, TopologyError
from testbed.model import Where

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "tests" / "errors"
TOPOLOGIES = ROOT / "topologies"
UPDATE = os.environ.get("UPDATE_GOLDEN") not in (None, "", "0")

GOLDEN = sorted(p.stem for p in ERRORS.glob("*.yaml"))
TOPOS = sorted(p.name for p in TOPOLOGIES.glob("*.yaml"))


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


# ---------------------------------------------------------------- golden errors

@pytest.mark.parametrize("case", GOLDEN)
def test_golden_error(case, at_root):
    rel = f"tests/errors/{case}.yaml"
    with pytest.raises(TopologyError) as info:
        topology.load(rel)
    got = str(info.value) + "\n"
    expected_file = ERRORS / f"{case}.txt"
    if UPDATE:
        expected_file.write_text(got)
    assert expected_file.exists(), f"no golden {expected_file.name}; run with UPDATE_GOLDEN=1"
    assert got == expected_file.read_text()
    # every diagnostic points into the file, sorted
    diags = info.value.diagnostics
    assert all(d.where.file == rel for d in diags)
    keys = [(d.where.line, d.where.col) for d in diags]
    assert keys == sorted(keys)


def test_every_golden_has_expectation():
    assert {p.stem for p in ERRORS.glob("*.txt")} == set(GOLDEN)


def test_goldens_cover_several_mistakes_at_once(at_root):
    with pytest.raises(TopologyError) as info:
        topology.load("tests/errors/many-mistakes.yaml")
    assert len(info.value.diagnostics) >= 10


# ---------------------------------------------------------------- good topologies

@pytest.mark.parametrize("fname", TOPOS)
def test_topologies_load(fname, at_root):
    topo = topology.load(f"topologies/{fname}")
    assert topo.name == Path(fname).stem
    assert topo.source == f"topologies/{fname}"
    assert topo.nodes
    for node in topo.nodes.values():
        assert node.where.file == f"topologies/{fname}" and node.where.line > 0
        assert next(iter(node.interfaces)) == "lo"
        # every reference resolves to an interface of the node
        for s in node.sids:
            for name in (s.oif, s.l2dev, s.dev):
                assert name is None or name in node.interfaces
        for r in node.routes:
            assert r.dev is None or r.dev in node.interfaces
        for br in node.bridges.values():
            names = [p.name for p in br.ports]
            assert len(names) == len(set(names))
            assert all(n in node.interfaces for n in names)
    for link in topo.links:
        for end in (link.a, link.b):
            assert end.ifname in topo.nodes[end.node].interfaces
    # the file starts with a comment (what it is, a picture)
    assert (TOPOLOGIES / fname).read_text().startswith("#")


def test_p2p_model(at_root):
    topo = topology.load("topologies/p2p.yaml")
    rt1 = topo.nodes["rt-1"]
    assert rt1.kind == "router" and topo.nodes["hs-1"].kind == "host"
    assert topo.datapath == "auto"
    # srl2 `bridge: br0` adds the device to br0's ports, once
    assert [p.name for p in rt1.bridges["br0"].ports] == ["veth-hs", "srl2-0"]
    assert rt1.srl2["srl2-0"].segs == [ipaddress.IPv6Address("fcff:2::d20")]
    assert list(rt1.interfaces) == ["lo", "veth-hs", "veth-rt2", "br0", "srl2-0"]
    assert rt1.interfaces["br0"].addresses == [ipaddress.ip_interface("10.0.0.254/24"),
                                               ipaddress.ip_interface("cafe::254/64")]
    assert rt1.interfaces["veth-hs"].addresses == []
    sid = rt1.sids[0]
    assert sid.sid == ipaddress.IPv6Network("fcff:1::d20/128")
    assert (sid.action, sid.l2dev, sid.table) == ("End.DT2U", "srl2-0", 90)
    assert sid.where == Where("topologies/p2p.yaml", 29, 9)
    route = rt1.routes[0]
    assert route.dst == ipaddress.ip_network("fcff:2::/32") and route.table == 90
    assert route.via == ipaddress.ip_address("fcf0:0:1:2::2") and route.family == 6
    rule = rt1.rules[0]
    assert (rule.to, rule.lookup, rule.prio, rule.family) == (ipaddress.ip_network("fcff::/16"), 90, 999, 6)
    assert topo.links[0].a == model.Endpoint("hs-1", "veth0", Where("topologies/p2p.yaml", 52, 6))
    assert topo.needs_srl2


def test_srl2_listed_in_ports_and_bridge_key_is_one_port():
    topo = topology.loads("nodes:\n  r:\n    bridges: {br0: {ports: [s0]}}\n"
                          "    srl2: {s0: {segs: ['fc00::1'], bridge: br0}}\n", "x.yaml")
    assert [p.name for p in topo.nodes["r"].bridges["br0"].ports] == ["s0"]


def test_chain(at_root):
    topo = topology.load("topologies/chain.yaml")
    assert len(topo.nodes["rt-1"].srl2["srl2-0"].segs) == 3
    assert [s.action for s in topo.nodes["rt-2"].sids] == ["End"]
    # every router routes (table 90) to every other router's locator
    routers = [n for n in topo.nodes.values() if n.kind == "router"]
    for r in routers:
        dsts = {rt.dst for rt in r.routes if rt.table == 90}
        for other in routers:
            if other is not r:
                n = other.name.split("-")[1]
                assert ipaddress.ip_network(f"fcff:{n}::/32") in dsts


def test_mesh4(at_root):
    topo = topology.load("topologies/mesh4.yaml")
    assert not topo.needs_srl2
    rt2 = topo.nodes["rt-2"]
    enc = [r.encap for r in rt2.routes if r.encap]
    assert {e.mode for e in enc} == {"l2encap.red"}
    assert enc[0].segs == [ipaddress.IPv6Address(a) for a in ("fcff:4::e", "fcff:3::e", "fcff:1::d2")]
    assert {s.action for s in rt2.sids} == {"End", "End.DX2"}
    assert rt2.interfaces["veth-hs"].mac == "00:00:00:c0:01:01"


def test_dx2(at_root):
    topo = topology.load("topologies/dx2.yaml")
    (sid,) = topo.nodes["rt-2"].sids
    assert (sid.action, sid.oif, sid.l2dev) == ("End.DX2", "veth-hs", None)


# ---------------------------------------------------------------- details

def test_name_override_and_default():
    text = "nodes: {hs-1: }\n"
    assert topology.loads(text, "dir/lab-x.yaml").name == "lab-x"
    assert topology.loads("name: y\n" + text, "dir/lab-x.yaml").name == "y"
    assert topology.loads("name: y\n" + text, "dir/lab-x.yaml", name="z-1").name == "z-1"
    with pytest.raises(TopologyError, match=r"lab name 'Z_1' \(given by the caller\) is invalid"):
        topology.loads(text, "x.yaml", name="Z_1")
    with pytest.raises(TopologyError, match=r"taken from the file name"):
        topology.loads(text, "my_lab.yaml")


def test_default_route_family():
    def one(route: str) -> model.Route:
        topo = topology.loads("nodes:\n  h:\n    routes:\n      - " + route + "\n", "x.yaml")
        return topo.nodes["h"].routes[0]

    assert one("{dst: default, via: 10.0.0.1}").dst == ipaddress.ip_network("0.0.0.0/0")
    assert one("{dst: default, via: 'fe80::1', dev: lo}").dst == ipaddress.ip_network("::/0")
    assert one("{dst: default, src: 'cafe::1', dev: lo}").dst == ipaddress.ip_network("::/0")
    assert one("{dst: '::/0', dev: lo, encap: {segs: ['fc00::1']}}").family == 6
    assert one("{dst: 0.0.0.0/0, dev: lo, encap: {segs: ['fc00::1']}}").encap.mode == "encap"
    assert one("{dst: 10.0.0.0/8, type: blackhole}").type == "blackhole"
    assert one("{dst: 10.0.0.0/8, dev: lo, table: main}").table == 254
    with pytest.raises(TopologyError, match="needs via"):
        one("{dst: default, dev: lo}")


def test_literal_scalars():
    """Names and addresses are taken literally, whatever YAML 1.1 would make
    of them (sexagesimal integers, booleans)."""
    text = ("nodes:\n  on:\n    interfaces: {veth0: {mac: 10:20:30:40:50:60}}\n"
            "    sids: [{sid: 1:2:3:4:5:6:7:8, action: End}]\n"
            "    sysctls: {net.ipv4.ip_forward: yes, net.ipv4.conf.all.rp_filter: 0x2}\n"
            "  2: {}\n"
            "links: [[on:veth0, 2:veth0]]\n")
    topo = topology.loads(text, "x.yaml")
    node = topo.nodes["on"]
    assert node.interfaces["veth0"].mac == "10:20:30:40:50:60"
    assert node.sids[0].sid == ipaddress.IPv6Network("1:2:3:4:5:6:7:8/128")
    assert node.sysctls == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "2"}
    assert set(topo.nodes) == {"on", "2"}


def test_anchors_and_merge_keys():
    text = ("name: m\n"
            "nodes:\n"
            "  r1: &rt\n"
            "    kind: router\n"
            "    rules: [{to: 'fcff::/16', lookup: 90, prio: 999}]\n"
            "  r2:\n"
            "    <<: *rt\n"
            "    tunsrc: 'fc00::2'\n"
            "  h: {}\n")
    topo = topology.loads(text, "x.yaml")
    assert topo.nodes["r2"].kind == "router"
    assert topo.nodes["r2"].rules[0].lookup == 90
    assert topo.nodes["r2"].tunsrc == ipaddress.IPv6Address("fc00::2")


def test_recursive_alias_is_an_error_not_a_crash():
    with pytest.raises(TopologyError):
        topology.loads("nodes: &a {h: *a}\n", "x.yaml")
    with pytest.raises(TopologyError):
        topology.loads("nodes:\n  h: &a\n    <<: *a\n    routes: *a\n", "x.yaml")


def test_deep_nesting():
    with pytest.raises(TopologyError, match="invalid YAML"):
        topology.loads("[" * 5000, "x.yaml")


def test_huge_integer():
    with pytest.raises(TopologyError, match="out of range"):
        topology.loads("nodes: {h: {interfaces: {lo: {mtu: " + "9" * 5000 + "}}}}\n", "x.yaml")


def test_diagnostic_format_and_sorting():
    d1 = Diagnostic(Where("f.yaml", 3, 1), "b")
    d2 = Diagnostic(Where("f.yaml", 1, 7), "a")
    d3 = Diagnostic(Where("f.yaml", 1, 2), "c")
    err = TopologyError([d1, d2, d3])
    assert str(err) == "f.yaml:1:2: c\nf.yaml:1:7: a\nf.yaml:3:1: b"
    assert err.diagnostics == [d3, d2, d1]
    assert str(Diagnostic(Where("f.yaml", 0, 0), "cannot read")) == "f.yaml: cannot read"


def test_unreadable_files(tmp_path, at_root):
    with pytest.raises(TopologyError, match=r"^tests/errors/nope\.yaml: cannot read"):
        topology.load("tests/errors/nope.yaml")
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: x\ndescription: caf\xe9\n")
    with pytest.raises(TopologyError, match=r"latin\.yaml:2:17: not UTF-8"):
        topology.load(bad)


def test_load_accepts_pathlike(at_root):
    assert topology.load(Path("topologies/p2p.yaml")).source == "topologies/p2p.yaml"


ODD_INPUTS = [
    "? [a, b]\n: 1\n",
    "nodes: {? {a: 1} : x}\n",
    "nodes: {~: {}}\n",
    "nodes: {h: {interfaces: {!!binary aGVsbG8=: {}}}}\n",
    "nodes: {h: {interfaces: {lo: {mtu: !!int abc}}}}\n",
    "nodes: {h: {interfaces: {lo: {mtu: !!int 0x}}}}\n",
    "nodes: {h: {interfaces: {lo: {up: !!bool maybe}}}}\n",
    "nodes: {h: {interfaces: {lo: {mtu: 2001-01-01}}}}\n",
    "nodes: {h: {sysctls: {net.a: !!int x, net.b: !!bool z}}}\n",
    "nodes: !!omap [{h: {}}]\n",
    "--- a\n--- b\n",
    "nodes: *undefined\n",
    "a: &x [*x]\nnodes: {h: {routes: *x}}\n",
    "nodes: {h: {<<: [1, *h]}}\n",
    "nodes:\n  h:\n    interfaces:\n      lo: &l {addresses: *l}\n",
    "\x00",
    "\ud800",
]


@pytest.mark.parametrize("text", ODD_INPUTS)
def test_odd_inputs(text):
    _outcome(text)


def test_explicit_tags_and_yaml11_integers():
    topo = topology.loads("nodes: {h: {interfaces: {lo: {mtu: 1_500}}}, g: !!set {}}\n", "x.yaml")
    assert topo.nodes["h"].interfaces["lo"].mtu == 1500
    with pytest.raises(TopologyError, match=r"expected mtu \(an integer 68..65535\), got 'abc'"):
        topology.loads("nodes: {h: {interfaces: {lo: {mtu: !!int abc}}}}\n", "x.yaml")


# ---------------------------------------------------------------- fuzz

def _outcome(text: str) -> None:
    try:
        topo = topology.loads(text, "fuzz.yaml")
    except TopologyError as e:
        assert e.diagnostics, "a TopologyError must carry diagnostics"
        for d in e.diagnostics:
            assert d.where.file == "fuzz.yaml"
            assert d.message
        str(e)
    else:
        assert isinstance(topo, model.Topology)


P2P = (TOPOLOGIES / "p2p.yaml").read_text()
# FUZZ_EXAMPLES=5000 for a longer run; no example database (nothing written to the tree)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None,
                database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_random_text(text):
    _outcome(text)


@FUZZ
@given(st.text(alphabet="{}[]:,-#&*!|>'\"%@`? \n\tabcfd0129./<~", max_size=200))
def test_fuzz_yaml_punctuation(text):
    _outcome(text)


_pieces = st.sampled_from(["", "\n", ":", " ", "- ", "[", "]", "{", "}", ",", "  ", "\t", "'", '"',
                           "&a ", "*a", "<<: ", "~", "null", "true", "0x", "999999", "-1", "::",
                           "fcff::1", "10.0.0.1/24", "veth0", "rt-1:", "End.DX2", "br0", "srl2-0",
                           "default", "table: main", "!!int ", "!foo ", "? ", "|\n", "\x07", "é",
                           "mode: reduced", "hmac: 1", "revision: srl2\n", "hmac_keys: {1: {secret: x}}"])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(P2P)), st.integers(0, 12), _pieces), max_size=6))
def test_fuzz_mutated_p2p(edits):
    text = P2P
    for pos, cut, piece in edits:
        pos = min(pos, len(text))
        text = text[:pos] + piece + text[pos + cut:]
    _outcome(text)


@FUZZ
@given(st.data())
def test_fuzz_shuffled_lines_of_p2p(data):
    lines = P2P.splitlines(keepends=True)
    picked = data.draw(st.lists(st.sampled_from(lines), max_size=len(lines)))
    _outcome("".join(picked))


def test_names_in_messages_read_as_written_and_hidden_characters_escaped():
    from testbed.topology.yamlpos import quote

    assert quote("hs-ü") == "'hs-ü'"
    assert quote("a\x07b\u00a0") == "'a\\x07b\\xa0'"
    assert quote("a'b\\c") == "'a\\'b\\\\c'"  # so that an escape in a message is one


def test_sysctls_of_the_labs_own_interfaces_load_though_the_host_has_none():
    """Their keys are checked under `default`: veth-rt2 exists only in the lab."""
    text = ("nodes:\n  rt:\n    sysctls: {net.ipv6.conf.veth-rt2.hop_limit: 33, net.ipv4.conf.br0.rp_filter: 0}\n"
            "    bridges: {br0: {}}\n  h: {}\nlinks: [[rt:veth-rt2, h:eth0]]\n")
    assert topology.loads(text, "x.yaml").nodes["rt"].sysctls == {
        "net.ipv6.conf.veth-rt2.hop_limit": "33", "net.ipv4.conf.br0.rp_filter": "0"}


# ---------------------------------------------------------------- the series' revisions

SR6 = ("nodes:\n  r:\n    hmac_keys: {1: {secret: s3cret}, 0x10: {secret: 1234, algorithm: sha1}}\n"
       "    srl2:\n      s0: {segs: ['fc00::1'], mode: reduced, table: 100, hmac: 1}\n"
       "      s1: {segs: ['fc00::2'], table: main, mode: full}\n")


def test_srl2_mode_table_hmac_and_hmac_keys_in_the_model():
    topo = topology.loads("revision: sr6\n" + SR6, "x.yaml")
    assert topo.revision == "sr6"
    r = topo.nodes["r"]
    s0, s1 = r.srl2["s0"], r.srl2["s1"]
    assert (s0.mode, s0.table, s0.hmac) == ("reduced", 100, 1)
    assert (s1.mode, s1.table, s1.hmac) == ("full", 254, None)  # table names as for routes
    # a key id as YAML writes integers (0x10), a secret as written (1234 is text), sha256 by default
    assert r.hmac_keys == {1: model.HmacKey(1, "s3cret", "sha256", Where("x.yaml", 4, 17)),
                           16: model.HmacKey(16, "1234", "sha1", Where("x.yaml", 4, 38))}


def test_defaults_revision_auto_and_no_mode_table_hmac():
    topo = topology.loads("nodes:\n  r:\n    srl2: {s0: {segs: ['fc00::1']}}\n", "x.yaml")
    assert topo.revision == "auto"
    s0 = topo.nodes["r"].srl2["s0"]
    assert (s0.mode, s0.table, s0.hmac) == (None, None, None)
    assert topo.nodes["r"].hmac_keys == {}


def test_auto_is_not_checked_at_load():
    """auto is what the running kernel has: the engine checks once it knows."""
    assert topology.loads(SR6, "x.yaml").revision == "auto"
    assert topology.loads("revision: auto\n" + SR6, "x.yaml").nodes["r"].srl2["s0"].mode == "reduced"


def test_revision_argument_overrides_the_file():
    expected = ["x.yaml:5:37: s0: mode reduced: revision srl2 has no encapsulation mode 'reduced' (it has full); "
                "sr6 has it",
                "x.yaml:5:53: s0: table 100: revision srl2 has no post-encapsulation table; sr6 has it",
                "x.yaml:5:64: s0: hmac 1: revision srl2 has no HMAC; sr6 has it",
                "x.yaml:6:38: s1: table 254: revision srl2 has no post-encapsulation table; sr6 has it"]
    with pytest.raises(TopologyError) as info:
        topology.loads(SR6, "x.yaml", revision="srl2")
    assert str(info.value).splitlines() == expected
    with pytest.raises(TopologyError) as info:  # the file's own revision: the same, one line further down
        topology.loads("revision: srl2\n" + SR6, "x.yaml")
    assert [d.where.line for d in info.value.diagnostics] == [6, 6, 6, 7]
    assert topology.loads("revision: srl2\n" + SR6, "x.yaml", revision="sr6").revision == "sr6"
    assert topology.loads("revision: srl2\n" + SR6, "x.yaml", revision="auto").revision == "auto"
    # mode full is every revision's
    assert topology.loads("nodes: {r: {srl2: {s0: {segs: ['fc00::1'], mode: full}}}}\n", "x.yaml",
                          revision="srl2").nodes["r"].srl2["s0"].mode == "full"


def test_revision_argument_unknown():
    with pytest.raises(TopologyError) as info:
        topology.loads("revision: sr6\n" + SR6, "x.yaml", revision="sr7")
    assert str(info.value) == "x.yaml:1:11: revision 'sr7' (given by the caller) is not one of auto, srl2, sr6"
    with pytest.raises(TopologyError, match=r"^x\.yaml:1:1: revision 'v2' \(given by the caller\)"):
        topology.loads(SR6, "x.yaml", revision="v2")


def test_revision_errors_for_the_engine_are_the_loads_messages_at_the_device():
    """The engine resolves auto, then calls revision_errors/check_revision:
    the same messages as at load, at the device (the model has no position
    for its keys)."""
    from testbed import revisions

    topo = topology.loads(SR6, "x.yaml")
    diags = topology.revision_errors(topo, "srl2")
    with pytest.raises(TopologyError) as info:
        topology.loads(SR6, "x.yaml", revision="srl2")
    assert [d.message for d in diags] == [d.message for d in info.value.diagnostics]
    assert [d.where for d in diags] == [Where("x.yaml", 5, 7)] * 3 + [Where("x.yaml", 6, 7)]
    assert topology.revision_errors(topo, revisions.get("srl2")) == diags
    assert topology.revision_errors(topo, "sr6") == []
    topology.check_revision(topo, revisions.get("sr6"))
    with pytest.raises(TopologyError) as info:
        topology.check_revision(topo, "srl2")
    assert str(info.value).splitlines()[0] == ("x.yaml:5:7: s0: mode reduced: revision srl2 has no encapsulation "
                                               "mode 'reduced' (it has full); sr6 has it")
    with pytest.raises(ValueError, match="resolved revision"):
        topology.revision_errors(topo, "auto")


def test_vocabulary_agrees_with_the_revisions():
    from testbed import revisions
    from testbed.topology import vocabulary

    assert vocabulary.REVISIONS == revisions.CHOICES
    assert set(vocabulary.SRL2_MODES) == {m for r in revisions.all_revisions() for m in r.modes}
    assert vocabulary.DEFAULTS["revision"] == "auto"


def test_hmac_key_names_a_key_though_its_settings_are_wrong():
    """A key whose secret is wrong is one mistake, not two (its srl2 `hmac:` is fine)."""
    with pytest.raises(TopologyError) as info:
        topology.loads("nodes:\n  r:\n    hmac_keys: {5: {secret: ''}}\n"
                       "    srl2: {s0: {segs: ['fc00::1'], hmac: 5}}\n", "x.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        "x.yaml:3:29: the secret of HMAC key 5 is empty; `ip sr hmac` takes an empty secret as removing the key"]


def test_no_message_shows_a_secret():
    long, other = "Sup3r-" * 12, "tw0\\nlines"
    text = (f"nodes:\n  r:\n    hmac_keys:\n      1: {{secret: '{long}'}}\n      2: {{secret: \"{other}\"}}\n"
            f"      3: {{secret: 's3cret', algorithm: md5}}\n      x: {{secret: 's3cret'}}\n")
    with pytest.raises(TopologyError) as info:
        topology.loads(text, "x.yaml")
    assert len(info.value.diagnostics) == 4
    assert not any(s in str(info.value) for s in ("Sup3r", "tw0", "s3cret"))


# ---------------------------------------------------------------- what pictures and status show of them

def test_ascii_details_show_kind_mode_table_hmac_and_keys_never_a_secret():
    from testbed.render import ascii

    topo = topology.loads("revision: sr6\n" + SR6, "x.yaml")
    text = ascii.details(topo)
    assert "  s0  sr6 reduced segs fc00::1 table 100 hmac 1" in text.splitlines()
    assert "  s1  sr6 full segs fc00::2 table 254" in text.splitlines()
    assert "  hmac key 1 sha256" in text and "  hmac key 16 sha1" in text
    assert "s3cret" not in ascii.render(topo) and "1234" not in text
    # auto: the project's word for the device; nothing given: as before
    topo = topology.loads(SR6 + "      s2: {segs: ['fc00::3', 'fc00::4']}\n", "x.yaml")
    lines = ascii.details(topo).splitlines()
    assert "  s0  srl2 reduced segs fc00::1 table 100 hmac 1" in lines
    assert "  s2  srl2 segs fc00::3,fc00::4" in lines
    assert ascii.srl2_settings(topo.nodes["r"].srl2["s0"]) == "reduced table 100 hmac 1"
    assert ascii.srl2_settings(topo.nodes["r"].srl2["s2"]) == ""


def test_graph_template_puts_a_pseudowires_settings_on_a_second_line():
    import jinja2

    from testbed.render import ascii

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "testbed" / "render")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    dev = topology.loads(SR6, "x.yaml").nodes["r"].srl2["s0"]
    pws = [{"a": '"r"', "b": '"x"', "label": "s0 -> fc00::1", "settings": ascii.srl2_settings(dev)},
           {"a": '"r"', "b": '"y"', "label": "s2 -> fc00::4"}]  # what render_dot gives today
    dot = env.get_template("graph.dot.j2").render(name='"x"', title="x", nodes=[], unknown=[], links=[],
                                                  pseudowires=pws)
    assert 'label="s0 -> fc00::1\\nreduced table 100 hmac 1", constraint=false' in dot
    assert 'label="s2 -> fc00::4", constraint=false' in dot


def _srh_with_hmac(segs: list[str], keyid: int) -> bytes:
    from testbed.srv6.srh import encode_srh

    srh = bytearray(encode_srh(segs))
    hmac = bytes([5, 38, 0x80, 0]) + keyid.to_bytes(4, "big") + bytes(32)  # D bit, key id, HMAC
    tlv = bytes([0]) + hmac + bytes([4, 5]) + bytes(5)  # Pad1, HMAC, PadN: 1 + 40 + 7 = 48 bytes
    srh[1] += len(tlv) // 8
    return bytes(srh) + tlv


def test_status_reads_segments_mode_table_and_the_hmac_key_from_the_device():
    from testbed import status

    srh = _srh_with_hmac(["fcff:2::e", "fcff:2::d20"], 7)
    assert status.hmac_keyid(srh[8 + 32:]) == 7
    assert status.hmac_keyid(b"") is None and status.hmac_keyid(bytes([4, 2, 0, 0])) is None
    d = status.l2_device("sr6", srh, "full", 100)
    assert d == {"kind": "sr6", "segs": ["fcff:2::e", "fcff:2::d20"], "mode": "full", "table": 100, "hmac": 7}
    assert status.device_text("srl2-0", d) == "srl2-0  sr6 full segs fcff:2::e,fcff:2::d20 table 100 hmac 7"
    from testbed.srv6.srh import encode_srh

    plain = status.l2_device("srl2", encode_srh(["fcff:2::d20"]))
    assert plain == {"kind": "srl2", "segs": ["fcff:2::d20"]}
    assert status.device_text("srl2-0", plain) == "srl2-0  srl2 segs fcff:2::d20"
    assert status.l2_device("sr6", b"\x00")["segs"][0].startswith("(SRH does not decode: ")


def test_live_graph_shows_kind_mode_table_hmac_of_a_device():
    from testbed.render import live

    dev = {"kind": "sr6", "segs": ["fcff:2::d20"], "mode": "reduced", "table": 100, "hmac": 1}
    info = {"lab": "x", "datapath": "kernel", "topology": "t.yaml", "read_at": 0, "links": [], "nodes": {
        "a": {"interfaces": [], "routes": [], "router": True, "stats": {"srl2-0": {"tx_packets": 3, "rx_packets": 1}},
              "segs": {"srl2-0": dev["segs"]}, "srl2_devices": {"srl2-0": dev}, "sids": []},
        "b": {"interfaces": [], "routes": [], "router": True, "stats": {}, "segs": {},
              "sids": [{"sid": "fcff:2::d20/128", "action": "End.DT2U", "l2dev": "srl2-0"}]}}}
    dot = live.render_live_dot(info)
    assert "sr6 srl2-0 reduced segs fcff:2::d20 table 100 hmac 1  tx 3 rx 1" in dot
    assert 'label="srl2-0: fcff:2::d20\\nsr6 reduced table 100 hmac 1\\ltx 3 rx 1\\l"' in dot
    assert live.settings({"kind": "srl2", "segs": ["fcff:2::d20"]}) == ""
