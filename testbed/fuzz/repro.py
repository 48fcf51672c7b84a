"""A finding as a standalone bash script a reviewer can attach to a reply:
`ip` for everything iproute2 can say, in the words of the revision under
test (IP=/path/to/ip-srl2 or ip-sr6 where the system's `ip` lacks `type
srl2` / `type sr6`), stdlib one-liners for what it cannot (malformed
requests as raw rtnetlink bytes, frames on a packet socket).  Only the
lab's nodes the steps use are built (docs/fuzz.md "Reproducers")."""
from __future__ import annotations

import shlex

from testbed.fuzz import frames, mix, requests
from testbed.fuzz.kernel import GONE_DEV, SID_DEV
from testbed.fuzz.lab import HS_MAC, LINK_MTU, RT_UP_MAC, UP_MAC, mac_text
from testbed.fuzz.steps import GONE, Step
from testbed.revisions import Revision

FIRST = requests.FIRST

NS_VAR = {"rt": "$R", "hs": "$H", "up": "$U"}

NL_PY = ("import socket,sys,struct,os\n"
         "s=socket.socket(socket.AF_NETLINK,socket.SOCK_RAW,0);s.send(bytes.fromhex(sys.argv[1]))\n"
         "e=struct.unpack_from(\"i\",s.recv(65536),16)[0];print(\"kernel:\",os.strerror(-e) if e else \"ok\")")
TX_PY = ("import socket,sys\n"
         "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind((sys.argv[1],0))\n"
         "fs=[bytes.fromhex(h) for h in sys.argv[3:]]\n"
         "for _ in range(int(sys.argv[2])):\n"
         " for f in fs:s.send(f)")

SYSCTLS = ("net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 "
           "net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.seg6_enabled=1 "
           "net.ipv6.conf.default.seg6_enabled=1")


def prelude(nodes: set[str], revision: Revision = FIRST) -> list[str]:
    """Commands that build the part of the fuzz lab (testbed.fuzz.lab) the steps use."""
    out = ["$IP netns add $R", f"$IP netns exec $R sysctl -qw {SYSCTLS}", "$IP -n $R link set lo up"]
    if "hs" in nodes:
        out += ["$IP netns add $H",
                "$IP -n $R link add br0 type bridge",
                f"$IP -n $R link add veth-hs mtu {LINK_MTU} type veth peer name veth0 "
                f"address {mac_text(HS_MAC)} mtu {LINK_MTU} netns $H",
                "$IP -n $R link set veth-hs master br0 up", "$IP -n $R link set br0 up",
                "$IP -n $H link set veth0 up"]
    if "up" in nodes:
        out += ["$IP netns add $U",
                f"$IP -n $R link add veth-up address {mac_text(RT_UP_MAC)} mtu {LINK_MTU} type veth "
                f"peer name veth-rt address {mac_text(UP_MAC)} mtu {LINK_MTU} netns $U",
                "$IP -n $R addr add fc00:1::1/64 dev veth-up nodad", "$IP -n $R link set veth-up up",
                "$IP -n $U addr add fc00:1::2/64 dev veth-rt nodad", "$IP -n $U link set veth-rt up",
                "$IP -n $R -6 route add fc00:e::/32 via fc00:1::2"]
        if revision.table:
            out.append(f"$IP -n $R -6 route add fc00:e::/32 via fc00:1::2 dev veth-up table {mix.TABLE_ROUTED}")
    return out


