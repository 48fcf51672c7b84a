"""srl2_ref's model of the series' second revision (sr6), without namespaces:
the HMAC TLV against an independent computation from RFC 8754's definition,
the reduced encapsulation, the configuration per revision, the decap side
of reduced SRHs and HMACs, and what the lab's RefDatapath writes.

KERNEL holds outer IPv6 packets the sr6 kernel sent (../shared/kernels/
sr6-rfc-v2-6.12 under `testbed vm`, one frame through a device per line;
source fc00:12::1, keys 1 = "s3cr3t-one" SHA-256 and 2 = "another-secret"
SHA-1): the reference must send the same bytes."""
from __future__ import annotations

import hashlib
import hmac as std_hmac
import struct
from ipaddress import IPv6Address

import pytest

from srl2_ref import config, decap, encap, hmac
from testbed import revisions
from testbed.srv6.srh import encode_srh

SRC = IPv6Address("fc00:12::1")
S1 = ["fcff:2::1"]
S3 = ["fcff:2::1", "fcff:3::2", "fcff:4::3"]
KEYS = {1: hmac.Key(1, b"s3cr3t-one", "sha256"), 2: hmac.Key(2, b"another-secret", "sha1")}
FRAME = b"\xff" * 6 + bytes.fromhex("020000000a0a") + b"\x88\xb5" + b"SR6PROBE".ljust(46, b"\0")
SR6 = revisions.get("sr6")

_A = "fc000012000000000000000000000001fcff0002000000000000000000000001"  # source, DA
_S = {k: f"fcff000{k}00000000000000000000000{v}" for k, v in ((2, 1), (3, 2), (4, 3))}
KERNEL = {  # name: (segs, mode, key id) -> the outer IPv6 header and SRH the kernel sent before FRAME
    "full1": (S1, "full", None, "6000000000542b40" + _A + "8f02040000000000" + _S[2]),
    "red1": (S1, "reduced", None, "60000000003c8f40" + _A),
    "full3": (S3, "full", None, "6000000000742b40" + _A + "8f06040202000000" + _S[4] + _S[3] + _S[2]),
    "red3": (S3, "reduced", None, "6000000000642b40" + _A + "8f04040201000000" + _S[4] + _S[3]),
    "red2": (S3[:2], "reduced", None, "6000000000542b40" + _A + "8f02040100000000" + _S[3]),
    "full1h1": (S1, "full", 1, "60000000007c2b40" + _A + "8f07040000080000" + _S[2] + "0526000000000001"
                "976df151a53f0abeda6913f8316334021cc2040c0ad50cc5e3d68610bb882065"),
    "red1h1": (S1, "reduced", 1, "60000000007c2b40" + _A + "8f07040000080000" + _S[2] + "0526000000000001"
               "976df151a53f0abeda6913f8316334021cc2040c0ad50cc5e3d68610bb882065"),
    "red3h1": (S3, "reduced", 1, "60000000008c2b40" + _A + "8f09040201080000" + _S[4] + _S[3] + "0526000000000001"
               "0dc0b83bee22fd7dc438f94ff4c326108ca7df138c3bb46cc5b81687af7f7f63"),
    "full3h2": (S3, "full", 2, "60000000009c2b40" + _A + "8f0b040202080000" + _S[4] + _S[3] + _S[2]
                + "0526000000000002" + "1cd705b7b669041e5529a3d2bd2df884295e13e2" + "00" * 12),
}


def rfc8754_hmac(secret: bytes, algorithm, src: IPv6Address, last_entry: int, flags: int, keyid: int,
                 segments_wire_order: list[str]) -> bytes:
    """RFC 8754 §2.1.2.1, written from the RFC: the text is the source
    address, Last Entry, flags, HMAC key id and every segment of the list;
    the HMAC field is 32 bytes (a shorter digest padded with zeros)."""
    text = src.packed + bytes([last_entry, flags]) + struct.pack("!I", keyid)
    text += b"".join(IPv6Address(s).packed for s in segments_wire_order)
    return std_hmac.new(secret, text, algorithm).digest().ljust(32, b"\0")[:32]


def template(segs, mode="full", keyid=None, faults=frozenset()) -> encap.Template:
    return encap.Template([IPv6Address(s) for s in segs], mode=mode, hmac_keyid=keyid,
                          key=KEYS.get(keyid) if keyid is not None else None, faults=frozenset(faults))


# ---- the encapsulation, byte for byte as the sr6 kernel ----------------------------

@pytest.mark.parametrize("name", sorted(KERNEL))
def test_outer_packet_is_the_kernels(name):
    segs, mode, keyid, head = KERNEL[name]
    assert template(segs, mode, keyid).outer(FRAME, SRC).hex() == head + FRAME.hex()


