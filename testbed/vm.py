"""Run a command inside a kernel under test: `testbed vm --kernel bzImage -- CMD`.

The kernel boots with virtme-ng (`vng`): the host's root file system is the
guest's, read-only; the project directory is an overlay (writable in the
guest, the host's copy untouched); the results directory is shared
read-write at the same path, so a path on the host command line means the
same file in the guest.  In the guest, `python -m testbed.vm guest` (the
*guest runner*) prepares /run/netns and /run/testbed, streams the kernel log
into RESULTS/dmesg.txt, runs the command and writes its exit status into
RESULTS/vm-status.json; the host copies that status out (it does not rely on
vng's own exit status) and scans the kernel log for warnings, oopses and
"dead loop" messages, attributing each to the case that was running from the
suite's `testbed: case START/END <nodeid>` markers (see kmsg_marker()).

KVM is used where it really works, probed rather than guessed: qemu runs a
64-byte firmware that switches to long mode and writes a byte to an
isa-debug-exit port, with the CPU model virtme-ng asks for under KVM, and a
deadline of a few seconds.  A qemu that aborts, or a guest that hangs (nested
KVM on some hosts), means software emulation (TCG).  The verdict is cached
per host boot.

Pure parts (unit-tested without a VM): vng_argv(), kvm_verdict(),
kernel_problems(), probe_firmware(), kernel_release_of().
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from testbed import kmsg, linux
from testbed.errors import TestbedError

# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


class VmError(TestbedError):
    """`testbed vm` could not boot the kernel or run the command."""


class VmTimeout(VmError):
    """The VM did not finish within --timeout (it was killed)."""


# ---------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------

STATUS_FILE = "vm-status.json"   # written by the guest runner into RESULTS
DMESG_FILE = "dmesg.txt"         # the guest's kernel log, "[  sec.usec] message"
ENV_VM = "TESTBED_VM"            # "1" inside a `testbed vm` guest
ENV_OUT = "TESTBED_VM_OUT"       # the results directory (same path in the guest)
# How much slower than the host the guest is expected to be: deadlines meant
# for a host (process start-up, readiness) should be multiplied by it.
# 1 under KVM; software emulation of a Python start-up over the 9p root is
# 10-30x slower than on the host.
ENV_TIME_SCALE = "TESTBED_TIME_SCALE"
TCG_TIME_SCALE = 10
MARKER_PREFIX = "testbed: "
CASE_START = "case START"
CASE_END = "case END"
CMD_START = "vm command START"
CMD_END = "vm command END"

# What virtme-ng (1.x) passes to qemu when it uses KVM on x86_64
# (virtme/architectures.py); the probe must ask for the same CPU, since
# "-cpu host" is what fails on some nested hosts.
VNG_KVM_CPU = "host,topoext=on"
PROBE_EXIT_PORT = 0xF4
PROBE_EXIT_VALUE = 0x2A
PROBE_OK_STATUS = (PROBE_EXIT_VALUE << 1) | 1   # isa-debug-exit: qemu exits (v << 1) | 1 = 85
PROBE_DEADLINE = 3.0
# Modules that udev's coldplug would load in the guest, useless to the suite.
UNNEEDED_MODULES = ("kvm", "kvm_amd", "kvm_intel", "ahci", "libahci", "sr_mod", "cdrom",
                    "iTCO_wdt", "iTCO_vendor_support", "i6300esb", "pcspkr", "floppy",
                    "lpc_ich", "i2c_i801", "joydev", "evdev", "psmouse", "serio_raw")
# Host directories that virtme-ng-init covers with a tmpfs in the guest.
GUEST_TMPFS = ("/var/cache", "/var/log", "/var/tmp", "/var/lib/apt", "/var/lib/private",
               "/run", "/dev/shm")
PROBE_VERSION = 1  # part of the cache key: bump when the probe changes

# ---------------------------------------------------------------------------
# the KVM probe
# ---------------------------------------------------------------------------

# A 64 KiB firmware image (qemu -bios) that goes from the reset vector
# straight to 64-bit long mode with identity paging, then writes 0x2a to the
# isa-debug-exit port.  Running real-mode code is not enough of a test: on
# this project's CI host (nested KVM) a guest runs real mode fine and hangs
# at the switch to protected/long mode, as a Linux boot does.
# Source (GNU as, linked at 0, loaded at 0xF0000, CS=0xF000):
#     .code16
#   start:  cli; xor %ax,%ax; mov %ax,%ds; mov %ax,%ss
#           movl $0x2003,0x1000          # PML4[0] -> PDPT at 0x2000
#           movl $0x3003,0x2000          # PDPT[0] -> PD at 0x3000
#           movl $0x0083,0x3000          # PD[0]: 2 MiB page at 0
#           lgdtl %cs:gdtr
#           mov $0x20,%eax; mov %eax,%cr4          # PAE
#           mov $0x1000,%eax; mov %eax,%cr3
#           mov $0xc0000080,%ecx; rdmsr; or $0x100,%eax; wrmsr   # EFER.LME
#           mov $0x80000001,%eax; mov %eax,%cr0    # PG | PE
#           ljmpl $0x08, $(0xF0000 + long64)
#     .code64
#   long64: mov $0x2a,%al; out %al,$0xf4; 1: hlt; jmp 1b
#     .align 8
#   gdt:    .quad 0, 0x00AF9A000000FFFF            # 0x08: 64-bit code
#   gdtr:   .word 15; .long 0xF0000 + gdt
#     .org 0xFFF0  (reset vector)
#           ljmp $0xF000, $start
_PROBE_CODE = bytes.fromhex(
    "fa31c08ed88ed0"
    "66c70600100320000066c70600200330000066c7060030830000002e660f0116780066"
    "b8200000000f22e066b8001000000f22d866b9800000c00f32660d000100000f30"
    "66b8010000800f22c066ea5c000f000800"
    "b02ae6f4f4ebfd"
)
_PROBE_GDT_AT = 0x68
_PROBE_GDT = bytes.fromhex("0000000000000000" "ffff0000009aaf00" "0f0068000f00")
_PROBE_RESET = bytes.fromhex("ea000000f0")  # ljmp $0xF000, $0


def probe_firmware() -> bytes:
    """The probe's 64 KiB -bios image (see the source above)."""
    img = bytearray(0x10000)
    img[: len(_PROBE_CODE)] = _PROBE_CODE
    img[_PROBE_GDT_AT: _PROBE_GDT_AT + len(_PROBE_GDT)] = _PROBE_GDT
    img[0xFFF0: 0xFFF0 + len(_PROBE_RESET)] = _PROBE_RESET
    return bytes(img)


