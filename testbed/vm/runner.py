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
import ctypes
import functools
import json
import os
import re
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

from testbed.kmsg import problem
from testbed.vm.base import (
    ENV_TIME_SCALE,
    REQUEST_FILE,
    STATUS_FILE,
    TCG_TIME_SCALE,
    VmError,
)
from testbed.vm.console import ConsoleWatch, Crash, hang, kernel_line
from testbed.vm.image import KernelImage

# Modules that udev's coldplug would load in the guest, useless to the suite.
UNNEEDED_MODULES = ("kvm", "kvm_amd", "kvm_intel", "ahci", "libahci", "sr_mod", "cdrom",
                    "iTCO_wdt", "iTCO_vendor_support", "i6300esb", "pcspkr", "floppy",
                    "lpc_ich", "i2c_i801", "joydev", "evdev", "psmouse", "serio_raw")
CONSOLE_LOGLEVEL = 6
# The least quiet time that makes a hang before the command has started.
BOOT_QUIET = 300.0
_NOTEWORTHY = re.compile(r"(?i)qemu|error|warn|fail|cannot|could not")
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
    boot: int = 1                  # which boot of the command this is (TESTBED_VM_BOOT)


def guest_request(spec: VmSpec) -> dict:
    """What the guest runner is to run, written into the results directory:
    the command travels in a file, not on the kernel command line (vng passes
    --exec there, and x86 cuts the command line at 2048 bytes)."""
    return {"command": list(spec.command), "cwd": spec.cwd or spec.project, "boot": spec.boot,
            "env": {"PATH": spec.path_env or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    # bytecode is written into the project's overlay (discarded
                    # with the guest): compiled once per boot, not per process
                    "PYTHONPATH": spec.project,
                    # hypothesis' pytest plugin loads with every pytest (an
                    # entry point) and costs ~7 s per process under software
                    # emulation; the conformance suite has no hypothesis
                    # tests (the fuzzer drives hypothesis itself).  A
                    # PYTEST_ADDOPTS of the caller's is kept as it is.
                    "PYTEST_ADDOPTS": os.environ.get("PYTEST_ADDOPTS", "-p no:hypothesispytest"),
                    ENV_TIME_SCALE: "1" if spec.kvm else str(TCG_TIME_SCALE)}}


def guest_command(spec: VmSpec) -> str:
    """The short shell line vng runs in the guest: the guest runner.  Absolute
    paths: the guest's PATH is the system's, not this user's."""
    # -S: the guest runner needs the standard library and the project
    # only; the venv's site (its .pth files) costs seconds under emulation.
    argv = ["env", f"PYTHONPATH={spec.project}", spec.python, "-S", "-m", "testbed.vm", "guest",
            os.path.join(spec.out, REQUEST_FILE)]
    return f"cd {shlex.quote(spec.cwd or spec.project)} && exec {shlex.join(argv)}"


def launch_argv(spec: VmSpec) -> list[str]:
    """vng_argv(), in a PID namespace of its own where that is allowed
    (root): when the namespace's first process dies, the kernel kills every
    process in it, qemu included, so a `testbed vm` that is SIGKILLed (its
    death kills `unshare`, see _die_with_parent) leaves no qemu behind.  qemu
    7.2 has no -run-with exit-with-parent, and vng forks qemu from a child
    process, so a parent-death signal alone would not reach it."""
    argv = vng_argv(spec)
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--", *argv]
    return argv


