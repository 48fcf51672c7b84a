"""The small valid lab every fuzz step runs in, built by the lab engine
(testbed.lab) from the topology below, and what the reproducer needs to know
of it (docs/fuzz.md "The lab").

    hs:veth0 ---- veth-hs:rt:veth-up ==== veth-rt:up
                  br0 = veth-hs           fc00:1::1/64 ... fc00:1::2/64

`rt` is the router under test: the fuzzed srl2 devices and SIDs live there;
`hs` sends frames into br0 (to be encapsulated by srl2 bridge ports); `up`
sends SRv6 packets to rt's SIDs (fc00:f::K).  Fixed MACs and MTU 9500 links,
so packets are the same bytes on every replay and jumbo frames fit.  For a
revision with a post-encapsulation table, rt's table 100 (mix.TABLE_ROUTED)
also routes the devices' segments to `up`."""
from __future__ import annotations

from testbed.fuzz.frames import mac

RT_UP_MAC = mac(0x11)   # rt:veth-up
UP_MAC = mac(0x12)      # up:veth-rt
HS_MAC = mac(0x13)      # hs:veth0
LINK_MTU = 9500
ROUTE = '- {dst: "fc00:e::/32", via: "fc00:1::2"}'  # the devices' segments are behind `up`


def _fmt(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


TOPOLOGY = f"""
name: fuzz
nodes:
  hs:
    interfaces:
      veth0: {{mac: "{_fmt(HS_MAC)}"}}
  rt:
    kind: router
    interfaces:
      veth-up: {{addresses: ["fc00:1::1/64"], mac: "{_fmt(RT_UP_MAC)}"}}
    bridges:
      br0: {{ports: [veth-hs]}}
    routes:
      {ROUTE}
  up:
    kind: router
    interfaces:
      veth-rt: {{addresses: ["fc00:1::2/64"], mac: "{_fmt(UP_MAC)}"}}
links:
  - {{endpoints: [hs:veth0, rt:veth-hs], mtu: {LINK_MTU}}}
  - {{endpoints: [rt:veth-up, up:veth-rt], mtu: {LINK_MTU}}}
"""

# Interfaces of the lab itself, per node: never deleted by a step, and what
# the leak check expects to find after an input's teardown.
BASE_LINKS = {"hs": {"lo", "veth0"}, "rt": {"lo", "veth-hs", "veth-up", "br0"}, "up": {"lo", "veth-rt"}}


def topology(revision=None):
    """The lab for `revision` (testbed.revisions.Revision; None: the first's)."""
    from testbed import topology
    from testbed.fuzz.mix import TABLE_ROUTED

    text = TOPOLOGY
    if revision is not None and revision.table:
        table_route = '- {dst: "fc00:e::/32", via: "fc00:1::2", dev: veth-up, table: %d}' % TABLE_ROUTED
        text = text.replace(ROUTE, ROUTE + "\n      " + table_route)
    return topology.loads(text, "<fuzz lab>")


def mac_text(b: bytes) -> str:
    return _fmt(b)


__all__ = ["TOPOLOGY", "BASE_LINKS", "RT_UP_MAC", "UP_MAC", "HS_MAC", "LINK_MTU", "topology", "mac_text"]
