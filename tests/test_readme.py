"""Every command README.md tells a user to type works as written, after the
README's own set-up (`bash .ci/setup.sh` on a fresh Debian 12, as root).

What is a command (how the README writes them):
  * a ```sh or ```bash block: every line (a line ending in `\\` goes on on
    the next; a trailing `# comment` is not part of the command);
  * a ```console block: the lines after a prompt, `# ` (root) or `$ `; the
    other lines are output;
  * `inline code` in prose that starts with a program the user runs
    (PROGRAMS, or .venv/bin/...) and has arguments, except a bare
    `testbed VERB` (the verb's name) and a span with `...` (a mention of an
    elided command).
  Unmarked blocks (the CLI synopsis, error samples) and indented ones (the
  synopsis of `testbed vm`) show syntax, not commands.  A line is split on
  `&&`, `||`, `;` and `|` into simple commands, and the command given to
  `testbed exec` or `testbed vm` after `--` is checked as a command too (the
  guest has the host's PATH and starts in the checkout).

Placeholders: a word in capitals (LAB, NODE, IMAGE, CMD...) and a path under
/path/to/ stand for what the user fills in; `/path/to/srl2-testbed/` and
`$PWD/` (the README's commands run in the checkout) are the checkout.

Checked statically, every command (test_readme_command_is_sound):
  * its program is there on a fresh Debian after the set-up: `testbed` on
    PATH, this checkout's; `.venv/bin/X` exists (or a README command
    installs it: INSTALLED_BY); another bare program is one of SYSTEM.
    Debian's `python3` has none of the project's packages, so it may not
    run a module (-m) or a file of the checkout; `pip`, `pip3`, `pytest`,
    `python` and `vng` are not on its PATH (the project is in .venv, PEP
    668), and there is no `sudo` (the README runs as root);
  * every path into the checkout (topologies/, bench/, .ci/, docs/, ...) exists;
  * `testbed VERB ...` (also as `.venv/bin/python -m testbed.cli VERB ...`)
    parses with the CLI's own argparse parser; the options given to pytest
    and to a bench/ script are in its --help; `pip install -e '.[EXTRA]'`
    names an extra of pyproject.toml.
Run for real (test_readme_commands_run), block by block: the block's
`testbed` commands in order, when no placeholder is left in them, as written
but for the lab names (unique ones: `up` gets `--name`) and the working
directory (the test's own, where the checkout's paths resolve and `-o FILE`
writes).  Labs are recorded in a state directory of the test's own
(conftest's private_state) and taken down in `finally`.  A block that uses a
lab it does not bring up runs after the README's set-up command that does
(`testbed up topologies/p2p.yaml`); one whose topology this host cannot
build (mesh4 needs the kernel's seg6 encapsulation) SKIPs with the reason.
Checked statically only: the verbs of NOT_RUN (with the reason), and every
other program: bench/ takes minutes, the pytest commands are the suite
itself, apt-get and .ci/ scripts are the set-up this test runs after.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass

import pytest

from testbed.pytest_plugin import unique_lab_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
VENV_BIN = ".venv/bin/"
PROGRAMS = ("testbed", "python3", "python", "pip", "pip3", "pytest", "bash", "sudo", "apt-get", "vng")
# The checkout's top-level entries whose paths a command may name.
CHECKOUT = ("topologies", "bench", ".ci", "docs", "tests", "cases", "baselines", "testbed", "srl2_ref", ".venv")
CHECKOUT_PREFIXES = ("$PWD/", "/path/to/srl2-testbed/")
# What the set-up does not install into .venv, and the README command that does.
INSTALLED_BY = {".venv/bin/vng": "bash .ci/setup-vm.sh"}
# Bare programs a fresh Debian 12 has after .ci/setup.sh: its base system
# (bash, apt-get, ln) and the packages the script installs (iputils-ping, tcpdump).
SYSTEM = ("bash", "apt-get", "ln", "ping", "tcpdump")
NOT_THERE = {
    "sudo": "a fresh Debian has no sudo; the README's commands run as root",
    "pip": "no pip on a fresh Debian, and Debian's python3 takes no installs (PEP 668): .venv/bin/pip",
    "pip3": "no pip on a fresh Debian, and Debian's python3 takes no installs (PEP 668): .venv/bin/pip",
    "pytest": "not on PATH: the project's pytest is `.venv/bin/python -m pytest`",
    "python": "not on a fresh Debian; the project's interpreter is .venv/bin/python",
    "vng": "not on PATH: virtme-ng is installed into .venv (.ci/setup-vm.sh): .venv/bin/vng",
}
NOT_RUN = {
    "--version": "prints the version only",
    "--help": "prints the usage only",
    "vm": "needs a VM and a kernel image",
    "fuzz": "runs for a minute or more",
    "capture": "runs until Ctrl-C",
    "report": "reads the record of a run in `testbed vm`",
    "compare": "reads the record of a run in `testbed vm`",
}
OPERATORS = ("&&", "||", ";", "|")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.\.\.)?|/path/to/.*")


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]  # one simple command
    line: int              # where it is in README.md
    kind: str              # "block" (sh, bash), "console" or "inline"
    unit: int              # the block or inline span it is part of (run in order)

    def __str__(self) -> str:
        return shlex.join(self.argv)


# ---- extraction -------------------------------------------------------------------


def simple_commands(line: str) -> list[list[str]]:
    """`line` split into simple commands at && || ; |, quotes respected,
    a trailing # comment dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in OPERATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def is_inline_command(span: str) -> bool:
    from testbed.cli import VERBS

    words = span.split()
    return (len(words) >= 2 and (words[0] in PROGRAMS or words[0].startswith(VENV_BIN)) and "..." not in span
            and not (words[:1] == ["testbed"] and len(words) == 2 and words[1] in VERBS))


