"""Can virtme-ng's qemu use KVM here?  Probed rather than guessed: qemu runs
a 64-byte firmware that switches to long mode and writes a byte to an
isa-debug-exit port, with the CPU model virtme-ng asks for under KVM, and a
deadline of a few seconds.  A qemu that aborts, or a guest that hangs (nested
KVM on some hosts), means software emulation (TCG).  The verdict is cached
per host boot.  Pure parts: probe_firmware(), probe_argv(), kvm_verdict()."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from testbed import linux
from testbed.vm.base import VmError

# What virtme-ng (1.x) passes to qemu when it uses KVM on x86_64
# (virtme/architectures.py); the probe must ask for the same CPU, since
# "-cpu host" is what fails on some nested hosts.
VNG_KVM_CPU = "host,topoext=on"
PROBE_EXIT_PORT = 0xF4
PROBE_EXIT_VALUE = 0x2A
PROBE_OK_STATUS = (PROBE_EXIT_VALUE << 1) | 1   # isa-debug-exit: qemu exits (v << 1) | 1 = 85
PROBE_DEADLINE = 3.0
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
            kill_group(proc)
            try:
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # stuck in the kernel: leave it
                out = b""
            rc = None
        seconds = time.monotonic() - start
    return kvm_verdict(rc, out.decode(errors="replace"), seconds, deadline, accel)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
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

