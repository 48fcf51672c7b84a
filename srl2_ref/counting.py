"""Which counters of a device a frame it could not send moves, per cause
and revision (kernel names; CONFORMANCE L1, L2 and R).

testbed.revisions.Counters says it for a route back into the device
(`loop`), for no route at all (`no_route`, ENETUNREACH) and for a reject
route (`reject`: blackhole, unreachable, prohibit); a table that does not
exist counts as a reject route (measured on the sr6 kernel,
../shared/kernels/sr6-rfc-v2-6.12: tx_errors alone).  Two causes are here
until Counters has fields for them (`encap_error`, `send_error`): a failed
encapsulation (sr6: HMAC key unknown, HMAC text too long; measured:
tx_errors) and a failed send (sr6: tx_errors + tx_aborted_errors,
CONFORMANCE R; srl2: tx_errors + tx_dropped, as the reference always
counted it)."""
from __future__ import annotations

from testbed.revisions import Revision

CAUSES = ("loop", "no_route", "reject", "encap_error", "send_error")

_NOT_IN_COUNTERS_YET: dict[str, dict[str, tuple[str, ...]]] = {
    "srl2": {"encap_error": ("tx_errors", "tx_dropped"),  # never: srl2 has no HMAC
             "send_error": ("tx_errors", "tx_dropped")},
    "sr6": {"encap_error": ("tx_errors",),
            "send_error": ("tx_errors", "tx_aborted_errors")},
}


def drops(rev: Revision) -> dict[str, tuple[str, ...]]:
    """cause -> the counters one dropped frame moves."""
    c = rev.counters
    out = {"loop": c.loop, "no_route": c.no_route, "reject": c.reject}
    for cause in ("encap_error", "send_error"):
        out[cause] = getattr(c, cause, None) or _NOT_IN_COUNTERS_YET[rev.name][cause]
    return out
