#!/bin/bash
# The tests that touch the host kernel's seg6, on both kinds of host, on any
# machine: one `testbed vm` boot of a kernel without seg6 lwtunnel
# (../shared/kernels/no-seg6-6.12, CONFIG_IPV6_SEG6_LWTUNNEL unset, as some
# hosts' kernels are) and one of a kernel with it (the srl2 RFC kernel), the
# same selection in both.  Without seg6 the refusal tests must pass and what
# needs seg6 must SKIP naming CONFIG_IPV6_SEG6_LWTUNNEL; with it, what needs
# seg6 must pass and the refusal tests SKIP.  Nothing may fail in either.
# Skipped (exit 0, says why) for a kernel that is not there.
#
#   VM_HOST_KINDS_OUT  results directory (default: a new one under /tmp)
cd "$(dirname "$0")/.."
OUT=${VM_HOST_KINDS_OUT:-$(mktemp -d /tmp/vm-host-kinds.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# In-process tests only where possible: under software emulation each Python
# process costs ~30 s of imports.
TESTS="tests/test_kernel_datapath.py
tests/test_lab.py::test_route_encap_refused_before_building_where_the_kernel_lacks_seg6
tests/test_lab.py::test_route_based_encap_reaches_the_end_sid
tests/test_lab.py::test_in_process_lab_sysctl_defaults
tests/test_graph_live.py::test_mesh4_route_based_pseudowires
cases/test_transparency.py::test_route_based_l2encap_never_carries_arp"
status=0
for kind in no-seg6 seg6; do
    case $kind in
        no-seg6) KERNEL=../shared/kernels/no-seg6-6.12/bzImage ;;
        seg6) KERNEL=../shared/kernels/srl2-rfc-6.12/bzImage ;;
    esac
    if [ ! -f "$KERNEL" ]; then
        echo "vm-host-kinds: SKIP $kind: no kernel at $KERNEL"
        continue
    fi
    t0=$(date +%s)
    # shellcheck disable=SC2086  # TESTS is a word list on purpose
    python3 -m testbed.cli vm --kernel "$KERNEL" --memory 2G --out "$OUT/$kind" --max-boots 1 --timeout 900 -- \
        python3 -m pytest $TESTS -p no:cacheprovider -q -rs --junitxml="$OUT/$kind/junit.xml"
    rc=$?
    python3 - "$kind" "$OUT/$kind/junit.xml" "$rc" "$(( $(date +%s) - t0 ))" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ET

kind, path, rc, wall = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
problems, got = [], {}
try:
    for tc in ET.parse(path).iter("testcase"):
        outcome, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                outcome, msg = child.tag, child.get("message", "")
        # by function name: the datapath parameter depends on the kernel (ref/kernel)
        got[tc.get("name").split("[")[0]] = (outcome, msg)
except (OSError, ET.ParseError) as e:
    problems.append(f"no JUnit report from the VM ({e})")
if rc != 0:
    problems.append(f"testbed vm exited {rc}")
refusals = ("test_route_encap_refused_before_building_where_the_kernel_lacks_seg6",
            "test_sids_refused_without_seg6local")
needs_seg6 = ("test_route_based_encap_reaches_the_end_sid", "test_sid_errors_carry_kernel_text_and_place",
              "test_end_dx2_forwards_inner_frame", "test_mesh4_route_based_pseudowires",
              "test_route_based_l2encap_never_carries_arp")
for name, (outcome, msg) in sorted(got.items()):
    print(f"  {kind:7} {outcome:8} {name}" + (f"  ({msg[:100]})" if msg else ""))
    if outcome in ("failure", "error"):
        problems.append(f"{name}: {outcome}")
want_pass, want_skip = (refusals, needs_seg6) if kind == "no-seg6" else (needs_seg6, refusals)
for name in want_pass:
    if got.get(name, ("missing",))[0] != "passed":
        problems.append(f"{name}: {got.get(name, ('not run',))[0]}, expected passed on a {kind} kernel")
for name in want_skip:
    outcome, msg = got.get(name, ("not run", ""))
    if outcome != "skipped":
        problems.append(f"{name}: {outcome}, expected skipped on a {kind} kernel")
    elif kind == "no-seg6" and "CONFIG_IPV6_SEG6_LWTUNNEL" not in msg:
        problems.append(f"{name}: its SKIP does not name CONFIG_IPV6_SEG6_LWTUNNEL: {msg}")
for p in problems:
    print(f"vm-host-kinds: {kind}: FAIL: {p}")
print(f"vm-host-kinds: {kind}: {'FAIL' if problems else 'OK'}: {len(got)} tests, {wall} s")
sys.exit(1 if problems else 0)
PY
done
exit $status
