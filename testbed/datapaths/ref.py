"""The reference datapath, seen from the lab: one `srl2_ref` process per node
that has srl2 devices or SIDs, started inside the node's netns, supervised
by the lab's owner (it dies with it: PR_SET_PDEATHSIG, and the lab's record
lists its pid for stale reaping).

Files per node under the lab's run directory, named after the node's netns:
NETNS.json (the process's configuration) and NETNS.sock (its control socket:
"counters" -> JSON).

The reference models one revision of the series per lab (testbed.revisions:
srl2 by default, sr6 with its modes, table and HMAC): the configuration
names it, and a device asking for what its revision lacks is refused at
the device's YAML place."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Iterable

from testbed import linux, revisions
from testbed.datapaths import COUNTERS, Datapath, DatapathError, Probe

if TYPE_CHECKING:  # pragma: no cover
    from testbed.linux import Netns
    from testbed.model import HmacKey, Sid, Srl2

# Seconds for a process to report ready (Python start-up on a loaded CI);
# `testbed vm` guests under software emulation start Python 10x slower.
READY_TIMEOUT = 20.0 * float(os.environ.get("TESTBED_TIME_SCALE", "1"))
# Seconds a process has to exit on SIGTERM before it is SIGKILLed (a last
# resort: it normally stops within milliseconds).
STOP_TIMEOUT = 5.0 * float(os.environ.get("TESTBED_TIME_SCALE", "1"))


class RefDatapath(Datapath):
    name = "ref"

    def __init__(self, rundir: str, revision: "str | revisions.Revision" = "srl2"):
        self.rundir = rundir
        self.revision = revision if isinstance(revision, revisions.Revision) else revisions.get(revision)
        self._why = ""
        # Deliberately broken behaviours, for tests of the suite itself
        # (pytest --ref-fault NAME, or the variable for `testbed up`).
        self.faults = [f for f in os.environ.get("TESTBED_REF_FAULTS", "").split(",") if f]
        # RFC 8986 ICMP errors on E3/E4 instead of Linux's silent drop (pytest --spec rfc8986).
        self.icmp_errors = os.environ.get("TESTBED_REF_ICMP_ERRORS") == "1"
        self.procs: dict[str, subprocess.Popen] = {}  # netns -> process
        self._pending: dict[str, tuple[int, dict]] = {}  # netns -> (ready fd, its devices and sids)

    @property  # type: ignore[override]
    def why(self) -> str:
        """Why this datapath was chosen (set by datapaths.select.choose), and
        the revision it models where that is not the first (srl2, what the
        reference has always modelled)."""
        if self.revision.name == revisions.NAMES[0]:
            return self._why
        return f"{self._why}; models revision {self.revision.name}" if self._why else \
            f"models revision {self.revision.name}"

    @why.setter
    def why(self, value: str) -> None:
        self._why = value

    @classmethod
    def attach(cls, rundir: str) -> "RefDatapath":
        """The datapath of a lab built by another process: counters only."""
        return cls(rundir)

    @classmethod
    def probe(cls) -> Probe:
        missing = {}
        why = None
        if not os.path.exists("/dev/net/tun"):
            why = "no /dev/net/tun (load the tun module, or give the container the device)"
        elif not os.access("/dev/net/tun", os.R_OK | os.W_OK):
            why = "/dev/net/tun is not readable and writable by this user (run as root)"
        if why:
            missing = {f: why for f in ("srl2", "End", "End.X", "End.DX2", "End.DT2U")}
        return Probe("ref", missing)

    # ---- files ---------------------------------------------------------

    def control_path(self, ns: "Netns") -> str:
        return os.path.join(self.rundir, f"{ns.name}.sock")

    def _config(self, ns: "Netns", devices: list["Srl2"], sids: list["Sid"],
                hmac_keys: Iterable["HmacKey"] = ()) -> dict:
        return {
            "revision": self.revision.name,
            "devices": [{"name": d.name, "segs": [str(s) for s in d.segs], "mtu": d.mtu, "mac": d.mac,
                         "mode": d.mode, "table": d.table, "hmac": d.hmac}
                        for d in devices],
            "hmac_keys": {str(k.keyid): {"secret": k.secret, "algorithm": k.algorithm} for k in hmac_keys},
            "sids": [{"sid": str(s.sid), "action": s.action, "l2dev": s.l2dev, "oif": s.oif,
                      "nh6": str(s.nh6) if s.nh6 else None, "table": s.table, "count": s.count}
                     for s in sids],
            "control": self.control_path(ns),
            "icmp_errors": self.icmp_errors,
            "faults": list(self.faults),
        }

    # ---- the interface -------------------------------------------------

    def start_node(self, ns: "Netns", devices: list["Srl2"], sids: list["Sid"],
                   hmac_keys: Iterable["HmacKey"] = ()) -> None:
        """As Datapath.start_node: the node's HMAC keys go into its process's
        configuration (its devices' HMAC TLVs, its SIDs' checks)."""
        os.makedirs(self.rundir, exist_ok=True)
        path = os.path.join(self.rundir, f"{ns.name}.json")
        with open(path, "w") as f:
            json.dump(self._config(ns, devices, sids, hmac_keys), f, indent=1)
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "srl2_ref", "--config", path, "--ready-fd", str(w)],
                pass_fds=(w,), stdin=subprocess.DEVNULL,
                stdout=open(self._log(ns.name), "ab"), stderr=subprocess.STDOUT,
                preexec_fn=lambda: _enter(ns.name))
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.procs[ns.name] = proc
        self._pending[ns.name] = (r, {"devices": devices, "sids": sids})

    def wait_ready(self) -> None:
        """Wait for every started process's handshake, all at once (each
        process spends most of its start-up importing; in parallel, a lab
        with many nodes starts as fast as one)."""
        deadline = time.monotonic() + READY_TIMEOUT
        replies: dict[str, bytes] = {}
        try:
            while self._pending:
                by_fd = {r: netns for netns, (r, _) in self._pending.items()}
                ready = select.select(list(by_fd), [], [], max(0.0, deadline - time.monotonic()))[0]
                if not ready:
                    self._fail(next(iter(self._pending)), "timeout")
                for r in ready:
                    netns = by_fd[r]
                    chunk = os.read(r, 4096)
                    replies[netns] = replies.get(netns, b"") + chunk
                    if chunk and not replies[netns].endswith(b"\n"):
                        continue
                    reply = replies[netns].decode(errors="replace").strip()
                    if reply != "ready":
                        self._fail(netns, reply)
                    os.close(self._pending.pop(netns)[0])
        finally:
            for r, _ in self._pending.values():
                os.close(r)
            self._pending.clear()

    def _fail(self, netns: str, reply: str) -> None:
        where = _blame(reply, self._pending[netns][1])
        code = self.procs[netns].poll()
        self._stop(netns)
        if not reply:
            reply = f"srl2_ref in {netns} exited before it was ready (exit {code}); see {self._log(netns)}"
        elif reply == "timeout":
            reply = f"srl2_ref in {netns} was not ready within {READY_TIMEOUT:.0f} s"
        raise DatapathError(f"reference datapath: {reply.removeprefix('error: ')}", where)

    def _log(self, netns: str) -> str:
        return os.path.join(self.rundir, f"{netns}.log")

    def _query(self, ns: "Netns") -> dict:
        from srl2_ref.control import query

        path = self.control_path(ns)
        try:
            return query(path, "counters")
        except (OSError, RuntimeError, ValueError) as e:
            raise DatapathError(f"reference datapath of {ns.name} does not answer on {path}: {e}") from None

    def counters(self, ns: "Netns", ifname: str) -> dict[str, int]:
        devices = self._query(ns).get("devices", {})
        if ifname not in devices:
            raise DatapathError(f"{ns.name} has no reference srl2 device {ifname!r}")
        return {k: devices[ifname].get(k, 0) for k in COUNTERS}

    def sid_counters(self, ns: "Netns", sid: "Sid") -> dict[str, int] | None:
        if not sid.count:
            return None
        sids = self._query(ns).get("sids", {})
        for key in (str(sid.sid), str(sid.sid.network_address)):
            if key in sids:
                return sids[key]
        return None

    def describe(self, ns: "Netns") -> dict:
        """The node's reference srl2 devices with counters, and its SIDs (from
        the process's configuration; counters where the SID has `count`)."""
        if not os.path.exists(self.control_path(ns)):
            return {}
        info = self._query(ns)
        with open(os.path.join(self.rundir, f"{ns.name}.json")) as f:
            config = json.load(f)
        sids = []
        for s in config["sids"]:
            sid = {"sid": s["sid"], "action": s["action"], "table": s["table"] or "main", "datapath": "ref"}
            sid.update({k: s[k] for k in ("oif", "l2dev", "nh6") if s.get(k)})
            counted = info.get("sids", {}).get(s["sid"])
            if counted is not None:
                sid["counters"] = {k: counted.get(k, 0) for k in ("packets", "bytes", "errors")}
            sids.append(sid)
        return {"srl2": info.get("devices", {}), "sids": sids}

    def processes(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def _stop(self, netns: str) -> None:
        proc = self.procs.pop(netns, None)
        if proc is not None:
            _terminate([proc])

    def stop(self) -> None:
        procs = list(self.procs.values())
        self.procs.clear()
        _terminate(procs)


def _terminate(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process at once (each stops in milliseconds: it closes
    its TAPs and control socket), then wait for all; SIGKILL only those
    still running after STOP_TIMEOUT."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"srl2_ref pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing it",
                  file=sys.stderr, flush=True)
            proc.kill()
            proc.wait()


def _blame(reply: str, objs: dict) -> object:
    """The YAML place of the object an error names ("sids[1].l2dev: ..."
    -> that SID), else of the node's first object."""
    m = re.search(r"\b(devices|sids)\[(\d+)\]", reply)
    if m and int(m.group(2)) < len(objs[m.group(1)]):
        return objs[m.group(1)][int(m.group(2))].where
    first = [*objs["devices"], *objs["sids"]]
    return first[0].where if first else None


def _enter(netns: str) -> None:
    """In the child, before exec: a clean signal mask (the mask survives
    fork and exec, and the keeper blocks SIGTERM to sigwait() for it: a
    daemon inheriting that would never see its stop signal), into the
    node's netns, and die with the lab's owner."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    linux.set_pdeathsig(signal.SIGTERM)
    linux.enter_for_exec(netns)


__all__ = ["RefDatapath"]