def _tx(node: str, ifname: str, frames_: list[bytes], background: bool = False) -> str:
    # Distinct frames once each, repeated COUNT times (the step's count).
    distinct: list[bytes] = []
    for f in frames_:
        if f in distinct:
            break
        distinct.append(f)
    count = max(1, len(frames_) // max(1, len(distinct)))
    hexes = " ".join(f.hex() for f in distinct)
    return f'$IP netns exec {NS_VAR[node]} python3 -c "$TX" {ifname} {count} {hexes}'


def _segs(n: int, short: bool) -> str:
    if short and n > 2:
        return f"{frames.seg(1)},...,{frames.seg(n)}"
    return ",".join(str(frames.seg(i)) for i in range(1, n + 1))


def _kind_words(revision: Revision, n: int, mode, table, hmac, short: bool = False) -> str:
    """`type KIND [mode M] segs ... [table N] [hmac K]`, as iproute2 of the
    revision says it (sr6: mode before segs)."""
    return "".join([f"type {revision.kind}", f" mode {mode}" if mode else "", f" segs {_segs(n, short)}",
                    f" table {table}" if table is not None else "", f" hmac {hmac}" if hmac is not None else ""])


def _link_opts(a: dict) -> str:
    return "".join([f" address {requests.mac_of(a['mac'])}" if a.get("mac") is not None else "",
                    f" mtu {requests.u32(a['mtu'])}" if a.get("mtu") is not None else "",
                    " up" if a.get("up") else ""])


def describe_srl2(step: Step, revision: Revision = FIRST) -> str:
    """What a raw request says, in `ip` words, for the reader."""
    a = step.args
    n = a["segs"]
    what = "link add" if step.op == "srl2_add" else "link change"
    edit = f"; then SRH {a['edit'][0]} set to {a['edit'][1]}" if a.get("edit") else ""
    nomode = "; no mode" if mix.has_modes(revision) and a.get("mode") is None else ""
    srh = frames.device_srh(n, a.get("edit"), a.get("hmac"))
    words = _kind_words(revision, n, a.get("mode"), a.get("table"), a.get("hmac"), short=True)
    return f"{what} {a['name']}{_link_opts(a)} {words} ({n} segments, SRH {len(srh)} bytes{nomode}{edit})"


def _nl(raw: bytes) -> str:
    return f'$IP netns exec $R python3 -c "$NL" {raw.hex()}'


def _flowing(name: str | None, body: list[str]) -> list[str]:
    """`body` while frames go out of rt's device `name` (set up first), as
    the executor's flowing steps do (testbed.fuzz.kernel.KernelTarget._flowing)."""
    if name is None:
        return body
    flood = requests.flood_frames()[0].hex()
    return [f"$IP -n $R link set {name} up",
            f'$IP netns exec $R python3 -c "$TX" {name} 1000000 {flood} 2>/dev/null & F=$!; sleep 0.2',
            *body, "kill $F; wait $F 2>/dev/null"]


def _sr6_commands(step: Step, revision: Revision) -> list[str]:
    """The second revision's own steps."""
    a = step.args
    if step.op == "change_flowing":
        ends = []
        for segs, mode, raw in zip((a["segs"], a["segs2"]), (a.get("mode"), a.get("mode2")),
                                   requests.swap_bytes(step, revision)):
            if requests.plain_swap(step, revision):
                ends.append(f"$IP -n $R link set {a['name']} {_kind_words(revision, segs, mode, None, None)}")
            else:
                ends.append(_nl(raw))
        swaps = max(1, a.get("swaps", 1))
        body = [f"# changelink {swaps} time(s), to each end in turn, while frames go out of {a['name']}",
                f"for i in $(seq {swaps}); do",
                f"  if [ $((i % 2)) = 1 ]; then {ends[0]}; else {ends[1]}; fi", "done"]
        return _flowing(a["name"], body)
    if step.op == "hmac_key":
        cmd = f"$IP -n $R sr hmac set {a['k']} {a.get('algo', 'sha256')}"
        if a.get("secret") is None:
            body = [f"{cmd} </dev/null  # an empty secret deletes the key"]
        else:
            body = [f"printf %s {shlex.quote(a['secret'])} | {cmd}"]
        return _flowing(a.get("via"), body)
    if step.op == "vrf_add":
        return [f"$IP -n $R link add {a['name']}{' up' if a.get('up') else ''} type vrf table {a['table']}"]
    raise ValueError(f"no rendering for step {step.op!r}")


def step_commands(step: Step, revision: Revision = FIRST) -> list[str]:
    """The bash commands of one step."""
    a = step.args
    op = step.op
    if op in ("srl2_add", "srl2_change"):
        if requests.plain_srl2(step, revision):
            words = _kind_words(revision, a["segs"], a.get("mode"), a.get("table"), a.get("hmac"))
            if op == "srl2_change":
                return [f"$IP -n $R link set {a['name']} {words}"]
            return [f"$IP -n $R link add {a['name']}{_link_opts(a)} {words}"]
        # Raw bytes: a malformed SRH, no mode, or more segments than iproute2's buffer holds.
        return [f"# {describe_srl2(step, revision)}", _nl(requests.srl2_bytes(step, revision))]
    if op in ("change_flowing", "hmac_key", "vrf_add"):
        return _sr6_commands(step, revision)
    if op == "link":
        opts = ""
        if a.get("up") is not None:
            opts += " up" if a["up"] else " down"
        if a.get("mtu") is not None:
            opts += f" mtu {a['mtu']}"
        return [f"$IP -n {NS_VAR[a['node']]} link set {a['name']}{opts}"]
    if op == "ipv6":
        return [f"$IP netns exec {NS_VAR[a['node']]} sysctl -qw "
                f"net.ipv6.conf.{a['name']}.disable_ipv6={0 if a['on'] else 1}"]
    if op == "master":
        target = f"master {a['bridge']}" if a.get("bridge") else "nomaster"
        return [f"$IP -n $R link set {a['name']} {target}"]
    if op == "move":
        return [f"$IP -n {NS_VAR[a['frm']]} link set {a['name']} netns {NS_VAR[a['to']]}"]
    if op == "delete":
        return [f"$IP -n {NS_VAR[a['node']]} link del {a['name']}"]
    if op == "sid_add":
        dev = GONE_DEV if a.get("dev") == GONE else a.get("dev")
        param = ""
        if dev and a["action"] in ("End.DT2U", "End.DX2"):
            param = f" {'l2dev' if a['action'] == 'End.DT2U' else 'oif'} {dev}"
        count = " count" if a.get("count") else ""
        cmd = (f"$IP -n $R -6 route add {frames.sid(a['k'])}/128 encap seg6local action {a['action']}"
               f"{param}{count} dev {SID_DEV}")
        if a.get("dev") == GONE:
            return [f"$IP -n $R link add {GONE_DEV} type dummy", cmd, f"$IP -n $R link del {GONE_DEV}"]
        return [cmd]
    if op == "sid_del":
        return [f"$IP -n $R -6 route del {frames.sid(a['k'])}/128"]
    if op == "srv6":
        return [_tx("up", "veth-rt", requests.srv6_frames(step))]
    if op == "l2":
        return [_tx("hs", "veth0", requests.l2_frames(step))]
    if op == "delete_flowing":
        flood = requests.l2_frames(Step("l2", {"kind": "bcast", "size": 200, "count": 1}))
        return [f'$IP netns exec $H python3 -c "$TX" veth0 100000 {flood[0].hex()} & F=$!; '
                f"$IP -n $R link del {a['name']}; kill $F; wait"]
    raise ValueError(f"no rendering for step {op!r}")


def needed_nodes(steps: list[Step]) -> set[str]:
    nodes = {"rt"}
    for s in steps:
        nodes |= s.needs()
    return nodes


def render(steps: list[Step], title: str, about: list[str] | None = None, revision: Revision = FIRST) -> str:
    """The reproducer script for `steps` on a kernel of `revision`."""
    nodes = needed_nodes(steps)
    body = [c for s in steps for c in step_commands(s, revision)]
    text = "\n".join(body)
    kind = revision.kind
    lines = ["#!/bin/bash",
             f"# {title}",
             *(f"# {line}" for line in (about or [])),
             f"# Replay: testbed vm --kernel bzImage -- env IP=/path/to/ip-{kind} bash THIS_FILE",
             f"# (IP: an iproute2 that knows `type {kind}` and End.DT2U; default `ip`).",
             "IP=${IP:-ip}",
             "R=fz$$-rt H=fz$$-hs U=fz$$-up",
             "cleanup() { for ns in $R $H $U; do $IP netns del $ns 2>/dev/null; done; }",
             "trap cleanup EXIT"]
    if '"$NL"' in text:
        lines += ["# NL: send one rtnetlink request (hex) and print the kernel's answer; used where",
                  "# `ip` cannot say it (a malformed SRH; more than ~58 segments: its buffer is 1 KiB)",
                  f"NL={shlex.quote(NL_PY)}"]
    if '"$TX"' in text:
        lines += ["# TX IFNAME COUNT HEX...: send the frames COUNT times on a packet socket",
                  f"TX={shlex.quote(TX_PY)}"]
    lines += ["", "# the lab (only the nodes the steps use)", *prelude(nodes, revision), "",
              "# the steps", *body, "",
              "# delayed kernel work (MLD reports, timers) runs before the cleanup",
              "sleep 3", ""]
    return "\n".join(lines)


def command_count(script: str) -> int:
    """Commands of a rendered script that do something: `$IP ...` lines and
    the final wait (not comments, variables, the one-liners' text)."""
    return sum(1 for line in script.splitlines() if line.startswith(("$IP", "sleep ")))


__all__ = ["render", "step_commands", "prelude", "command_count", "needed_nodes"]
