"""The series' second revision: the device renamed `sr6` (`net/ipv6/sr6.c`
of the authors' development tree, Netdev 0x1A, July 2026).

New UAPI (SRH 1, FIB table 2, encapsulation mode 3), modes full and
reduced (H.Encaps.L2 / H.Encaps.L2.Red), a post-encapsulation table or
the VRF of the master chain, HMAC, changelink, an immutable netns, the MTU
clamped and a creation MTU applied, other counters, rx counted on an sr6
l2dev.  Its facts: ../shared/CONFORMANCE.md, section R."""
from __future__ import annotations

from testbed.revisions import Counters, Differs, Revision

IFLA_SR6_UNSPEC = 0
IFLA_SR6_SRH = 1
IFLA_SR6_FIB_TABLE = 2
IFLA_SR6_ENCAP_MODE = 3
ENCAP_MODES = {"full": 0, "reduced": 1}

REVISION = Revision(
    name="sr6",
    kind="sr6",
    title="the srl2 series' second revision: sr6 device (Netdev 0x1A, July 2026)",
    attrs={"SRH": IFLA_SR6_SRH, "FIB_TABLE": IFLA_SR6_FIB_TABLE, "ENCAP_MODE": IFLA_SR6_ENCAP_MODE},
    modes=("full", "reduced"),
    table=True,
    hmac=True,
    changelink=True,
    netns_move=False,
    creation_mtu=True,
    mtu_clamped=True,
    # sr6.c counts by the lookup's errno: ENETUNREACH (no route) as carrier
    # error + error, any other (a reject route's EHOSTUNREACH, EACCES,
    # EINVAL; a missing table) as an error only.
    counters=Counters(loop=("collisions", "tx_errors"), no_route=("tx_carrier_errors", "tx_errors"),
                      reject=("tx_errors",), encap_error=("tx_errors",),
                      send_error=("tx_errors", "tx_aborted_errors")),
    tx_bytes_inner=True,
    rx_on_l2dev=True,
    l2dev_word="sr6",
    vrf_lookup=True,
    differs=(
        Differs("L1", "collisions and tx_errors +1 per frame",
                "sr6.c counts ELOOP as collisions + tx_errors (srl2: collisions + tx_dropped)"),
        Differs("L2", "no route: tx_carrier_errors and tx_errors +1 per frame; a reject route "
                      "(unreachable, prohibit, blackhole): tx_errors +1 only",
                "sr6.c counts the lookup's errno: ENETUNREACH as tx_carrier_errors + tx_errors, any other "
                "(EHOSTUNREACH, EACCES, EINVAL) as tx_errors (srl2: tx_carrier_errors + tx_dropped for all)"),
        Differs("N4", "an MTU given at creation is applied (refused above the maximum)",
                "sr6.c applies IFLA_MTU at newlink ('MTU exceeds the encapsulation limit' above it)"),
        Differs("N6", "moving the device to another netns is refused",
                "sr6 devices are netns-immutable (NETIF_F_NETNS_LOCAL)"),
        Differs("S3", "127 SIDs: the MTU is clamped at 68, no wrap",
                "sr6.c computes the default MTU signed and clamps it at the minimum"),
        Differs("E1", "rx_packets/rx_bytes of an sr6 l2dev count what End.DT2U delivers",
                "the revision's End.DT2U counts rx on an sr6 l2dev"),
        Differs("E6", "extack 'l2dev must be a bridge port or sr6 device'",
                "the device's new name in End.DT2U's message"),
    ),
)
