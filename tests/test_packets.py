"""The packet helpers (pure): the expected srl2 packet and the masked comparison."""
from testbed.srv6 import srh
from testbed.packets import masked_diff, scapy, srv6_packet


def frame() -> bytes:
    sc = scapy()
    return bytes(sc.Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01") /
                 sc.IPv6(hlim=1) / sc.UDP() / (b"x" * 10))


def test_expected_packet_carries_the_encoded_srh_and_the_whole_frame():
    exp = bytes(srv6_packet(frame(), ["fc00::a", "fc00::b"], "fc00::1"))
    assert exp[14 + 6] == 43 and exp[14 + 7] == 64  # next header routing, hop limit 64
    assert exp[54:94] == srh.encode_srh(["fc00::a", "fc00::b"])
    assert exp[94:] == frame()


def test_masked_fields_are_taken_from_the_capture_and_others_are_named():
    sc = scapy()
    exp = srv6_packet(frame(), ["fc00::a"], "fc00::1")
    got = sc.Ether(bytes(exp))
    got[sc.IPv6].hlim, got[sc.IPv6].fl = 1, 5
    assert masked_diff(exp, bytes(got)) == ["IPv6.fl: expected 0, got 5", "IPv6.hlim: expected 64, got 1"]
    assert masked_diff(exp, bytes(got), ignore=["IPv6.fl", "IPv6.hlim"]) == []


def test_a_payload_byte_is_reported_by_offset():
    exp = srv6_packet(frame(), ["fc00::a"], "fc00::1")
    got = bytearray(bytes(exp))
    got[-1] ^= 1
    n = len(got)
    assert masked_diff(exp, bytes(got)) == [f"bytes differ at offset {n - 1} (lengths {n} and {n})"]
