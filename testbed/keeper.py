"""The process that owns a lab built by `testbed up`.

A lab outlives the CLI that asked for it, but something must own it: the
datapath processes are its children (they die with it), and a dead owner is
how `down --stale` tells a crashed lab from a live one.  The keeper builds
the lab itself, tells the CLI "ok" or the error over a pipe (a handshake, not
a sleep), then waits for SIGTERM (`testbed down`) and tears the lab down.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback

from testbed import state
from testbed.errors import TestbedError
from testbed.model import Topology

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class KeeperError(TestbedError):
    pass


def spawn(topo: Topology, name: str, datapath: str | None, full_status: bool = False) -> dict:
    """Fork a keeper that builds `topo` as lab `name`; once the lab is up,
    return {"datapath", "keeper", "netns"} (plus "status", the kernel's view
    from testbed.status.collect, if `full_status`), or raise KeeperError with
    the keeper's error text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # keeper
        os.close(r)
        code = 1
        try:
            code = _keep(topo, name, datapath, w, full_status)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    try:
        reply = _read_all(r)
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGTERM)  # it finishes building, then tears down
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    if reply.startswith("ok\n"):
        return json.loads(reply[3:])
    os.waitpid(pid, 0)
    raise KeeperError(reply.removeprefix("error\n").rstrip() or
                      f"the lab keeper died while building lab {name!r} (see {log_path(name)})")


def log_path(name: str) -> str:
    return os.path.join(state.STATE_DIR, f"{name}.log")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _keep(topo: Topology, name: str, datapath: str | None, reply_fd: int, full_status: bool) -> int:
    from testbed.errors import LabError
    from testbed.lab import Lab

    os.setsid()  # no terminal signals: only `testbed down` stops a lab
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # handled by sigwait below
    os.makedirs(state.STATE_DIR, exist_ok=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(log_path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        lab = Lab.up(topo, name, datapath, owner="keeper")
    except LabError as e:
        os.write(reply_fd, f"error\n{e}\n".encode())
        return 1
    reply = {"datapath": lab.record.datapath, "keeper": os.getpid(), "netns": lab.record.netns}
    if full_status:
        from testbed import status

        reply["status"] = status.collect(lab)
    _write_all(reply_fd, b"ok\n" + json.dumps(reply).encode())
    os.close(reply_fd)
    sig = signal.sigwait(STOP_SIGNALS)
    print(f"keeper: {signal.Signals(sig).name}: tearing down lab {name}", flush=True)
    lab.down()
    return 0
