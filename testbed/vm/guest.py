"""The guest side of `testbed vm`: `python -m testbed.vm guest RESULTS/vm-request.json`,
run by virtme-ng in the guest.  It prepares /run/netns and /run/testbed,
streams the kernel log into RESULTS/dmesg.txt, runs the command and writes
its exit status into RESULTS/vm-status.json (the host reads that status
rather than vng's own)."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Sequence

from testbed.kmsg import CMD_END, CMD_START, KmsgTee, kmsg_marker
from testbed.vm.base import (
    DMESG_FILE,
    ENV_BOOT,
    ENV_OUT,
    ENV_VM,
    REQUEST_FILE,
    STATUS_FILE,
)


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
    tee = KmsgTee(os.path.join(args.out, DMESG_FILE))
    kmsg_marker(f"{CMD_START} {shlex.join(cmd)}")
    env = dict(os.environ, **req.get("env", {}),
               **{ENV_VM: "1", ENV_OUT: args.out, ENV_BOOT: str(req.get("boot", 1))})
    os.chdir(req.get("cwd") or os.getcwd())
    start = time.monotonic()
    try:
        # stderr into stdout: the host reads the kernel console alone on the
        # other channel (runner.vng_argv, --verbose).
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.STDOUT)
    except OSError as e:
        # on stdout, where the command's own errors would be
        print(f"testbed vm (guest): cannot run {cmd[0]}: {e.strerror}", flush=True)
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

