"""The reference process's configuration (JSON), validated into dataclasses.

    {"devices": [{"name": "srl2-0", "segs": ["fcff:2::d20"], "mtu": null, "mac": null}],
     "sids": [{"sid": "fcff:1::d20/128", "action": "End.DT2U", "l2dev": "srl2-0",
               "oif": null, "nh6": null, "table": 90, "count": true}],
     "control": "/run/testbed/LAB/NODE.sock",
     "icmp_errors": false,
     "faults": []}
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from testbed.srv6.srh import MAX_SEGMENTS, max_mtu_for, mtu_for

ACTIONS = ("End", "End.X", "End.DX2", "End.DT2U")
FAULTS = ("sid_travel_order", "copy_inner_hoplimit", "no_loop_check", "no_decap_sl_check")
MIN_MTU = 68
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

    @property
    def effective_mtu(self) -> int:
        # 1500 - 40 - SRH - 14 is below the minimum MTU from 86 SIDs on and
        # negative from 90 (up to -594 for 127): the device still works over
        # a larger underlay, so its MTU is clamped to the minimum, never
        # negative or wrapped (CONFORMANCE S3; the RFC patch wraps it).
        return self.mtu if self.mtu is not None else max(MIN_MTU, mtu_for(len(self.segs)))


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
    unknown = set(data) - {"devices", "sids", "control", "icmp_errors", "faults", "tun"}
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
        mtu = d.get("mtu")
        if mtu is not None:
            top = max_mtu_for(len(segs))
            if not isinstance(mtu, int) or not MIN_MTU <= mtu <= top:
                raise ConfigError(f"{w}.mtu: {mtu!r} outside {MIN_MTU}..{top}")
        mac = d.get("mac")
        if mac is not None:
            if not isinstance(mac, str) or not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise ConfigError(f"{w}.mac: {mac!r} is not a unicast MAC address")
        cfg.devices.append(DeviceConf(name, segs, mtu, mac))
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


def load(path: str) -> Config:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    return parse(data)
