"""The host side of `testbed vm`: virtme-ng's command line, one boot of the
kernel running the command, its output streamed, the VM stopped.

The kernel boots with virtme-ng (`vng`): the host's root file system is the
guest's, read-only; the project directory is an overlay (writable in the
guest, the host's copy untouched); the results directory is shared
read-write at the same path, so a path on the host command line means the
same file in the guest.  In the guest the guest runner (testbed/vm/guest.py)
runs the command; the host copies its status out (it does not rely on
vng's own exit status) and scans the kernel log for warnings, oopses and
"dead loop" messages, attributing each to the case that was running
(testbed/kmsg.py).  Pure parts: vng_argv(), guest_request(), guest_command().
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from testbed.kmsg import KernelProblem, kernel_problems
from testbed.vm.base import (DMESG_FILE, ENV_TIME_SCALE, REQUEST_FILE, STATUS_FILE,
                             TCG_TIME_SCALE, VmError, VmTimeout)
from testbed.vm.image import KernelImage, inspect_kernel
from testbed.vm.probe import KvmVerdict, choose_accel, kill_group

# Modules that udev's coldplug would load in the guest, useless to the suite.
UNNEEDED_MODULES = ("kvm", "kvm_amd", "kvm_intel", "ahci", "libahci", "sr_mod", "cdrom",
                    "iTCO_wdt", "iTCO_vendor_support", "i6300esb", "pcspkr", "floppy",
                    "lpc_ich", "i2c_i801", "joydev", "evdev", "psmouse", "serio_raw")
# Host directories that virtme-ng-init covers with a tmpfs in the guest.
GUEST_TMPFS = ("/var/cache", "/var/log", "/var/tmp", "/var/lib/apt", "/var/lib/private",
               "/run", "/dev/shm")




def project_root() -> str:
    """The directory holding the `testbed` package in use (the checkout)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class VmSpec:
    kernel: str
    command: list[str]
    out: str                       # absolute results directory (same path in the guest)
    project: str = field(default_factory=project_root)
    cwd: str = ""                  # guest working directory (default: the project)
    memory: str = "2G"
    cpus: int = 2
    kvm: bool = False
    vng: str = "vng"
    qemu: Optional[str] = None
    python: str = sys.executable
    path_env: str = ""             # PATH for the command in the guest
    verbose: bool = False


def guest_request(spec: VmSpec) -> dict:
    """What the guest runner is to run, written into the results directory:
    the command travels in a file, not on the kernel command line (vng passes
    --exec there, and x86 cuts the command line at 2048 bytes)."""
    return {"command": list(spec.command), "cwd": spec.cwd or spec.project,
            "env": {"PATH": spec.path_env or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    # bytecode is written into the project's overlay (discarded
                    # with the guest): compiled once per boot, not per process
                    "PYTHONPATH": spec.project,
                    ENV_TIME_SCALE: "1" if spec.kvm else str(TCG_TIME_SCALE)}}


def guest_command(spec: VmSpec) -> str:
    """The short shell line vng runs in the guest: the guest runner.  Absolute
    paths: the guest's PATH is the system's, not this user's."""
    argv = ["env", f"PYTHONPATH={spec.project}", spec.python, "-m", "testbed.vm", "guest",
            os.path.join(spec.out, REQUEST_FILE)]
    return f"cd {shlex.quote(spec.cwd or spec.project)} && exec {shlex.join(argv)}"


def vng_argv(spec: VmSpec) -> list[str]:
    """virtme-ng's command line for spec (pure)."""
    argv = [spec.vng, "--run", spec.kernel,
            "--memory", str(spec.memory), "--cpus", str(spec.cpus)]
    if not spec.kvm:
        argv.append("--disable-kvm")
    if spec.qemu:
        argv += ["--qemu", spec.qemu]
    # --force-9p: the root is shared over 9p anyway where virtiofsd is not
    # the Rust one (Debian 12), and trying it first costs seconds per boot.
    argv += ["--force-9p", "--overlay-rwdir", spec.project, "--rwdir", spec.out,
             "--cwd", spec.cwd or spec.project,
             # Markers from every case: no /dev/kmsg write rate limit.
             "--append", "printk.devkmsg=on",
             # udev would load these for the emulated machine; KVM alone costs
             # ~10 s of a software-emulated boot, and none of them is needed.
             "--append", "module_blacklist=" + ",".join(UNNEEDED_MODULES)]
    if spec.verbose:
        argv.append("--verbose")
    argv += ["--exec", guest_command(spec)]
    return argv




@dataclass
class VmResult:
    status: int                 # the command's exit status (or 1 for kernel problems, see exit_status)
    problems: list[KernelProblem]
    seconds: float              # boot + run wall time
    verdict: Optional[KvmVerdict]
    release: str

    @property
    def exit_status(self) -> int:
        if self.status == 0 and self.problems:
            return 1
        return self.status


def find_vng(vng: Optional[str] = None) -> str:
    path = shutil.which(vng or "vng")
    if not path:
        raise VmError("virtme-ng is not installed (no `vng` on PATH): "
                      "pip install 'srl2-testbed[vm]'  (or: pip install virtme-ng)")
    return path


