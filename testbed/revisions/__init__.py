"""The revisions of the SRv6 L2 pseudowire series, one module each.

A patch series changes between revisions: the first (March 2026) calls the
device `srl2`, the second `sr6`, with another UAPI, encapsulation modes, a
post-encapsulation table, HMAC, changelink and other counters.  Everything
that differs lives in one `Revision` per module (srl2.py, sr6.py); the
datapaths, topology validation, the reference, the cases and the reports
ask it and never name a revision themselves.  The project keeps calling
the device "srl2" where it means "the series' L2 pseudowire device" (the
topology key `srl2:`, model.Srl2): which link kind that is, is the
revision's business.

The revision is an axis like the datapath: `--revision auto|srl2|sr6`
(TESTBED_REVISION), auto meaning what the running kernel has (the newest
revision when it has several, srl2 when it has none: the reference then
models srl2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from testbed.srv6.srh import ETH_HLEN, IPV6_HLEN, SRH_FIXED

ENV = "TESTBED_REVISION"
MIN_MTU = 68
MAX_MTU_BASE = 65535
UNDERLAY_MTU = 1500
HMAC_TLV_LEN = 40  # RFC 8754 §2.1.2: type, length, D/reserved, key id, 32-byte HMAC


@dataclass(frozen=True)
class Counters:
    """Which device counters one dropped frame moves, per cause (kernel names)."""

    loop: tuple[str, ...]       # the route to the first SID leads back into the device
    no_route: tuple[str, ...]   # no route at all (ENETUNREACH)
    reject: tuple[str, ...]     # a reject route: unreachable, prohibit, blackhole
    encap_error: tuple[str, ...] = ("tx_errors",)  # the encapsulation failed (e.g. an unknown HMAC key)
    send_error: tuple[str, ...] = ("tx_errors", "tx_dropped")  # the packet could not be sent


@dataclass(frozen=True)
class Differs:
    """A catalogue ID whose expectation in this revision differs from the
    first revision's, and why (shown in docs/catalogue.md and comparisons)."""

    id: str
    expect: str
    reason: str


@dataclass(frozen=True)
class Revision:
    name: str                    # srl2, sr6
    kind: str                    # the rtnetlink link kind
    title: str                   # the series as posted
    attrs: dict[str, int]        # IFLA_<KIND>_* numbers
    modes: tuple[str, ...]       # encapsulation modes; the first is the default
    table: bool                  # a post-encapsulation FIB table (IFLA_*_FIB_TABLE)
    hmac: bool                   # an HMAC TLV in the SRH
    changelink: bool             # SRH/mode replaced on a live device
    netns_move: bool             # the device may move to another netns
    creation_mtu: bool           # an `mtu` given at creation is applied
    mtu_clamped: bool            # the computed MTU is clamped at MIN_MTU (else it wraps)
    counters: Counters
    tx_bytes_inner: bool         # tx_bytes counts the inner frame (else the outer packet)
    rx_on_l2dev: bool            # End.DT2U counts rx on an l2dev of this kind
    l2dev_word: str              # E6's extack: "l2dev must be a bridge port or <word> device"
    differs: tuple[Differs, ...] = field(default_factory=tuple)
    # without a table, the route to the first SID is looked up in the VRF of
    # the device's master chain (the device, or its bridge, in a VRF)
    vrf_lookup: bool = False

    # ---- the SRH and the MTU -------------------------------------------

    def srh_segments(self, nsegs: int, mode: str, hmac: bool = False) -> int:
        """Segments in the SRH on the wire: all of them, or without the
        first one in reduced mode (RFC 8986 §5.4: it is only in the DA);
        one SID with an HMAC TLV keeps its whole SRH (as Linux's reduced
        encapsulation does: measured on the sr6 kernel)."""
        if mode == "reduced" and not (nsegs == 1 and hmac):
            return nsegs - 1
        return nsegs

    def has_srh(self, nsegs: int, mode: str, hmac: bool = False) -> bool:
        """Reduced mode with one SID and nothing else to carry has no SRH at all."""
        return self.srh_segments(nsegs, mode, hmac) > 0 or hmac

    def overhead(self, nsegs: int, mode: str = "full", hmac: bool = False) -> int:
        """Bytes the encapsulation adds to a frame, Ethernet header included
        (the device's MTU is the underlay's less this)."""
        srh = 0
        if self.has_srh(nsegs, mode, hmac):
            srh = SRH_FIXED + 16 * self.srh_segments(nsegs, mode, hmac) + (HMAC_TLV_LEN if hmac else 0)
        return IPV6_HLEN + srh + ETH_HLEN

    def default_mtu(self, nsegs: int, mode: str = "full", hmac: bool = False) -> int:
        """The MTU the device gets over a 1500-byte underlay, as this
        revision computes it (srl2's wraps below MIN_MTU: CONFORMANCE S3)."""
        mtu = UNDERLAY_MTU - self.overhead(nsegs, mode, hmac)
        if mtu < MIN_MTU:
            return MIN_MTU if self.mtu_clamped else mtu % 2**32
        return mtu

    def max_mtu(self, nsegs: int, mode: str = "full", hmac: bool = False) -> int:
        return MAX_MTU_BASE - self.overhead(nsegs, mode, hmac)

    # ---- what a topology may ask of it ---------------------------------

    def refuses(self, *, mode: Optional[str] = None, table: Optional[int] = None,
                hmac: Optional[int] = None) -> Optional[str]:
        """Why this revision cannot make such a device (None: it can)."""
        if mode is not None and mode not in self.modes:
            return f"revision {self.name} has no encapsulation mode {mode!r} (it has {', '.join(self.modes)})"
        if table is not None and not self.table:
            return f"revision {self.name} has no post-encapsulation table"
        if hmac is not None and not self.hmac:
            return f"revision {self.name} has no HMAC"
        return None

    def expectation(self, id_: str) -> Optional[Differs]:
        return next((d for d in self.differs if d.id == id_), None)


def all_revisions() -> tuple[Revision, ...]:
    """Oldest first."""
    from testbed.revisions import sr6, srl2

    return (srl2.REVISION, sr6.REVISION)


NAMES = ("srl2", "sr6")
CHOICES = ("auto",) + NAMES


def get(name: str) -> Revision:
    for r in all_revisions():
        if r.name == name:
            return r
    raise KeyError(f"no revision {name!r} (known: {', '.join(NAMES)})")


def having(feature: str) -> list[str]:
    """The revisions that have `feature` (a Revision field that is true)."""
    return [r.name for r in all_revisions() if getattr(r, feature)]


def asked(override: Optional[str] = None) -> str:
    """The revision asked for: --revision, else TESTBED_REVISION, else auto."""
    return override or os.environ.get(ENV) or "auto"


def resolve(choice: str, kernel_has: list[str]) -> Revision:
    """auto -> the newest revision the kernel has, else the first one (the
    reference models it); a name -> that revision."""
    if choice == "auto":
        found = [r for r in all_revisions() if r.name in kernel_has]
        return found[-1] if found else all_revisions()[0]
    return get(choice)


__all__ = ["Revision", "Counters", "Differs", "all_revisions", "get", "having", "asked", "resolve",
           "NAMES", "CHOICES", "ENV", "MIN_MTU", "HMAC_TLV_LEN"]
