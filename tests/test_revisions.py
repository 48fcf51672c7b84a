"""The revision modules (testbed/revisions/): the numbers each revision of
the series promises (../shared/CONFORMANCE.md, sections T4, N1 and R)."""
from __future__ import annotations

import pytest

from testbed import revisions

SRL2, SR6 = revisions.get("srl2"), revisions.get("sr6")


def test_uapi_and_kinds():
    assert (SRL2.kind, SRL2.attrs) == ("srl2", {"SRH": 1})
    assert (SR6.kind, SR6.attrs) == ("sr6", {"SRH": 1, "FIB_TABLE": 2, "ENCAP_MODE": 3})
    assert [r.name for r in revisions.all_revisions()] == list(revisions.NAMES) == ["srl2", "sr6"]


@pytest.mark.parametrize("nsegs,mode,hmac,mtu", [
    (1, "full", False, 1422), (2, "full", False, 1406), (3, "full", False, 1390),
    (1, "reduced", False, 1446), (3, "reduced", False, 1406), (1, "full", True, 1382),
    (127, "full", False, 68),
])
def test_sr6_mtu_formula_and_clamp(nsegs, mode, hmac, mtu):
    """CONFORMANCE R: overhead full 40 + 8 + 16n + 14; reduced 40 + 14 for
    one SID (no SRH), 40 + 8 + 16(n-1) + 14 otherwise; HMAC adds 40; clamped
    at 68; max = 65535 - overhead."""
    assert SR6.default_mtu(nsegs, mode, hmac) == mtu
    assert SR6.max_mtu(nsegs, mode, hmac) == 65535 - SR6.overhead(nsegs, mode, hmac)


def test_srl2_mtu_wraps_as_the_patch_computes_it():
    """T4 and S3: 1500 - 40 - (8 + 16n) - 14, unsigned: 127 SIDs wrap."""
    assert [SRL2.default_mtu(n) for n in (1, 2, 3, 8)] == [1422, 1406, 1390, 1310]
    assert SRL2.default_mtu(127) == 2**32 - 594
    assert SRL2.max_mtu(1) == 65457


def test_what_each_revision_refuses():
    assert SRL2.refuses(mode="reduced") == "revision srl2 has no encapsulation mode 'reduced' (it has full)"
    assert SRL2.refuses(table=100) == "revision srl2 has no post-encapsulation table"
    assert SRL2.refuses(hmac=1) == "revision srl2 has no HMAC"
    assert SR6.refuses(mode="reduced", table=100, hmac=1) is None
    assert revisions.having("changelink") == ["sr6"]


def test_resolution():
    assert revisions.resolve("auto", []).name == "srl2"  # the reference models the first
    assert revisions.resolve("auto", ["srl2", "sr6"]).name == "sr6"  # the newest the kernel has
    assert revisions.resolve("srl2", ["sr6"]).name == "srl2"  # asked for: that one
    with pytest.raises(KeyError):
        revisions.get("sr7")


def test_counters_per_error():
    assert SRL2.counters.loop == ("collisions", "tx_dropped")
    assert SR6.counters.loop == ("collisions", "tx_errors")
    assert SR6.counters.no_route == ("tx_carrier_errors", "tx_errors")
    assert {d.id for d in SR6.differs} >= {"L1", "L2", "N4", "N6", "E6"}


def test_one_sid_reduced_with_hmac_keeps_its_whole_srh():
    """Linux's reduced encapsulation leaves the SRH out only when there is
    nothing else to carry; with an HMAC TLV one SID keeps it all (measured
    on the sr6 kernel: MTU 1382, as full mode)."""
    assert SR6.has_srh(1, "reduced", hmac=True) and SR6.default_mtu(1, "reduced", hmac=True) == 1382
