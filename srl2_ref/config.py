"""The reference process's configuration (JSON), validated into dataclasses.

    {"revision": "srl2",
     "devices": [{"name": "srl2-0", "segs": ["fcff:2::d20"], "mtu": null, "mac": null,
                  "mode": null, "table": null, "hmac": null}],
     "sids": [{"sid": "fcff:1::d20/128", "action": "End.DT2U", "l2dev": "srl2-0",
               "oif": null, "nh6": null, "table": 90, "count": true}],
     "hmac_keys": {"1": {"secret": "...", "algorithm": "sha256"}},
     "control": "/run/testbed/LAB/NODE.sock",
     "icmp_errors": false,
     "faults": []}

`revision` is the series' revision the devices are (testbed.revisions;
default srl2, so older configurations mean what they meant).  A device's
mode (full, reduced; default the revision's first), table and hmac (a key
id of `hmac_keys`, the node's `ip sr hmac` keys) exist only in revisions
that have them: asking another revision for them is an error naming it.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from testbed import revisions
from testbed.revisions import Revision
from testbed.srv6.srh import MAX_SEGMENTS

from . import hmac

ACTIONS = ("End", "End.X", "End.DX2", "End.DT2U")
FAULTS = ("sid_travel_order", "copy_inner_hoplimit", "no_loop_check", "no_decap_sl_check",
          # sr6's features broken on purpose (tests/test_suite_catches_faults.py):
          "reduced_repeats_first_sid",  # reduced mode puts the first SID in the SRH too
          "table_ignored",              # the route to the first SID is looked up in main, not the table
          "hmac_wrong_bytes")           # the HMAC over a text without the source address
MIN_MTU = revisions.MIN_MTU
U32 = 2**32
DEFAULT_TUN = "srl2ref-sid"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class ConfigError(ValueError):
    pass


@dataclass
class DeviceConf:
    name: str
    segs: list[ipaddress.IPv6Address]
    mtu: Optional[int] = None
    mac: Optional[str] = None
    mode: str = "full"
    table: Optional[int] = None  # the post-encapsulation FIB table (None: the netns's routing)
    hmac: Optional[int] = None  # HMAC key id: an HMAC TLV in the SRH
    default_mtu: int = 0  # what the revision computes (set by parse)

    @property
    def effective_mtu(self) -> int:
        return self.mtu if self.mtu is not None else self.default_mtu


def default_mtu(rev: Revision, nsegs: int, mode: str, with_hmac: bool) -> int:
    """The device's MTU when none is given: 1500 less the revision's
    overhead.  Below the minimum (from 86 SIDs on, negative from 90, -594
    for 127) it is clamped to 68: the device still works over a larger
    underlay.  sr6 does so itself; srl2's patch wraps the unsigned MTU
    instead (CONFORMANCE S3, a finding), and the reference models what the
    catalogue expects of it, the clamp."""
    if rev.mtu_clamped:
        return rev.default_mtu(nsegs, mode, with_hmac)
    return max(MIN_MTU, revisions.UNDERLAY_MTU - rev.overhead(nsegs, mode, with_hmac))


@dataclass
class SidConf:
    sid: ipaddress.IPv6Network
    action: str
    l2dev: Optional[str] = None
    oif: Optional[str] = None
    nh6: Optional[ipaddress.IPv6Address] = None
    table: Optional[int] = None
    count: bool = False

    @property
    def key(self) -> str:
        """The SID as counters name it: the address for a /128, else the prefix."""
        return str(self.sid.network_address) if self.sid.prefixlen == 128 else str(self.sid)


@dataclass
class Config:
    devices: list[DeviceConf] = field(default_factory=list)
    sids: list[SidConf] = field(default_factory=list)
    control: Optional[str] = None
    icmp_errors: bool = False
    faults: frozenset[str] = frozenset()
    tun: str = DEFAULT_TUN
    revision: Revision = field(default_factory=lambda: revisions.get("srl2"))
    hmac_keys: dict[int, hmac.Key] = field(default_factory=dict)


def _ifname(v, where: str) -> str:
    if not isinstance(v, str) or not 0 < len(v.encode()) < 16 or "/" in v or any(c.isspace() for c in v):
        raise ConfigError(f"{where}: {v!r} is not an interface name (1..15 characters)")
    return v


def _v6(v, where: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(v)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {v!r} is not an IPv6 address") from None


def parse(data: dict) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("config: top level must be an object")
    unknown = set(data) - {"devices", "sids", "control", "icmp_errors", "faults", "tun", "revision", "hmac_keys"}
    if unknown:
        raise ConfigError(f"config: unknown keys {sorted(unknown)}")
    cfg = Config(control=data.get("control"), icmp_errors=bool(data.get("icmp_errors", False)))
    if cfg.control is not None and not isinstance(cfg.control, str):
        raise ConfigError("control: must be a path")
    cfg.tun = _ifname(data.get("tun", DEFAULT_TUN), "tun")
    faults = data.get("faults") or []
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        raise ConfigError(f"faults: unknown {bad}; known: {list(FAULTS)}")
    cfg.faults = frozenset(faults)
    name = data.get("revision", "srl2")
    if name not in revisions.NAMES:
        raise ConfigError(f"revision: {name!r}, expected one of {list(revisions.NAMES)}")
    cfg.revision = rev = revisions.get(name)
    cfg.hmac_keys = _hmac_keys(data.get("hmac_keys") or {})
    names = set()
    for i, d in enumerate(data.get("devices") or []):
        w = f"devices[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(f"{w}: must be an object")
        name = _ifname(d.get("name"), f"{w}.name")
        if name in names or name == cfg.tun:
            raise ConfigError(f"{w}.name: {name} given twice")
        names.add(name)
        segs = d.get("segs")
        if not isinstance(segs, list) or not segs:
            raise ConfigError(f"{w}.segs: a non-empty list of IPv6 addresses is required")
        if len(segs) > MAX_SEGMENTS:
            raise ConfigError(f"{w}.segs: {len(segs)} segments, at most {MAX_SEGMENTS}")
        segs = [_v6(s, f"{w}.segs[{j}]") for j, s in enumerate(segs)]
        mode, table, keyid = _features(rev, d, w)
        # An MTU given at creation is applied (sr6 does; srl2's patch
        # overwrites it, CONFORMANCE N4, a finding), within the device's range.
        mtu = d.get("mtu")
        if mtu is not None:
            top = rev.max_mtu(len(segs), mode, keyid is not None)
            if not isinstance(mtu, int) or not MIN_MTU <= mtu <= top:
                raise ConfigError(f"{w}.mtu: {mtu!r} outside {MIN_MTU}..{top}")
        mac = d.get("mac")
        if mac is not None:
            if not isinstance(mac, str) or not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise ConfigError(f"{w}.mac: {mac!r} is not a unicast MAC address")
        cfg.devices.append(DeviceConf(name, segs, mtu, mac, mode, table, keyid,
                                      default_mtu(rev, len(segs), mode, keyid is not None)))
    seen = set()
    for i, s in enumerate(data.get("sids") or []):
        w = f"sids[{i}]"
        if not isinstance(s, dict):
            raise ConfigError(f"{w}: must be an object")
        try:
            sid = ipaddress.IPv6Network(s.get("sid"))
        except (ValueError, TypeError):
            raise ConfigError(f"{w}.sid: {s.get('sid')!r} is not an IPv6 address or prefix") from None
        action = s.get("action")
        if action not in ACTIONS:
            raise ConfigError(f"{w}.action: {action!r}, expected one of {list(ACTIONS)}")
        table = s.get("table")
        if table is not None and (not isinstance(table, int) or not 0 < table < 2**32):
            raise ConfigError(f"{w}.table: {table!r} is not a table number")
        sc = SidConf(sid, action, table=table, count=bool(s.get("count", False)))
        if action == "End.DT2U":
            l2dev = s.get("l2dev")
            if not l2dev:
                raise ConfigError(f"{w}: End.DT2U needs l2dev")
            if l2dev not in names:
                raise ConfigError(f"{w}.l2dev: {l2dev!r} is not an srl2 device of this node "
                                  "(the reference datapath can only deliver into its own devices)")
            sc.l2dev = l2dev
        if action in ("End.DX2", "End.X"):
            oif = s.get("oif")
            if not oif:
                raise ConfigError(f"{w}: {action} needs oif")
            sc.oif = _ifname(oif, f"{w}.oif")
        if action == "End.X":
            if s.get("nh6") is None:
                raise ConfigError(f"{w}: End.X needs nh6")
            sc.nh6 = _v6(s.get("nh6"), f"{w}.nh6")
        if (sc.sid, sc.table) in seen:
            raise ConfigError(f"{w}.sid: {sc.sid} given twice in table {sc.table}")
        seen.add((sc.sid, sc.table))
        cfg.sids.append(sc)
    return cfg


def _u32(v, where: str, low: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v < U32:
        raise ConfigError(f"{where}: {v!r} is not a number in {low}..{U32 - 1}")
    return v


def _features(rev: Revision, d: dict, w: str) -> tuple[str, Optional[int], Optional[int]]:
    """A device's mode, table and HMAC key id, checked against the revision."""
    mode, table, keyid = d.get("mode"), d.get("table"), d.get("hmac")
    for key, asked in (("mode", {"mode": mode}), ("table", {"table": table}), ("hmac", {"hmac": keyid})):
        why = rev.refuses(**asked)
        if why:
            raise ConfigError(f"{w}.{key}: {why}")
    if table is not None:
        table = _u32(table, f"{w}.table", 1)  # sr6: "Invalid FIB table ID" for 0
    if keyid is not None:
        keyid = _u32(keyid, f"{w}.hmac", 1)
    return mode or rev.modes[0], table, keyid


