#!/usr/bin/env bash
# The whole kernel-datapath suite inside `testbed vm` on a kernel that carries
# the srl2 RFC series (../shared/kernels/srl2-rfc-6.12/bzImage beside the
# checkout), two pytest workers in the guest, crashes recorded and the suite
# resumed in a fresh boot.  Prints a summary.
#
# Exit status: 0 when the suite ran to its end (whatever the cases' verdicts:
# failures on that kernel are findings about the kernel); non-zero on a runner
# failure: `testbed vm` could not boot or timed out, the last boot did not let
# the command finish (a crash on every boot up to --max-boots), pytest itself
# failed (usage, internal error, nothing collected), or no JUnit came back.
# When the kernel is absent: says so, exits 0.
#
# Parameters (environment):
#   VM_RFC_KERNEL     kernel image (default ../shared/kernels/srl2-rfc-6.12/bzImage,
#                     relative to the checkout); `ip-srl2` beside it goes on PATH
#   VM_RFC_OUT        results directory (default: a new one under /tmp)
#   VM_RFC_TIMEOUT    --timeout of all boots together (default 1800 s)
#   VM_RFC_MAX_BOOTS  --max-boots (default 8)
#   VM_RFC_WORKERS    pytest -n in the guest (default 2: the guest has 2 CPUs)
#   VM_RFC_TESTS      what pytest runs (default cases/; e.g. @FILE: the nodeids in FILE)
#   VM_RFC_PYTEST     extra pytest arguments, split on spaces (e.g. "-k not_slow")
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
KERNEL=${VM_RFC_KERNEL:-../shared/kernels/srl2-rfc-6.12/bzImage}
say() { echo "vm-rfc: $*" >&2; }

if [ ! -f "$KERNEL" ]; then
    say "no srl2 kernel at $KERNEL: nothing to run (set VM_RFC_KERNEL to test one)"
    exit 0
fi
KERNEL=$(cd "$(dirname "$KERNEL")" && pwd)/$(basename "$KERNEL")
OUT=${VM_RFC_OUT:-$(mktemp -d /tmp/vm-rfc.XXXXXX)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
say "kernel $KERNEL; results in $OUT"

t0=$(date +%s)
# shellcheck disable=SC2086  # VM_RFC_TESTS and VM_RFC_PYTEST are word lists on purpose
python3 -m testbed.cli vm --kernel "$KERNEL" --memory 2G --cpus 2 --out "$OUT" \
    --timeout "${VM_RFC_TIMEOUT:-1800}" --max-boots "${VM_RFC_MAX_BOOTS:-8}" -- \
    env "PATH=$(dirname "$KERNEL"):$PATH" python3 -m pytest ${VM_RFC_TESTS:-cases/} --datapath kernel \
    -p no:cacheprovider -n "${VM_RFC_WORKERS:-2}" -rfEs \
    --junitxml="$OUT/junit.xml" --ktap="$OUT/ktap.txt" --results="$OUT" ${VM_RFC_PYTEST:-}
status=$?
wall=$(( $(date +%s) - t0 ))

python3 - "$OUT" "$status" "$wall" <<'EOF'
import json, os, sys
import xml.etree.ElementTree as ET

out, status, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
failures = []
try:
    guest = json.load(open(os.path.join(out, "vm-status.json"))).get("status")
except (OSError, ValueError):
    guest = None
crashes = []
if os.path.exists(os.path.join(out, "crashes.jsonl")):
    crashes = [json.loads(ln) for ln in open(os.path.join(out, "crashes.jsonl")) if ln.strip()]
counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
junit = os.path.join(out, "junit.xml")
if os.path.exists(junit):
    for tc in ET.parse(junit).iter("testcase"):
        kinds = [c.tag for c in tc if c.tag in ("failure", "error", "skipped")]
        kind = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
        counts[kind] += 1
else:
    failures.append("no junit.xml came back from the guest")
print(f"vm-rfc: {wall} s wall, {len(crashes)} crash(es), testbed vm exit {status}, "
      f"pytest in the last boot exit {guest}")
print("vm-rfc: cases: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
for c in crashes:
    where = " and ".join(c.get("open") or ["no marked work"])
    print(f"vm-rfc: crash on boot {c['boot']}: {c['kind']} during {where}: {c['title']}")
boot_crashes = os.path.join(out, "boot-crashes.jsonl")
if os.path.exists(boot_crashes):  # booted again by testbed vm: no verdict lost
    for c in (json.loads(ln) for ln in open(boot_crashes) if ln.strip()):
        print(f"vm-rfc: boot {c['boot']} crashed before the suite started (booted again): "
              f"{c['title']} {c.get('rip', '')}")
if status in (124, 130, 143):
    failures.append(f"testbed vm exit {status} (timeout or interrupted)")
if guest is None:
    failures.append("the last boot did not let the command finish (crashed or never ran)")
elif guest not in (0, 1):
    failures.append(f"pytest in the guest exited {guest} (not a verdict: usage or internal error)")
for f in failures:
    print(f"vm-rfc: FAIL: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
