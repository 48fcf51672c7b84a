"""What every part of `testbed vm` shares: its errors, the files it writes
into the results directory, and the environment of the guest command."""
from __future__ import annotations

from testbed.errors import TestbedError


class VmError(TestbedError):
    """`testbed vm` could not boot the kernel or run the command."""


class VmTimeout(VmError):
    """The VM did not finish within --timeout (it was killed)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached `testbed vm`: the VM is stopped on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


STATUS_FILE = "vm-status.json"    # written by the guest runner into RESULTS
DMESG_FILE = "dmesg.txt"          # the guest's kernel log, "[  sec.usec] message"
REQUEST_FILE = "vm-request.json"  # the command, its env and cwd, for the guest runner
ENV_VM = "TESTBED_VM"             # "1" inside a `testbed vm` guest
ENV_OUT = "TESTBED_VM_OUT"        # the results directory (same path in the guest)
ENV_BOOT = "TESTBED_VM_BOOT"      # 1, then 2, 3, ... on the boots after a crash
# How much slower than the host the guest is expected to be: deadlines meant
# for a host (process start-up, readiness) should be multiplied by it.
# 1 under KVM; software emulation of a Python start-up over the 9p root is
# 10-30x slower than on the host.
ENV_TIME_SCALE = "TESTBED_TIME_SCALE"
TCG_TIME_SCALE = 10
