"""`testbed vm`: the pure parts (vng command line, KVM probe verdicts, the
kernel log's attribution to cases), the host side against a fake `vng`, and
one real boot, skipped unless TESTBED_VM_KERNEL names a kernel image (the CI
smoke script .ci/vm-smoke.sh provides one)."""
from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from testbed import vm
from testbed.cli import main as cli_main
from testbed.vm import guest, probe, runner

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def fake_bzimage(path, release="6.1.0-99-test", with_version=True) -> str:
    """Enough of an x86 boot header for inspect_kernel()."""
    img = bytearray(0x1000)
    img[0x202:0x206] = b"HdrS"
    if with_version:
        text = f"{release} (builder@host) #1 SMP".encode() + b"\0"
        img[0x800:0x800 + len(text)] = text
        img[0x20E:0x210] = (0x800 - 0x200).to_bytes(2, "little")
    with open(path, "wb") as f:
        f.write(img)
    return str(path)


def spec(tmp_path, **kw) -> vm.VmSpec:
    base = dict(kernel="/k/bzImage", command=["python3", "-m", "pytest", "cases/", "-k", "dx2 and not slow"],
                out=str(tmp_path / "out"), project="/src/proj", python="/usr/bin/python3",
                path_env="/usr/bin:/bin")
    base.update(kw)
    return vm.VmSpec(**base)


# ---------------------------------------------------------------------------
# the vng command line
# ---------------------------------------------------------------------------


def test_vng_argv_software_emulation(tmp_path):
    s = spec(tmp_path, memory="3G", cpus=4)
    argv = vm.vng_argv(s)
    assert argv[:3] == ["vng", "--run", "/k/bzImage"]
    assert argv[argv.index("--memory") + 1] == "3G" and argv[argv.index("--cpus") + 1] == "4"
    assert "--disable-kvm" in argv
    assert argv[argv.index("--overlay-rwdir") + 1] == "/src/proj"   # project: writable, host copy untouched
    assert argv[argv.index("--rwdir") + 1] == s.out                  # results: same path in the guest
    assert argv[argv.index("--cwd") + 1] == "/src/proj"
    appended = [argv[i + 1] for i, a in enumerate(argv) if a == "--append"]
    assert "printk.devkmsg=on" in appended
    # the root as vng mounts it, with the guest's page cache (the last rootflags= wins)
    assert [a for a in appended if a.startswith("rootflags=")] == [
        "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"]
    assert any(a.startswith("module_blacklist=") and "kvm_amd" in a for a in appended)
    assert "--rw" not in argv                                        # host root stays read-only
    assert argv[-2] == "--exec"


def test_vng_argv_kvm_qemu_verbose_cwd(tmp_path):
    argv = vm.vng_argv(spec(tmp_path, kvm=True, qemu="/opt/qemu", verbose=True, cwd="/elsewhere"))
    assert "--disable-kvm" not in argv
    assert argv[argv.index("--qemu") + 1] == "/opt/qemu"
    assert "--verbose" in argv
    assert argv[argv.index("--cwd") + 1] == "/elsewhere"


def test_guest_command_is_short_and_the_request_carries_the_command(tmp_path, monkeypatch):
    """The command goes to the guest in RESULTS/vm-request.json: vng passes
    --exec on the kernel command line, which x86 cuts at 2048 bytes."""
    cmd = ["sh", "-c", "echo \"it's\" $HOME; exit 3" + " x" * 2000, "a b", "--datapath", "kernel"]
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    s = spec(tmp_path, command=cmd)
    line = vm.vng_argv(s)[-1]
    assert line == vm.guest_command(s) and len(line) < 300
    cd, _, rest = line.partition(" && exec ")
    assert shlex.split(cd) == ["cd", "/src/proj"]
    assert shlex.split(rest) == ["env", "PYTHONPATH=/src/proj", "/usr/bin/python3", "-S", "-m", "testbed.vm",
                                 "guest", f"{s.out}/vm-request.json"]
    req = json.loads(json.dumps(vm.guest_request(s)))
    assert req["command"] == cmd and req["cwd"] == "/src/proj"
    assert req["env"] == {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/src/proj", "TESTBED_TIME_SCALE": "10",
                          "PYTEST_ADDOPTS": "-p no:hypothesispytest"}
    assert vm.guest_request(spec(tmp_path, kvm=True))["env"]["TESTBED_TIME_SCALE"] == "1"