# The host's root over 9p, as vng mounts it, but with the guest's page cache
# (cache=loose; vng's default is none): every read of a file went to the
# host, and under software emulation each 9p round trip is dear.  Python
# processes read the same thousand files (pytest, pyroute2, scapy, ...)
# once per boot, not once per process.  The guest mounts the root read-only
# and the host's files do not change under a run; the results directory is
# a mount of its own, uncached.  The kernel takes the last rootflags=.
ROOTFLAGS = "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"


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
             "--append", ROOTFLAGS,
             # udev would load these for the emulated machine; KVM alone costs
             # ~10 s of a software-emulated boot, and none of them is needed.
             "--append", "module_blacklist=" + ",".join(UNNEEDED_MODULES),
             # The kernel console, which the host watches for crashes: notices
             # (the markers) and worse, not the info chatter of every lab.
             "--append", f"loglevel={CONSOLE_LOGLEVEL}",
             # --verbose: the kernel console goes to vng's stderr (without it,
             # to /dev/null); the guest runner sends the command's stderr to
             # its stdout, so the host reads the console alone on that pipe.
             "--verbose"]
    if not spec.kvm:
        # Software emulation on a loaded host can be too slow for the
        # kernel's IO-APIC timer check, which then panics at boot ("IO-APIC
        # + timer doesn't work!", seen here with Debian's 6.1).
        argv += ["--append", "no_timer_check"]
    argv += ["--exec", guest_command(spec)]
    return argv


def find_vng(vng: Optional[str] = None) -> str:
    """vng on PATH, else beside this interpreter: the project's virtual
    environment, where .ci/setup-vm.sh installs it, is not on root's PATH
    (only `testbed` is linked into /usr/local/bin)."""
    name = vng or "vng"
    path = shutil.which(name)
    if not path and "/" not in name:
        here = os.path.dirname(sys.executable)
        path = shutil.which(name, path=here)
        if path:  # vng runs virtme-run and friends from its own directory, by name
            os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"
    if not path:
        raise VmError("virtme-ng is not installed (no `vng` on PATH nor beside "
                      f"{sys.executable}): bash .ci/setup-vm.sh  (or: pip install 'srl2-testbed[vm]')")
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