def probe_argv(qemu: str, firmware: str, accel: str = "kvm") -> list[str]:
    """qemu command line of the probe; accel "kvm" (with virtme-ng's CPU) or "tcg"."""
    cpu = VNG_KVM_CPU if accel == "kvm" else "max"
    return [qemu, "-machine", f"pc,accel={accel}", "-cpu", cpu, "-m", "16",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "none",
            "-monitor", "none", "-bios", firmware,
            "-device", f"isa-debug-exit,iobase={PROBE_EXIT_PORT:#x},iosize=0x04"]


@dataclass
class KvmVerdict:
    usable: bool
    reason: str          # one line, for the user
    seconds: float       # how long the probe took
    cached: bool = False


def kvm_verdict(returncode: Optional[int], output: str, seconds: float,
                deadline: float = PROBE_DEADLINE, accel: str = "kvm") -> KvmVerdict:
    """What a probe run says.  returncode None: still running at the deadline
    (killed); negative: killed by that signal (subprocess convention)."""
    under = "under KVM" if accel == "kvm" else "under software emulation"
    if returncode is None:
        hang = " (KVM guests hang on this host)" if accel == "kvm" else ""
        return KvmVerdict(False, f"a trivial guest did not reach long mode within {deadline:g} s "
                                 f"{under}{hang}", seconds)
    if returncode == PROBE_OK_STATUS:
        return KvmVerdict(True, f"a trivial long-mode guest ran {under} in {seconds:.2f} s", seconds)
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    elif returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        how = f"exit {returncode}, {signal.Signals(returncode - 128).name}"
    else:
        how = f"exit {returncode}"
    with_ = "with KVM" if accel == "kvm" else "(software emulation)"
    return KvmVerdict(False, f"qemu {with_} failed ({how}): {_qemu_message(output)}", seconds)


def _qemu_message(output: str) -> str:
    """The most telling line of qemu's output: an error line if there is one."""
    lines = [re.sub(r"^\S*qemu-system-\S+: ", "", ln).strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln]
    for ln in lines:
        if "error" in ln.lower() or "fail" in ln.lower():
            return ln
    return lines[0] if lines else "no output"


