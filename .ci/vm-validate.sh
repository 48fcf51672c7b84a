#!/bin/bash
# Every shipped topology on a real srl2 kernel: in one `testbed vm` boot of
# ../shared/kernels/srl2-rfc-6.12/bzImage, each topologies/*.yaml is brought
# up on the kernel datapath, `testbed validate` runs its checks, and it goes
# down again (all in one guest process, .ci/vm_validate_guest.py: under
# software emulation a Python process costs half a minute of imports; a
# topology of a revision this kernel lacks, `revision: sr6`, is skipped,
# saying so: .ci/vm-scenario.sh runs those on the sr6 kernel); then
# p2p once more with the route to the far SID removed on rt-1 (a lab broken
# on purpose: validate must FAIL, naming the pings); then the selftest
# `testbed render` writes for p2p, with `ip-srl2` as `ip`.
# Prints one line per topology and the verdict; exit 0 when every check of
# every topology passed, the broken lab failed and the rendered script
# passed.  Skipped (exit 0, says why) when the kernel is not there.
#
#   VM_VALIDATE_KERNEL  the kernel (default ../shared/kernels/srl2-rfc-6.12/bzImage
#                       relative to the checkout); `ip-srl2` beside it
#   VM_VALIDATE_OUT     results directory (default: a new one under /tmp)
cd "$(dirname "$0")/.."
KERNEL=${VM_VALIDATE_KERNEL:-../shared/kernels/srl2-rfc-6.12/bzImage}
if [ ! -f "$KERNEL" ]; then
    echo "vm-validate: SKIP: no srl2 kernel at $KERNEL"
    exit 0
fi
KDIR=$(cd "$(dirname "$KERNEL")" && pwd)
OUT=${VM_VALIDATE_OUT:-$(mktemp -d /tmp/vm-validate.XXXXXX)}
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
# The rendered script calls `ip`; the series' iproute2 is `ip-srl2`.
ln -sf "$KDIR/ip-srl2" "$OUT/bin/ip"
echo "vm-validate: kernel $KERNEL; results in $OUT"

t0=$(date +%s)
python3 -m testbed.cli vm --kernel "$KERNEL" --memory 2G --out "$OUT" --max-boots 1 --timeout 2400 -- \
    env "PATH=$OUT/bin:$PATH" python3 .ci/vm_validate_guest.py "$OUT"
status=$?
wall=$(( $(date +%s) - t0 ))

python3 - "$OUT" "$status" "$wall" <<'EOF'
import json, os, sys

out, status, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
failures = []
steps = {}
if os.path.exists(os.path.join(out, "steps.tsv")):
    for line in open(os.path.join(out, "steps.tsv")):
        name, rc, ms = line.rstrip("\n").split("\t")
        steps[name] = (int(rc), int(ms) / 1000)
topologies = sorted(f[:-5] for f in os.listdir("topologies") if f.endswith(".yaml"))
print(f"vm-validate: {wall} s wall, testbed vm exit {status}")
for base in topologies:
    if f"skip-{base}" in steps:
        print(f"vm-validate: {base:10} skipped: {open(os.path.join(out, f'skip-{base}.txt')).read().strip()}")
        continue
    up, val = steps.get(f"up-{base}"), steps.get(f"validate-{base}")
    if up is None or up[0] != 0:
        text = open(os.path.join(out, f"up-{base}.txt")).read().strip() if up else "never ran"
        failures.append(f"{base}: `testbed up` failed: {text[-300:]}")
        continue
    try:
        report = json.load(open(os.path.join(out, f"validate-{base}.txt")))
        results = report["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        failures.append(f"{base}: no JSON from `testbed validate` ({e})")
        continue
    ok = [r for r in results if r.get("ok") is True]
    bad = [r for r in results if r.get("ok") is not True]
    print(f"vm-validate: {base:10} up {up[1]:5.1f} s, validate {val[1]:5.1f} s: "
          f"{len(ok)}/{len(results)} ok")
    for r in bad:
        failures.append(f"{base}: FAIL {r.get('title')}: {r.get('detail')}")
    if not results:
        failures.append(f"{base}: no checks ran")
broken = steps.get("validate-broken")
if broken is None:
    failures.append("the broken p2p lab was not validated (see up-broken.txt, break.txt)")
else:
    text = open(os.path.join(out, "validate-broken.txt")).read()
    fails = [ln for ln in text.splitlines() if ln.startswith("FAIL")]
    print(f"vm-validate: p2p without rt-1's route to fcff:2::/32: exit {broken[0]}, "
          f"{len(fails)} FAIL line(s), e.g. {fails[0] if fails else '(none)'}")
    if broken[0] != 1 or not any(ln.startswith("FAIL ping hs-1 -> hs-2") for ln in fails):
        failures.append("the broken lab did not fail its pings with exit 1")
reduced = steps.get("up-reduced")
if reduced is None:
    failures.append("`testbed up` of p2p with mode: reduced did not run")
else:
    text = open(os.path.join(out, "up-reduced.txt")).read()
    print(f"vm-validate: p2p with mode: reduced on this kernel: exit {reduced[0]}: "
          f"{text.strip().splitlines()[0] if text.strip() else '(no output)'}")
    if reduced[0] == 0 or "revision srl2 has no encapsulation mode 'reduced'" not in text \
            or "sr6 has it" not in text or "namespaces left: none" not in text:
        failures.append(f"mode: reduced was not refused on the first revision's kernel: {text[-300:]}")
selftest = steps.get("selftest-p2p")
if selftest is None:
    failures.append("the rendered p2p selftest did not run")
else:
    text = open(os.path.join(out, "selftest-p2p.txt")).read()
    oks = sum(ln.startswith("ok ") for ln in text.splitlines())
    lines = sum(1 for _ in open(os.path.join(out, "p2p-selftest.sh")))
    print(f"vm-validate: rendered p2p selftest ({lines} lines): exit {selftest[0]}, "
          f"{oks} ok, {selftest[1]:.0f} s")
    if selftest[0] != 0:
        failures.append(f"the rendered p2p selftest exited {selftest[0]}: {text[-400:]}")
if status != 0:
    failures.append(f"testbed vm exited {status}")
for f in failures:
    print(f"vm-validate: FAIL: {f}", file=sys.stderr)
print("vm-validate: OK" if not failures else "vm-validate: FAILED")
sys.exit(1 if failures else 0)
EOF
