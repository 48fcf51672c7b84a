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
         "compare", "fuzz")


class UsageError(Exception):
    """A mistake in how the command was called (exit 2)."""


def build_parser():
    """The parser of `testbed` and every verb's subparser."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="testbed",
        description="Network-namespace labs and conformance tests for srl2, End.DT2U and End.DX2.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        importlib.import_module(f"testbed.cli.{verb}").add_parser(sub)
    return parser


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
        parser.print_usage(sys.stderr)
        print(f"testbed: error: {e}", file=sys.stderr)
        return 2
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
