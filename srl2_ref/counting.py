"""Which counters of a device a frame it could not send moves, per cause
and revision (kernel names; CONFORMANCE L1, L2 and R).

testbed.revisions.Counters says it for a route back into the device
(`loop`), for no route at all (`no_route`, ENETUNREACH) and for a reject
route (`reject`: blackhole, unreachable, prohibit); a table that does not
exist counts as a reject route (measured on the sr6 kernel,
../shared/kernels/sr6-rfc-v2-6.12: tx_errors alone), for a failed
encapsulation (`encap_error`: an unknown HMAC key, an HMAC text too long)
and for a failed send (`send_error`)."""
from __future__ import annotations

from testbed.revisions import Revision

CAUSES = ("loop", "no_route", "reject", "encap_error", "send_error")


def drops(rev: Revision) -> dict[str, tuple[str, ...]]:
    """cause -> the counters one dropped frame moves."""
    return {cause: getattr(rev.counters, cause) for cause in CAUSES}