# ---------------------------------------------------------------------------
# one boot
# ---------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGKILL when `testbed vm` dies (kept
    across exec).  If it died already, do not start at all."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, comm) of the processes in process group pgid (ours: the VM's)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            found.append((int(name), comm))
    return found


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End the VM: SIGTERM to its qemu (virtme-ng then exits by itself and
    removes its temporary files), SIGKILL to the whole group if that is not
    enough within grace seconds (or there is no qemu yet)."""
    if proc.poll() is not None:  # ended by itself (its pid, the group's id, may be reused)
        return
    qemus = [pid for pid, comm in _group_members(proc.pid) if comm.startswith("qemu")]
    for pid in qemus:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if qemus:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return
    # Not reaped yet, so the group id is still ours.  In a PID namespace the
    # death of `unshare` kills everything in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


@dataclass
class BootOutcome:
    status: Optional[dict]       # the guest runner's vm-status.json (None: never written)
    crash: Optional[Crash]       # the crash that ended the boot
    timed_out: bool
    seconds: float
    returncode: Optional[int]    # vng's
    tail: deque                  # the last output chunks, for error messages
    command_started: bool        # the console showed the command start
    console_tail: list[str] = field(default_factory=list)  # its last lines (qemu's last words)


class Boot:
    """One boot of spec's kernel running spec's command: its stdout streamed
    to sink, its console to console_file (and to the user's stderr with
    --verbose) and watched for crashes and hangs."""

    def __init__(self, spec: VmSpec, release: str, sink, console_file, log,
                 hang_after: float, stop_on_warning: bool = False):
        self.spec, self.release, self.sink, self.console_file, self.log = \
            spec, release, sink, console_file, log
        self.hang_after = hang_after
        self.watch = ConsoleWatch(stop_on_warning)
        self.tail: deque = deque(maxlen=64)
        self.console_tail: deque = deque(maxlen=30)
        self._partial = b""

    def run(self, deadline: Optional[float]) -> BootOutcome:
        start = time.monotonic()
        # vng's temporary files (its status file) in the results directory,
        # removed after the boot: a vng killed with the VM leaves none in /tmp.
        tmp = os.path.join(self.spec.out, ".vng-tmp")
        os.makedirs(tmp, exist_ok=True)
        try:
            proc = subprocess.Popen(launch_argv(self.spec), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, env=dict(os.environ, TMPDIR=tmp),
                                    preexec_fn=functools.partial(_die_with_parent, os.getpid()))
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise VmError(f"cannot run {self.spec.vng}: {e.strerror}") from None
        crash: Optional[Crash] = None
        timed_out = False
        try:
            crash, timed_out = self._follow(proc, start, deadline)
            seen = self.watch.block_started_at or time.monotonic()
        finally:  # a crash, a hang, the timeout, or an exception (SIGTERM, Ctrl-C)
            stop(proc)
            shutil.rmtree(tmp, ignore_errors=True)
        if crash is None:  # the guest ended by itself in the middle of a crash (a panic)
            self._console(b"", final=True)
            crash = self.watch.crash(self.spec.boot, self.release, time.monotonic() - start)
        if crash is not None:
            crash.stop_seconds = round(time.monotonic() - seen, 1)
        return BootOutcome(_read_status(self.spec.out), crash, timed_out,
                           time.monotonic() - start, proc.returncode, self.tail,
                           self.watch.command_started, list(self.console_tail))

    def _follow(self, proc: subprocess.Popen, start: float,
                deadline: Optional[float]) -> tuple[Optional[Crash], bool]:
        assert proc.stdout is not None and proc.stderr is not None  # started with PIPE for both
        out_fd, con_fd = proc.stdout.fileno(), proc.stderr.fileno()
        fds = [out_fd, con_fd]
        active = start
        while fds:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None, True
            if self.watch.complete(now):
                # what the command printed before the crash, not yet read
                # (the console and stdout are two pipes): to the sink first
                if out_fd in fds:
                    self._drain(out_fd)
                return self.watch.crash(self.spec.boot, self.release, now - start), False
            # Before the command starts the console is quiet for long
            # stretches of a slow boot (the guest runner's Python start-up).
            bound = self.hang_after if self.watch.command_started else \
                max(self.hang_after, BOOT_QUIET)
            if not self.watch.crashing and now - active >= bound:
                return hang(self.spec.boot, bound, self.watch.open,
                            list(self.console_tail), self.release, now - start), False
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - now))
            ready, _, _ = select.select(fds, [], [], wait)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    fds.remove(fd)
                elif fd == out_fd:
                    active = time.monotonic()
                    self._output(chunk)
                elif self._console(chunk):
                    active = time.monotonic()
        return None, False

    def _output(self, chunk: bytes) -> None:
        self.sink.write(chunk)
        self.sink.flush()
        self.tail.append(chunk)

    def _drain(self, fd: int) -> None:
        """The command's output already in the pipe, without waiting for more."""
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self._output(chunk)

    def _console(self, chunk: bytes, final: bool = False) -> bool:
        """Take console bytes; True if they show activity (a line that is not
        a kernel problem report: a stall report repeats in a hung guest)."""
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = b"" if final else lines.pop()
        activity = False
        now = time.monotonic()
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            if not line.strip():
                continue
            self.console_file.write(line + "\n")
            self.console_tail.append(line)
            # The kernel's lines with --verbose; of the rest (the decompressor's
            # banner, vng's and qemu's messages) what may be an error.
            if self.spec.verbose or (not line.startswith("[") and _NOTEWORTHY.search(line)):
                self.log(line)
            self.watch.feed(line, now)
            parsed = kernel_line(line)
            activity = activity or not (parsed and problem(parsed[1]))
        self.console_file.flush()
        return activity


def _read_status(out: str) -> Optional[dict]:
    try:
        with open(os.path.join(out, STATUS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_words(lines: list[str]) -> str:
    """The line of a console tail that best says why a VM ended: the last
    that is not the kernel's and looks like an error (qemu's own assertion
    failures land here), else the last line."""
    for line in reversed(lines):
        if not line.startswith("[") and _NOTEWORTHY.search(line):
            return line.strip()
    return lines[-1].strip() if lines else ""


def tail_text(tail: deque, n: int = 12) -> str:
    text = b"".join(tail).decode(errors="replace").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n  ".join(lines[-n:]) if lines else "(no output)"
