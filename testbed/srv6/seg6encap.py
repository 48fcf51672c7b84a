"""Route-based seg6 encapsulation (`encap seg6 mode M segs a,b`) for pyroute2.

pyroute2 0.9 knows only the `inline` and `encap` modes; the kernel also has
l2encap, encap.red and l2encap.red (include/uapi/linux/seg6_iptunnel.h).
"""
from __future__ import annotations

from pyroute2.netlink.rtnl.rtmsg import rtmsg_base

SEG6_IPTUN_MODES = {"inline": 0, "encap": 1, "l2encap": 2, "encap.red": 3, "l2encap.red": 4}

_srh = rtmsg_base.seg6_encap_info.ipv6_sr_hdr
_srh.encapmodes = dict(SEG6_IPTUN_MODES)
_srh.r_encapmodes = {v: k for k, v in SEG6_IPTUN_MODES.items()}


def seg6_route_encap(mode: str, segs) -> dict:
    """pyroute2 `encap=` for a route; `segs` in visiting order, as iproute2
    takes them (pyroute2 writes them as given, so reverse to wire order)."""
    return {"type": "seg6", "mode": mode, "segs": [str(s) for s in reversed(list(segs))]}
