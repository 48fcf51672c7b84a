"""`python -m testbed.vm guest RESULTS/vm-request.json`: the guest runner."""
from __future__ import annotations

import sys

from testbed.vm.base import REQUEST_FILE
from testbed.vm.guest import guest_main

if sys.argv[1:2] == ["guest"]:
    sys.exit(guest_main(sys.argv[2:]))
print(f"usage: python -m testbed.vm guest RESULTS/{REQUEST_FILE}  (use `testbed vm` on the host)",
      file=sys.stderr)
sys.exit(2)
