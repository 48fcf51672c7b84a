#!/usr/bin/env bash
# CI: the kernel-datapath suite on the srl2 RFC kernel (.ci/vm-rfc.sh), its
# record compared with the committed baseline (baselines/srl2-rfc-6.12.jsonl).
# A harness change that alters a verdict on that kernel turns CI red.
#
# A difference is confirmed before it counts, as kernel CI confirms a
# regression: the cases whose verdicts differ (with the cases open beside
# them when a crash is involved) run once more in a fresh boot, and only
# what differs from the baseline in both runs is reported (a case slowed
# down by a loaded machine must not pass for a changed verdict).  Only
# those cases: the whole suite again would cost another ten minutes under
# software emulation.  No kernel: nothing to do.
#
# Environment: VM_RFC_KERNEL (see .ci/vm-rfc.sh), VM_RFC_BASELINE (default
# baselines/srl2-rfc-6.12.jsonl), VM_RFC_OUT (default: a new directory under /tmp).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
KERNEL=${VM_RFC_KERNEL:-../shared/kernels/srl2-rfc-6.12/bzImage}
BASELINE=${VM_RFC_BASELINE:-baselines/srl2-rfc-6.12.jsonl}
OUT=${VM_RFC_OUT:-$(mktemp -d /tmp/vm-rfc-compare.XXXXXX)}
say() { echo "vm-rfc-compare: $*" >&2; }

if [ ! -f "$KERNEL" ]; then
    say "no kernel at $KERNEL: nothing to compare"
    exit 0
fi

run_and_compare() {  # $1: results directory, $2...: compare flags; exit status of the comparison
    local dir=$1
    shift
    VM_RFC_OUT="$dir" bash .ci/vm-rfc.sh || return 2
    # JUnit and KTAP of every boot together, from the record (pytest's own are the last boot's).
    python3 -m testbed.cli report "$dir/record.jsonl" --text --html "$dir/report.html" \
        --junit "$dir/junit-all.xml" --ktap "$dir/ktap-all.txt" --exit-zero >"$dir/findings.txt"
    python3 -m testbed.cli compare "$BASELINE" "$dir/record.jsonl" --json "$@" >"$dir/compare.json"
    local rc=$?
    python3 -m testbed.cli compare "$BASELINE" "$dir/record.jsonl" "$@"
    return $rc
}

differing() {  # the nodeids to confirm, one per line: the cases whose verdicts
    # differ in the comparison $1/compare.json, and the cases open beside
    # them in a crash of that run ($1/crashes.jsonl): neighbours that may
    # have caused it
    python3 - "$1" <<'PY'
import json, os, sys

from testbed.results.resume import open_cases, read_crashes

out = sys.argv[1]
data = json.load(open(os.path.join(out, "compare.json")))
cases = {d["case"] for kind in ("new_crashes", "newly_failing", "fixed") for d in data.get(kind, [])}
cases |= set(data.get("missing", []))
for crash in read_crashes(os.path.join(out, "crashes.jsonl")):
    opened = set(open_cases(crash))
    if opened & cases:
        cases |= opened
print("\n".join(sorted(cases)))
PY
}

fixed() {  # true when the comparison in $1 lists verdicts that turned good
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("fixed") else 1)' "$1/compare.json"
}

run_and_compare "$OUT/1"
rc=$?
if [ "$rc" -eq 2 ]; then
    say "FAIL: the suite did not run to its end on $KERNEL (see above)"
    exit 1
fi
if [ "$rc" -eq 0 ] && ! fixed "$OUT/1"; then
    say "OK: every verdict as in $BASELINE (report: $OUT/1/report.html)"
    exit 0
fi
mkdir -p "$OUT/2"
differing "$OUT/1" >"$OUT/2/confirm.txt"
say "verdicts differ from $BASELINE: confirming the $(wc -l <"$OUT/2/confirm.txt") case(s) in a fresh boot" \
    "($OUT/2/confirm.txt)"
# pytest reads the nodeids from the file (@FILE); what did not run is no verdict
VM_RFC_TESTS="@$OUT/2/confirm.txt" run_and_compare "$OUT/2" --allow-missing
rc2=$?
if [ "$rc2" -eq 2 ]; then
    say "FAIL: the confirming run did not run to its end"
    exit 1
fi
# What differs in both runs is a changed verdict; the rest was the machine.
# The kernel is the same binary as the baseline's, so "fixed" is a change of
# the harness too (a finding it no longer sees), and counts like the others.
python3 - "$OUT/1/compare.json" "$OUT/2/compare.json" "$OUT/2/confirm.txt" <<'EOF'
import json, sys

KINDS = ("new_crashes", "newly_failing", "fixed")


def changed(path):
    data = json.load(open(path))
    found = {(d["case"], d["id"]): d for kind in KINDS for d in data.get(kind, [])}
    # a case of the baseline that did not run at all is a changed verdict too
    found.update({(c, "-"): {"id": "-", "nodeid": c, "before": "ran", "after": "missing",
                             "line": "not in the new record"} for c in data.get("missing", [])})
    return found


first = changed(sys.argv[1])
# the confirming run ran only the differing cases: the rest are missing from it by design
confirming = set(open(sys.argv[3]).read().split())
second = {key: d for key, d in changed(sys.argv[2]).items() if key[0] in confirming}
both = sorted(set(first) & set(second))
for key in both:
    d = second[key]
    print(f"vm-rfc-compare: changed verdict: {d['id']} {d['nodeid']}: {d['before']} -> {d['after']}: {d['line']}")
for key in sorted(set(first) ^ set(second)):
    print(f"vm-rfc-compare: differed in one run only (not counted): {key[1]} {key[0]}")
print(f"vm-rfc-compare: {len(both)} changed verdict(s) confirmed by both runs")
sys.exit(1 if both else 0)
EOF