def _hmac_keys(keys) -> dict[int, hmac.Key]:
    """{"KEYID": {"secret": "...", "algorithm": "sha256"}}: the node's `ip sr
    hmac` keys (a key id a device names but the node lacks is not an error
    here: Linux then fails every encapsulation, and so does the reference)."""
    if not isinstance(keys, dict):
        raise ConfigError("hmac_keys: must be an object of key id -> {secret, algorithm}")
    out = {}
    for k, v in keys.items():
        w = f"hmac_keys[{k!r}]"
        if not isinstance(k, str) or not k.isdigit():
            raise ConfigError(f"{w}: the key id must be a decimal number")
        keyid = _u32(int(k), w, 1)
        if not isinstance(v, dict) or set(v) - {"secret", "algorithm"}:
            raise ConfigError(f"{w}: must be an object with secret and algorithm")
        secret, algorithm = v.get("secret"), v.get("algorithm", "sha256")
        if not isinstance(secret, str) or not 0 < len(secret.encode()) <= hmac.SECRET_MAX:
            raise ConfigError(f"{w}.secret: 1..{hmac.SECRET_MAX} bytes (an empty secret deletes a key)")
        if algorithm not in hmac.ALGORITHMS:
            raise ConfigError(f"{w}.algorithm: {algorithm!r}, expected one of {sorted(hmac.ALGORITHMS)}")
        out[keyid] = hmac.Key(keyid, secret.encode(), algorithm)
    return out


def load(path: str) -> Config:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    return parse(data)
