"""The guest side of .ci/vm-validate.sh, in one Python process.

Under software emulation every new Python process pays ~5 s to start and
~25 s to import pyroute2 (hundreds of modules read over 9p): run as
`testbed up/validate/down` commands, the shipped topologies took 22 min.
Here the labs are made by the engine in this process (as the suite makes
them) and `testbed validate` and `render` run as the CLI runs them
(`testbed.cli.main`), in this process too.

    python3 .ci/vm_validate_guest.py OUT

For every step: OUT/NAME.txt (its output) and a line of OUT/steps.tsv
(name, exit status, milliseconds), and a progress line on stdout (which
is also what tells `testbed vm` the guest is alive).
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

from testbed import topology
from testbed.datapaths.select import kernel_has_revisions
from testbed.lab import Lab

from guest_steps import Steps, cli  # beside this script (.ci/: sys.path[0])
from testbed.run import run

OUT = sys.argv[1]
step = Steps(OUT, "vm-validate")


def up(path: str, name: str, labs: dict[str, Lab]) -> tuple[int, str]:
    labs[name] = Lab.up(topology.load(path), name=name, datapath="kernel")
    return 0, f"lab {name} up on the kernel datapath\n"


def down(name: str, labs: dict[str, Lab]) -> tuple[int, str]:
    labs.pop(name).down()
    return 0, f"removed lab {name}\n"


def main() -> int:
    labs: dict[str, Lab] = {}
    try:
        for path in sorted(glob.glob("topologies/*.yaml")):
            base = os.path.basename(path)[:-len(".yaml")]
            name = f"vv-{base}"
            # a topology of another revision of the series (revision: sr6 on
            # the srl2 kernel) is .ci/vm-scenario.sh's, on its own kernel
            wanted = topology.load(path).revision
            if wanted != "auto" and wanted not in kernel_has_revisions():
                step(f"skip-{base}", lambda: (0, f"revision {wanted}: this kernel has no such device\n"))
                continue
            if step(f"up-{base}", lambda: up(path, name, labs)) != 0:
                continue
            step(f"validate-{base}", lambda: cli("validate", name, "--json"))
            step(f"down-{base}", lambda: down(name, labs))
        # Broken on purpose: rt-1 loses its route to rt-2's SID (table 90).
        if step("up-broken", lambda: up("topologies/p2p.yaml", "vv-broken", labs)) == 0:
            def break_route() -> tuple[int, str]:
                r = run(labs["vv-broken"].node("rt-1"), ["ip", "-6", "route", "del", "fcff:2::/32", "table", "90"])
                return r.returncode, r.stdout + r.stderr

            step("break", break_route)
            step("validate-broken", lambda: cli("validate", "vv-broken"))
            step("down-broken", lambda: down("vv-broken", labs))
        # The second revision's reduced mode, asked of this kernel (the
        # first revision's): refused, at the line of the device, naming the
        # revision that has it, and nothing is left of the lab.
        reduced = os.path.join(OUT, "p2p-reduced.yaml")
        with open("topologies/p2p.yaml") as f, open(reduced, "w") as g:
            g.write(f.read().replace("segs: [", "mode: reduced, segs: ["))
        def refused() -> tuple[int, str]:
            rc, text = cli("up", reduced, "--datapath", "kernel", "--name", "vv-reduced")
            left = sorted(n for n in os.listdir("/run/netns") if n.startswith("vv-reduced"))
            return rc, text + f"namespaces left: {' '.join(left) or 'none'}\n"

        step("up-reduced", refused)
        _, script = cli("render", "topologies/p2p.yaml", stdout_only=True)
        with open(os.path.join(OUT, "p2p-selftest.sh"), "w") as f:
            f.write(script)

        def selftest() -> tuple[int, str]:
            proc = subprocess.run(["bash", os.path.join(OUT, "p2p-selftest.sh")], capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL)
            return proc.returncode, proc.stdout + proc.stderr

        step("selftest-p2p", selftest)
    finally:
        for lab in labs.values():
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