def extract(text: str) -> list[Command]:
    """The commands in a README's text (see the module's docstring)."""
    found: list[tuple[str, int, str, int]] = []  # (line, number, kind, unit)
    prose: list[str] = []  # the text outside fenced blocks (blocks blanked: line numbers kept)
    lang = None  # the language of the fenced block we are in
    unit = 0
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        fence = re.fullmatch(r"\s*```(\w*)\s*", raw)
        prose.append(raw if lang is None and not fence else "")
        if fence:
            lang = fence.group(1) if lang is None else None
            unit += 1
            continue
        line = raw.strip()
        if lang == "console" and line.startswith(("# ", "$ ")):
            line = line[2:]
        elif lang not in ("sh", "bash") or not line or line.startswith("#"):
            continue
        pending, start = pending + line.removesuffix("\\"), start or number
        if not line.endswith("\\"):
            found.append((pending, start, "block" if lang != "console" else "console", unit))
            pending, start = "", 0
    outside = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", outside):
        span = " ".join(m.group(1).split())
        if "\n\n" not in m.group(1) and is_inline_command(span):
            unit += 1
            found.append((span, outside.count("\n", 0, m.start()) + 1, "inline", unit))
    return [Command(tuple(argv), number, kind, unit)
            for line, number, kind, unit in found for argv in simple_commands(line)]


with open(README) as f:
    COMMANDS = extract(f.read())
# Each command once (the README shows some twice), in README order.
UNIQUE = list({str(c): c for c in reversed(COMMANDS)}.values())[::-1]


# ---- static checks ----------------------------------------------------------------


@functools.cache
def cli_parser():
    from testbed.cli import build_parser

    return build_parser()


