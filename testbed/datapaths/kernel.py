"""The kernel datapath: the series' L2 devices (srl2, sr6: the revision's
link kind, testbed.revisions) over rtnetlink, SIDs as seg6local routes.

Everything goes through pyroute2 plus the NLA definitions in testbed.srv6.nla; no
`ip` binary.  `probe()` finds out what this kernel supports by trying it in a
scratch network namespace (never in the initial one) and caches the answer in
the process and in a file keyed by kernel release and boot id.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Iterable, Optional

from pyroute2 import NetlinkError

from testbed import linux, revisions, state
from testbed.srv6 import nla, seg6
from testbed.srv6.seg6encap import seg6_route_encap
from testbed.kerror import errno_name, kernel_text
from testbed.datapaths import COUNTERS, ENCAP_SEG6, FEATURES, HOST_FEATURES, VRF, Datapath, DatapathError, Probe

if TYPE_CHECKING:  # pragma: no cover
    from testbed.linux import Netns
    from testbed.model import HmacKey, Sid, Srl2

NAME = "kernel"
SRL2_BUILD_HINT = (
    "build a kernel with the srl2 series (\"seg6: SRv6 L2 VPN with End.DT2U and srl2 device\") "
    "applied and srl2 enabled"
)
SEG6_OPTION = "CONFIG_IPV6_SEG6_LWTUNNEL"
SEG6LOCAL_BUILD_HINT = f"needs {SEG6_OPTION}"
# What to do on a host without it: the lab (or test) runs in a VM of a
# kernel that has it.
SEG6_VM_HINT = ("run it on a kernel built with it, e.g. in a VM: "
                "testbed vm --kernel IMAGE -- CMD (README, \"Testing a kernel\")")
# The device of each revision, probed one by one: "srl2" in FEATURES is the
# device of the revision a run asks for (testbed.revisions.asked()).
DEVICE_FEATURES = tuple(f"device {name}" for name in revisions.NAMES)
ALL_FEATURES = FEATURES + HOST_FEATURES + DEVICE_FEATURES
BUILD_HINTS = {
    "srl2": SRL2_BUILD_HINT,
    "sr6": "build a kernel with the series' second revision (the sr6 device) applied and CONFIG_IPV6_SR6 enabled",
}

# Probe cache: <state dir>/cache/probe-<release>.json.  Not directly in the
# state dir, where every *.json is a lab record (testbed.state).
CACHE_SCHEMA = 5  # bump when reasons or the probe change
CACHE_ENV = "TESTBED_PROBE_CACHE"  # "0": neither read nor write the file cache

# Addresses used inside the scratch namespace only.
_PROBE_SID = "fc00:7b::{}"
_PROBE_NH6 = "fc00:7b::ff"
_PROBE_SEG = "fc00:7b::a"
_PROBE_DST = "fc00:7c::/64"
_PROBE_VRF_TABLE = 4242


# --------------------------------------------------------------------------
# error text
# --------------------------------------------------------------------------

def _has_extack(e: NetlinkError) -> bool:
    code = abs(e.code) if isinstance(e.code, int) else 0
    return len(e.args) > 1 and bool(e.args[1]) and e.args[1] != os.strerror(code)


def device_reason(rev: "revisions.Revision", e: NetlinkError, release: str) -> str:
    """Why a device of revision `rev` could not be made, for a probe or an error."""
    code = abs(e.code) if isinstance(e.code, int) else 0
    if code == errno.EOPNOTSUPP:
        return (f"kernel {release} has no {rev.kind} link kind (rtnetlink: {kernel_text(e)}); "
                f"{BUILD_HINTS[rev.name]}")
    return f"kernel {release} refused an {rev.kind} device with a valid one-SID SRH: {kernel_text(e)}"


def srl2_reason(e: NetlinkError, release: str) -> str:
    return device_reason(revisions.get("srl2"), e, release)


def kernel_revisions(probe: Probe) -> list[str]:
    """The revisions whose device this kernel makes (from a raw probe)."""
    return [name for name in revisions.NAMES if f"device {name}" not in probe.missing]


def for_revision(raw: Probe, asked: str) -> tuple[Probe, "revisions.Revision"]:
    """The probe as a run asking for revision `asked` sees it: feature
    "srl2" is the device of the revision it resolves to."""
    has = kernel_revisions(raw)
    rev = revisions.resolve(asked, has)
    missing = dict(raw.missing)
    if rev.name in has:
        missing.pop("srl2", None)
    else:
        why = raw.missing.get(f"device {rev.name}", f"kernel {_release()} has no {rev.kind} link kind")
        if has:
            why += f" (it has {', '.join(has)}: --revision {has[-1]})"
        missing["srl2"] = why
    return Probe(raw.datapath, missing), rev


def encap_reason(e: NetlinkError, release: str) -> str:
    """Why a route-based `encap seg6` route could not be made."""
    code = abs(e.code) if isinstance(e.code, int) else 0
    if code == errno.EOPNOTSUPP:
        return (f"kernel {release} has no seg6 encapsulation routes "
                f"(encap seg6 rejected: {kernel_text(e)}); {SEG6LOCAL_BUILD_HINT}; {SEG6_VM_HINT}")
    return f"kernel {release} refused a valid encap seg6 route: {kernel_text(e)}"


VRF_OPTION = "CONFIG_NET_VRF"


def vrf_reason(e: NetlinkError, release: str) -> str:
    """Why a VRF device could not be made."""
    code = abs(e.code) if isinstance(e.code, int) else 0
    if code == errno.EOPNOTSUPP:
        return (f"kernel {release} has no VRF devices (rtnetlink: {kernel_text(e)}); needs {VRF_OPTION}; "
                f"{SEG6_VM_HINT}")
    return f"kernel {release} refused a valid VRF device: {kernel_text(e)}"


def action_reason(action: str, e: NetlinkError, release: str) -> str:
    code = abs(e.code) if isinstance(e.code, int) else 0
    number = seg6.ACTIONS[action]
    # EOPNOTSUPP is the lwtunnel core's answer to an unknown encap type: no
    # seg6local at all, whichever action asked (an unknown action is EINVAL).
    if code == errno.EOPNOTSUPP:
        return (f"kernel {release} has no seg6local routes, so no {action} "
                f"(encap seg6local rejected: {kernel_text(e)}); {SEG6LOCAL_BUILD_HINT}; {SEG6_VM_HINT}")
    what = f"kernel {release} has no {action} (seg6local action {number} rejected: {kernel_text(e)})"
    if action == "End.DT2U":
        what += f"; {SRL2_BUILD_HINT}"
    return what


# --------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------

def _release() -> str:
    return os.uname().release


def cache_path(release: Optional[str] = None) -> str:
    return os.path.join(state.STATE_DIR, "cache", f"probe-{release or _release()}.json")


def _cache_key() -> dict:
    # The srl2 series' numbers are part of the key: renumbering End.DT2U in
    # testbed.srv6.seg6 must not reuse an answer about the old number.
    return {
        "schema": CACHE_SCHEMA,
        "release": _release(),
        "boot_id": linux.boot_id(),
        "end_dt2u": seg6.SEG6_LOCAL_ACTION_END_DT2U,
        "l2dev": seg6.SEG6_LOCAL_L2DEV,
        "ifla_srl2_srh": seg6.IFLA_SRL2_SRH,
        "revisions": {r.name: {"kind": r.kind, **r.attrs} for r in revisions.all_revisions()},
    }


def _read_cache(key: dict) -> Optional[Probe]:
    try:
        with open(cache_path(key["release"])) as f:
            data = json.load(f)
        if data.get("key") != key:
            return None
        missing = data["probe"]["missing"]
        if not isinstance(missing, dict) or not all(isinstance(v, str) for v in missing.values()):
            return None
        return Probe(NAME, dict(missing))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(key: dict, probe: Probe) -> None:
    path = cache_path(key["release"])
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump({"key": key, "probe": asdict(probe)}, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def probe_kernel() -> Probe:
    """Try every feature in a scratch netns (one without a name: it goes
    with its socket, however this process ends); no cache.  Needs root."""
    from pyroute2.iproute.linux import IPRoute

    release = _release()
    missing: dict[str, str] = {}
    try:
        sock = linux.scratch_rtnetlink()
    except OSError as e:
        why = f"cannot create a scratch network namespace to probe the kernel: {e}"
        return Probe(NAME, {f: why for f in ALL_FEATURES})
    ipr = IPRoute(fileno=sock.detach(), ext_ack=True)
    try:
        ipr.link("set", index=1, state="up")  # lo: seg6local routes need an up device

        # Each revision's device with a valid one-SID SRH (its default mode).
        from testbed.srv6.srh import encode_srh

        for rev in revisions.all_revisions():
            try:
                nla.add_l2(ipr, rev, f"tbprobe-{rev.name}", encode_srh([_PROBE_SEG]))
            except NetlinkError as e:
                missing[f"device {rev.name}"] = device_reason(rev, e, release)

        # Route-based encapsulation: a route through lo with a one-SID SRH.
        try:
            ipr.route("add", dst=_PROBE_DST, oif=1,
                      encap=seg6_route_encap("encap", [_PROBE_SEG]))
        except NetlinkError as e:
            missing[ENCAP_SEG6] = encap_reason(e, release)

        # A VRF device (what a topology's `vrfs:` make).
        try:
            ipr.link("add", ifname="tbp-vrf", kind="vrf", vrf_table=_PROBE_VRF_TABLE)
        except NetlinkError as e:
            missing[VRF] = vrf_reason(e, release)

        # A bridge with a veth port: the port is End.DT2U's l2dev, the
        # other end End.DX2's oif.
        try:
            ipr.link("add", ifname="tbp-br", kind="bridge")
            ipr.link("add", ifname="tbp-a", kind="veth", peer="tbp-b")
            br, a, b = (ipr.link_lookup(ifname=n)[0] for n in ("tbp-br", "tbp-a", "tbp-b"))
            ipr.link("set", index=a, master=br)
            for index in (br, a, b):
                ipr.link("set", index=index, state="up")
        except NetlinkError as e:
            br = a = b = None
            setup_error = f"cannot probe: bridge/veth setup in the scratch netns failed: {kernel_text(e)}"

        tries: dict[str, dict[str, Any]] = {
            "End": dict(dev=1),
            "End.X": dict(dev=1, nh6=_PROBE_NH6),
            "End.DX2": dict(dev=b, oif=b),
            "End.DT2U": dict(dev=a, l2dev=a),
        }
        for i, (action, kw) in enumerate(tries.items(), start=1):
            if kw["dev"] is None:
                missing[action] = setup_error
                continue
            try:
                nla.add_seg6local(ipr, _PROBE_SID.format(i), action, **kw)
            except NetlinkError as e:
                missing[action] = action_reason(action, e, release)
    except NetlinkError as e:  # lo up failed: nothing can be told
        why = f"cannot probe the kernel: {kernel_text(e)}"
        for f in ALL_FEATURES:
            missing.setdefault(f, why)
    finally:
        ipr.close()
    if all(f in missing for f in DEVICE_FEATURES):
        missing["srl2"] = missing["device srl2"]  # the raw probe: no device of any revision
    return Probe(NAME, {f: missing[f] for f in ALL_FEATURES if f in missing})


# --------------------------------------------------------------------------
# the datapath
# --------------------------------------------------------------------------

class KernelDatapath(Datapath):
    name = NAME

    _probe: Optional[Probe] = None  # per process

    def __init__(self, revision: Optional["revisions.Revision"] = None):
        self.revision = revision or self.revision_of()

    @classmethod
    def probe(cls, refresh: bool = False, revision: Optional[str] = None) -> Probe:
        """What this kernel supports, for a run asking for `revision`
        (default: revisions.asked(), i.e. --revision / TESTBED_REVISION /
        auto).  Cached in the process and, as root, in cache_path() keyed by
        kernel release and boot id (TESTBED_PROBE_CACHE=0 bypasses the file;
        refresh=True re-probes and rewrites it)."""
        return for_revision(cls._raw(refresh), revisions.asked(revision))[0]

    @classmethod
    def revision_of(cls, revision: Optional[str] = None) -> "revisions.Revision":
        """The revision a run asking for `revision` gets on this kernel."""
        return for_revision(cls._raw(False), revisions.asked(revision))[1]

    @classmethod
    def _raw(cls, refresh: bool) -> Probe:
        if cls._probe is None or refresh:
            cls._probe = cls._probe_uncached(refresh)
        return Probe(cls._probe.datapath, dict(cls._probe.missing))

    @classmethod
    def _probe_uncached(cls, refresh: bool) -> Probe:
        not_root = linux.is_root_capable()
        if not_root:
            return Probe(NAME, {f: not_root for f in ALL_FEATURES})
        use_file = os.environ.get(CACHE_ENV, "1") != "0"
        key = _cache_key()
        if use_file and not refresh:
            cached = _read_cache(key)
            if cached is not None:
                return cached
        result = probe_kernel()
        if use_file:
            _write_cache(key, result)
        return result

    # ---- start ------------------------------------------------------------

    def start_node(self, ns: "Netns", devices: list["Srl2"], sids: list["Sid"],
                   hmac_keys: Iterable["HmacKey"] = ()) -> None:
        ipr = ns.ipr
        self._hmac_keys(ns, list(hmac_keys))
        for dev in devices:
            self._add_srl2(ipr, dev)
        for sid in sids:
            self._add_sid(ipr, sid)

    @staticmethod
    def _hmac_keys(ns: "Netns", keys: list["HmacKey"]) -> None:
        """`ip sr hmac set` in the node, before a device whose SRH names a key."""
        if not keys:
            return
        import socket

        from testbed.srv6.seg6genl import NETLINK_GENERIC, Seg6Genl

        genl = Seg6Genl(ns.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_GENERIC))
        try:
            for key in keys:
                try:
                    genl.set_hmac(key.keyid, key.secret.encode(), key.algorithm)
                except NetlinkError as e:
                    raise DatapathError(f"hmac key {key.keyid}: kernel said: {kernel_text(e)}",
                                        where=key.where) from None
        finally:
            genl.close()

    def _add_srl2(self, ipr, dev: "Srl2") -> None:
        from testbed.srv6.srh import encode_srh

        try:
            srh = encode_srh(dev.segs, hmac_keyid=dev.hmac)
        except ValueError as e:
            raise DatapathError(f"srl2 {dev.name}: {e}", where=dev.where) from None
        try:
            nla.add_l2(ipr, self.revision, dev.name, srh, mode=dev.mode, table=dev.table,
                       mtu=dev.mtu, address=dev.mac)
        except NetlinkError as e:
            code = abs(e.code) if isinstance(e.code, int) else 0
            if code == errno.EOPNOTSUPP and not self.probe(revision=self.revision.name).has("srl2"):
                msg = f"srl2 {dev.name}: {self.name} datapath: {device_reason(self.revision, e, _release())}"
            else:
                msg = f"srl2 {dev.name}: {kernel_text(e)}"
            raise DatapathError(msg, where=dev.where) from None

    def _add_sid(self, ipr, sid: "Sid") -> None:
        what = f"SID {sid.sid} ({sid.action})"

        def index(role: str, ifname: Optional[str]) -> Optional[int]:
            if ifname is None:
                return None
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                raise DatapathError(f"{what}: {role} {ifname!r}: no such interface in this node",
                                    where=sid.where)
            return found[0]

        if sid.action == "End.X" and sid.nh6 is None:
            raise DatapathError(f"{what}: End.X needs nh6", where=sid.where)
        if sid.action == "End.DX2" and sid.oif is None:
            raise DatapathError(f"{what}: End.DX2 needs oif", where=sid.where)
        if sid.action == "End.DT2U" and sid.l2dev is None:
            raise DatapathError(f"{what}: End.DT2U needs l2dev", where=sid.where)
        oif = index("oif", sid.oif if sid.action == "End.DX2" else None)
        l2dev = index("l2dev", sid.l2dev if sid.action == "End.DT2U" else None)
        devname = sid.dev or (sid.oif if sid.action == "End.DX2" else
                              sid.l2dev if sid.action == "End.DT2U" else "lo")
        dev = index("dev", devname)
        assert dev is not None  # devname is never None: End.DX2's oif and End.DT2U's l2dev are checked above
        self._ensure_up(ipr, dev, what, sid)
        try:
            nla.add_seg6local(
                ipr, sid.sid, sid.action, dev=dev,
                nh6=sid.nh6 if sid.action == "End.X" else None,
                oif=oif, l2dev=l2dev, table=sid.table, count=sid.count,
            )
        except NetlinkError as e:
            # The probe's reason where the kernel lacks the action: it says
            # what to enable, which the bare refusal does not (EOPNOTSUPP's
            # extack is only "lwt encapsulation type not supported").
            code = abs(e.code) if isinstance(e.code, int) else 0
            lacks = not _has_extack(e) or code == errno.EOPNOTSUPP
            reason = self.probe().missing.get(sid.action) if lacks else None
            if reason is not None:
                msg = f"{what}: {self.name} datapath: {reason}"
            else:
                msg = f"{what}: {kernel_text(e)}"
            raise DatapathError(msg, where=sid.where) from None

    @staticmethod
    def _ensure_up(ipr, index: int, what: str, sid: "Sid") -> None:
        """The kernel refuses a route whose device is down ("Nexthop device
        is not up"); a lab starts its datapath before it sets interfaces up,
        so bring the SID route's device up here."""
        try:
            (link,) = ipr.link("get", index=index)
            if not link["flags"] & 1:  # IFF_UP
                ipr.link("set", index=index, state="up")
        except NetlinkError as e:
            raise DatapathError(f"{what}: cannot set its device up: {kernel_text(e)}",
                                where=sid.where) from None

    # ---- read back --------------------------------------------------------

    def counters(self, ns: "Netns", ifname: str) -> dict[str, int]:
        try:
            (link,) = ns.ipr.link("get", ifname=ifname)
        except NetlinkError as e:
            raise DatapathError(f"counters of {ifname!r}: {kernel_text(e)}") from None
        stats = link.get_attr("IFLA_STATS64")
        if stats is None:
            raise DatapathError(f"counters of {ifname!r}: the kernel sent no IFLA_STATS64")
        return {name: int(stats[name]) for name in COUNTERS}

    def describe(self, ns: "Netns") -> dict:
        """Counters of the node's srl2 devices (its SIDs are seg6local routes,
        which `testbed status` lists from the routing tables)."""
        devices = {}
        for link in ns.ipr.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            if info is not None and info.get_attr("IFLA_INFO_KIND") in (r.kind for r in revisions.all_revisions()):
                stats = link.get_attr("IFLA_STATS64")
                devices[link.get_attr("IFLA_IFNAME")] = {name: int(stats[name]) for name in COUNTERS}
        return {"srl2": devices} if devices else {}

    def sid_counters(self, ns: "Netns", sid: "Sid") -> dict[str, int] | None:
        if not sid.count:
            return None
        table = nla.RT_TABLE_MAIN if sid.table is None else sid.table
        try:
            routes = list(nla.dump_seg6local(ns.ipr))
        except NetlinkError as e:
            raise DatapathError(f"SID {sid.sid}: route dump: {kernel_text(e)}", where=sid.where) from None
        for route in routes:
            dst = route.get_attr("RTA_DST")
            if (dst is not None and ipaddress.IPv6Address(dst) == sid.sid.network_address
                    and route["dst_len"] == sid.sid.prefixlen
                    and (route.get_attr("RTA_TABLE") or route["table"]) == table):
                info = nla.seg6local_of(route)
                if info is not None and info["counters"] is not None:
                    return dict(info["counters"])
                raise DatapathError(f"SID {sid.sid}: the kernel reports no counters for it",
                                    where=sid.where)
        raise DatapathError(f"SID {sid.sid}: no such seg6local route (table {table})", where=sid.where)


__all__ = ["KernelDatapath", "probe_kernel", "kernel_text", "errno_name", "cache_path"]