def test_reduced_srh_shape():
    """RFC 8986 §5.4 as Linux's seg6_do_srh_encap_red: no SRH for one SID
    (next header 143); n SIDs: n-1 segments, Last Entry n-2, Segments Left
    n-1; one SID with an HMAC TLV keeps its SRH."""
    one = template(S1, "reduced")
    assert (one.srh, one.nexthdr) == (b"", 143)
    srh = template(S3, "reduced").srh
    assert (srh[1], srh[3], srh[4], len(srh)) == (4, 2, 1, 8 + 32)
    assert [str(IPv6Address(srh[8 + 16 * i:24 + 16 * i])) for i in range(2)] == ["fcff:4::3", "fcff:3::2"]
    assert template(S1, "reduced", 1).srh[:8] == bytes([143, 7, 4, 0, 0, 8, 0, 0])
    assert template(S3, "full").srh == encode_srh(S3)


def test_hmac_against_rfc_definition_sha256_and_sha1():
    for segs, mode, keyid in ((S1, "full", 1), (S3, "reduced", 1), (S3, "full", 2), (S3[:2], "full", 1)):
        t = template(segs, mode, keyid)
        srh = t.tail(SRC)[32:]
        at = hmac.find(srh)
        assert at == len(srh) - 40 and srh[at:at + 8] == struct.pack("!BBHI", 5, 38, 0, keyid)
        key = KEYS[keyid]
        wire = [str(IPv6Address(srh[8 + 16 * i:24 + 16 * i])) for i in range(srh[4] + 1)]
        expect = rfc8754_hmac(key.secret, getattr(hashlib, key.algorithm), SRC, srh[4], srh[5], keyid, wire)
        assert srh[at + 8:] == expect, (segs, mode, keyid)
        assert hmac.valid(srh, SRC.packed, KEYS)
        assert not hmac.valid(srh, IPv6Address("fc00:12::9").packed, KEYS)  # the source is in the text
        assert not hmac.valid(srh, SRC.packed, {})  # a key the node lacks


def test_hmac_limits_and_missing_key():
    """Linux's text buffer holds 14 segments: 15 in the SRH cannot be
    encapsulated (tx_errors on sr6); a key id the node has no key for
    neither."""
    segs = [f"fcff:{k:x}::1" for k in range(2, 17)]
    assert template(segs[:14], "full", 1).error == ""
    assert "too long" in template(segs, "full", 1).error
    assert template(segs, "reduced", 1).error == ""  # 14 in the reduced SRH
    assert template(S1, "full", 9).error == "no HMAC key 9"


def test_sr6_faults_change_the_wire():
    full = template(S3, "full").srh
    assert template(S3, "reduced", faults={"reduced_repeats_first_sid"}).srh == full
    assert template(S1, "reduced", faults={"reduced_repeats_first_sid"}).nexthdr == 43
    good = template(S1, "full", 1).tail(SRC)
    bad = template(S1, "full", 1, faults={"hmac_wrong_bytes"}).tail(SRC)
    assert good[:-32] == bad[:-32] and good[-32:] != bad[-32:]
    assert not hmac.valid(bad[32:], SRC.packed, KEYS)


# ---- the decap side ----------------------------------------------------------------

def outer(dst: str, payload: bytes, nh: int) -> bytes:
    return (bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([nh, 64]) + SRC.packed
            + IPv6Address(dst).packed + payload)


def test_end_takes_a_reduced_srh_and_dt2u_a_packet_without_srh():
    red = template(S3, "reduced").srh  # SL 2 = last entry + 1
    v = decap.classify(outer(S3[0], red + FRAME, 43), "End")
    assert v.ok and v.packet is not None
    assert IPv6Address(v.packet[24:40]) == IPv6Address(S3[1]) and v.packet[43] == 1
    v = decap.classify(outer(S3[0], FRAME, 143), "End.DT2U")
    assert v.ok and outer(S3[0], FRAME, 143)[v.start:v.end] == FRAME


def test_decap_checks_hmac_with_the_nodes_keys():
    t = template(S1, "full", 1)
    srh = t.tail(SRC)[32:]
    pkt = outer(S1[0], srh + FRAME, 43)
    assert decap.classify(pkt, "End.DT2U", hmac_keys=KEYS).ok
    assert not decap.classify(pkt, "End.DT2U", hmac_keys={}).ok  # no key 1 here: dropped
    bad = bytearray(pkt)
    bad[-len(FRAME) - 1] ^= 1  # the HMAC's last byte
    assert decap.classify(bytes(bad), "End.DX2", hmac_keys=KEYS).reason == "HMAC not valid"
    assert decap.classify(bytes(bad), "End.DX2").ok  # without keys: not checked (pure callers)