def test_the_callers_pytest_addopts_go_to_the_guest_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_ADDOPTS", "-x")
    assert vm.guest_request(spec(tmp_path))["env"]["PYTEST_ADDOPTS"] == "-x"


def test_guest_runner_runs_the_request(tmp_path, monkeypatch):
    """The guest side on the host: status file, exit status, cwd and env as
    requested (kmsg markers are no-ops for a non-root reader; modprobe skipped)."""
    out = tmp_path / "res"
    out.mkdir()
    (tmp_path / "wd").mkdir()
    script = 'pwd > "$TESTBED_VM_OUT/pwd"; echo "$TESTBED_VM $X" > "$TESTBED_VM_OUT/env"; exit 5'
    req = {"command": ["sh", "-c", script],
           "cwd": str(tmp_path / "wd"), "env": {"X": "from-host"}}
    (out / "vm-request.json").write_text(json.dumps(req))
    monkeypatch.setattr(guest, "kmsg_marker", lambda text, path="/dev/kmsg": False)
    monkeypatch.setattr(guest.shutil, "which", lambda name: None)
    monkeypatch.setattr(guest.os, "makedirs", lambda d, exist_ok=False: None if d.startswith("/run") else
                        os.mkdir(d) if not os.path.isdir(d) else None)
    monkeypatch.setattr(guest, "KmsgTee", lambda path: type("T", (), {"pump": lambda self: None,
                                                                    "close": lambda self: None})())
    cwd = os.getcwd()
    try:
        assert vm.guest_main([str(out / "vm-request.json")]) == 5
    finally:
        os.chdir(cwd)
    assert (out / "pwd").read_text().strip() == str(tmp_path / "wd")
    assert (out / "env").read_text().strip() == "1 from-host"
    assert json.loads((out / "vm-status.json").read_text())["status"] == 5


# ---------------------------------------------------------------------------
# the KVM probe
# ---------------------------------------------------------------------------


def test_probe_firmware_layout():
    fw = vm.probe_firmware()
    assert len(fw) == 0x10000
    assert fw[0xFFF0:0xFFF5] == bytes.fromhex("ea000000f0")        # reset vector: ljmp F000:0000
    assert fw[0] == 0xFA                                              # cli
    lgdt = fw.index(bytes.fromhex("2e660f0116"))                     # lgdtl %cs:gdtr
    gdtr = int.from_bytes(fw[lgdt + 5:lgdt + 7], "little")
    limit, base = int.from_bytes(fw[gdtr:gdtr + 2], "little"), int.from_bytes(fw[gdtr + 2:gdtr + 6], "little")
    assert limit == 15 and base - 0xF0000 + 16 <= gdtr
    assert fw[base - 0xF0000 + 8: base - 0xF0000 + 16] == (0x00AF9A000000FFFF).to_bytes(8, "little")
    ljmp = fw.index(bytes.fromhex("66ea"))                           # far jump into 64-bit code
    target = int.from_bytes(fw[ljmp + 2:ljmp + 6], "little") - 0xF0000
    assert fw[target:target + 4] == bytes([0xB0, vm.PROBE_EXIT_VALUE, 0xE6, vm.PROBE_EXIT_PORT])


def test_probe_argv_uses_vngs_cpu_under_kvm():
    kvm = vm.probe_argv("/usr/bin/qemu", "/t/fw.bin", "kvm")
    assert kvm[kvm.index("-cpu") + 1] == vm.VNG_KVM_CPU and "pc,accel=kvm" in kvm
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in kvm and kvm[kvm.index("-bios") + 1] == "/t/fw.bin"
    tcg = vm.probe_argv("/usr/bin/qemu", "/t/fw.bin", "tcg")
    assert "pc,accel=tcg" in tcg and tcg[tcg.index("-cpu") + 1] == "max"


