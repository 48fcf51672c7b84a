"""The series' first revision: "[RFC PATCH net-next 0/3] seg6: SRv6 L2 VPN
with End.DT2U and srl2 device" (netdev, March 2026), `net/ipv6/srl2.c`.

One SRH attribute, one mode (H.Encaps.L2 with every SID in the SRH), the
route to the first SID in the device's netns, no changelink.  Its facts:
../shared/CONFORMANCE.md, sections H..N."""
from __future__ import annotations

from testbed.revisions import Counters, Revision

IFLA_SRL2_UNSPEC = 0
IFLA_SRL2_SRH = 1

REVISION = Revision(
    name="srl2",
    kind="srl2",
    title='[RFC PATCH net-next 0/3] seg6: SRv6 L2 VPN with End.DT2U and srl2 device (March 2026)',
    attrs={"SRH": IFLA_SRL2_SRH},
    modes=("full",),
    table=False,
    hmac=False,
    changelink=False,
    netns_move=True,          # allowed; routing then happens in the new netns (N6)
    creation_mtu=False,       # ignored: the computed MTU wins (N4, a finding)
    mtu_clamped=False,        # 1500 - overhead wraps from 90 SIDs on (S3's crash)
    counters=Counters(loop=("collisions", "tx_dropped"), no_route=("tx_carrier_errors", "tx_dropped"),
                      reject=("tx_carrier_errors", "tx_dropped"),
                      # srl2 has no HMAC; a failed send: as the reference always counted it
                      encap_error=("tx_errors", "tx_dropped"), send_error=("tx_errors", "tx_dropped")),
    tx_bytes_inner=True,      # what the patch means to count (N7: it counts +162 more, a finding)
    rx_on_l2dev=False,
    l2dev_word="srl2",
)
