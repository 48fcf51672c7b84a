"""The benchmarks run to the end on any kernel: a column this kernel cannot
measure says SKIP and why (the rendered script exits 4 without srl2)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("need_root")


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_bring_up_of_p2p_reports_the_script_skip():
    from tests.test_render import kernel_has_srl2

    p = bench("bring_up.py", "topologies/p2p.yaml", "--runs", "1")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^  engine +\d+\.\d ms", p.stdout, re.M) and re.search(r"^  cli +\d+\.\d ms", p.stdout, re.M)
    if kernel_has_srl2():
        assert re.search(r"^  script +\d+\.\d ms", p.stdout, re.M), p.stdout
    else:
        assert "  script      SKIP   (SKIP: this kernel has no srl2 link kind)" in p.stdout, p.stdout