def _run_probe(qemu: str, accel: str, deadline: float) -> KvmVerdict:
    with tempfile.TemporaryDirectory(prefix="testbed-kvm-probe-") as tmp:
        fw = os.path.join(tmp, "probe.bin")
        with open(fw, "wb") as f:
            f.write(probe_firmware())
        start = time.monotonic()
        try:
            proc = subprocess.Popen(probe_argv(qemu, fw, accel), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as e:
            raise VmError(f"cannot run {qemu}: {e.strerror}") from None
        try:
            out, _ = proc.communicate(timeout=deadline)
            rc: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # stuck in the kernel: leave it
                out = b""
            rc = None
        seconds = time.monotonic() - start
    return kvm_verdict(rc, out.decode(errors="replace"), seconds, deadline, accel)


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group we created for proc (start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _cache_dir() -> str:
    return os.path.join(os.environ.get("TESTBED_STATE_DIR", "/run/testbed"), "cache")


def probe_kvm(qemu: str, deadline: float = PROBE_DEADLINE, use_cache: bool = True,
              kvm_dev: str = "/dev/kvm") -> KvmVerdict:
    """Can virtme-ng's qemu use KVM here?  Cached per host boot (and qemu binary)."""
    if not os.path.exists(kvm_dev):
        return KvmVerdict(False, f"no {kvm_dev}", 0.0)
    if not os.access(kvm_dev, os.R_OK | os.W_OK):
        return KvmVerdict(False, f"{kvm_dev} is not readable and writable by this user", 0.0)
    qemu_real = os.path.realpath(qemu)
    try:
        st = os.stat(qemu_real)
        qemu_id = [qemu_real, st.st_size, st.st_mtime_ns]
    except OSError:
        qemu_id = [qemu_real]
    key = {"boot_id": linux.boot_id(), "qemu": qemu_id, "cpu": VNG_KVM_CPU, "probe": PROBE_VERSION,
           "deadline": deadline}
    path = os.path.join(_cache_dir(), "kvm-probe.json")
    if use_cache:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            with open(path) as f:
                data = json.load(f)
            if data["key"] == key:
                return KvmVerdict(**{**data["verdict"], "cached": True})
    verdict = _run_probe(qemu, "kvm", deadline)
    if use_cache:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump({"key": key, "verdict": dataclasses.asdict(verdict)}, f)
            os.replace(tmp, path)
    return verdict


# ---------------------------------------------------------------------------
# the kernel image
# ---------------------------------------------------------------------------


def kernel_release_of(header: bytes) -> Optional[str]:
    """The release string of an x86 bzImage from its first bytes (boot
    protocol: "HdrS" at 0x202, kernel_version pointer at 0x20E, +0x200)."""
    if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
        return None
    ptr = int.from_bytes(header[0x20E:0x210], "little")
    if not ptr:
        return ""
    text = header[0x200 + ptr: 0x200 + ptr + 256]
    return text.split(b"\0", 1)[0].split(b" ", 1)[0].decode(errors="replace")


@dataclass
class KernelImage:
    path: str
    release: str
    modules: Optional[str]  # lib/modules/<release> beside the image (or the host's), if any


def inspect_kernel(path: str) -> KernelImage:
    """Check that path is a bootable x86 kernel image; find its modules the
    way virtme-ng does (the nearest parent holding lib/modules/<release>)."""
    if not path:
        raise VmError("no kernel image given (--kernel PATH, e.g. arch/x86/boot/bzImage)")
    if not os.path.exists(path):
        raise VmError(f"kernel image {path} does not exist")
    if os.path.isdir(path):
        raise VmError(f"kernel image {path} is a directory; give the image file "
                      "(arch/x86/boot/bzImage, or boot/vmlinuz-<release> of a package)")
    try:
        with open(path, "rb") as f:
            header = f.read(0x8000)
    except OSError as e:
        raise VmError(f"kernel image {path}: {e.strerror}") from None
    release = kernel_release_of(header)
    if release is None:
        what = "an ELF file (vmlinux?)" if header[:4] == b"\x7fELF" else "not a bzImage"
        raise VmError(f"kernel image {path} is not bootable: {what} (no 'HdrS' x86 boot header); "
                      "give arch/x86/boot/bzImage or a vmlinuz")
    if not release:
        raise VmError(f"kernel image {path} has no version string; virtme-ng needs one")
    modules = None
    d = os.path.dirname(os.path.abspath(path))
    while True:
        cand = os.path.join(d, "lib", "modules", release)
        if os.path.isdir(cand):
            modules = cand
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return KernelImage(os.path.abspath(path), release, modules)


# ---------------------------------------------------------------------------
# the vng command line
# ---------------------------------------------------------------------------


def project_root() -> str:
    """The directory holding the `testbed` package in use (the checkout)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


REQUEST_FILE = "vm-request.json"  # the command, its env and cwd, for the guest runner


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


# ---------------------------------------------------------------------------
# markers in the kernel log, and what the log says about each case
# ---------------------------------------------------------------------------


def in_vm() -> bool:
    """True in a `testbed vm` guest (set by the guest runner)."""
    return os.environ.get(ENV_VM) == "1"


def kmsg_marker(text: str, path: str = "/dev/kmsg") -> bool:
    """Write one line `testbed: TEXT` into the kernel log (prefix added
    unless present); False, silently, where /dev/kmsg is not writable.
    For the suite's hook: kmsg_marker(case_marker("START", item.nodeid))
    before a case, kmsg_marker(case_marker("END", item.nodeid)) after it.  On a
    host it writes to the host's log too; call it `if in_vm()` to avoid that."""
    msg = " ".join(str(text).split())
    if not msg.startswith(MARKER_PREFIX):
        msg = MARKER_PREFIX + msg
    data = f"<5>{msg}\n".encode()[:976]  # a record is at most ~1 KiB
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def case_marker(event: str, nodeid: str) -> str:
    """The marker line for a case, event "START" or "END":
    `testbed: case START <nodeid>`."""
    if event not in ("START", "END"):
        raise ValueError(f"event must be START or END, not {event!r}")
    return f"{MARKER_PREFIX}case {event} {nodeid}"


_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_KMSG = re.compile(r"^\d+,\d+,\d+(,[^;]*)?;")
_MARK = re.compile(r"^testbed: (case START|case END|vm command START|vm command END)(?: (.*))?$")


@dataclass(frozen=True)
class KernelProblem:
    kind: str                 # WARNING, BUG, Oops, panic, dead loop, ...
    line: str                 # the kernel's line, as in dmesg.txt
    cases: tuple[str, ...]    # the case(s) running (several under pytest -n)
    where: str                # "case", "boot" (before the command), "between" (no case open)
    after: str = ""           # for "between": the last case that ended, if any

    def __str__(self) -> str:
        if self.where == "case":
            return f"kernel {self.kind} during {' and '.join(self.cases)}: {self.line}"
        if self.where == "boot":
            return f"kernel {self.kind} during boot: {self.line}"
        if self.where == "after":
            return f"kernel {self.kind} after the command: {self.line}"
        ctx = f"after {self.after}" if self.after else "before the first case"
        return f"kernel {self.kind} outside any case ({ctx}): {self.line}"


def _message(line: str) -> str:
    m = _TS.match(line) or _KMSG.match(line)
    return line[m.end():] if m else line


def kernel_problems(log: str | Iterable[str]) -> list[KernelProblem]:
    """Scan a kernel log (dmesg.txt lines "[  sec.usec] msg", raw /dev/kmsg
    records, or bare messages) for warnings, BUGs, oopses, panics, "dead
    loop" and the like, and attribute each to the case(s) between whose
    `testbed: case START <id>` and `testbed: case END <id>` markers it was
    printed.  Before `testbed: vm command START` (if that marker is present)
    is boot; after `vm command END` is "after"."""
    lines = log.splitlines() if isinstance(log, str) else list(log)
    has_cmd_marker = any(_MARK.match(_message(ln)) and "vm command START" in ln for ln in lines)
    phase = "boot" if has_cmd_marker else "run"
    running: list[str] = []
    last = ""
    found: list[KernelProblem] = []
    for raw in lines:
        line = raw.rstrip("\n")
        msg = _message(line)
        m = _MARK.match(msg)
        if m:
            what, arg = m.group(1), (m.group(2) or "").strip()
            if what == "vm command START":
                phase = "run"
            elif what == "vm command END":
                phase = "after"
            elif what == "case START":
                running.append(arg)
            elif arg in running:
                running.remove(arg)
                last = arg
            continue
        kind = kmsg.problem(msg)
        if not kind:
            continue
        if phase == "boot":
            found.append(KernelProblem(kind, line.strip(), (), "boot"))
        elif phase == "after" and not running:
            found.append(KernelProblem(kind, line.strip(), (), "after"))
        elif running:
            found.append(KernelProblem(kind, line.strip(), tuple(running), "case"))
        else:
            found.append(KernelProblem(kind, line.strip(), (), "between", last))
    return found


def kmsg_to_dmesg(record: str) -> Optional[str]:
    """One /dev/kmsg record ("prio,seq,usec,flags;message\\n KEY=val...") as a
    dmesg line "[  sec.usec] message"; None for continuation lines."""
    head, sep, rest = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        usec = int(fields[2])
    except (IndexError, ValueError):
        return None
    msg = rest.split("\n", 1)[0]
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {msg}"


# ---------------------------------------------------------------------------
# the guest runner (python -m testbed.vm guest --out DIR -- CMD...)
# ---------------------------------------------------------------------------


class _KmsgTee:
    """Copies the kernel log, from its start, into a file, line by line."""

    def __init__(self, out_path: str):
        self.out = open(out_path, "w", buffering=1)
        self.log = kmsg.KernelLog(from_start=True)
        if self.log.fd < 0:
            self.out.write(f"# testbed: cannot read /dev/kmsg: {self.log.error}\n")

    def pump(self) -> None:
        """Copy every record available now."""
        lost = self.log.lost
        for rec in self.log.records():
            line = kmsg_to_dmesg(rec)
            if line is not None:
                self.out.write(line + "\n")
        if self.log.lost != lost:
            self.out.write("# testbed: kernel log records lost (ring buffer overrun)\n")

    def close(self) -> None:
        self.pump()
        self.log.close()
        self.out.close()


def _write_status(out: str, data: dict) -> None:
    path = os.path.join(out, STATUS_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def guest_main(argv: Sequence[str]) -> int:
    """In the guest: prepare, run the command, copy the kernel log, record the status."""
    import argparse

    p = argparse.ArgumentParser(prog="testbed.vm guest")
    p.add_argument("request", help=f"the {REQUEST_FILE} written by the host")
    args = p.parse_args(argv)
    with open(args.request) as f:
        req = json.load(f)
    cmd = req["command"]
    args.out = os.path.dirname(os.path.abspath(args.request))
    os.makedirs(args.out, exist_ok=True)
    for d in ("/run/netns", "/run/testbed"):  # /run is a tmpfs in the guest
        os.makedirs(d, exist_ok=True)
    with contextlib.suppress(OSError), open("/proc/sys/kernel/printk_devkmsg", "w") as f:
        f.write("on\n")
    # /dev/net/tun appears when tun is loaded; nothing asks for it by name
    # (the reference datapath checks that the node exists).
    if not os.path.exists("/dev/net/tun") and shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "tun"], check=False)
    release = os.uname().release
    _write_status(args.out, {"started": True, "status": None, "release": release})
    tee = _KmsgTee(os.path.join(args.out, DMESG_FILE))
    kmsg_marker(f"{CMD_START} {shlex.join(cmd)}")
    env = dict(os.environ, **req.get("env", {}), **{ENV_VM: "1", ENV_OUT: args.out})
    os.chdir(req.get("cwd") or os.getcwd())
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, env=env)
    except OSError as e:
        print(f"testbed vm (guest): cannot run {cmd[0]}: {e.strerror}", file=sys.stderr)
        status = 127
    else:
        while True:
            try:
                status = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                tee.pump()  # keep up with the log, so an overrun loses nothing
        if status < 0:
            status = 128 - status
    kmsg_marker(f"{CMD_END} status={status}")
    tee.close()
    _write_status(args.out, {"started": True, "status": status, "release": release,
                             "seconds": round(time.monotonic() - start, 3)})
    sys.stdout.flush()
    return status