@pytest.mark.parametrize("rc, output, usable, words", [
    (85, "", True, ["ran under KVM in 0.04 s"]),
    (None, "qemu-system-x86_64: terminating on signal 15", False,
     ["did not reach long mode within 3 s", "hang"]),
    (-6, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
         "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.",
     False, ["killed by SIGABRT", "error: failed to set MSR 0x10a to 0x69"]),
    (134, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69", False,
     ["exit 134, SIGABRT", "failed to set MSR"]),
    (1, "Could not access KVM kernel module: No such file or directory\n"
        "qemu-system-x86_64: failed to initialize kvm: No such file or directory", False,
     ["exit 1", "failed to initialize kvm"]),
    (1, "", False, ["exit 1", "no output"]),
])
def test_kvm_verdict(rc, output, usable, words):
    v = vm.kvm_verdict(rc, output, 0.04, 3.0)
    assert v.usable is usable
    for w in words:
        assert w in v.reason, v.reason
    assert "\n" not in v.reason


def test_probe_kvm_without_dev_kvm(tmp_path):
    v = vm.probe_kvm("qemu-system-x86_64", kvm_dev=str(tmp_path / "kvm"), use_cache=False)
    assert not v.usable and v.reason == f"no {tmp_path}/kvm"


def test_probe_kvm_verdict_is_cached_per_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    dev = tmp_path / "kvm"
    dev.write_text("")
    calls = []

    def fake_probe(qemu, accel, deadline):
        calls.append(accel)
        return vm.KvmVerdict(False, "qemu with KVM failed (killed by SIGABRT): boom", 0.03)

    monkeypatch.setattr(probe, "_run_probe", fake_probe)
    first = vm.probe_kvm(sys.executable, kvm_dev=str(dev))
    again = vm.probe_kvm(sys.executable, kvm_dev=str(dev))
    assert calls == ["kvm"] and not first.cached and again.cached
    assert again.reason == first.reason and not again.usable
    monkeypatch.setattr(probe.linux, "boot_id", lambda: "another-boot")       # a new host boot: probe again
    assert not vm.probe_kvm(sys.executable, kvm_dev=str(dev)).cached and calls == ["kvm", "kvm"]


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="no qemu-system-x86_64")
def test_real_probe_is_quick_and_decides(tmp_path, monkeypatch):
    """On this machine: a verdict either way within the deadline (plus the
    kill); software emulation runs the firmware."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    qemu = shutil.which("qemu-system-x86_64")
    start = time.monotonic()
    v = vm.probe_kvm(qemu, deadline=3.0, use_cache=False)
    assert time.monotonic() - start < 3.0 + 4.0, v
    assert v.reason
    tcg = probe._run_probe(qemu, "tcg", 10.0)
    assert tcg.usable, tcg.reason


# ---------------------------------------------------------------------------
# the kernel image
# ---------------------------------------------------------------------------


def test_kernel_release_and_modules(tmp_path):
    root = tmp_path / "pkg"
    (root / "boot").mkdir(parents=True)
    (root / "lib/modules/6.1.0-99-test/kernel").mkdir(parents=True)
    img = fake_bzimage(root / "boot/vmlinuz-6.1.0-99-test")
    k = vm.inspect_kernel(img)
    assert k.release == "6.1.0-99-test" and k.modules == str(root / "lib/modules/6.1.0-99-test")
    bare = fake_bzimage(tmp_path / "bzImage", release="6.18.0-srl2+")
    assert vm.inspect_kernel(bare).release == "6.18.0-srl2+"


def test_modules_hidden_in_the_guest_are_refused(monkeypatch):
    monkeypatch.setattr(runner.shutil, "which", lambda name: f"/usr/sbin/{name}")
    k = vm.KernelImage("/var/cache/k/boot/vmlinuz-6.1", "6.1", "/var/cache/k/lib/modules/6.1")
    with pytest.raises(vm.VmError, match=r"modules \(/var/cache/k/lib/modules/6.1\) are under /var/cache"):
        vm.check_host(k)
    vm.check_host(vm.KernelImage("/root/k/vmlinuz", "6.1", None))


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"\x7fELF" + bytes(0x300)), "not bootable: an ELF file (vmlinux?)"),
    (lambda p: p.write_text("hello\n"), "not bootable: not a bzImage"),
    (lambda p: fake_bzimage(p, with_version=False), "has no version string"),
])
def test_inspect_kernel_errors(tmp_path, make, message):
    p = tmp_path / "bzImage"
    make(p)
    with pytest.raises(vm.VmError, match="kernel image .*" + re.escape(message)):
        vm.inspect_kernel(str(p))


# ---------------------------------------------------------------------------
# the kernel log: markers and attribution
# ---------------------------------------------------------------------------

LOG = textwrap.dedent("""\
    [    0.000000] Linux version 6.1.0-56-amd64
    [    1.100000] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/fake.c:9 boot_thing+0x1/0x2
    [   30.000000] testbed: vm command START python3 -m pytest cases/
    [   31.000000] testbed: case START cases/test_a.py::test_one[kernel]
    [   31.500000] ------------[ cut here ]------------
    [   31.500001] WARNING: CPU: 1 PID: 77 at net/ipv6/seg6_local.c:1234 input_action_end_dt2u+0x42/0x100
    [   31.500002] Call Trace:
    [   31.600000] testbed: case END cases/test_a.py::test_one[kernel]
    [   32.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010
    [   33.000000] testbed: case START cases/test_loops.py::test_WARNING_dead_loop_named[kernel]
    [   33.000001] testbed: case START cases/test_b.py::test_two[ref]
    [   33.100000] Dead loop on virtual device srl2-0, fix it urgently!
    [   33.200000] testbed: case END cases/test_loops.py::test_WARNING_dead_loop_named[kernel]
    [   33.300000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP
    [   33.400000] testbed: case END cases/test_b.py::test_two[ref]
    [   33.500000] unregister_netdevice: waiting for srl2-0 to become free. Usage count = 2
    [   34.000000] testbed: vm command END status=1
    [   35.000000] kernel BUG at mm/slub.c:42!
    """)


def test_kernel_problems_are_attributed_to_cases():
    got = [str(p) for p in vm.kernel_problems(LOG)]
    assert got == [
        "kernel WARNING during boot: [    1.100000] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/fake.c:9 "
        "boot_thing+0x1/0x2",
        "kernel WARNING during cases/test_a.py::test_one[kernel]: [   31.500001] WARNING: CPU: 1 PID: 77 "
        "at net/ipv6/seg6_local.c:1234 input_action_end_dt2u+0x42/0x100",
        "kernel BUG outside any case (after cases/test_a.py::test_one[kernel]): [   32.000000] BUG: kernel "
        "NULL pointer dereference, address: 0000000000000010",
        "kernel dead loop during cases/test_loops.py::test_WARNING_dead_loop_named[kernel] and "
        "cases/test_b.py::test_two[ref]: [   33.100000] Dead loop on virtual device srl2-0, fix it urgently!",
        "kernel Oops during cases/test_b.py::test_two[ref]: [   33.300000] general protection fault, "
        "probably for non-canonical address 0xdead: 0000 [#1] SMP",
        "kernel refcount leak outside any case (after cases/test_b.py::test_two[ref]): [   33.500000] "
        "unregister_netdevice: waiting for srl2-0 to become free. Usage count = 2",
        "kernel BUG after the command: [   35.000000] kernel BUG at mm/slub.c:42!",
    ]


def test_kernel_problems_without_command_markers_and_raw_kmsg():
    """A log without `vm command` markers (e.g. dmesg of a host run) has no
    boot phase; raw /dev/kmsg records are understood too."""
    raw = ["6,100,1000;testbed: case START t.py::x",
           "4,101,1001,-;WARNING: CPU: 0 PID: 5 at net/core/dev.c:1 f+0x0",
           " SUBSYSTEM=net",
           "6,102,1002;testbed: case END t.py::x",
           "6,103,1003;nothing to see",
           "3,104,1004;UBSAN: shift-out-of-bounds in net/ipv6/seg6.c:10:2"]
    got = vm.kernel_problems(raw)
    assert [(p.kind, p.where, p.cases) for p in got] == [("WARNING", "case", ("t.py::x",)),
                                                         ("UBSAN", "between", ())]
    assert str(got[1]).startswith("kernel UBSAN outside any case (after t.py::x): ")
    assert vm.kernel_problems("[    1.0] all quiet\n[    2.0] testbed: case START a\n") == []


def test_kmsg_records_become_dmesg_lines():
    assert vm.kmsg_to_dmesg("6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net\n") \
        == "[    5.140900] NET: Registered protocol family 10"
    assert vm.kmsg_to_dmesg("5,1,0,c;testbed: case START a::b") == "[    0.000000] testbed: case START a::b"
    assert vm.kmsg_to_dmesg("garbage") is None
    assert vm.kmsg_to_dmesg("x,y,z;msg") is None


def test_kmsg_marker_writes_one_record(tmp_path):
    path = tmp_path / "kmsg"
    path.write_text("")
    assert vm.kmsg_marker(vm.case_marker("START", "cases/t.py::test[a\nb]"), path=str(path))
    assert path.read_text() == "<5>testbed: START case cases/t.py::test[a b]\n"  # the generic form
    path.write_text("")
    assert vm.kmsg_marker("testbed: case END x", path=str(path))
    assert path.read_text() == "<5>testbed: case END x\n"
    assert vm.kmsg_marker("x", path=str(tmp_path / "no" / "kmsg")) is False
    assert vm.kernel_problems([vm.case_marker("START", "a"), "WARNING: CPU: 0 PID: 1 at x",
                               vm.case_marker("END", "a")])[0].cases == ("case a",)
    with pytest.raises(ValueError):
        vm.case_marker("BEGIN", "a")


# ---------------------------------------------------------------------------
# the CLI and the host side, with a fake vng
# ---------------------------------------------------------------------------

FAKE_VNG = r'''#!/usr/bin/env python3
"""Stands in for vng: plays a guest according to FAKE_VNG_MODE."""
import json, os, signal, sys
argv = sys.argv[1:]
out = argv[argv.index("--rwdir") + 1]
mode = os.environ.get("FAKE_VNG_MODE", "ok")
with open(os.path.join(os.environ["FAKE_VNG_LOG"]), "w") as f:
    json.dump(argv, f)
def status(s):
    with open(os.path.join(out, "vm-status.json"), "w") as f:
        json.dump({"started": True, "status": s, "release": "6.1.0-99-test"}, f)
if mode == "noboot":
    print("[    0.4] Kernel panic - not syncing: VFS: Unable to mount root fs", flush=True)
    sys.exit(255)
if mode == "hang":
    print("booting...", flush=True)
    signal.pause()
status(None)
dmesg = ["[    1.000000] testbed: vm command START x",
         "[    2.000000] testbed: case START t.py::test_x"]
if mode == "warn":
    dmesg.append("[    2.500000] WARNING: CPU: 0 PID: 9 at net/ipv6/seg6_local.c:1 f+0x0")
dmesg += ["[    3.000000] testbed: case END t.py::test_x", "[    4.000000] testbed: vm command END status=0"]
with open(os.path.join(out, "dmesg.txt"), "w") as f:
    f.write("\n".join(dmesg) + "\n")
print("guest says hello", flush=True)
if mode == "die":
    sys.exit(255)
status(int(os.environ.get("FAKE_VNG_STATUS", "0")))
sys.exit(255)  # like vng without udev: the status comes from the results directory
'''


@pytest.fixture
def fake_vng(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "vng"
    exe.write_text(FAKE_VNG)
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_VNG_LOG", str(tmp_path / "vng-argv.json"))
    monkeypatch.setattr(runner, "find_qemu", lambda qemu=None: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(runner, "check_host", lambda kernel: None)
    monkeypatch.setattr(probe, "choose_accel", lambda accel, qemu, log=print: (False, None))
    kernel = fake_bzimage(tmp_path / "bzImage")
    return str(exe), kernel


def run_fake(tmp_path, fake_vng, mode, timeout=None, status=0, monkeypatch=None):
    exe, kernel = fake_vng
    monkeypatch.setenv("FAKE_VNG_MODE", mode)
    monkeypatch.setenv("FAKE_VNG_STATUS", str(status))
    sink, logs = io.BytesIO(), []
    s = vm.VmSpec(kernel=kernel, command=["pytest", "-q"], out=str(tmp_path / "res"), vng=exe)
    result = vm.run(s, timeout=timeout, sink=sink, log=logs.append)
    return result, sink.getvalue().decode(), logs


def test_run_streams_and_returns_the_guests_status(tmp_path, fake_vng, monkeypatch):
    result, out, logs = run_fake(tmp_path, fake_vng, "ok", status=7, monkeypatch=monkeypatch)
    assert "guest says hello" in out
    assert result.status == 7 and result.exit_status == 7 and result.problems == []
    assert result.release == "6.1.0-99-test"
    argv = json.loads((tmp_path / "vng-argv.json").read_text())
    assert argv[argv.index("--rwdir") + 1] == str(tmp_path / "res")


def test_run_reports_a_kernel_warning_against_its_case(tmp_path, fake_vng, monkeypatch):
    result, _, logs = run_fake(tmp_path, fake_vng, "warn", status=0, monkeypatch=monkeypatch)
    assert result.status == 0 and result.exit_status == 1
    assert any(line.startswith("testbed vm: kernel WARNING during t.py::test_x: [    2.500000] WARNING:")
               for line in logs), logs


def test_run_kernel_that_does_not_boot(tmp_path, fake_vng, monkeypatch):
    with pytest.raises(vm.VmError, match=r"did not boot to the command, before the command started "
                                         r"\(vng exit 255: \[    0.4\] Kernel panic.*; 3 boot\(s\) in a row"):
        run_fake(tmp_path, fake_vng, "noboot", monkeypatch=monkeypatch)


def test_run_guest_dies_during_the_command(tmp_path, fake_vng, monkeypatch):
    with pytest.raises(vm.VmError, match="the guest died while the command ran"):
        run_fake(tmp_path, fake_vng, "die", monkeypatch=monkeypatch)


def test_run_timeout_kills_the_vm(tmp_path, fake_vng, monkeypatch):
    start = time.monotonic()
    with pytest.raises(vm.VmTimeout, match=r"did not finish within 1 s \(before the guest started"):
        run_fake(tmp_path, fake_vng, "hang", timeout=1, monkeypatch=monkeypatch)
    assert time.monotonic() - start < 10


def cli(capsys, *argv):
    rc = cli_main(["vm", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    rc, _, err = cli(capsys, "--kernel", str(tmp_path / "nope"), "--", "true")
    assert rc == 1 and err == f"testbed: error: kernel image {tmp_path}/nope does not exist\n"
    rc, _, err = cli(capsys, "--kernel", fake_bzimage(tmp_path / "bz"))
    assert rc == 1 and err == "testbed: error: no command given: testbed vm --kernel IMAGE -- CMD...\n"
    monkeypatch.setenv("PATH", str(tmp_path))  # neither vng nor qemu
    monkeypatch.setattr(runner.sys, "executable", str(tmp_path / "python3"))  # nor a venv with vng
    rc, _, err = cli(capsys, "--kernel", fake_bzimage(tmp_path / "bz"), "--", "true")
    assert rc == 1 and err.startswith("testbed: error: virtme-ng is not installed") and "Traceback" not in err
    monkeypatch.setattr(runner, "find_vng", lambda vng=None: "/bin/true")
    rc, _, err = cli(capsys, "--kernel", fake_bzimage(tmp_path / "bz"), "--", "true")
    assert rc == 1 and err == ("testbed: error: no qemu: qemu-system-x86_64 not found; "
                               "apt-get install qemu-system-x86\n")


def test_cli_timeout_exits_124(tmp_path, capsys, fake_vng, monkeypatch):
    exe, kernel = fake_vng
    monkeypatch.setenv("FAKE_VNG_MODE", "hang")
    monkeypatch.setenv("PATH", f"{os.path.dirname(exe)}:{os.environ['PATH']}")
    # 5 s: time for the fake to start and print on a loaded machine
    rc, _, err = cli(capsys, "--kernel", kernel, "--out", str(tmp_path / "r"), "--timeout", "5",
                     "--", "true")
    assert rc == 124 and "\ntestbed: error: timeout: the VM did not finish within 5 s" in err, err
    assert err.rstrip().endswith("last output:\n  booting...")


def test_cli_dry_run(tmp_path, capsys):
    rc, out, _ = cli(capsys, "--kernel", "k/bzImage", "--out", str(tmp_path / "r"), "--cpus", "3",
                     "--dry-run", "--", "pytest", "--datapath", "kernel")
    line, request = out.splitlines()
    argv = shlex.split(line)
    assert rc == 0 and argv[:2] == ["vng", "--run"] and "--disable-kvm" in argv
    assert argv[argv.index("--cpus") + 1] == "3"
    assert argv[-1].endswith(f"guest {tmp_path}/r/vm-request.json")
    assert request.startswith(f"# {tmp_path}/r/vm-request.json: {{")
    assert json.loads(request.split(": ", 1)[1])["command"] == ["pytest", "--datapath", "kernel"]


# ---------------------------------------------------------------------------
# a real boot (TESTBED_VM_KERNEL=path/to/bzImage or vmlinuz)
# ---------------------------------------------------------------------------

GUEST_SCRIPT = r'''
set -e
ip netns add tbvm-check && ip netns list | grep -q tbvm-check && ip netns del tbvm-check
touch /run/testbed/.vm-check && echo netns+run-ok
touch "$TESTBED_VM_OUT/written-in-guest"
test "$TESTBED_VM" = 1
python3 - <<'EOF'
from testbed import vm
assert vm.kmsg_marker(vm.case_marker("START", "tests/fake.py::case[kernel]"))
with open("/dev/kmsg", "w") as f:
    f.write("<4>WARNING: CPU: 0 PID: 1 at testbed/fake.c:1 testbed_vm_selftest+0x0\n")
assert vm.kmsg_marker(vm.case_marker("END", "tests/fake.py::case[kernel]"))
EOF
echo guest-done
exit 3
'''


@pytest.mark.skipif(not os.environ.get("TESTBED_VM_KERNEL"),
                    reason="set TESTBED_VM_KERNEL to a kernel image to boot it (see .ci/vm-smoke.sh)")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the guest runs as the same user)")
def test_real_boot(tmp_path):
    out = tmp_path / "results"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "vm", "--kernel",
                           os.environ["TESTBED_VM_KERNEL"], "--out", str(out), "--timeout", "900",
                           "--", "sh", "-c", GUEST_SCRIPT],
                          capture_output=True, text=True, timeout=1000)
    took = time.monotonic() - start
    text = proc.stdout + proc.stderr
    assert proc.returncode == 3, text
    assert "netns+run-ok" in proc.stdout and "guest-done" in proc.stdout, text
    assert "testbed vm: KVM " in proc.stderr  # the probe said what it found
    assert ("kernel WARNING during case tests/fake.py::case[kernel]: " in proc.stderr
            and "testbed_vm_selftest" in proc.stderr), text
    assert (out / "written-in-guest").exists()
    assert json.loads((out / "vm-status.json").read_text())["status"] == 3
    dmesg = (out / "dmesg.txt").read_text()
    assert "testbed: START case tests/fake.py::case[kernel]" in dmesg
    assert "testbed: vm command END status=3" in dmesg
    print(f"boot + run: {took:.1f} s")


def test_the_projects_bytecode_is_compiled_on_the_host_for_every_boot(tmp_path, monkeypatch):
    """The guest's overlay forgets what it compiles; the host compiles once,
    even with PYTHONDONTWRITEBYTECODE, and leaves the venv and results alone."""
    from testbed.vm.bytecode import compile_project

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    for rel in ("pkg/__init__.py", "pkg/sub/mod.py", "conftest.py", ".venv/lib/x.py", "test-results/y.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("X = 1\n")
    assert compile_project(str(tmp_path))
    tag = sys.implementation.cache_tag
    for rel in ("pkg/__pycache__/__init__", "pkg/sub/__pycache__/mod", "__pycache__/conftest"):
        assert (tmp_path / f"{rel}.{tag}.pyc").exists(), rel
    assert not list((tmp_path / ".venv").rglob("*.pyc")) and not list((tmp_path / "test-results").rglob("*.pyc"))