def find_qemu(qemu: Optional[str] = None) -> str:
    name = qemu or "qemu-system-x86_64"
    path = shutil.which(name)
    if not path:
        raise VmError(f"no qemu: {name} not found; apt-get install qemu-system-x86")
    return path


def check_host(kernel: KernelImage) -> None:
    """What virtme-ng needs on the host besides itself and qemu, with the fix."""
    if not (shutil.which("udevadm") or os.path.exists("/lib/systemd/systemd-udevd")):
        raise VmError("virtme-ng needs udev on the host to stream the guest's output and "
                      "return its status: apt-get install udev")
    if kernel.modules and not os.path.exists(os.path.join(kernel.modules, "modules.dep")) \
            and not shutil.which("depmod"):
        raise VmError(f"{kernel.modules} has no modules.dep and there is no depmod to make it: "
                      "apt-get install kmod (or run depmod -b ROOT RELEASE)")
    if kernel.modules:
        real = os.path.realpath(kernel.modules)
        for hidden in GUEST_TMPFS:
            if real == hidden or real.startswith(hidden + "/"):
                raise VmError(f"the kernel's modules ({kernel.modules}) are under {hidden}, which "
                              "virtme-ng covers with a tmpfs in the guest, so the guest could not "
                              "load them: unpack the kernel elsewhere (e.g. ~/.cache)")
    if kernel.modules and not shutil.which("modprobe"):
        raise VmError("the kernel has loadable modules but the host (hence the guest) has no "
                      "modprobe: apt-get install kmod")


def _stream(proc: subprocess.Popen, sink, deadline: Optional[float], tail: deque) -> bool:
    """Copy proc's output to sink as it comes; False when the deadline passed first."""
    fd = proc.stdout.fileno()
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait == 0.0:
            return False
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return True
        sink.write(chunk)
        sink.flush()
        tail.append(chunk)


def _stop(proc: subprocess.Popen) -> None:
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _read_status(out: str) -> Optional[dict]:
    try:
        with open(os.path.join(out, STATUS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail_text(tail: deque, n: int = 12) -> str:
    text = b"".join(tail).decode(errors="replace").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n  ".join(lines[-n:]) if lines else "(no output)"


def run(spec: VmSpec, accel: str = "auto", timeout: Optional[float] = None,
        sink=None, log=None) -> VmResult:
    """Boot spec.kernel, run spec.command, return its status and the kernel's problems."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sink = sink or sys.stdout.buffer
    kernel = inspect_kernel(spec.kernel)
    spec.kernel = kernel.path
    spec.vng = find_vng(spec.vng)
    qemu = find_qemu(spec.qemu)
    check_host(kernel)
    spec.kvm, verdict = choose_accel(accel, qemu, log)
    os.makedirs(spec.out, exist_ok=True)
    for name in (STATUS_FILE, DMESG_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(spec.out, name))
    with open(os.path.join(spec.out, REQUEST_FILE), "w") as f:
        json.dump(guest_request(spec), f, indent=1)
    mods = f"modules from {kernel.modules}" if kernel.modules else "no modules directory found"
    log(f"testbed vm: booting {kernel.release} ({kernel.path}; {mods}); {spec.cpus} CPUs, "
        f"{spec.memory}; results in {spec.out}")
    start = time.monotonic()
    deadline = start + timeout if timeout else None
    tail: deque = deque(maxlen=64)
    try:
        proc = subprocess.Popen(vng_argv(spec), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        raise VmError(f"cannot run {spec.vng}: {e.strerror}") from None
    try:
        finished = _stream(proc, sink, deadline, tail)
        if finished:
            remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                finished = False
    except BaseException:
        _stop(proc)
        raise
    if not finished:
        _stop(proc)
    seconds = time.monotonic() - start
    status = _read_status(spec.out)
    dmesg_path = os.path.join(spec.out, DMESG_FILE)
    problems: list[KernelProblem] = []
    with contextlib.suppress(OSError):
        with open(dmesg_path, errors="replace") as f:
            problems = kernel_problems(f.read())
    for p in problems:
        log(f"testbed vm: {p}")
    if not finished:
        where = ("while the command ran" if status else
                 "before the guest started the command (boot too slow or hung?)")
        log_hint = (f"kernel log so far: {dmesg_path}" if os.path.exists(dmesg_path)
                    else "no kernel log (the guest runner never started; --verbose shows the boot)")
        raise VmTimeout(f"timeout: the VM did not finish within {timeout:g} s ({where}); "
                        f"killed it; {log_hint}; last output:\n  {_tail_text(tail)}")
    if status is None:
        raise VmError(f"the kernel did not boot to the command (vng exit {proc.returncode}); "
                      f"last output:\n  {_tail_text(tail)}")
    if status.get("status") is None:
        raise VmError(f"the guest died while the command ran (kernel panic?) after {seconds:.0f} s; "
                      f"kernel log: {dmesg_path}; last output:\n  {_tail_text(tail)}")
    return VmResult(int(status["status"]), problems, seconds, verdict, status.get("release", ""))