# ---------------------------------------------------------------------------
# the host side
# ---------------------------------------------------------------------------


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


def choose_accel(accel: str, qemu: str, log=print) -> tuple[bool, Optional[KvmVerdict]]:
    """(use KVM?, the probe's verdict) for --accel auto|kvm|tcg."""
    if accel == "tcg":
        verdict = None
        log("testbed vm: software emulation (TCG), as asked (--accel tcg)")
    else:
        verdict = probe_kvm(qemu)
        took = "cached verdict of this boot" if verdict.cached else f"probe took {verdict.seconds:.2f} s"
        if verdict.usable:
            log(f"testbed vm: KVM works ({verdict.reason}; {took})")
            return True, verdict
        if accel == "kvm":
            raise VmError(f"--accel kvm, but KVM does not work here: {verdict.reason}")
        log(f"testbed vm: KVM unusable: {verdict.reason} ({took}); "
            "falling back to software emulation (TCG), expect a slower guest")
    tcg = _run_probe(qemu, "tcg", PROBE_DEADLINE)
    if not tcg.usable:
        raise VmError(f"qemu cannot run even a trivial guest: {tcg.reason}")
    return False, verdict


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
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["guest"]:
        sys.exit(guest_main(sys.argv[2:]))
    print(f"usage: python -m testbed.vm guest RESULTS/{REQUEST_FILE}  (use `testbed vm` on the host)",
          file=sys.stderr)
    sys.exit(2)
