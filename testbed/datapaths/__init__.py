"""The two datapaths behind one interface (docs/catalogue.md, "The two datapaths").

A lab never branches on which datapath runs: it hands each node's srl2
devices and SIDs to `Datapath.start_node` and reads counters back by the
kernel's names.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from testbed.errors import TestbedError

if TYPE_CHECKING:  # pragma: no cover
    from testbed.linux import Netns
    from testbed.model import HmacKey, Sid, Srl2

# Features a datapath may provide; probe() reports the missing ones with a reason.
FEATURES = ("srl2", "End", "End.X", "End.DX2", "End.DT2U")

# What only the host's kernel provides, whichever datapath a lab runs on:
# a route-based `encap seg6` route is a kernel object in every lab.  The
# kernel probe reports it beside FEATURES; the reference datapath has no
# substitute for it.
ENCAP_SEG6 = "encap seg6"
# A VRF device (CONFIG_NET_VRF) is the kernel's on every datapath too: the
# reference models the post-encapsulation lookup in its table, it does not
# make the VRF.
VRF = "vrf"
HOST_FEATURES = (ENCAP_SEG6, VRF)

# Device counters, by the kernel's names (struct rtnl_link_stats64).
COUNTERS = (
    "rx_packets", "rx_bytes", "rx_errors", "rx_dropped",
    "tx_packets", "tx_bytes", "tx_errors", "tx_dropped",
    "tx_carrier_errors", "collisions",
)


@dataclass
class Probe:
    """What a datapath can do on this machine, and why not where it cannot."""

    datapath: str
    missing: dict[str, str] = field(default_factory=dict)  # feature -> reason

    def has(self, feature: str) -> bool:
        return feature not in self.missing

    def reason(self, features) -> str | None:
        """The first reason any of `features` is missing, or None."""
        for f in features:
            if f in self.missing:
                return f"{self.datapath} datapath: {self.missing[f]}"
        return None


class DatapathError(TestbedError):
    """A datapath could not do what the topology asked; `where` is the YAML
    place that asked for it (a model object's `where`)."""

    def __init__(self, message: str, where=None):
        super().__init__(message)
        self.where = where


class Datapath(abc.ABC):
    name: str
    why: str = ""  # why this datapath was chosen (set by datapaths.select.choose)

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Probe:
        """Detect support without side effects in the initial namespace."""

    @abc.abstractmethod
    def start_node(self, ns: "Netns", devices: list["Srl2"], sids: list["Sid"],
                   hmac_keys: Iterable["HmacKey"] = ()) -> None:
        """Create the node's srl2 devices (not yet bridged or up) and install
        its SIDs; `hmac_keys` are the node's `ip sr hmac` keys, set first.

        Called once per node, after links, bridges and addresses exist and
        before routes and rules are added.  Raises DatapathError."""

    def wait_ready(self) -> None:
        """Return once every node started by start_node() is ready (a
        datapath may start nodes in parallel).  Raises DatapathError."""

    @abc.abstractmethod
    def counters(self, ns: "Netns", ifname: str) -> dict[str, int]:
        """The srl2 device's counters by kernel name (all of COUNTERS)."""

    def sid_counters(self, ns: "Netns", sid: "Sid") -> dict[str, int] | None:
        """packets/bytes/errors of a SID with `count`, else None."""
        return None

    def describe(self, ns: "Netns") -> dict:
        """What `testbed status` shows of this node's datapath objects:
        {"srl2": {device: counters}}."""
        return {}

    def processes(self) -> list[int]:
        """PIDs this datapath started (recorded for stale reaping)."""
        return []

    def stop(self) -> None:
        """Tear down what it made that the namespaces' removal does not."""
