"""The guest side of .ci/vm-scenario.sh: the sr6 series' own selftest and
the same scenario as topologies (docs/sr6-scenario.md), timed one after
the other in one boot of the sr6 kernel, in one Python process (under
software emulation a new Python process costs 5-10 s of imports).

    python3 .ci/vm_scenario_guest.py OUT SELFTEST_DIR

Steps, each timed (OUT/steps.tsv: name, exit status, milliseconds; its
output in OUT/NAME.txt; a progress line on stdout):

- selftest: `bash srv6_sr6_l2vpn_test.sh` in SELFTEST_DIR (`ip` on PATH
  must be the series' iproute2, ip-sr6);
- for each topologies/sr6-*.yaml, on the kernel datapath and on the
  reference (revision sr6): the lab made by the engine in this process
  (`up-DP-BASE`), `testbed validate --json` as the CLI runs it
  (`validate-DP-BASE`), the lab removed (`down-DP-BASE`);
- the same for sr6-l2vpn as a user types it, three processes
  (`cli-up`, `cli-validate`, `cli-down`): what a Python start costs here;
- `testbed render` of each, run with bash (`render-BASE`: the script's
  own run, which builds, checks as KTAP, and removes the lab).
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

from testbed import topology
from testbed.lab import Lab

from guest_steps import Steps, cli  # beside this script (.ci/: sys.path[0])

OUT, SELFTEST = sys.argv[1], sys.argv[2]
step = Steps(OUT, "vm-scenario")
# Which parts run (VM_SCENARIO_PARTS, comma-separated; default all): series
# (the series' own selftest), kernel and ref (each topology up + validate on
# that datapath), cli (sr6-l2vpn as typed: three processes), render (the
# scripts testbed render writes).  CI checks ours (kernel, render); the
# rest is the comparison with the series' selftest.
PARTS = set((os.environ.get("VM_SCENARIO_PARTS") or "series,kernel,ref,cli,render").split(","))
TOPOLOGIES = sorted(glob.glob("topologies/sr6-*.yaml"))


def process(*cmd: str, cwd: str | None = None, stamped: bool = False) -> tuple[int, str]:
    """Run a command; its output (stdout and stderr), each line prefixed
    with the seconds since it started when `stamped`."""
    if not stamped:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd)
        return proc.returncode, proc.stdout + proc.stderr
    start = time.monotonic()
    lines = []
    with subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, cwd=cwd) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(f"[{time.monotonic() - start:7.2f}] {line}")
    return proc.returncode, "".join(lines)


def cli_steps() -> None:
    """sr6-l2vpn as a user types it: three processes."""
    py = sys.executable
    step("cli-up", lambda: process(py, "-m", "testbed.cli", "up", "topologies/sr6-l2vpn.yaml",
                                   "--datapath", "kernel", "--name", "vs-cli"))
    step("cli-validate", lambda: process(py, "-m", "testbed.cli", "validate", "vs-cli"))
    step("cli-down", lambda: process(py, "-m", "testbed.cli", "down", "vs-cli"))


def main() -> int:
    if "series" in PARTS:
        step("selftest", lambda: process("bash", "srv6_sr6_l2vpn_test.sh", cwd=SELFTEST, stamped=True))
    labs: dict[str, Lab] = {}
    try:
        for datapath in [dp for dp in ("kernel", "ref") if dp in PARTS]:
            for path in TOPOLOGIES:
                base = os.path.basename(path)[:-len(".yaml")]
                name = f"vs-{datapath[0]}-{base.removeprefix('sr6-')}"

                def up() -> tuple[int, str]:
                    labs[name] = Lab.up(topology.load(path, revision="sr6"), name=name, datapath=datapath)
                    return 0, f"lab {name} up on the {datapath} datapath ({labs[name].datapath.why})\n"

                def down() -> tuple[int, str]:
                    labs.pop(name).down()
                    return 0, f"removed lab {name}\n"

                if step(f"up-{datapath}-{base}", up) != 0:
                    continue
                step(f"validate-{datapath}-{base}", lambda: cli("validate", name, "--json"))
                step(f"down-{datapath}-{base}", down)
        if "cli" in PARTS:
            cli_steps()
        for path in TOPOLOGIES if "render" in PARTS else []:
            base = os.path.basename(path)[:-len(".yaml")]
            script = os.path.join(OUT, f"{base}.sh")
            rc, text = cli("render", path, stdout_only=True)
            with open(script, "w") as f:
                f.write(text)
            step(f"render-{base}", lambda: process("bash", script, stamped=True))
    finally:
        for lab in labs.values():
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
