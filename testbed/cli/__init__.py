"""`testbed VERB ...`: one module per verb (testbed/cli/<verb>.py), each with
`add_parser(subparsers)` and `run(args) -> exit status`.  This module only
dispatches and turns the engine's errors into one clear message each."""
from __future__ import annotations

import argparse
import importlib
import sys

VERBS = ("up", "status", "exec", "capture", "down", "render", "graph", "vm", "fuzz")


class UsageError(Exception):
    """A mistake in how the command was called (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed",
        description="Network-namespace labs and conformance tests for srl2, End.DT2U and End.DX2.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        importlib.import_module(f"testbed.cli.{verb}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from testbed.diagnostics import TopologyError
    from testbed.errors import TestbedError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TopologyError as e:
        n = len(e.diagnostics)
        print(f"{e}\ntestbed: {n} error{'s' if n != 1 else ''} in the topology; nothing was built",
              file=sys.stderr)
        return 2
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"testbed: error: {e}", file=sys.stderr)
        return 2
    except (TestbedError, PermissionError) as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `testbed status | head`: not an error
        sys.stdout = None
        return 0


def need_root() -> None:
    from testbed.errors import LabError
    from testbed.linux import is_root_capable

    missing = is_root_capable()
    if missing:
        raise LabError(missing)


if __name__ == "__main__":
    sys.exit(main())
