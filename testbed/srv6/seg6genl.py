"""`ip sr tunsrc set|show` and `ip sr hmac set` through the SEG6 generic
netlink family.

pyroute2 has no SEG6 family; these are the commands the testbed needs
(include/uapi/linux/seg6_genl.h, seg6_hmac.h).
"""
from __future__ import annotations

import ipaddress
import socket

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.generic import GenericNetlinkSocket

SEG6_GENL_NAME = "SEG6"
SEG6_CMD_SETHMAC = 1
SEG6_CMD_SET_TUNSRC = 3
SEG6_CMD_GET_TUNSRC = 4
NETLINK_GENERIC = 16


class seg6msg(genlmsg):
    prefix = "SEG6_ATTR_"
    nla_map = (
        ("SEG6_ATTR_UNSPEC", "none"),
        ("SEG6_ATTR_DST", "ip6addr"),
        ("SEG6_ATTR_DSTLEN", "int32"),
        ("SEG6_ATTR_HMACKEYID", "uint32"),
        ("SEG6_ATTR_SECRET", "cdata"),
        ("SEG6_ATTR_SECRETLEN", "uint8"),
        ("SEG6_ATTR_ALGID", "uint8"),
        ("SEG6_ATTR_HMACINFO", "hex"),
    )


HMAC_ALGOS = {"sha1": 1, "sha256": 2}  # SEG6_HMAC_ALGO_*


class Seg6Genl:
    """SEG6 genetlink on a socket the caller opened in the right netns."""

    def __init__(self, sock: socket.socket):
        self.gs = GenericNetlinkSocket(fileno=sock.detach())
        self.gs.bind(SEG6_GENL_NAME, seg6msg)

    def set_tunsrc(self, addr: ipaddress.IPv6Address | str) -> None:
        msg = seg6msg()
        msg["cmd"] = SEG6_CMD_SET_TUNSRC
        msg["version"] = 1
        msg["attrs"] = [("SEG6_ATTR_DST", str(addr))]
        self.gs.nlm_request(msg, msg_type=self.gs.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)

    def get_tunsrc(self) -> ipaddress.IPv6Address:
        msg = seg6msg()
        msg["cmd"] = SEG6_CMD_GET_TUNSRC
        msg["version"] = 1
        reply = self.gs.nlm_request(msg, msg_type=self.gs.prid, msg_flags=NLM_F_REQUEST)
        return ipaddress.IPv6Address(tuple(reply)[0].get_attr("SEG6_ATTR_DST"))

    def set_hmac(self, keyid: int, secret: bytes, algorithm: str = "sha256") -> None:
        """`ip sr hmac set KEYID ALGO` with its secret."""
        msg = seg6msg()
        msg["cmd"] = SEG6_CMD_SETHMAC
        msg["version"] = 1
        msg["attrs"] = [("SEG6_ATTR_HMACKEYID", keyid), ("SEG6_ATTR_SECRET", secret),
                        ("SEG6_ATTR_SECRETLEN", len(secret)), ("SEG6_ATTR_ALGID", HMAC_ALGOS[algorithm])]
        self.gs.nlm_request(msg, msg_type=self.gs.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)

    def close(self) -> None:
        self.gs.close()
