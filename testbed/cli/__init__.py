"""`testbed VERB ...`: one module per verb (testbed/cli/<verb>.py), each with
`add_parser(subparsers)` and `run(args) -> exit status`.  This module only
dispatches and turns the engine's errors into one clear message each."""
from __future__ import annotations

# Nothing else at module level: `python -m testbed.cli` and the `testbed`
# script run this module's body before main(), and a Ctrl-C inside an
# import here would be a traceback (tests/test_cli.py).  sys is loaded with
# Python itself; the rest is imported where it is used.
import sys

SIGINT = 2
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 15: "SIGTERM"}  # the signals that interrupt a verb
VERBS = ("up", "status", "list", "exec", "capture", "down", "render", "graph", "validate", "vm", "report",
         "compare", "fuzz", "review")


# Usages argparse cannot write: a command after `--` (it would show
# "lab node -- CMD [-- CMD ...]").
USAGES = {"exec": "%(prog)s LAB NODE -- CMD..."}
# What to add to "unrecognized arguments" of a verb: its command's options
# were taken for the verb's because `--` was missing.
COMMAND_HINT = {"exec": "put -- before the command, so that its options are not read as testbed's: {}"}


class UsageError(Exception):
    """A mistake in how the command was called (exit 2)."""


def build_parser():
    """The parser of `testbed` and every verb's subparser."""
    import argparse
    import importlib

    class VerbParser(argparse.ArgumentParser):
        """A verb's parser.  argparse hands the arguments a verb does not
        know up to `testbed`'s parser, which would show its own usage
        (`testbed [-h] VERB ...`); the verb's is the one that helps."""

        verb = ""

        def parse_known_args(self, args=None, namespace=None):
            ns, extra = super().parse_known_args(args, namespace)
            if extra:
                # [*...], not list(): importing the verbs made `list` (and
                # `exec`) names of testbed.cli's modules in this module.
                hint = _hint(self.verb, ns, [*(args or ())], extra)
                self.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
            return ns, extra

    class Version(argparse.Action):
        """--version: the version is looked up only when asked for."""

        def __call__(self, parser, namespace, values, option_string=None):
            print(f"testbed {version()}")
            parser.exit()

    parser = argparse.ArgumentParser(
        prog="testbed",
        description="Network-namespace labs and conformance tests for srl2, End.DT2U and End.DX2.")
    parser.add_argument("--version", action=Version, nargs=0, help="show testbed's version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=VerbParser)
    for verb in VERBS:
        importlib.import_module(f"testbed.cli.{verb}").add_parser(sub)
        verb_parser = sub.choices[verb]
        verb_parser.verb = verb
        verb_parser.usage = USAGES.get(verb, verb_parser.usage)
        verb_parser.set_defaults(verb_parser=verb_parser)
    return parser


def _hint(verb: str, ns, args: list[str], extra: list[str]) -> str:
    """What to do about the arguments `extra` that `verb` does not know."""
    hint = COMMAND_HINT.get(verb)
    if hint is None:
        return ""
    command = [*ns.command, *extra]
    if args[-len(command):] == command:  # `exec LAB NODE ping -c1 x`, the usual slip: the line to type
        import shlex

        return "; " + hint.format(shlex.join(["testbed", verb, ns.lab, ns.node, "--", *command]))
    return "; " + hint.format(f"testbed {verb} {USAGES[verb].removeprefix('%(prog)s ')}")


def version() -> str:
    """This testbed's version and where it runs from (several checkouts may
    be installed, and /usr/local/bin/testbed points at one of them)."""
    import os
    from importlib import metadata

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        number = metadata.version("srl2-testbed")
    except metadata.PackageNotFoundError:  # run from a checkout never installed (python -m testbed.cli)
        number = _checkout_version(os.path.join(os.path.dirname(here), "pyproject.toml")) or "unknown"
    return f"{number} from {here} (python {sys.version_info.major}.{sys.version_info.minor})"


def _checkout_version(pyproject: str) -> str | None:
    import tomllib

    try:
        with open(pyproject, "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return None


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C while the verbs' modules load (pyroute2 and scapy take a
    # noticeable part of a second) is an interruption like any other.
    try:
        return _main(argv)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", SIGINT)
        print(f"testbed: interrupted ({SIGNAL_NAMES.get(signum, signum)})", file=sys.stderr)
        return 128 + signum


def _main(argv: list[str] | None) -> int:
    from testbed.errors import TestbedError

    parser = build_parser()
    args = parser.parse_args(argv)
    _stop_signals_interrupt()
    try:
        return args.run(args)
    except UsageError as e:
        return usage_error(args, str(e))
    except (TestbedError, PermissionError) as e:
        # Imported only here: it loads the topology model, which verbs such
        # as `down` never need (a third of their start-up).
        from testbed.diagnostics import TopologyError

        if isinstance(e, TopologyError):
            n = len(e.diagnostics)
            print(f"{e}\ntestbed: {n} error{'s' if n != 1 else ''} in the topology; nothing was built",
                  file=sys.stderr)
            return 2
        print(f"testbed: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `testbed status | head`: not an error
        sys.stdout = None
        return 0


def usage_error(args, message: str, status: int = 2) -> int:
    """The verb's usage and `message`, as argparse shows a usage error."""
    args.verb_parser.print_usage(sys.stderr)
    print(f"testbed: error: {message}", file=sys.stderr)
    return status


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: what a verb made is removed."""

    def __init__(self, signum: int):
        super().__init__(SIGNAL_NAMES.get(signum, str(signum)))
        self.signum = signum


def _interrupt(signum, frame) -> None:
    raise Interrupted(signum)


def _stop_signals_interrupt() -> None:
    """SIGTERM (what CI time-outs, `timeout` and `kill` send) and SIGHUP (a
    closed terminal) interrupt a verb as Ctrl-C does, unless ignored (nohup)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)


def need_root() -> None:
    from testbed.errors import LabError
    from testbed.linux import is_root_capable

    missing = is_root_capable()
    if missing:
        raise LabError(missing)


if __name__ == "__main__":
    sys.exit(main())
