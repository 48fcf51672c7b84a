"""`testbed vm` from start to end: checks, then boots of the kernel running
the command until one finishes without a crash (or --max-boots).

A boot that crashes (panic, BUG, Oops, general protection fault; a WARNING
with --stop-on warning) or hangs is ended within seconds, the crash becomes
one line of OUT/crashes.jsonl, and the next boot runs the same command with
TESTBED_VM_BOOT one higher: the command skips what is already done (the
pytest plugin reads its record and crashes.jsonl), as kernel CI resumes a
suite after a crash.  A boot that crashes or hangs before the command has
started lost no work: it goes to OUT/boot-crashes.jsonl, and the kernel is
booted again, BOOT_ATTEMPTS times in a row at most (a kernel that cannot
boot is an error).  The README's "Testing a kernel" describes the files."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from testbed.kmsg import KernelProblem, kernel_problems
from testbed.vm import probe, runner
from testbed.vm.bytecode import compile_project
from testbed.vm.base import DMESG_FILE, REQUEST_FILE, STATUS_FILE, VmError, VmTimeout
from testbed.vm.console import BOOT_CRASH_FILE, CRASH_FILE, Crash, emulator_hint, kernel_line
from testbed.vm.image import inspect_kernel
from testbed.vm.probe import KvmVerdict

CONSOLE_FILE = "console.txt"  # the kernel console of every boot, as the host saw it
DEFAULT_MAX_BOOTS = 8
# Boots in a row that may fail before the command starts.  Under software
# emulation one boot of the RFC kernel in 13 died that way (an int3 oops, see
# console.emulator_hint), and qemu once died of its own assertion; three in
# a row means the kernel's own.
BOOT_ATTEMPTS = 3
# No output and no progress for this long is a hang.  Cases print as they
# end; the longest case of the suite takes well under a minute on a host, a
# few under software emulation with two workers sharing two slow CPUs; on
# a shared host, starting pytest -n 2 in the guest was seen to take 7 minutes.
HANG_AFTER_KVM = 120.0
HANG_AFTER_TCG = 600.0


@dataclass
class VmResult:
    status: Optional[int]       # the last boot's command status (None: it crashed)
    problems: list[KernelProblem]
    seconds: float              # wall time of every boot
    verdict: Optional[KvmVerdict]
    release: str
    crashes: list[Crash] = field(default_factory=list)
    boots: int = 1
    # boots that crashed before the command started: booted again, so they
    # are reported but do not change the exit status
    boot_crashes: list[Crash] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """The command's status; non-zero (1) when it was 0 but the kernel
        crashed or complained, or when the last boot crashed."""
        if self.status is None:
            return 1
        if self.status == 0 and (self.problems or self.crashes):
            return 1
        return self.status


def _write_request(spec: runner.VmSpec) -> None:
    with open(os.path.join(spec.out, REQUEST_FILE), "w") as f:
        json.dump(runner.guest_request(spec), f, indent=1)


def _append_crash(out: str, crash: Crash, name: str = CRASH_FILE) -> None:
    with open(os.path.join(out, name), "a") as f:
        f.write(json.dumps(crash.record()) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _problems(dmesg_path: str, crash: Optional[Crash]) -> list[KernelProblem]:
    """The kernel's complaints in a boot's log, less the crash's own lines
    (reported once, as the crash)."""
    try:
        with open(dmesg_path, errors="replace") as f:
            found = kernel_problems(f.read())
    except OSError:
        return []
    if crash is None:
        return found
    own = {parsed[1].strip() for parsed in map(kernel_line, crash.lines) if parsed}
    return [p for p in found if (kernel_line(p.line) or ("", p.line))[1].strip() not in own]


def run(spec: runner.VmSpec, accel: str = "auto", timeout: Optional[float] = None,
        sink=None, log=None, hang_after: Optional[float] = None,
        max_boots: int = DEFAULT_MAX_BOOTS, stop_on_warning: bool = False) -> VmResult:
    """Boot spec.kernel and run spec.command, again after each crash; the
    last boot's status, the kernel's problems and the crashes."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sink = sink or sys.stdout.buffer
    if max_boots < 1:
        raise VmError(f"--max-boots {max_boots}: must be at least 1")
    kernel = inspect_kernel(spec.kernel)
    spec.kernel = kernel.path
    spec.vng = runner.find_vng(spec.vng)
    qemu = runner.find_qemu(spec.qemu)
    runner.check_host(kernel)
    compile_project(spec.project)
    spec.kvm, verdict = probe.choose_accel(accel, qemu, log)
    if hang_after is None:
        hang_after = HANG_AFTER_KVM if spec.kvm else HANG_AFTER_TCG
    os.makedirs(spec.out, exist_ok=True)
    for name in (STATUS_FILE, DMESG_FILE, CRASH_FILE, BOOT_CRASH_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(spec.out, name))
    mods = f"modules from {kernel.modules}" if kernel.modules else "no modules directory found"
    log(f"testbed vm: booting {kernel.release} ({kernel.path}; {mods}); {spec.cpus} CPUs, "
        f"{spec.memory}; results in {spec.out}")
    start = time.monotonic()
    deadline = start + timeout if timeout else None
    crashes: list[Crash] = []
    boot_crashes: list[Crash] = []
    failed_in_a_row = 0
    problems: list[KernelProblem] = []
    dmesg_path = os.path.join(spec.out, DMESG_FILE)
    with open(os.path.join(spec.out, CONSOLE_FILE), "w") as console:
        n = 0               # every boot, the failed ones included (TESTBED_VM_BOOT)
        command_boots = 0   # boots that ran the command: at most max_boots
        while command_boots < max_boots:
            n += 1
            spec.boot = n
            if n > 1:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(dmesg_path, os.path.join(spec.out, f"dmesg-boot{n - 1}.txt"))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(spec.out, STATUS_FILE))
                log(f"testbed vm: boot {n} (run {command_boots + 1} of the command, at most "
                    f"{max_boots}): the same command again, TESTBED_VM_BOOT={n}")
            _write_request(spec)
            console.write(f"# testbed vm: boot {n}\n")
            outcome = runner.Boot(spec, kernel.release, sink, console, log, hang_after,
                                  stop_on_warning).run(deadline)
            crash = outcome.crash
            boot_problems = _problems(dmesg_path, crash)
            problems += boot_problems
            for p in boot_problems:
                log(f"testbed vm: {p}")
            status = outcome.status
            finished = status is not None and status.get("status") is not None
            if crash is None and status is None and not outcome.command_started and not outcome.timed_out:
                # The VM ended before the guest runner started, with no kernel
                # crash on the console: qemu itself died (seen under software
                # emulation: an assertion in its MSI-X emulation), or the
                # kernel never got to user space.
                why = runner.last_words(outcome.console_tail) or runner.tail_text(outcome.tail, 1)
                crash = Crash(n, "no boot", f"vng exit {outcome.returncode}: {why}",
                              lines=outcome.console_tail, release=kernel.release)
            if crash is not None and not outcome.command_started and not finished:
                crash.elapsed = round(time.monotonic() - start, 1)
                _append_crash(spec.out, crash, BOOT_CRASH_FILE)
                boot_crashes.append(crash)
                failed_in_a_row += 1
                what = {"hang": "hung during boot", "no boot": "did not boot to the command"}.get(
                    crash.kind, "crashed during boot")
                hint = emulator_hint(crash, spec.kvm)
                hint = f"; {hint}" if hint else ""
                if failed_in_a_row >= BOOT_ATTEMPTS or outcome.timed_out:
                    raise VmError(f"the kernel {what}, before the command started ({crash.title}){hint}; "
                                  f"{failed_in_a_row} boot(s) in a row; "
                                  f"console: {os.path.join(spec.out, CONSOLE_FILE)}")
                log(f"testbed vm: boot {n}: the kernel {what}, before the command started "
                    f"({crash.title}){hint}; no work lost, booting again")
                continue
            command_boots += 1
            failed_in_a_row = 0
            if crash is not None:
                crash.elapsed = round(time.monotonic() - start, 1)
                _append_crash(spec.out, crash)
                crashes.append(crash)
                log(f"testbed vm: {crash.summary()}")
            if outcome.timed_out:
                where = ("while the command ran" if status else
                         "before the guest started the command (boot too slow or hung?)")
                log_hint = (f"kernel log so far: {dmesg_path}" if os.path.exists(dmesg_path)
                            else "no kernel log (the guest runner never started; --verbose "
                                 "shows the boot)")
                raise VmTimeout(f"timeout: the VM did not finish within {timeout:g} s ({where}); "
                                f"killed it; {log_hint}; last output:\n  "
                                f"{runner.tail_text(outcome.tail)}")
            seconds = time.monotonic() - start
            if finished:
                assert status is not None  # finished means the guest wrote its status
                return VmResult(int(status["status"]), problems, seconds, verdict,
                                status.get("release", kernel.release), crashes, n, boot_crashes)
            if crash is None:
                raise VmError(f"the guest died while the command ran (no crash on its console) "
                              f"after {seconds:.0f} s; kernel log: {dmesg_path}; last output:\n  "
                              f"{runner.tail_text(outcome.tail)}")
        log(f"testbed vm: --max-boots {max_boots} reached, the command never finished without "
            "a crash")
        return VmResult(None, problems, time.monotonic() - start, verdict, kernel.release,
                        crashes, n, boot_crashes)
