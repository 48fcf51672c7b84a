"""testbed.run: programs run inside a real netns (made and removed here)."""
from __future__ import annotations

import uuid

import pytest

from testbed import linux
from testbed.run import CommandError, run


@pytest.fixture
def netns(need_root):
    name = f"trun{uuid.uuid4().hex[:8]}"
    linux.create_netns(name)
    yield linux.Netns(name)
    linux.delete_netns(name)


def test_runs_inside_the_netns_with_its_own_sys(netns):
    assert run(netns, ["cat", "/proc/net/dev"]).stdout.count(":") == 1  # lo only
    assert run(netns.name, ["ls", "/sys/class/net"]).stdout.split() == ["lo"]


def test_input_is_given_and_output_returned(netns):
    r = run(netns, ["sh", "-c", "tr a-z A-Z; echo warn >&2"], input="hello\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "HELLO\n", "warn\n")


def test_a_failure_carries_command_node_status_and_output(netns):
    with pytest.raises(CommandError) as e:
        run(netns, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    msg = str(e.value)
    assert msg.startswith(f"in {netns.name}: `sh -c 'echo to-out; echo to-err >&2; exit 3'` exited 3"), msg
    assert "stdout: to-out" in msg and "stderr: to-err" in msg
    assert (e.value.returncode, e.value.stdout, e.value.stderr) == (3, "to-out\n", "to-err\n")
    assert run(netns, ["sh", "-c", "exit 3"], check=False).returncode == 3


def test_missing_program_timeout_and_missing_netns_are_errors(netns):
    with pytest.raises(CommandError, match="`no-such-program-x` could not start: No such file"):
        run(netns, ["no-such-program-x"])
    with pytest.raises(CommandError, match="ran longer than 0.2 s and was killed"):
        run(netns, ["sleep", "5"], timeout=0.2)
    with pytest.raises(CommandError, match="no netns trun-missing"):
        run("trun-missing", ["true"])
