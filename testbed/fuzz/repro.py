"""A finding as a standalone bash script a reviewer can attach to a reply:
`ip` for everything iproute2 can say (IP=/path/to/ip-srl2 where the system's
`ip` lacks `type srl2`), stdlib one-liners for what it cannot (malformed
srl2 requests as raw rtnetlink bytes, frames on a packet socket).  Only the
lab's nodes the steps use are built (docs/fuzz.md "Reproducers")."""
from __future__ import annotations

import shlex

from testbed.fuzz import frames, requests
from testbed.fuzz.kernel import GONE_DEV, SID_DEV
from testbed.fuzz.lab import HS_MAC, LINK_MTU, RT_UP_MAC, UP_MAC, mac_text
from testbed.fuzz.steps import GONE, Step

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


def prelude(nodes: set[str]) -> list[str]:
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


def describe_srl2(step: Step) -> str:
    """What a raw srl2 request says, in `ip` words, for the reader."""
    a = step.args
    n = a["segs"]
    segs = f"{frames.seg(1)},...,{frames.seg(n)}" if n > 2 else ",".join(str(frames.seg(i)) for i in range(1, n + 1))
    opts = "".join([f" address {requests.mac_of(a['mac'])}" if a.get("mac") is not None else "",
                    f" mtu {requests.u32(a['mtu'])}" if a.get("mtu") is not None else "",
                    " up" if a.get("up") else ""])
    what = "link add" if step.op == "srl2_add" else "link change"
    edit = f"; then SRH {a['edit'][0]} set to {a['edit'][1]}" if a.get("edit") else ""
    srh = frames.device_srh(n, a.get("edit"))
    return f"{what} {a['name']}{opts} type srl2 segs {segs} ({n} segments, SRH {len(srh)} bytes{edit})"


def step_commands(step: Step) -> list[str]:
    """The bash commands of one step."""
    a = step.args
    op = step.op
    if op in ("srl2_add", "srl2_change"):
        if requests.plain_srl2(step):
            segs = ",".join(str(frames.seg(i)) for i in range(1, a["segs"] + 1))
            opts = ""
            if a.get("mac") is not None:
                opts += f" address {requests.mac_of(a['mac'])}"
            if a.get("mtu") is not None:
                opts += f" mtu {requests.u32(a['mtu'])}"
            if a.get("up"):
                opts += " up"
            return [f"$IP -n $R link add {a['name']}{opts} type srl2 segs {segs}"]
        # Raw bytes: a malformed SRH, or more segments than iproute2's buffer holds.
        return [f"# {describe_srl2(step)}",
                f'$IP netns exec $R python3 -c "$NL" {requests.srl2_bytes(step).hex()}']
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


def render(steps: list[Step], title: str, about: list[str] | None = None) -> str:
    """The reproducer script for `steps`."""
    nodes = needed_nodes(steps)
    body = [c for s in steps for c in step_commands(s)]
    text = "\n".join(body)
    lines = ["#!/bin/bash",
             f"# {title}",
             *(f"# {line}" for line in (about or [])),
             "# Replay: testbed vm --kernel bzImage -- env IP=/path/to/ip-srl2 bash THIS_FILE",
             "# (IP: an iproute2 that knows `type srl2` and End.DT2U; default `ip`).",
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
    lines += ["", "# the lab (only the nodes the steps use)", *prelude(nodes), "",
              "# the steps", *body, "",
              "# delayed kernel work (MLD reports, timers) runs before the cleanup",
              "sleep 3", ""]
    return "\n".join(lines)


def command_count(script: str) -> int:
    """Commands of a rendered script that do something: `$IP ...` lines and
    the final wait (not comments, variables, the one-liners' text)."""
    return sum(1 for line in script.splitlines() if line.startswith(("$IP", "sleep ")))


__all__ = ["render", "step_commands", "prelude", "command_count", "needed_nodes"]