# ---- the configuration -----------------------------------------------------------

def dev(**kw) -> dict:
    return {"name": "sr6-0", "segs": S1, **kw}


def test_config_defaults_to_srl2_and_refuses_what_it_lacks():
    cfg = config.parse({"devices": [dev()]})
    assert cfg.revision.name == "srl2" and cfg.devices[0].mode == "full"
    for key, value in (("mode", "reduced"), ("table", 100), ("hmac", 1)):
        with pytest.raises(config.ConfigError, match=rf"devices\[0\]\.{key}: revision srl2 has no"):
            config.parse({"devices": [dev(**{key: value})]})
    with pytest.raises(config.ConfigError, match="revision: 'sr7'"):
        config.parse({"revision": "sr7"})
    with pytest.raises(config.ConfigError, match=r"table: 0 is not a number in 1\.\."):
        config.parse({"revision": "sr6", "devices": [dev(table=0)]})


@pytest.mark.parametrize("n,mode,with_hmac,mtu", [
    (1, "full", False, 1422), (1, "reduced", False, 1446), (3, "full", False, 1390), (3, "reduced", False, 1406),
    (1, "full", True, 1382), (3, "reduced", True, 1366), (127, "full", False, 68), (127, "reduced", False, 68),
])
def test_sr6_default_mtu(n, mode, with_hmac, mtu):
    """The sr6 kernel's MTUs (measured, and CONFORMANCE R), 127 SIDs clamped."""
    segs = [f"fcff:{k:x}::1" for k in range(2, 2 + n)]
    d = dev(segs=segs, mode=mode, hmac=1 if with_hmac else None)
    assert config.parse({"revision": "sr6", "devices": [d]}).devices[0].effective_mtu == mtu


def test_creation_mtu_and_its_maximum():
    cfg = config.parse({"revision": "sr6", "devices": [dev(mode="reduced", mtu=65481)]})
    assert cfg.devices[0].effective_mtu == 65481  # applied; 65535 - 40 - 14 with no SRH
    with pytest.raises(config.ConfigError, match=r"65482 outside 68\.\.65481"):
        config.parse({"revision": "sr6", "devices": [dev(mode="reduced", mtu=65482)]})
    assert config.parse({"devices": [dev(segs=[f"fcff:{k:x}::1" for k in range(127)])]}).devices[0] \
        .effective_mtu == 68  # srl2: the reference clamps too (S3)


def test_hmac_keys_config():
    cfg = config.parse({"revision": "sr6", "hmac_keys": {"7": {"secret": "x" * 64, "algorithm": "sha1"}}})
    assert cfg.hmac_keys == {7: hmac.Key(7, b"x" * 64, "sha1")}
    for bad, what in (({"x": {"secret": "s"}}, "decimal"), ({"1": {"secret": ""}}, "secret"),
                      ({"1": {"secret": "s", "algorithm": "md5"}}, "algorithm"),
                      ({"1": {"secret": "y" * 65}}, "secret")):
        with pytest.raises(config.ConfigError, match=what):
            config.parse({"revision": "sr6", "hmac_keys": bad})


# ---- what the lab's datapath writes ---------------------------------------------------

def test_ref_datapath_writes_the_revision_and_the_new_fields(tmp_path):
    from ipaddress import IPv6Network

    from types import SimpleNamespace

    from testbed.datapaths.ref import RefDatapath
    from testbed.model import HmacKey, Sid, Srl2

    dp = RefDatapath(str(tmp_path), revision="sr6")
    dp.why = "asked for by --datapath ref"
    assert dp.revision is SR6 and dp.why == "asked for by --datapath ref; models revision sr6"
    assert RefDatapath(str(tmp_path)).revision.name == "srl2"
    devices = [Srl2("sr6-0", [IPv6Address("fcff:2::1")], mode="reduced", table=100, hmac=1)]
    sids = [Sid(IPv6Network("fcff:1::d20/128"), "End.DT2U", l2dev="sr6-0")]
    ns = SimpleNamespace(name="nodens")  # what _config reads of a Netns: its name
    cfg = dp._config(ns, devices, sids, [HmacKey(1, "s3cr3t-one")])
    assert cfg["revision"] == "sr6" and cfg["hmac_keys"] == {"1": {"secret": "s3cr3t-one", "algorithm": "sha256"}}
    assert {k: cfg["devices"][0][k] for k in ("mode", "table", "hmac")} == {"mode": "reduced", "table": 100, "hmac": 1}
    parsed = config.parse(cfg)  # what the process then reads
    assert (parsed.revision, parsed.devices[0].mode, parsed.devices[0].table) == (SR6, "reduced", 100)
    assert parsed.hmac_keys == {1: hmac.Key(1, b"s3cr3t-one", "sha256")}
