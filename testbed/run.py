"""Running a program inside a node: the one way the project does it.

Both `run()` (for cases and tools that want the output) and `exec_in()`
(for `testbed exec`, which becomes the program) enter the node the same
way, `testbed.linux.enter_for_exec`: the netns for good and a private /sys
that shows the netns's interfaces, which is what `ip netns exec` does, so
that programs reading /sys/class/net see the node's interfaces.  run()
does it in the forked child just before exec (subprocess's preexec_fn:
syscalls only, so a multithreaded parent is not a problem in practice),
without depending on iproute2's `ip` binary.

A failure raises CommandError, whose message names the node, the command,
the exit status and what it wrote to stdout and stderr: a case that fails
on `nft -f -` says why the ruleset was refused.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Sequence

from testbed import linux
from testbed.errors import TestbedError

DEFAULT_TIMEOUT = 30.0
SHOWN = 2000  # characters of stdout / stderr a message carries (the end is kept)


class CommandError(TestbedError):
    """A program run in a node failed: could not start, exited non-zero, or
    ran past its timeout.  Carries what a reader needs to see why."""

    def __init__(self, where: str, argv: Sequence[str], returncode: int | None, stdout: str = "",
                 stderr: str = "", why: str = ""):
        self.where, self.argv, self.returncode = where, list(argv), returncode
        self.stdout, self.stderr = stdout, stderr
        status = why or f"exited {returncode}"
        parts = [f"in {where}: `{shlex.join(self.argv)}` {status}"]
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            text = text.strip()
            if text:
                if len(text) > SHOWN:
                    text = "..." + text[-SHOWN:]
                parts.append(f"{name}: {text}")
        super().__init__("\n".join(parts))


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def netns_name(node: linux.Netns | str) -> str:
    """The netns of a node given as a Netns (lab.node(...)) or by netns name."""
    return node.name if isinstance(node, linux.Netns) else str(node)


def run(node: linux.Netns | str, argv: Sequence[str], input: str | None = None, check: bool = True,
        timeout: float = DEFAULT_TIMEOUT) -> Result:
    """Run ARGV inside NODE's netns (and its /sys) and return its output as
    text.  With `check` (the default) a non-zero exit is a CommandError;
    a program that cannot start, or runs past `timeout`, always is."""
    name = netns_name(node)
    argv = [str(a) for a in argv]
    if not argv:
        raise CommandError(name, argv, None, why="was given no command")
    if not os.path.exists(linux.netns_path(name)):
        raise CommandError(name, argv, None, why=f"cannot run: no netns {name}")
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                           preexec_fn=lambda: linux.enter_for_exec(name))
    except subprocess.TimeoutExpired as e:
        raise CommandError(name, argv, None, _text(e.stdout), _text(e.stderr),
                           why=f"ran longer than {timeout:g} s and was killed") from None
    except OSError as e:  # not found, not executable
        raise CommandError(name, argv, None, why=f"could not start: {e.strerror or e}") from None
    except subprocess.SubprocessError as e:  # entering the netns failed in the child
        raise CommandError(name, argv, None, why=f"could not enter the netns: {e}") from None
    if check and p.returncode != 0:
        raise CommandError(name, argv, p.returncode, p.stdout, p.stderr)
    return Result(argv, p.returncode, p.stdout, p.stderr)


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def exec_in(node: linux.Netns | str, argv: Sequence[str]) -> None:
    """Become ARGV inside NODE's netns (and its /sys): never returns, or
    raises CommandError when the program cannot be started."""
    name = netns_name(node)
    argv = [str(a) for a in argv]
    if not argv:
        raise CommandError(name, argv, None, why="was given no command")
    linux.enter_for_exec(name)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise CommandError(name, argv, 127 if isinstance(e, FileNotFoundError) else 126,
                           why=f"could not start: {e.strerror or e}") from None
