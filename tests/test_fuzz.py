"""`testbed fuzz`: the pure parts (frames, reproducer rendering, stack
signatures, journal and crash reading, ddmin bookkeeping, resuming after a
crash from the runner's crashes.jsonl) and one short real run on the
reference datapath, which must find nothing and leave nothing behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testbed import revisions
from testbed.fuzz import frames, repro, requests
from testbed.fuzz.findings import Shrink, State
from testbed.fuzz.journal import (Journal, crash_signature, frames_of, fuzz_labels, read_journal,
                                  signature)
from testbed.fuzz.steps import GONE, Step, dumps, loads
from testbed.srv6.srh import decode_srh, encode_srh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The RFC kernel's report of the wrapped-MTU bug (trimmed), as the VM runner records it.
MLD_TRACE = [
    " <IRQ>",
    " ? die+0x36/0x90",
    " skb_put+0x4b/0x50",
    " ip6_mc_hdr.constprop.0+0x53/0xd0",
    " mld_newpack.isra.0+0x12c/0x1b0",
    " add_grhead+0x89/0xa0",
    " add_grec+0x3c3/0x4e0",
    " mld_send_cr+0xa4/0x270",
    " mld_ifc_work+0x22/0x120",
    " process_one_work+0x176/0x330",
    " worker_thread+0x252/0x390",
    " kthread+0xd2/0x100",
]
CRASH = {"boot": 1, "kind": "BUG", "title": "kernel BUG at net/core/skbuff.c:209!",
         "rip": "RIP: 0010:skb_panic+0x4c/0x50", "trace": MLD_TRACE, "lines": ["kernel BUG at net/core/skbuff.c:209!"],
         "open": ["fuzz b1-3"], "release": "6.12.117-srl2rfc", "elapsed": 41.2}

WRAP = [Step("srl2_add", {"name": "fz0", "segs": 100, "mtu": None, "mac": None, "up": False, "edit": None}),
        Step("l2", {"kind": "bcast", "size": 60, "vlans": 0, "count": 1}),
        Step("link", {"name": "fz0", "node": "rt", "up": True, "mtu": None})]


# ---- frames ------------------------------------------------------------------

def test_device_srh_matches_the_project_encoder_when_valid():
    assert frames.device_srh(3) == encode_srh([frames.seg(1), frames.seg(2), frames.seg(3)])
    assert frames.device_srh(127) == encode_srh([frames.seg(i) for i in range(1, 128)])


def test_device_srh_beyond_127_wraps_hdrlen_and_edits_apply():
    srh = frames.device_srh(128)
    assert srh[1] == 0 and len(srh) == 8 + 16 * 128  # hdrlen 256 wraps to 0
    assert frames.device_srh(2, ("sl", 9))[3] == 9
    assert len(frames.device_srh(2, ("truncate", 5))) == 5
    tlv = frames.device_srh(1, ("tlv", 2))
    assert tlv[1] == 4 and len(tlv) == 8 + 16 + 16
    assert decode_srh(tlv).tlvs == (b"\x04\x06" + bytes(6)) * 2


def test_srv6_frames_active_segment_is_the_sid_and_fragments_cover_the_payload():
    (frame,) = frames.srv6_frames(b"\x02" * 6, b"\x04" * 6, frames.sid(1), nsegs=3,
                                  inner=frames.inner_frame("ipv4", 60))
    srh = decode_srh(frame[54:])
    assert srh.active_segment == frames.sid(1) and srh.segments_left == 2 and srh.nexthdr == 143
    assert frame[54 + srh.length:] == frames.inner_frame("ipv4", 60)
    parts = frames.srv6_frames(b"\x02" * 6, b"\x04" * 6, frames.sid(1), inner=bytes(300), frags=3)
    assert len(parts) >= 3 and all(p[20] == 44 for p in parts)
    assert [p[54 + 3] & 1 for p in parts] == [1] * (len(parts) - 1) + [0]  # M flag on all but the last


def test_inner_frame_runts_and_vlan_stacks():
    assert len(frames.inner_frame("ipv4", 5)) == 5
    vlan = frames.inner_frame("raw", 80, vlans=2)
    assert vlan[12:14] == b"\x88\xa8" and vlan[16:18] == b"\x81\x00" and vlan[20:22] == b"\x88\xb5"


# ---- steps and reproducers ------------------------------------------------------

def test_steps_round_trip_through_json():
    assert [s.to_json() for s in loads(dumps(WRAP))] == [s.to_json() for s in WRAP]
    with pytest.raises(ValueError, match="unknown fuzz step"):
        Step("reboot", {})


def test_reproducer_of_the_wrapped_mtu_crash_is_short():
    script = repro.render([WRAP[0], WRAP[2]], "kernel BUG at net/core/skbuff.c:209!", ["signature: x"])
    # 100 segments do not fit iproute2's 1 KiB request buffer: a raw request
    assert f'$IP netns exec $R python3 -c "$NL" {requests.srl2_bytes(WRAP[0]).hex()}\n' in script
    assert "# link add fz0 type srl2 segs fc00:e::1,...,fc00:e::64 (100 segments, SRH 1608 bytes)\n" in script
    assert "$IP -n $R link set fz0 up\n" in script
    assert "$IP netns add $H" not in script and "$IP netns add $U" not in script  # only rt is needed
    assert repro.command_count(script) <= 10
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_a_list_iproute2_holds_is_plain_ip():
    step = Step("srl2_add", {"name": "fz0", "segs": 50, "mtu": 1400, "mac": 2, "up": True, "edit": None})
    segs = ",".join(str(frames.seg(i)) for i in range(1, 51))
    assert repro.step_commands(step) == [
        f"$IP -n $R link add fz0 address 00:00:00:00:00:02 mtu 1400 up type srl2 segs {segs}"]
    assert not requests.plain_srl2(Step("srl2_add", {"name": "fz0", "segs": 60}))


def test_reproducer_sends_raw_requests_and_frames_with_stdlib_one_liners():
    bad = Step("srl2_add", {"name": "fz1", "segs": 2, "mtu": 1400, "mac": 2, "up": True, "edit": ["hdrlen", 0]})
    pkt = Step("srv6", {"k": 1, "nsegs": 2, "count": 3, "kind": "ipv6", "size": 90})
    sid = Step("sid_add", {"k": 1, "action": "End.DT2U", "dev": GONE, "count": True})
    script = repro.render([bad, sid, pkt], "t")
    assert f'python3 -c "$NL" {requests.srl2_bytes(bad).hex()}' in script
    assert f'veth-rt 3 {requests.srv6_frames(pkt)[0].hex()}\n' in script
    assert "link add fzgone type dummy" in script and "action End.DT2U l2dev fzgone count dev veth-up" in script
    assert "$IP netns add $U" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # the one-liners are valid Python
    compile(repro.NL_PY, "nl", "exec")
    compile(repro.TX_PY, "tx", "exec")


def test_an_mtu_below_zero_goes_as_the_kernel_wraps_it():
    step = Step("srl2_add", {"name": "fz0", "segs": 40, "mtu": -95, "up": True, "edit": None})
    assert (2**32 - 95).to_bytes(4, "little") in requests.srl2_bytes(step)
    assert f" mtu {2**32 - 95} up type srl2 segs " in repro.step_commands(step)[0]


def test_srl2_request_carries_the_malformed_srh_and_the_up_flag():
    step = Step("srl2_add", {"name": "fz0", "segs": 1, "up": True, "edit": ["type", 3]})
    raw = requests.srl2_bytes(step)
    srh = frames.device_srh(1, ["type", 3])
    assert srh in raw and srh[2] == 3
    assert int.from_bytes(raw[24:28], "little") & 1 == 1  # ifi_flags IFF_UP
    assert not requests.plain_srl2(step)


# ---- signatures, journal, crashes ------------------------------------------------

def test_signature_is_the_reliable_top_of_the_call_trace():
    assert frames_of(MLD_TRACE)[:3] == ["skb_put", "ip6_mc_hdr", "mld_newpack"]  # "? die": a guess
    assert crash_signature(CRASH) == "BUG: skb_put < ip6_mc_hdr < mld_newpack < add_grhead < add_grec"
    # the same overrun reached from DAD completion instead of the MLD timer: the same finding
    dad = MLD_TRACE[:7] + [" mld_send_initial_cr.part.0.isra.0+0x2a/0x50", " addrconf_dad_work+0x2b5/0x520"]
    assert signature("BUG", "kernel BUG at net/core/skbuff.c:209!", dad) == crash_signature(CRASH)
    # the same bug in another boot: other offsets and timestamps, same signature
    other = [f"[  {i}.5] " + t.replace("0x", "0x1") for i, t in enumerate(MLD_TRACE)]
    assert signature("BUG", "x", other) == crash_signature(CRASH)
    assert signature("hang", "step 12 did not return within 200 s", []) == "hang: step N did not return within N s"


def test_journal_reads_back_inputs_and_ignores_a_torn_line(tmp_path):
    path = str(tmp_path / "j.jsonl")
    j = Journal(path)
    j.write(ev="boot", boot=1)
    j.write(ev="input", id="b1-1", kind="fuzz", finding=None)
    for i, s in enumerate(WRAP):
        j.write(ev="step", id="b1-1", i=i, step=s.to_json())
        j.write(ev="done", id="b1-1", i=i, outcome="refused: EINVAL" if i == 1 else "ok")
    j.write(ev="end", id="b1-1", result="pass", sig=None)
    j.write(ev="input", id="b1-2", kind="trial", finding="S")
    j.write(ev="step", id="b1-2", i=0, step=WRAP[0].to_json())
    j.close()
    with open(path, "a") as f:
        f.write('{"ev": "step", "id": "b1-2", "i": 1, "st')  # the crash cut this line
    inputs = read_journal(path)
    assert list(inputs) == ["b1-1", "b1-2"]
    assert inputs["b1-1"].ended and inputs["b1-1"].outcomes[1].startswith("refused")
    assert [s.op for s in inputs["b1-2"].steps] == ["srl2_add"] and not inputs["b1-2"].ended
    assert inputs["b1-2"].kind == "trial" and inputs["b1-2"].boot == 1
    assert fuzz_labels({"open": ["case x", "fuzz b1-2"]}) == ["b1-2"]


# ---- shrinking bookkeeping -----------------------------------------------------------

def test_ddmin_reaches_the_two_steps_that_matter_then_drops_their_options():
    """Simulate the kernel: an input crashes when it holds steps 3 and 7,
    and step 3 without an MTU (its SRH edit does not matter)."""
    steps = [{"op": "l2", "n": i, "mtu": 1400, "edit": ["sl", 3]} for i in range(10)]

    def crashes(c):
        by_n = {s["n"]: s for s in c}
        return 3 in by_n and 7 in by_n and by_n[3]["mtu"] is None

    steps[3] = dict(steps[3], mtu=None)
    sh = Shrink(cur=steps, first=[s for s in steps if s["n"] % 2])  # the "no refused steps" try
    trials = 0
    while (cand := sh.candidate()) is not None:
        trials += 1
        sh.reproduced(cand) if crashes(cand) else sh.failed()
    assert [s["n"] for s in sh.cur] == [3, 7] and trials < 30
    assert sh.cur[0]["edit"] is None and sh.cur[1] == {"op": "l2", "n": 7, "mtu": None, "edit": None}


def _runner(out, boot, monkeypatch):
    from testbed.fuzz.run import Options, Runner

    monkeypatch.setenv("TESTBED_VM_BOOT", str(boot))
    return Runner(Options(target="kernel", out=str(out)))


def test_a_crash_becomes_a_finding_with_a_reproducer_and_trials_shrink_it(tmp_path, monkeypatch):
    out = tmp_path
    r = _runner(out, 1, monkeypatch)
    r.world = None
    ident = "b1-3"
    r.journal.write(ev="input", id=ident, kind="fuzz", finding=None)
    for i, s in enumerate(WRAP):
        r.journal.write(ev="step", id=ident, i=i, step=s.to_json())
        if i < 2:
            r.journal.write(ev="done", id=ident, i=i, outcome="ok")
    r.state.save(str(out))
    r.journal.close()
    with open(out / "crashes.jsonl", "w") as f:
        f.write(json.dumps(CRASH) + "\n")

    r2 = _runner(out, 2, monkeypatch)
    r2.absorb_crashes()
    (f,) = r2.state.findings.values()
    assert f.sig == crash_signature(CRASH) and f.input == ident and f.status == "shrinking"
    assert [s["op"] for s in f.steps] == ["srl2_add", "l2", "link"]
    assert os.path.exists(f.repro) and requests.srl2_bytes(WRAP[0]).hex() in open(f.repro).read()
    assert "kernel BUG at net/core/skbuff.c:209!" in open(f.repro).read()
    # boot 2 tries a trial without the l2 step; it crashes the same way
    trial = "b2-1"
    f.shrink.first = None
    f.shrink.pending = trial
    r2.journal.write(ev="input", id=trial, kind="trial", finding=f.sig)
    for i, s in enumerate([WRAP[0], WRAP[2]]):
        r2.journal.write(ev="step", id=trial, i=i, step=s.to_json())
    r2.state.save(str(out))
    r2.journal.close()
    with open(out / "crashes.jsonl", "a") as fh:
        fh.write(json.dumps(dict(CRASH, boot=2, open=[f"fuzz {trial}"])) + "\n")

    r3 = _runner(out, 3, monkeypatch)
    r3.absorb_crashes()
    (f,) = r3.state.findings.values()
    assert [s["op"] for s in f.shrink.cur] == ["srl2_add", "link"] and f.count == 1
    assert f.shrink.crash_boots == 1 and f.shrink.pending is None
    r3.absorb_crashes()  # nothing new: nothing changes
    assert r3.state.crashes_seen == 2 and r3.state.findings[f.sig].count == 1
    r3.journal.close()


def test_a_replay_that_crashes_the_same_way_verifies_the_finding(tmp_path, monkeypatch):
    r = _runner(tmp_path, 2, monkeypatch)
    rec, _ = r.state.record(crash_signature(CRASH), "BUG", CRASH["title"], [], [WRAP[0].to_json()], {},
                            "b1-3", "kernel", "", shrink=False)
    r.journal.write(ev="input", id="b2-1", kind="verify", finding=rec.sig)
    r.state.save(str(tmp_path))
    r.journal.close()
    with open(tmp_path / "crashes.jsonl", "w") as f:
        f.write(json.dumps(dict(CRASH, boot=2, open=["fuzz b2-1"])) + "\n")
    r2 = _runner(tmp_path, 3, monkeypatch)
    r2.absorb_crashes()
    assert r2.state.findings[rec.sig].status == "verified"
    r2.journal.close()


def test_stop_at_finding_ends_the_fuzzing_once_a_finding_is_recorded(tmp_path, monkeypatch):
    """The boot after the crash records the finding and fuzzes no more
    (a CI smoke that only has to find the crash pays for no second boot's time)."""
    from testbed.fuzz.run import Options, Runner

    r = _runner(tmp_path, 1, monkeypatch)
    r.journal.write(ev="input", id="b1-3", kind="fuzz", finding=None)
    for i, s in enumerate(WRAP):
        r.journal.write(ev="step", id="b1-3", i=i, step=s.to_json())
    r.state.save(str(tmp_path))
    r.journal.close()
    with open(tmp_path / "crashes.jsonl", "w") as f:
        f.write(json.dumps(CRASH) + "\n")
    monkeypatch.setenv("TESTBED_VM_BOOT", "2")
    going_on = Runner(Options(target="kernel", out=str(tmp_path), time=3600))
    stopping = Runner(Options(target="kernel", out=str(tmp_path), time=3600, stop_at_finding=True))
    for runner in (going_on, stopping):
        runner.absorb_crashes()
        assert len(runner.state.findings) == 1
    assert not going_on.found_enough() and stopping.found_enough()
    stopping.world = None  # no lab: fuzz() must not need one to see it is done
    stopping.fuzz()
    for runner in (going_on, stopping):
        runner.journal.close()


def test_state_survives_a_round_trip(tmp_path):
    st = State(seed=5)
    st.record("s", "BUG", "t", ["l"], [WRAP[0].to_json()], {0: "ok"}, "b1-1", "kernel", "r", shrink=True)
    st.save(str(tmp_path))
    back = State.load(str(tmp_path))
    assert back.seed == 5 and back.findings["s"].shrink.cur == [WRAP[0].to_json()]


# ---- a real run on the reference datapath ----------------------------------------------

def test_short_fuzz_run_on_the_reference_datapath_finds_nothing_and_leaves_nothing(tmp_path):
    from testbed.linux import is_root_capable

    if is_root_capable():
        pytest.skip(f"needs root: {is_root_capable()}")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun for srl2_ref")
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "fuzz", "--datapath", "ref", "--time", "40",
                             "--steps", "5", "--seed", "3", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    summary = open(tmp_path / "fuzz-summary.txt").read()
    assert "0 finding(s)" in summary, summary
    inputs = int(summary.split(" inputs")[0])
    assert inputs >= 1, summary
    ops = {s.op for i in read_journal(str(tmp_path / "fuzz-journal.jsonl")).values() for s in i.steps}
    assert "srl2_add" in ops and len(ops) >= 3, ops  # hypothesis' first input is all srl2_add
    prefix = f"fz{proc.pid % 100000}-"
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in left, left
    assert not os.path.exists(f"/run/testbed/fz{proc.pid % 100000}.json")


# ---- the world's checks, on a scripted kernel log (pure logic) ---------------------------

class ScriptedLog:
    """Kernel log messages handed out as a real KernelLog would: each once."""

    def __init__(self):
        self.queue: list[str] = []

    def messages(self) -> list[str]:
        out, self.queue = self.queue, []
        return out


class QuietTarget:
    raw = True

    def __init__(self, log: ScriptedLog, prints: dict[str, list[str]]):
        self.log, self.prints, self.applied = log, prints, []

    def apply(self, step):
        self.applied.append(step.op)
        self.log.queue += self.prints.get(step.op, [])
        return "ok"

    def counters(self):
        return {}

    def alive(self):
        return None

    def cleanup(self):
        pass

    def leaks(self):
        return []


def _world(tmp_path, prints):
    import concurrent.futures

    from testbed.fuzz.world import World

    log = ScriptedLog()
    target = QuietTarget(log, prints)
    w = World(target, Journal(str(tmp_path / "j.jsonl")), 1, watch_kernel=False,
              worker=concurrent.futures.ThreadPoolExecutor(1))
    w.klog = log
    return w, target


def test_a_kernel_bug_wedges_the_world_with_its_whole_report(tmp_path):
    from testbed.fuzz.world import Finding

    bug = ["kernel BUG at net/core/skbuff.c:209!", "Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
           "Call Trace:", *(t.strip() for t in MLD_TRACE[2:]), "---[ end trace 0000000000000000 ]---"]
    w, target = _world(tmp_path, {"link": bug})
    w.begin()
    w.step(WRAP[0])
    with pytest.raises(Finding) as e:
        w.step(WRAP[2])
    assert e.value.sig == crash_signature(CRASH) and e.value.wedged and w.wedged
    with pytest.raises(Finding):  # a wedged world touches the kernel no more
        w.step(WRAP[1])
    assert target.applied == ["srl2_add", "link"]
    w.end()
    inputs = read_journal(str(tmp_path / "j.jsonl"))
    assert inputs["b1-1"].ended and len(inputs["b1-1"].steps) == 2


def test_a_warning_is_raised_once_then_known_and_the_world_goes_on(tmp_path):
    from testbed.fuzz.world import Finding

    warn = ["WARNING: CPU: 1 PID: 7 at net/ipv6/seg6_local.c:42 input_action_end_dt2u+0x10/0x20",
            "Call Trace:", "input_action_end_dt2u+0x10/0x20", "seg6_local_input+0x1/0x2",
            "---[ end trace 0000000000000000 ]---"]
    w, _ = _world(tmp_path, {"srv6": warn})
    w.begin()
    with pytest.raises(Finding) as e:
        w.step(Step("srv6", {"k": 1}))
    assert not e.value.wedged and not w.wedged
    assert e.value.sig == "WARNING: input_action_end_dt2u < seg6_local_input"
    w.end()
    w.known.add(e.value.sig)
    w.begin()
    assert w.step(Step("srv6", {"k": 1})) == "ok"  # known: fuzzing goes on
    w.trial = True
    with pytest.raises(Finding):  # a shrink trial must see it again
        w.step(Step("srv6", {"k": 1}))
    w.end()


def test_fuzz_on_a_kernel_without_srl2_refuses_up_front_as_up_does(tmp_path):
    """Not "0 finding(s)" after a run where the kernel refused every step:
    the probe's reason, what to do, and the exit status `up` has for it."""
    from testbed.datapaths.kernel import KernelDatapath
    from testbed.linux import is_root_capable
    from testbed.pytest_plugin import unique_lab_name

    if is_root_capable():
        pytest.skip(f"needs root: {is_root_capable()}")
    if KernelDatapath.probe().has("srl2"):
        pytest.skip("this kernel has srl2")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "testbed.cli", "fuzz", "--datapath", "kernel", "--time", "5",
                        "--out", str(out)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    up = subprocess.run([sys.executable, "-m", "testbed.cli", "up", "--datapath", "kernel", "--name",
                         unique_lab_name("fzk"), os.path.join(ROOT, "topologies", "p2p.yaml")],
                        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert up.returncode != 0 and p.returncode == up.returncode, (p.stdout, p.stderr, up.stderr)
    assert "Traceback" not in p.stderr and "finding" not in p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("testbed: error: fuzzing the kernel datapath needs the kernel's srl2: kernel "), lines
    assert "has no srl2" in lines[0] and lines[0].endswith("use `--datapath ref` for the reference datapath")
    assert not out.exists()  # refused before anything was made


def test_fuzz_results_are_ignored_by_git():
    """Read .gitignore itself: a checkout without git (a tarball, the
    stock-Debian chroot, which has no git) must pass this too."""
    with open(os.path.join(ROOT, ".gitignore")) as f:
        patterns = {ln.strip() for ln in f}
    assert patterns & {"fuzz-results/", "/fuzz-results/", "fuzz-results"}, \
        "fuzz-results/ (testbed fuzz's default --out) is not in .gitignore"


def test_the_kernel_features_the_cli_asks_for_are_those_the_fuzzer_drives():
    from testbed.fuzz.machine import ACTIONS
    from testbed.fuzz.run import KERNEL_FEATURES

    assert KERNEL_FEATURES == ("srl2", *ACTIONS)


# ---- revisions: what each one gets (docs/fuzz.md "Revisions") ------------------------------

SRL2, SR6 = revisions.get("srl2"), revisions.get("sr6")
SR6_PARAMS = {"mode", "table", "hmac", "red"}


def _decoded(raw: bytes):
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from testbed.srv6 import nla

    msg = ifinfmsg(raw)
    msg.decode()
    return msg, nla.l2_link_of(msg)


def test_srl2_requests_are_the_bytes_they_always_were():
    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_NEWLINK

    from testbed.srv6 import nla

    add = Step("srl2_add", {"name": "fz0", "segs": 3, "mtu": 1400, "mac": 2, "up": False, "edit": ["sl", 7]})
    old = nla.to_bytes(nla.srl2_link("fz0", frames.device_srh(3, ["sl", 7]), mtu=1400, address="00:00:00:00:00:02"),
                       RTM_NEWLINK)
    assert requests.srl2_bytes(add) == requests.srl2_bytes(add, SRL2) == old
    change = Step("srl2_change", {"name": "fz1", "segs": 2, "edit": None})
    assert requests.srl2_bytes(change, SRL2) == nla.to_bytes(nla.srl2_link("fz1", frames.device_srh(2)), RTM_NEWLINK,
                                                             NLM_F_REQUEST | NLM_F_ACK)


def test_sr6_requests_carry_kind_mode_table_and_an_hmac_tlv():
    step = Step("srl2_add", {"name": "fz0", "segs": 2, "mode": "reduced", "table": 100, "hmac": 1, "up": True})
    msg, dev = _decoded(requests.srl2_bytes(step, SR6))
    assert msg["header"]["flags"] & 0x600 == 0x600  # NLM_F_CREATE | NLM_F_EXCL
    assert dev["kind"] == "sr6" and dev["mode"] == "reduced" and dev["table"] == 100
    assert dev["srh"] == encode_srh([frames.seg(1), frames.seg(2)], hmac_keyid=1)  # as `ip ... hmac 1` makes it
    # no mode: no attribute at all (refused at creation), which iproute2 cannot send
    nomode = Step("srl2_add", {"name": "fz0", "segs": 1, "mode": None, "table": 0})
    _, dev = _decoded(requests.srl2_bytes(nomode, SR6))
    assert dev["mode"] is None and dev["table"] == 0 and not requests.plain_srl2(nomode, SR6)
    # a change goes by name, without NLM_F_CREATE, keeping the mode when it has none
    change = Step("srl2_change", {"name": "fz1", "segs": 1, "edit": None, "mode": None, "table": 200, "hmac": None})
    msg, dev = _decoded(requests.srl2_bytes(change, SR6))
    assert msg["index"] == 0 and not msg["header"]["flags"] & 0x400 and dev["mode"] is None and dev["table"] == 200
    assert [d["mode"] for d in map(lambda m: _decoded(m)[1], requests.swap_bytes(
        Step("change_flowing", {"name": "fz0", "segs": 1, "mode": "full", "segs2": 3, "mode2": None, "swaps": 5}),
        SR6))] == ["full", None]
    with pytest.raises(ValueError, match="srl2 has no"):  # the first revision cannot be asked for a table
        requests.srl2_bytes(Step("srl2_add", {"name": "fz0", "segs": 1, "table": 100}), SRL2)


def test_reduced_srh_at_the_first_and_the_last_sid():
    inner = frames.inner_frame("ipv4", 60)
    (head,) = frames.srv6_frames(b"\x02" * 6, b"\x04" * 6, frames.sid(1), nsegs=3, inner=inner, red="head")
    srh = head[54:]
    # the first SID is only in the destination: two segments listed, segments left one beyond the last entry
    assert srh[4] == 1 and srh[3] == 2 and head[38:54] == frames.sid(1).packed
    (tail,) = frames.srv6_frames(b"\x02" * 6, b"\x04" * 6, frames.sid(2), nsegs=3, inner=inner, red="tail")
    tsrh = decode_srh(tail[54:])
    assert tsrh.segments_left == 0 and tsrh.last_entry == 1 and tsrh.active_segment == frames.sid(2)
    assert tail[54 + tsrh.length:] == inner


def _drawn(rev, lacks=frozenset(), inputs=40, ok=lambda s: True):
    """The steps the machine draws for `rev` against a world that answers
    `ok` (no kernel: what is generated, not what it does)."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.stateful import run_state_machine_as_test

    from testbed.fuzz.machine import FuzzMachine, TimeUp, seed_only

    class World:
        target = type("T", (), {"revision": rev, "lacks": lacks, "raw": not lacks})()

        def __init__(self):
            self.got: list = []

        def begin(self, kind="fuzz"):
            if len(self.got) >= inputs:
                raise TimeUp()
            self.got.append([])

        def step(self, s):
            self.got[-1].append(s)
            return "ok" if ok(s) else "refused: no"

        def end(self):
            pass

    seed_only()
    world = World()
    FuzzMachine.world, FuzzMachine.deadline, FuzzMachine.max_srh = world, float("inf"), 0
    FuzzMachine._hypothesis_internal_use_seed = hash((2, 1, 1)) & 0xFFFFFFFF  # seed 2, boot 1, run 1
    cfg = settings(max_examples=10**6, stateful_step_count=10, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                   phases=[Phase.explicit, Phase.reuse, Phase.generate])
    # Hypothesis replays the input that raised TimeUp, which raises at once:
    # it may say "flaky" instead (the runner sorts that out the same way)
    with pytest.raises(Exception):  # noqa: B017, PT011
        run_state_machine_as_test(FuzzMachine, settings=cfg)
    assert len(world.got) == inputs
    return world.got


def test_srl2_gets_no_second_revision_steps_and_its_mix_is_frozen():
    from testbed.fuzz import mix

    assert mix.ops_for(SRL2) == tuple(op for op, w in mix.WEIGHTS.items() for _ in range(w))
    got = _drawn(SRL2, inputs=60)
    assert not {s.op for i in got for s in i} & set(mix.EXTRA)
    assert not any(SR6_PARAMS & set(s.args) for i in got for s in i)
    assert not any(s.op == "master" and s.args["name"] in mix.LAB_PORTS for i in got for s in i)
    # CI's fuzz-smoke: seed 2's 7th input makes the 101-segment device, up, that wraps the MTU
    assert any(s.op == "srl2_add" and s.args["segs"] == 101 and s.args["up"] for s in got[6]), got[6]


def test_sr6_gets_its_steps_and_the_reference_only_those_it_has():
    from testbed.fuzz import mix
    from testbed.fuzz.ref import RefTarget

    got = _drawn(SR6, inputs=100)
    ops = {s.op for i in got for s in i}
    assert set(mix.EXTRA) <= ops and "srl2_change" in ops
    adds = [s.args for i in got for s in i if s.op == "srl2_add"]
    assert {a["mode"] for a in adds} == {"full", "reduced", None}
    assert {mix.TABLE_ROUTED, mix.TABLE_MISSING, 0} <= {a["table"] for a in adds}
    assert {*mix.KEY_IDS, mix.KEY_MISSING} <= {a["hmac"] for a in adds}
    masters = [s.args for i in got for s in i if s.op == "master"]
    assert mix.VRF in {a["bridge"] for a in masters} and {a["name"] for a in masters} & set(mix.LAB_PORTS)
    ref = _drawn(SR6, lacks=RefTarget.lacks, inputs=60)
    assert not {s.op for i in ref for s in i} & RefTarget.lacks
    assert mix.VRF not in {s.args.get("bridge") for i in ref for s in i} | {s.args.get("dev") for i in ref for s in i}


def test_sr6_reproducer_speaks_ip_sr6_and_raw_netlink_where_ip_cannot():
    from testbed.fuzz import mix

    steps = [Step("hmac_key", {"k": 1, "secret": "s3cr-t", "algo": "sha256", "via": None}),
             Step("srl2_add", {"name": "fz0", "segs": 2, "mtu": None, "mac": 2, "up": True, "edit": None,
                               "mode": "reduced", "table": mix.TABLE_ROUTED, "hmac": 1}),
             Step("srl2_add", {"name": "fz1", "segs": 1, "up": False, "edit": None, "mode": None, "table": None,
                               "hmac": None}),
             Step("srl2_change", {"name": "fz0", "segs": 1, "edit": None, "mode": "full", "table": 200, "hmac": None}),
             Step("vrf_add", {"name": mix.VRF, "table": 100, "up": True}),
             Step("master", {"name": "br0", "bridge": mix.VRF}),
             Step("change_flowing", {"name": "fz0", "segs": 1, "mode": "full", "segs2": 2, "mode2": None,
                                     "swaps": 3}),
             Step("hmac_key", {"k": 1, "secret": None, "algo": "sha1", "via": "fz0"})]
    script = repro.render(steps, "t", ["a"], SR6)
    body = script.split("# the steps\n")[1]
    assert "env IP=/path/to/ip-sr6 bash" in script and "knows `type sr6`" in script
    assert "$IP -n $R -6 route add fc00:e::/32 via fc00:1::2 dev veth-up table 100\n" in script
    assert "printf %s s3cr-t | $IP -n $R sr hmac set 1 sha256\n" in body
    assert ("$IP -n $R link add fz0 address 00:00:00:00:00:02 up type sr6 mode reduced segs fc00:e::1,fc00:e::2 "
            "table 100 hmac 1\n") in body
    # no mode: iproute2 refuses to send that, so the raw request goes, described in ip's words
    assert "# link add fz1 type sr6 segs fc00:e::1 (1 segments, SRH 24 bytes; no mode)\n" in body
    assert f'python3 -c "$NL" {requests.srl2_bytes(steps[2], SR6).hex()}\n' in body
    assert "$IP -n $R link set fz0 type sr6 mode full segs fc00:e::1 table 200\n" in body
    assert "$IP -n $R link add fzvrf up type vrf table 100\n$IP -n $R link set br0 master fzvrf\n" in body
    assert ("then $IP -n $R link set fz0 type sr6 mode full segs fc00:e::1; "
            "else $IP -n $R link set fz0 type sr6 segs fc00:e::1,fc00:e::2; fi") in body
    assert "for i in $(seq 3); do" in body and body.count('python3 -c "$TX" fz0 1000000 ') == 2
    assert "$IP -n $R sr hmac set 1 sha1 </dev/null" in body
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # the same steps' srl2 rendering never changes: no table route, srl2's words
    assert "table 100" not in repro.render([WRAP[0]], "t")


def test_short_fuzz_run_on_the_reference_datapath_of_sr6_finds_nothing(tmp_path):
    """The reference modelling sr6: modes, tables, HMAC keys; it must find
    nothing and leave nothing behind."""
    from testbed.linux import is_root_capable

    if is_root_capable():
        pytest.skip(f"needs root: {is_root_capable()}")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun for srl2_ref")
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "fuzz", "--datapath", "ref", "--revision", "sr6",
                             "--time", "40", "--steps", "5", "--seed", "4", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    summary = open(tmp_path / "fuzz-summary.txt").read()
    assert "revision sr6; 0 finding(s)" in summary, summary
    steps = [s for i in read_journal(str(tmp_path / "fuzz-journal.jsonl")).values() for s in i.steps]
    assert any(s.op == "srl2_add" and s.args.get("mode") for s in steps), steps
    assert f"fz{proc.pid % 100000}-" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                            text=True).stdout
