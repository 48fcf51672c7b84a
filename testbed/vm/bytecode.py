"""The project's bytecode, compiled on the host before a boot.

The guest sees the project through an overlay whose writes are thrown
away with the guest: whatever Python compiles in there is compiled again
by every boot, and under software emulation compiling the project's ~150
modules costs each boot seconds per process that imports them.  On the
host it takes well under a second, once, into the ordinary __pycache__
directories (which the guest reads; ignored by git), and it is done even
where PYTHONDONTWRITEBYTECODE keeps the host's own imports from writing
them.  The virtual environment's packages were compiled by pip.

Modules pytest rewrites (test files, conftest.py, the plugins they name)
carry pytest's own bytecode and are compiled by the first process that
imports them in each boot."""
from __future__ import annotations

import compileall
import os
import re

# Not the project's own code: the virtual environment, results, caches.
SKIP = re.compile(r"(^|/)(\.[^/]*|venv|test-results|fuzz-results|vm-results|build)(/|$)")


def compile_project(project: str) -> bool:
    """Compile every .py of the project that is not up to date; True when
    all compiled (a file that does not compile is the guest's to report)."""
    ok = True
    for name in sorted(os.listdir(project)):
        path = os.path.join(project, name)
        if SKIP.search(name):
            continue
        if os.path.isdir(path):
            ok &= bool(compileall.compile_dir(path, quiet=2, rx=SKIP))
        elif name.endswith(".py"):
            ok &= bool(compileall.compile_file(path, quiet=2))
    return ok
