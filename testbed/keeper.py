"""The process that owns a lab built by `testbed up`.

A lab outlives the CLI that asked for it, but something must own it: the
datapath processes are its children (they die with it), and a dead owner is
how `down --stale` tells a crashed lab from a live one.  The keeper builds
the lab itself and tells the CLI "ok" or the error over a socket pair (a
handshake, not a sleep).  The lab is the user's only once the CLI has shown
it and answered "ack": a CLI killed before that (SIGKILL, a closed
terminal) leaves no lab behind.  Then the keeper waits for SIGTERM
(`testbed down`), or for the end of the test run the lab belongs to
(testbed.guardian), and tears the lab down.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import traceback

from testbed import state
from testbed.errors import TestbedError
from testbed.model import Topology

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
ACK = b"ack\n"


class KeeperError(TestbedError):
    pass


class Pending:
    """A keeper whose lab is up but not yet the user's: `accept()` once it
    has been shown, `cancel()` (or a CLI that dies) tears it down."""

    def __init__(self, pid: int, sock: socket.socket, reply: dict):
        self.pid = pid
        self.sock = sock
        self.reply = reply

    def accept(self) -> None:
        # A keeper already gone was stopped since its reply (`testbed down`
        # of the lab, from elsewhere): there is nothing left to hand over.
        with contextlib.suppress(OSError):
            self.sock.sendall(ACK)
        self.sock.close()

    def cancel(self) -> None:
        """Tear the lab down (the keeper does, on SIGTERM) and wait for it."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)


def spawn(topo: Topology, name: str, datapath: str | None, full_status: bool = False) -> Pending:
    """Fork a keeper that builds `topo` as lab `name`; once the lab is up,
    return it pending, with its reply {"datapath", "datapath_why", "keeper",
    "netns"} (plus "status", the kernel's view from testbed.status.collect,
    if `full_status`); or raise KeeperError with the keeper's error text.
    Ctrl-C (or SIGTERM made KeyboardInterrupt) while it builds: the keeper
    finishes, tears down, and only then does KeyboardInterrupt go on."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # keeper
        ours.close()
        code = 1
        try:
            code = _keep(topo, name, datapath, theirs, full_status)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    try:
        reply = _read_reply(ours)
    except BaseException:
        Pending(pid, ours, {}).cancel()
        raise
    if reply.startswith("ok\n"):
        return Pending(pid, ours, json.loads(reply[3:]))
    ours.close()
    os.waitpid(pid, 0)
    if reply.startswith("error\n"):
        raise KeeperError(reply.removeprefix("error\n").rstrip())
    log = _building_log_path(name, pid)  # where its traceback is, if it got that far
    raise KeeperError(f"the lab keeper died while building lab {name!r}" +
                      (f" (see {log})" if os.path.exists(log) else ""))


def log_path(name: str) -> str:
    return os.path.join(state.STATE_DIR, f"{name}.log")


def _building_log_path(name: str, keeper_pid: int) -> str:
    """The keeper's log until its lab is up: it becomes log_path(name) only
    once the name is the keeper's (claimed), so that a refused `up` neither
    truncates the log of the live lab of that name nor leaves one behind.
    (Lab names have no dots: this cannot be another lab's log.)"""
    return f"{log_path(name)}.{keeper_pid}.tmp"


def _read_reply(sock: socket.socket) -> str:
    """Everything the keeper sends before it shuts its side for writing."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _keep(topo: Topology, name: str, datapath: str | None, sock: socket.socket, full_status: bool) -> int:
    from testbed.lab import Lab

    os.setsid()  # no terminal signals: only `testbed down` stops a lab
    # Stop signals become an event on a wakeup fd, so that one select()
    # waits for them, for the CLI's acknowledgement and for the run's end.
    # (Handlers, not a blocked mask: a mask would be inherited by srl2_ref.)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    stop: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    os.makedirs(state.STATE_DIR, exist_ok=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    building_log = _building_log_path(name, os.getpid())
    log = os.open(building_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        lab = Lab.up(topo, name, datapath, owner="keeper")
    except TestbedError as e:  # refused (LabError) or a datapath that failed: Lab.up removed the rest
        os.unlink(building_log)
        _send(sock, f"error\n{e}\n".encode())
        return 1
    # The name is this keeper's now (claimed, and reaped with the lab).
    os.replace(building_log, log_path(name))
    try:
        if stop:
            why = f"{signal.Signals(stop[0]).name} while it was being built"
            _send(sock, f"error\nlab {name} was stopped: {why}\n".encode())
            raise _Stop(why)
        reply = {"datapath": lab.record.datapath, "datapath_why": lab.record.datapath_why,
                 "keeper": os.getpid(), "netns": lab.record.netns}
        if full_status:
            from testbed import status

            reply["status"] = status.collect(lab)
        if not _send(sock, b"ok\n" + json.dumps(reply).encode()):
            raise _Stop("the CLI is gone")
        sock.shutdown(socket.SHUT_WR)
        _wait(sock, wake_r, stop, lab.record.run)
    except _Stop as why:
        print(f"keeper: {why}: tearing down lab {name}", flush=True)
    finally:
        lab.down()
    return 0


class _Stop(Exception):
    """Why the keeper tears its lab down."""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:  # the CLI died (EPIPE): nobody will take the lab
        return False


def _wait(sock: socket.socket, wake_r: int, stop: list[int], run: state.Proc | None) -> None:
    """Until a stop signal, a CLI that goes away without its ack, or the
    end of the lab's run; returns nothing, raises _Stop with the reason."""
    run_fd = run.pidfd() if run is not None else None
    if run is not None and run_fd is None:
        raise _Stop(f"its run {run} is over")
    watched: list = [wake_r, sock] + ([run_fd] if run_fd is not None else [])
    while True:
        ready = select.select(watched, [], [])[0]
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 64):
                        break
                except BlockingIOError:
                    break
        if stop:
            raise _Stop(signal.Signals(stop[0]).name)
        if run_fd is not None and run_fd in ready:
            raise _Stop(f"its run {run} is over")
        if sock in ready:
            try:
                data = sock.recv(64)
            except OSError:
                data = b""
            if not data.startswith(ACK):
                raise _Stop("the CLI went away before it showed the lab")
            watched.remove(sock)
            sock.close()
