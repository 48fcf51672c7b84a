"""Entry point: `python -m srl2_ref --config FILE.json --ready-fd N` (or `srl2-ref`)."""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _tell(fd: int | None, line: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, line.encode())
        os.close(fd)
    except OSError:
        pass


def _in_initial_netns() -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="srl2-ref", description="srl2 reference datapath (run inside a node's netns)")
    ap.add_argument("--config", required=True, help="JSON configuration file")
    ap.add_argument("--ready-fd", type=int, default=None,
                    help="fd to write 'ready' (or 'error: ...') to once set up, then closed")
    ap.add_argument("--allow-initial-netns", action="store_true",
                    help="run even in the initial network namespace (not for labs)")
    args = ap.parse_args(argv)
    ready = args.ready_fd
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    from .config import ConfigError, load
    from .daemon import Daemon, SetupError

    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"srl2-ref: {e}", file=sys.stderr)
        _tell(ready, f"error: {e}\n")
        return 1
    if _in_initial_netns() and not args.allow_initial_netns:
        msg = "refusing to run in the initial network namespace (start it inside a node's netns)"
        print(f"srl2-ref: {msg}", file=sys.stderr)
        _tell(ready, f"error: {msg}\n")
        return 1

    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd)
    d = Daemon(cfg)

    def stop(signum, frame):
        d.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A signal mask survives exec: whoever started us may have blocked our
    # stop signals (to sigwait() for them itself); we must see them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        try:
            d.setup()
        except (SetupError, OSError, ValueError) as e:
            msg = str(e).replace("\n", " ")
            print(f"srl2-ref: {msg}", file=sys.stderr)
            _tell(ready, f"error: {msg}\n")
            return 1
        except Exception as e:  # anything else during set-up: still one line to the parent
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")
            print(f"srl2-ref: {msg}", file=sys.stderr)
            _tell(ready, f"error: {msg}\n")
            return 1
        if d.stop:
            return 0
        _tell(ready, "ready\n")
        d.run(rfd)
    finally:
        d.close()
    # Stopped: everything the daemon owns is closed.  Skip the interpreter's
    # finalization (tens of milliseconds freeing pyroute2's objects) that a
    # lab's teardown would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
