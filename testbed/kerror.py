"""How a kernel refusal is shown: the kernel's extack text (or the errno's
text when it sent none) and the errno's kernel name."""
from __future__ import annotations

import errno
import os

from pyroute2.netlink.exceptions import NetlinkError


def errno_name(code: int) -> str:
    if code == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"  # Python names 95 ENOTSUP; the kernel says EOPNOTSUPP
    return errno.errorcode.get(code, str(code))


def kernel_text(e: NetlinkError) -> str:
    """"<extack text or strerror> (<errno name>)" of a pyroute2 NetlinkError."""
    code = abs(e.code) if isinstance(e.code, int) else 0
    text = e.args[1] if len(e.args) > 1 and e.args[1] else os.strerror(code)
    return f"{text} ({errno_name(code)})"
