"""What the CI guest scripts (.ci/vm_validate_guest.py, .ci/vm_scenario_guest.py)
share: timed steps whose output and exit status land in the results
directory, and `testbed` commands run as the command line runs them, in
the guest's one Python process (under software emulation a new process
costs seconds of imports)."""
from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Callable

from testbed.cli import main as testbed
from testbed.errors import TestbedError


class Steps:
    def __init__(self, out: str, who: str):
        self.out, self.who = out, who

    def __call__(self, name: str, fn: Callable[[], tuple[int, str]]) -> int:
        """Run fn: OUT/NAME.txt (its output), a line of OUT/steps.tsv (name,
        exit status, milliseconds) and a progress line on stdout (which also
        tells `testbed vm` the guest is alive); its exit status."""
        start = time.monotonic()
        try:
            rc, text = fn()
        except TestbedError as e:
            rc, text = 1, f"testbed: error: {e}\n"
        ms = int((time.monotonic() - start) * 1000)
        with open(os.path.join(self.out, f"{name}.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(self.out, "steps.tsv"), "a") as f:
            f.write(f"{name}\t{rc}\t{ms}\n")
        print(f"{self.who} (guest): {name} exit {rc}, {ms} ms", flush=True)
        return rc


def cli(*args: str, stdout_only: bool = False) -> tuple[int, str]:
    """`testbed ARGS...` as the command line runs it; its exit status and
    output (stdout and stderr, or stdout alone)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out if not stdout_only else err):
        rc = testbed(list(args))
    return rc, out.getvalue()
