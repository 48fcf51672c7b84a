"""`testbed capture` on a real p2p lab (reference datapath): the printed line
of the encapsulated ping names the SIDs and the inner ICMP; `-w -` writes a
pcap that tcpdump reads; a bad filter is a one-line usage error."""
from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import time

import pytest

from testbed.decode import decode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMED = "capturing on "



def run_cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "testbed.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)


def wait_armed(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Read the capture's stderr until it says it is armed (its handshake)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while ARMED.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stderr], [], [], left)[0]:
            proc.kill()
            pytest.fail(f"capture not armed within {timeout:.0f} s: {seen.decode(errors='replace')}")
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            proc.wait()
            pytest.fail(f"capture exited {proc.returncode} before it was armed: {seen.decode(errors='replace')}")
        seen += chunk


def ping(lab, src: str, dst: str) -> None:
    p = subprocess.run(["ip", "netns", "exec", lab.node(src).name, "ping", "-c1", "-W5", dst],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def finish(proc: subprocess.Popen) -> tuple[bytes, str]:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"capture did not stop after its count: {err.decode(errors='replace')}")
    assert proc.returncode == 0, err.decode(errors="replace")
    return out, err.decode(errors="replace")


@pytest.mark.usefixtures("need_root")
def test_capture_prints_sids_and_inner_icmp(private_state, make_lab):
    lab = make_lab("topologies/p2p.yaml", datapath="ref")
    proc = run_cli("capture", lab.name, "rt-1", "veth-rt2", "--filter", "icmp", "-c", "2")
    wait_armed(proc)
    ping(lab, "hs-1", "10.0.0.2")
    out, err = finish(proc)
    lines = out.decode().splitlines()
    assert len(lines) == 2, out
    request, reply = lines
    assert " out " in request and " in " in reply
    assert ("fcf0:0:1:2::1 > fcff:2::d20: SRH SL 0, segs [fcff:2::d20], next-header Ethernet (143): "
            in request), request
    assert "10.0.0.1 > 10.0.0.2: ICMP echo request, id " in request, request
    assert "fcf0:0:1:2::2 > fcff:1::d20: SRH SL 0, segs [fcff:1::d20]" in reply, reply
    assert "10.0.0.2 > 10.0.0.1: ICMP echo reply, id " in reply, reply
    assert "2 frames" in err


@pytest.mark.usefixtures("need_root")
def test_capture_writes_pcap_to_stdout(private_state, make_lab):
    lab = make_lab("topologies/p2p.yaml", datapath="ref")
    proc = run_cli("capture", lab.name, "rt-2", "veth-rt1", "-w", "-", "--filter", "sid=fcff:2::d20,!arp", "-c", "1")
    wait_armed(proc)
    ping(lab, "hs-1", "cafe::2")
    out, err = finish(proc)
    assert "1 frame written to standard output" in err
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", out, 0)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    _, _, caplen, length = struct.unpack_from("<IIII", out, 24)
    frame = out[40:40 + caplen]
    assert len(frame) == caplen == length and len(out) == 40 + caplen
    d = decode(frame)
    assert "srv6" in d.tags and "fcff:2::d20" in d.sids and "arp" not in d.tags, d.text
    if not os.path.exists("/usr/bin/tcpdump") and not os.path.exists("/usr/sbin/tcpdump"):
        pytest.skip("tcpdump not installed: the pcap was checked by hand above")
    shown = subprocess.run(["tcpdump", "-r", "-", "-nn"], input=out, capture_output=True)
    assert shown.returncode == 0, shown.stderr
    assert b"fcff:2::d20" in shown.stdout, shown.stdout


def test_bad_filter_is_a_usage_error_without_traceback():
    proc = run_cli("capture", "nolab", "rt-1", "veth0", "--filter", "srv6|vlan=9999")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    text = err.decode()
    assert "testbed: error: --filter: filter term 'vlan=9999': '9999' is not a VLAN id 0-4095" in text
    assert "Traceback" not in text


@pytest.mark.usefixtures("need_root")
def test_capture_of_unknown_lab_is_one_line():
    proc = run_cli("capture", "no-such-lab-viz", "rt-1", "veth0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.decode().strip() == "testbed: error: no lab named 'no-such-lab-viz' is up (see: testbed status)"


@pytest.mark.usefixtures("need_root")
def test_capture_ends_when_its_lab_is_taken_down(private_state, make_lab):
    """A capture holds its netns open: it must notice `down` and end, not wait forever."""
    lab = make_lab("topologies/p2p.yaml", datapath="ref")
    netns = lab.node("rt-1").name
    proc = run_cli("capture", lab.name, "rt-1", "veth-rt2")
    wait_armed(proc)
    lab.down()
    out, err = finish(proc)
    assert f"lab {lab.name} was taken down" in err
    assert not os.path.exists(f"/run/netns/{netns}")
