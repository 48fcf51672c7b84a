#!/usr/bin/env bash
# CI smoke of `testbed fuzz` (docs/fuzz.md):
#  1. the reference datapath on this host for FUZZ_SMOKE_REF_TIME seconds
#     (default 30; the README's test command fuzzes it 40 s more) for each
#     revision (srl2, sr6): it must find nothing (a finding there is a bug
#     in srl2_ref) and leave nothing behind;
#  2. when ../shared/kernels/srl2-rfc-6.12/bzImage exists (relative to the
#     repository), the RFC kernel in `testbed vm` for at most FUZZ_SMOKE_VM_TIME
#     seconds of fuzzing (default 300: seed 2 meets the crash at its 7th
#     input, 153 s into the boot on a loaded machine; the second boot records
#     it and stops there, --stop-at-finding): the run must come back with its
#     state and, on that kernel, find the wrapped-MTU crash
#     (FUZZ_SMOKE_EXPECT_MTU=0 to skip that check);
#  3. when ../shared/kernels/sr6-rfc-v2-6.12/bzImage exists, the series'
#     second revision in `testbed vm` for FUZZ_SMOKE_SR6_TIME seconds of
#     fuzzing (default 90) with its ip-sr6: the run must come back with its
#     summary, which is printed (a finding there is the kernel's, reported,
#     not a failure of this check).
# FUZZ_SMOKE_SEED (default 2) seeds every part.
# Results in FUZZ_SMOKE_OUT (default: a new directory under /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${FUZZ_SMOKE_OUT:-$(mktemp -d /tmp/fuzz-smoke.XXXXXX)}
REF_TIME=${FUZZ_SMOKE_REF_TIME:-30}
VM_TIME=${FUZZ_SMOKE_VM_TIME:-300}
SEED=${FUZZ_SMOKE_SEED:-2}
KDIR=${FUZZ_SMOKE_KERNEL_DIR:-$REPO/../shared/kernels/srl2-rfc-6.12}
SR6_TIME=${FUZZ_SMOKE_SR6_TIME:-90}
SR6_KDIR=${FUZZ_SMOKE_SR6_KERNEL_DIR:-$REPO/../shared/kernels/sr6-rfc-v2-6.12}
say() { echo "fuzz-smoke: $*" >&2; }
status=0

# --- 1. reference datapath, no VM, each revision
for rev in srl2 sr6; do
    say "reference datapath, revision $rev, ${REF_TIME} s; results in $OUT/ref-$rev"
    python3 -m testbed.cli fuzz --datapath ref --revision "$rev" --time "$REF_TIME" --seed "$SEED" \
        --out "$OUT/ref-$rev" &
    pid=$!
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        say "FAIL: the reference datapath run ($rev) exited $rc (findings are bugs in srl2_ref: see $OUT/ref-$rev/fuzz-summary.txt)"
        status=1
    fi
    # Its lab is named after its pid (testbed/fuzz/run.py); other runs on this
    # machine may have labs of their own, which are none of this check's business.
    leaked=$(ip netns list | awk '{print $1}' | grep "^fz$(( pid % 100000 ))-" || true)
    if [ -n "$leaked" ]; then
        say "FAIL: network namespaces left behind: $leaked"
        status=1
    fi
done

# --- 2. the RFC kernel in a VM, when it is here
if [ -f "$KDIR/bzImage" ]; then
    say "RFC kernel $KDIR/bzImage in testbed vm, ${VM_TIME} s of fuzzing; results in $OUT/vm"
    mkdir -p "$OUT/vm"
    # The boot, the lab and Python under software emulation take minutes of their own.
    # Two boots: the one that finds the crash, and the one that reads it back
    # (records the finding, writes its reproducer; no shrinking or replay here).
    python3 -m testbed.cli vm --kernel "$KDIR/bzImage" --memory 2G --out "$OUT/vm" --max-boots 2 \
        --timeout $(( VM_TIME * 3 + 600 )) -- \
        python3 -m testbed.cli fuzz --datapath kernel --time "$VM_TIME" --seed "$SEED" --ip "$KDIR/ip-srl2" \
        --shrink-boots 0 --no-verify --stop-at-finding
    say "testbed vm exited $? (non-zero is expected when the kernel crashed)"
    if [ ! -f "$OUT/vm/fuzz-summary.txt" ] && [ ! -f "$OUT/vm/fuzz-state.json" ]; then
        say "FAIL: the fuzzer left no summary or state in $OUT/vm"
        status=1
    elif [ "${FUZZ_SMOKE_EXPECT_MTU:-1}" = 1 ]; then
        if ! grep -qs "skbuff.c:209\|add_grec" "$OUT/vm/fuzz-state.json" "$OUT/vm/crashes.jsonl" "$OUT/vm/fuzz-summary.txt"; then
            say "FAIL: the RFC kernel's wrapped-MTU crash (skbuff.c:209, add_grec) was not found"
            status=1
        fi
    fi
    [ -f "$OUT/vm/fuzz-summary.txt" ] && cat "$OUT/vm/fuzz-summary.txt" >&2
else
    say "no $KDIR/bzImage: the VM part is skipped"
fi

# --- 3. the second revision's kernel in a VM, when it is here
if [ -f "$SR6_KDIR/bzImage" ]; then
    say "sr6 kernel $SR6_KDIR/bzImage in testbed vm, ${SR6_TIME} s of fuzzing; results in $OUT/vm-sr6"
    mkdir -p "$OUT/vm-sr6"
    python3 -m testbed.cli vm --kernel "$SR6_KDIR/bzImage" --memory 2G --out "$OUT/vm-sr6" --max-boots 2 \
        --timeout $(( SR6_TIME * 3 + 600 )) -- \
        python3 -m testbed.cli fuzz --datapath kernel --revision sr6 --time "$SR6_TIME" --seed "$SEED" \
        --ip "$SR6_KDIR/ip-sr6" --shrink-boots 0 --no-verify
    say "testbed vm exited $? (non-zero when the fuzzer found something or the kernel crashed)"
    if ! grep -qs "revision sr6" "$OUT/vm-sr6/fuzz-summary.txt"; then
        say "FAIL: the sr6 fuzz run left no summary in $OUT/vm-sr6"
        status=1
    else
        cat "$OUT/vm-sr6/fuzz-summary.txt" >&2
    fi
else
    say "no $SR6_KDIR/bzImage: the sr6 VM part is skipped"
fi
[ "$status" -eq 0 ] && say "OK" || say "FAILED"
exit "$status"
