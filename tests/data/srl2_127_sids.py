"""Guest command of tests/test_vm_crash.py: on boot 1, an srl2 device with
127 SIDs, brought up with IPv6 on, which crashes the RFC series' kernel
(its MTU wraps; MLD then overruns an skb: `kernel BUG at
net/core/skbuff.c:209!`).  On later boots (TESTBED_VM_BOOT > 1) it records
that it ran and exits 0, proving that `testbed vm` booted again and ran the
same command."""
from __future__ import annotations

import os
import sys

from pyroute2 import IPRoute

from testbed.kmsg import marked
from testbed.srv6 import nla
from testbed.srv6.srh import encode_srh

LABEL = "case tests/data/srl2_127_sids.py::boot1"

boot = int(os.environ.get("TESTBED_VM_BOOT", "1"))
out = os.environ.get("TESTBED_VM_OUT", ".")
with open(os.path.join(out, f"ran-boot{boot}"), "w") as f:
    f.write(f"{boot}\n")
print(f"srl2_127_sids: boot {boot}", flush=True)
if boot > 1:
    sys.exit(0)
segs = [f"fc00::{i:x}" for i in range(1, 128)]
with marked(LABEL), IPRoute() as ipr:
    nla.add_srl2(ipr, "s0", encode_srh(segs))
    (index,) = ipr.link_lookup(ifname="s0")
    print("srl2_127_sids: s0 created; setting it up", flush=True)
    ipr.link("set", index=index, state="up")
    # MLD reports go out from a worker right after DAD: wait for it here.
    import time
    time.sleep(600)
print("srl2_127_sids: survived", flush=True)
