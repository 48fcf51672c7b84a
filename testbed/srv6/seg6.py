"""SRv6 numbers in one place: seg6local actions and attributes, srl2 link data.

Upstream values come from include/uapi/linux/{seg6,seg6_local,lwtunnel}.h.
The srl2 series ("[RFC PATCH net-next 0/3] seg6: SRv6 L2 VPN with End.DT2U and
srl2 device", March 2026) adds SEG6_LOCAL_ACTION_END_DT2U, SEG6_LOCAL_L2DEV and
the "srl2" link kind with IFLA_SRL2_SRH.  Those numbers are NOT settled
upstream (another series claims action 17): change them here and nowhere else.
"""
from __future__ import annotations

# --- lwtunnel (include/uapi/linux/lwtunnel.h) -------------------------------
LWTUNNEL_ENCAP_SEG6 = 5
LWTUNNEL_ENCAP_SEG6_LOCAL = 7

# --- seg6local attributes (enum in include/uapi/linux/seg6_local.h) ---------
SEG6_LOCAL_UNSPEC = 0
SEG6_LOCAL_ACTION = 1
SEG6_LOCAL_SRH = 2
SEG6_LOCAL_TABLE = 3
SEG6_LOCAL_NH4 = 4
SEG6_LOCAL_NH6 = 5
SEG6_LOCAL_IIF = 6
SEG6_LOCAL_OIF = 7
SEG6_LOCAL_BPF = 8
SEG6_LOCAL_VRFTABLE = 9
SEG6_LOCAL_COUNTERS = 10
SEG6_LOCAL_FLAVORS = 11
SEG6_LOCAL_L2DEV = 12  # srl2 series, not upstream: u32 ifindex

# Nested in SEG6_LOCAL_COUNTERS (u64 values; PAD aligns them in dumps).
SEG6_LOCAL_CNT_UNSPEC = 0
SEG6_LOCAL_CNT_PAD = 1
SEG6_LOCAL_CNT_PACKETS = 2
SEG6_LOCAL_CNT_BYTES = 3
SEG6_LOCAL_CNT_ERRORS = 4

# --- seg6local actions ------------------------------------------------------
SEG6_LOCAL_ACTION_UNSPEC = 0
SEG6_LOCAL_ACTION_END = 1
SEG6_LOCAL_ACTION_END_X = 2
SEG6_LOCAL_ACTION_END_T = 3
SEG6_LOCAL_ACTION_END_DX2 = 4
SEG6_LOCAL_ACTION_END_DX6 = 5
SEG6_LOCAL_ACTION_END_DX4 = 6
SEG6_LOCAL_ACTION_END_DT6 = 7
SEG6_LOCAL_ACTION_END_DT4 = 8
SEG6_LOCAL_ACTION_END_B6 = 9
SEG6_LOCAL_ACTION_END_B6_ENCAP = 10
SEG6_LOCAL_ACTION_END_BM = 11
SEG6_LOCAL_ACTION_END_S = 12
SEG6_LOCAL_ACTION_END_AS = 13
SEG6_LOCAL_ACTION_END_AM = 14
SEG6_LOCAL_ACTION_END_BPF = 15
SEG6_LOCAL_ACTION_END_DT46 = 16
SEG6_LOCAL_ACTION_END_DT2U = 17  # srl2 series: NOT settled upstream

# iproute2's action names -> numbers.
ACTIONS: dict[str, int] = {
    "End": SEG6_LOCAL_ACTION_END,
    "End.X": SEG6_LOCAL_ACTION_END_X,
    "End.T": SEG6_LOCAL_ACTION_END_T,
    "End.DX2": SEG6_LOCAL_ACTION_END_DX2,
    "End.DX6": SEG6_LOCAL_ACTION_END_DX6,
    "End.DX4": SEG6_LOCAL_ACTION_END_DX4,
    "End.DT6": SEG6_LOCAL_ACTION_END_DT6,
    "End.DT4": SEG6_LOCAL_ACTION_END_DT4,
    "End.B6": SEG6_LOCAL_ACTION_END_B6,
    "End.B6.Encaps": SEG6_LOCAL_ACTION_END_B6_ENCAP,
    "End.BM": SEG6_LOCAL_ACTION_END_BM,
    "End.S": SEG6_LOCAL_ACTION_END_S,
    "End.AS": SEG6_LOCAL_ACTION_END_AS,
    "End.AM": SEG6_LOCAL_ACTION_END_AM,
    "End.BPF": SEG6_LOCAL_ACTION_END_BPF,
    "End.DT46": SEG6_LOCAL_ACTION_END_DT46,
    "End.DT2U": SEG6_LOCAL_ACTION_END_DT2U,
}
ACTION_NAMES: dict[int, str] = {v: k for k, v in ACTIONS.items()}

# --- srl2 link kind (srl2 series) ------------------------------------------
SRL2_KIND = "srl2"
IFLA_SRL2_UNSPEC = 0
IFLA_SRL2_SRH = 1

# --- SRH (include/uapi/linux/seg6.h, RFC 8754) -----------------------------
IPV6_SRCRT_TYPE_4 = 4  # Segment Routing Header routing type
NEXTHDR_ROUTING = 43
NEXTHDR_ETHERNET = 143  # RFC 8986 §10: Ethernet as upper layer