def parse(args):
    """`testbed ARGS` as the CLI's argparse reads them; ValueError with its message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return cli_parser().parse_args(list(args))
        except SystemExit as e:
            if e.code == 0:  # --version, --help: printed and done, nothing to run
                return argparse.Namespace(verb="--version" if "--version" in args else "--help")
            raise ValueError(err.getvalue().strip().splitlines()[-1]) from None


def inner_command(ns) -> list[str]:
    """The command of `testbed exec` or `testbed vm` (after `--`), else []."""
    if ns.verb not in ("exec", "vm"):
        return []
    return ns.command[1:] if ns.command[:1] == ["--"] else ns.command


def checkout_path(word: str) -> str | None:
    """The path into the checkout that `word` (or --option=`word`) names, if any."""
    if word.startswith("-"):
        word = word.partition("=")[2]
    for prefix in CHECKOUT_PREFIXES:
        word = word.removeprefix(prefix)
    return word if "/" in word and word.split("/")[0] in CHECKOUT else None


@functools.cache
def help_text(*argv: str) -> str:
    """What `argv --help` prints: the command's arguments pass its parser
    (pytest checks the values it knows: --datapath bogus is an error)."""
    p = subprocess.run([*argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{shlex.join(argv)} --help: exit {p.returncode}: {p.stderr}"
    return p.stdout


def unknown_options(args, helptext: str) -> list[str]:
    """The options in `args` that `helptext` does not list (--junitxml is
    listed as --junit-xml: dashes inside a name do not count)."""
    def norm(option: str) -> str:
        return option[:2] + option[2:].replace("-", "")

    known = {norm(o) for o in re.findall(r"(?<![\w-])--?\w[\w-]*", helptext)}
    options = [a.partition("=")[0] for a in args if a.startswith("-") and a not in ("-", "--")]
    return [o for o in options if norm(o) not in known]


def pip_problems(args) -> list[str]:
    if args[:1] != ["install"]:
        return [f"pip {shlex.join(args)}: the README's pip commands install"]
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    asked = [e for a in args for e in re.findall(r"^\.\[([\w,-]+)\]$", a) for e in e.split(",")]
    return [f"pyproject.toml has no extra {e!r} (it has: {', '.join(extras)})" for e in asked if e not in extras]


def venv_python_problems(python: str, args) -> list[str]:
    if args[:2] == ["-m", "testbed.cli"]:
        return cli_problems(args[2:])
    if args[:2] == ["-m", "pip"]:
        return pip_problems(args[2:])
    if args[:2] == ["-m", "pytest"]:
        return [f"pytest has no option {o}" for o in unknown_options(args[2:], help_text(python, *args))]
    script = checkout_path(args[0]) if args else None
    if script and script.startswith("bench/"):  # argparse scripts: their --help runs nothing
        return [f"{script} has no option {o}" for o in unknown_options(args[1:], help_text(python, *args))]
    return []


def cli_problems(args) -> list[str]:
    try:
        ns = parse(args)
    except ValueError as e:
        return [f"testbed {shlex.join(args)}: {e}"]
    inner = inner_command(ns)
    return problems(inner) if inner else []


def readme_installs(path: str) -> bool:
    return path in INSTALLED_BY and INSTALLED_BY[path] in {str(c) for c in COMMANDS}


def problems(argv) -> list[str]:
    """What keeps the simple command `argv` from working as written after
    the set-up on a fresh Debian (see the module's docstring)."""
    prog, args = argv[0], list(argv[1:])
    found = [f"{path}: no such file in the checkout" for path in map(checkout_path, argv)
             if path and not os.path.lexists(os.path.join(ROOT, path)) and not readme_installs(path)]
    if prog in NOT_THERE:  # and what sudo would run
        return [*found, f"{prog}: {NOT_THERE[prog]}", *(problems(args) if prog == "sudo" and args else [])]
    if prog == "python3":
        if args[:1] == ["-m"] or any(map(checkout_path, args)):
            found.append("python3 is Debian's, without the project's packages: use .venv/bin/python")
        return found
    if prog == "testbed":
        which = shutil.which("testbed")
        if not which or os.path.realpath(which) != os.path.realpath(os.path.join(ROOT, VENV_BIN, "testbed")):
            found.append(f"testbed on PATH is {which}, not this checkout's (bash .ci/setup.sh links it)")
        return found + cli_problems(args)
    program = checkout_path(prog) or ""
    if program.startswith(VENV_BIN):
        if os.path.basename(program) in ("python", "python3"):
            return found + venv_python_problems(os.path.join(ROOT, program), args)
        if os.path.basename(program) in ("pip", "pip3"):
            return found + pip_problems(args)
        return found
    if prog not in SYSTEM and not program and not PLACEHOLDER.fullmatch(prog):
        found.append(f"{prog}: not on a fresh Debian after .ci/setup.sh")
    return found


def test_the_readme_has_commands_of_every_kind():
    """The extractor finds the README's commands, so the checks below check
    something: blocks, console prompts and inline code, the set-up and the
    test command among them, labs brought up and commands to run."""
    assert len(UNIQUE) >= 30, [str(c) for c in UNIQUE]
    assert {c.kind for c in COMMANDS} == {"block", "console", "inline"}
    texts = {str(c) for c in COMMANDS}
    assert {"bash .ci/setup.sh", "testbed up topologies/p2p.yaml", ".venv/bin/python -m pytest -n auto"} <= texts
    assert {"testbed", "bash", "apt-get"} <= {c.argv[0] for c in COMMANDS}
    assert sum(c.argv[0] == "testbed" for c in UNIQUE) >= 15
    run_verbs = {parse(c.argv[1:]).verb for unit in RUN_UNITS for c in unit}
    assert run_verbs == {"up", "status", "exec", "down", "list", "validate", "graph", "render"}
    assert len(RUN_UNITS) >= 5 and len(STATIC_ONLY) >= 15


@pytest.mark.parametrize("command", UNIQUE, ids=str)
def test_readme_command_is_sound(command):
    found = problems(command.argv)
    assert not found, f"README.md:{command.line}: {command}: " + "; ".join(found)


def test_the_checks_catch_what_a_new_user_hit():
    """The checks themselves, on the commands of the issue and their fixes."""
    bad = ["python3 -m pytest cases/ -n auto", "sudo python3 bench/ref_pps.py --window 1",
           "pip install -e '.[plots]'", "pytest cases/ -n 2", "testbed up topologies/nope.yaml",
           "testbed exec p2p hs-1 ping -c1 x", "testbed vm --kernel IMAGE -- python3 -m pytest cases/",
           ".venv/bin/python -m pytest cases/ --no-such-option", ".venv/bin/pip install -e '.[nope]'",
           ".venv/bin/python bench/ref_pps.py --no-such-option", "vng --build"]
    good = ["testbed up topologies/p2p.yaml --name x", ".venv/bin/python bench/ref_pps.py --window 2",
            ".venv/bin/pip install -e '.[plots]'", ".venv/bin/python -m pytest cases/ --datapath both",
            "testbed vm --kernel IMAGE -- .venv/bin/python -m pytest cases/", "testbed exec LAB NODE -- CMD...",
            "/path/to/srl2-testbed/.venv/bin/vng --build --config /path/to/srl2-testbed/testbed/kconfig/"
            "srl2-testbed.config"]
    assert [line for line in bad if not any(problems(a) for a in simple_commands(line))] == []
    assert [(line, problems(a)) for line in good for a in simple_commands(line) if problems(a)] == []


# ---- run for real -----------------------------------------------------------------


def runnable(command: Command) -> bool:
    if command.argv[0] != "testbed" or any(PLACEHOLDER.fullmatch(w) for w in command.argv):
        return False
    try:
        return parse(command.argv[1:]).verb not in NOT_RUN
    except ValueError:  # its static check fails
        return False


def units() -> list[tuple[Command, ...]]:
    """The runnable commands of each README block, in order, each sequence once."""
    by_unit: dict[int, list[Command]] = {}
    for c in COMMANDS:
        if runnable(c):
            by_unit.setdefault(c.unit, []).append(c)
    seen: dict[tuple[str, ...], tuple[Command, ...]] = {}
    for cmds in by_unit.values():
        seen.setdefault(tuple(map(str, cmds)), tuple(cmds))
    return list(seen.values())


RUN_UNITS = units()
STATIC_ONLY = [c for c in UNIQUE if not runnable(c)]
SETUP = next(c for c in COMMANDS if c.argv[:2] == ("testbed", "up"))  # the README's first lab


def lab_of(ns) -> str | None:
    """The lab a parsed command works on, if any (graph: a name, not a file)."""
    if ns.verb == "graph":
        return None if os.path.exists(os.path.join(ROOT, ns.topology)) else ns.topology
    return getattr(ns, "lab", None) if ns.verb != "up" else None


def checkout_farm(path) -> str:
    """A directory where the checkout's paths resolve (symlinks) and the
    files a command writes (-o, -w) stay out of the checkout."""
    for entry in os.listdir(ROOT):
        os.symlink(os.path.join(ROOT, entry), os.path.join(path, entry))
    return str(path)


def readme_lab_name(ns) -> str:
    """The name `testbed up` gives the lab it brings up."""
    from testbed import topology

    return ns.name or topology.load(os.path.join(ROOT, ns.topology)).name


@pytest.mark.parametrize("unit", RUN_UNITS, ids=lambda u: " ; ".join(map(str, u)))
def test_readme_commands_run(unit, tmp_path, private_state):
    from testbed import topology
    from testbed.datapaths.select import host_lacks

    parsed = [(c, parse(c.argv[1:])) for c in unit]
    brought_up = {readme_lab_name(ns) for _, ns in parsed if ns.verb == "up"}
    if any(lab_of(ns) not in (None, *brought_up) for _, ns in parsed):
        parsed.insert(0, (SETUP, parse(SETUP.argv[1:])))
    for _, ns in parsed:
        lacks = ns.verb == "up" and host_lacks(topology.load(os.path.join(ROOT, ns.topology)))
        if lacks:
            pytest.skip(f"this host cannot build {ns.topology}: {lacks}")
    cwd = checkout_farm(tmp_path)
    names: dict[str, str] = {}  # the README's lab name -> this run's
    try:
        for command, ns in parsed:
            argv = list(command.argv)
            if ns.verb == "up":
                names[readme_lab_name(ns)] = unique_lab_name("rd")
                argv += ["--name", names[readme_lab_name(ns)]]  # the last --name is the one
            elif lab_of(ns):
                assert lab_of(ns) in names, f"README.md:{command.line}: {command}: no command brings up that lab"
                argv[argv.index(lab_of(ns))] = names[lab_of(ns)]
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, f"README.md:{command.line}: {command}: exit {p.returncode}\n{p.stderr}"
            if getattr(ns, "output", None):
                assert os.path.getsize(os.path.join(cwd, ns.output)) > 0, command
            else:
                assert p.stdout.strip(), command
    finally:
        for name in names.values():
            subprocess.run(["testbed", "down", name], capture_output=True, timeout=120)
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in netns if n.startswith(tuple(f"{name}-" for name in names.values()))]


# ---- what the README says ---------------------------------------------------------


def test_no_command_brings_up_a_lab_the_readme_left_up():
    """Read in order, the README leaves the set-up's lab up (later commands
    use it): a later `testbed up` of a lab of the same name would be refused
    ("already up") unless a `testbed down` of it came between."""
    up: set[str] = set()
    refused = []
    for c in sorted(COMMANDS, key=lambda c: c.line):
        if c.line < SETUP.line or not runnable(c):
            continue
        ns = parse(c.argv[1:])
        if ns.verb == "up":
            refused += [f"README.md:{c.line}: {c}"] if readme_lab_name(ns) in up else []
            up.add(readme_lab_name(ns))
        elif ns.verb == "down":
            up.discard(ns.lab)
    assert up, "the set-up brings up no lab"
    assert not refused, refused


def test_the_topologies_table_lists_every_topology():
    with open(README) as f:
        section = f.read().split("\n## Topologies\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(topologies/[\w.-]+\.yaml)` \|", section, flags=re.M)
    shipped = sorted(f"topologies/{f}" for f in os.listdir(os.path.join(ROOT, "topologies")) if f.endswith(".yaml"))
    assert len(shipped) >= 6
    assert sorted(listed) == shipped
