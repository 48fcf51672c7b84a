"""Run a command inside a kernel under test: `testbed vm --kernel bzImage -- CMD`.

One module per job: base (errors, file and environment names), probe (can
qemu use KVM here?), image (the kernel image), runner (the host side: vng's
command line, a boot, its output), guest (the guest side, `python -m
testbed.vm guest`), console (the console watched for crashes), session (the
boots of one `testbed vm`, OUT/crashes.jsonl).  The kernel log's markers and classification are in
testbed/kmsg.py, which knows nothing of VMs.
"""
from __future__ import annotations

from testbed.kmsg import (
                          KernelProblem,
                          case_marker,
                          in_vm,
                          kernel_problems,
                          kmsg_marker,
                          kmsg_to_dmesg,
)
from testbed.vm.base import (
                          DMESG_FILE,
                          ENV_BOOT,
                          ENV_OUT,
                          ENV_TIME_SCALE,
                          ENV_VM,
                          REQUEST_FILE,
                          STATUS_FILE,
                          TCG_TIME_SCALE,
                          Interrupted,
                          VmError,
                          VmTimeout,
)
from testbed.vm.console import BOOT_CRASH_FILE, CRASH_FILE, ConsoleWatch, Crash, parse_block
from testbed.vm.guest import guest_main
from testbed.vm.image import KernelImage, inspect_kernel, kernel_release_of
from testbed.vm.probe import (
                          PROBE_DEADLINE,
                          PROBE_EXIT_PORT,
                          PROBE_EXIT_VALUE,
                          VNG_KVM_CPU,
                          KvmVerdict,
                          choose_accel,
                          kvm_verdict,
                          probe_argv,
                          probe_firmware,
                          probe_kvm,
)
from testbed.vm.runner import (
                          VmSpec,
                          check_host,
                          find_qemu,
                          find_vng,
                          guest_command,
                          guest_request,
                          launch_argv,
                          project_root,
                          vng_argv,
)
from testbed.vm.session import CONSOLE_FILE, DEFAULT_MAX_BOOTS, VmResult, run

__all__ = [
    "BOOT_CRASH_FILE", "CONSOLE_FILE", "CRASH_FILE", "DEFAULT_MAX_BOOTS", "ENV_BOOT", "ConsoleWatch", "Crash",
    "Interrupted", "launch_argv", "parse_block",
    "DMESG_FILE", "ENV_OUT", "ENV_TIME_SCALE", "ENV_VM", "REQUEST_FILE", "STATUS_FILE",
    "TCG_TIME_SCALE", "PROBE_DEADLINE", "PROBE_EXIT_PORT", "PROBE_EXIT_VALUE", "VNG_KVM_CPU",
    "KernelImage", "KernelProblem", "KvmVerdict", "VmError", "VmResult", "VmSpec", "VmTimeout",
    "case_marker", "check_host", "choose_accel", "find_qemu", "find_vng", "guest_command",
    "guest_main", "guest_request", "in_vm", "inspect_kernel", "kernel_problems",
    "kernel_release_of", "kmsg_marker", "kmsg_to_dmesg", "kvm_verdict", "probe_argv",
    "probe_firmware", "probe_kvm", "project_root", "run", "vng_argv",
]
