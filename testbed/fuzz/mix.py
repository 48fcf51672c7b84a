"""Which steps the fuzzer draws for a revision of the series, and the fixed
objects the second revision's steps aim at (docs/fuzz.md "Revisions").

The first revision's mix (srl2) is frozen: the same steps with the same
weights, drawn in the same order, so a seed finds what it found before
(CI's fuzz-smoke relies on seed 2 meeting the wrapped-MTU crash at its 7th
input).  A later revision gets the same steps plus the ones its features
call for, and the parameters they add (mode, table, HMAC key): a step or a
parameter is drawn only for a revision that has what it exercises.  Pure:
nothing here touches the kernel."""
from __future__ import annotations

from testbed import revisions
from testbed.revisions import Revision

# The first revision's weights (how often each step is drawn): objects
# must be made before anything can happen to them, so creation and packets
# come more often than the rest.  (Hypothesis draws among rules uniformly;
# one rule drawing from this list sets the mix.)
WEIGHTS = {"srl2_add": 4, "srl2_change": 1, "link": 2, "ipv6": 1, "master": 1, "move": 1, "delete": 1,
           "sid_add": 2, "sid_del": 1, "srv6": 3, "l2": 2, "delete_flowing": 1}

# Steps of later revisions: op -> (the Revision feature it exercises, weight).
#   change_flowing: changelink of SRH and mode while frames flow through the device
#   hmac_key:       `ip sr hmac set` / delete of a key devices name, maybe under traffic
#   vrf_add:        a VRF, to be the master of a device or of br0 (the route to
#                   the first SID goes through the master chain's VRF when no
#                   table is set: the revision's post-encapsulation routing)
EXTRA = {"change_flowing": ("changelink", 1), "hmac_key": ("hmac", 1), "vrf_add": ("table", 1)}

VRF = "fzvrf"            # the one VRF vrf_add makes
TABLE_ROUTED = 100       # a table of the sr6 lab with a route to the devices' segments
TABLE_MISSING = 200      # a table nothing makes: sr6 treats it as a blackhole
RT_TABLE_MAIN = 254
KEY_IDS = (1, 2)         # HMAC key ids hmac_key sets and deletes
KEY_MISSING = 9          # a key id devices may name and no step ever sets
LAB_PORTS = ("veth-hs", "br0")  # lab links the master step may move (veth-hs: an End.DT2U l2dev)
MODE_ATTR = "ENCAP_MODE"  # Revision.attrs key of the mode attribute (its IFLA_* name: IFLA_<KIND>_ENCAP_MODE)


def frozen(rev: Revision) -> bool:
    """The first revision: its steps are drawn exactly as they always were."""
    return rev.name == revisions.NAMES[0]


def has_modes(rev: Revision) -> bool:
    """The request carries an encapsulation mode (and must, at creation)."""
    return MODE_ATTR in rev.attrs


def ops_for(rev: Revision, lacks: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The weighted list of ops `step` draws from, for `rev` on a target that
    `lacks` some (the reference: no surface for raw change requests, netns
    moves, VRFs).  For the first revision on the kernel: WEIGHTS as always."""
    weights = dict(WEIGHTS)
    if not frozen(rev):
        weights["master"] = 2  # it also moves lab ports and takes VRF masters
        weights.update({op: w for op, (feature, w) in EXTRA.items() if getattr(rev, feature)})
    return tuple(op for op, w in weights.items() if op not in lacks for _ in range(w))


# Hypothesis favours the ends of a sampled_from list (and the first most):
# the refused values sit inside the lists, the ends are the common cases.


def mode_choices(rev: Revision) -> tuple:
    """Modes a request may carry; None: none at all (refused at creation:
    "Encapsulation mode is required"; a change keeps the device's)."""
    return (*rev.modes, None, *rev.modes, *rev.modes)


def table_choices() -> tuple:
    """None: no table (the netns's routing, or the master's VRF); a table
    with the route, one that does not exist, main, and 0 (refused)."""
    return (None, TABLE_ROUTED, None, 0, TABLE_MISSING, RT_TABLE_MAIN, None, TABLE_ROUTED, None)


def hmac_choices() -> tuple:
    """None: no HMAC TLV; a key hmac_key may have set; one never set."""
    return (None, KEY_IDS[0], None, KEY_MISSING, KEY_IDS[1], None)


def vrf_tables() -> tuple:
    """The VRF's table: the one with the route, a new one, 0 (refused)."""
    return (TABLE_ROUTED, TABLE_MISSING, 0, TABLE_ROUTED)


def master_choices(vrf: bool) -> tuple:
    return ("br0", VRF, None) if vrf else ("br0", None)


__all__ = ["WEIGHTS", "EXTRA", "VRF", "TABLE_ROUTED", "TABLE_MISSING", "KEY_IDS", "KEY_MISSING", "LAB_PORTS",
           "frozen", "has_modes", "ops_for", "mode_choices", "table_choices", "hmac_choices", "vrf_tables",
           "master_choices"]
