#!/bin/bash
# The sr6 series' own scenario, ours against theirs (docs/sr6-scenario.md):
# in one `testbed vm` boot of ../shared/kernels/sr6-rfc-v2-6.12/bzImage,
# the series' selftest (selftest/srv6_sr6_l2vpn_test.sh beside the kernel,
# with `ip-sr6` as `ip`), then each topologies/sr6-*.yaml up on the kernel
# datapath and on the reference (revision sr6) with its `validate:` checks,
# then the selftest `testbed render` writes for each, each step timed
# (.ci/vm_scenario_guest.py).  Prints one line per step and the verdict:
# exit 0 when the series' selftest, every check on both datapaths and every
# rendered script passed.  Skipped (exit 0, says why) without the kernel.
#
#   VM_SCENARIO_KERNEL  the kernel (default ../shared/kernels/sr6-rfc-v2-6.12/bzImage
#                       relative to the checkout); `ip-sr6` and selftest/ beside it
#   VM_SCENARIO_OUT     results directory (default: a new one under /tmp)
#   VM_SCENARIO_PARTS   what runs, comma-separated (default all): series (their
#                       selftest), kernel, ref (ours on each datapath), cli
#                       (ours as typed), render (our rendered scripts)
cd "$(dirname "$0")/.."
KERNEL=${VM_SCENARIO_KERNEL:-../shared/kernels/sr6-rfc-v2-6.12/bzImage}
if [ ! -f "$KERNEL" ]; then
    echo "vm-scenario: SKIP: no sr6 kernel at $KERNEL"
    exit 0
fi
for part in ${VM_SCENARIO_PARTS//,/ }; do
    case $part in
        series|kernel|ref|cli|render) ;;
        *) echo "vm-scenario: VM_SCENARIO_PARTS: unknown part '$part' (series, kernel, ref, cli, render)" >&2; exit 2 ;;
    esac
done
KDIR=$(cd "$(dirname "$KERNEL")" && pwd)
OUT=${VM_SCENARIO_OUT:-$(mktemp -d /tmp/vm-scenario.XXXXXX)}
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
# The selftest and the rendered scripts call `ip`; the series' iproute2 is `ip-sr6`.
ln -sf "$KDIR/ip-sr6" "$OUT/bin/ip"
echo "vm-scenario: kernel $KERNEL; results in $OUT"

t0=$(date +%s)
python3 -m testbed.cli vm --kernel "$KERNEL" --memory 2G --out "$OUT" --max-boots 1 --timeout 2400 -- \
    env "PATH=$OUT/bin:$PATH" "VM_SCENARIO_PARTS=${VM_SCENARIO_PARTS:-}" \
    python3 .ci/vm_scenario_guest.py "$OUT" "$KDIR/selftest"
status=$?
wall=$(( $(date +%s) - t0 ))

python3 - "$OUT" "$status" "$wall" "${VM_SCENARIO_PARTS:-series,kernel,ref,cli,render}" <<'PY'
import json, os, re, sys

out, status, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parts = set(sys.argv[4].split(","))
steps, failures = {}, []
if os.path.exists(os.path.join(out, "steps.tsv")):
    for line in open(os.path.join(out, "steps.tsv")):
        name, rc, ms = line.rstrip("\n").split("\t")
        steps[name] = (int(rc), int(ms) / 1000)
print(f"vm-scenario: {wall} s wall, testbed vm exit {status}")
text = lambda name: open(os.path.join(out, f"{name}.txt")).read()
if "series" not in parts:
    pass
elif "selftest" not in steps:
    failures.append("the series' selftest did not run")
else:
    rc, s = steps["selftest"]
    passed = re.search(r"Tests passed:\s*(\d+)", text("selftest"))
    failed = re.search(r"Tests failed:\s*(\d+)", text("selftest"))
    print(f"vm-scenario: series' selftest: exit {rc}, {passed and passed[1]} passed, "
          f"{failed and failed[1]} failed, {s:.1f} s")
    if rc != 0:
        failures.append(f"the series' selftest exited {rc}")
bases = sorted(f[:-5] for f in os.listdir("topologies") if f.startswith("sr6-") and f.endswith(".yaml"))
for dp in [dp for dp in ("kernel", "ref") if dp in parts]:
    for base in bases:
        up, val = steps.get(f"up-{dp}-{base}"), steps.get(f"validate-{dp}-{base}")
        if up is None or up[0] != 0:
            failures.append(f"{dp} {base}: up failed: {text(f'up-{dp}-{base}')[-300:] if up else 'never ran'}")
            continue
        try:
            results = json.loads(text(f"validate-{dp}-{base}"))["results"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            failures.append(f"{dp} {base}: no JSON from validate ({e})")
            continue
        bad = [r for r in results if r.get("ok") is not True]
        down = steps.get(f"down-{dp}-{base}", (0, 0.0))
        print(f"vm-scenario: {dp:6} {base:10} up {up[1]:5.1f} s, validate {val[1]:5.1f} s, "
              f"down {down[1]:4.1f} s: {len(results) - len(bad)}/{len(results)} ok")
        failures += [f"{dp} {base}: FAIL {r.get('title')}: {r.get('detail')}" for r in bad]
cli = [steps.get(k) for k in ("cli-up", "cli-validate", "cli-down")]
if "cli" in parts and not all(cli):
    failures.append("the steps as typed (cli-up, cli-validate, cli-down) did not all run")
if all(cli):
    print(f"vm-scenario: as typed (testbed up, validate, down: three processes): "
          f"{' + '.join(f'{c[1]:.1f}' for c in cli)} = {sum(c[1] for c in cli):.1f} s, "
          f"exits {', '.join(str(c[0]) for c in cli)}")
    failures += [f"{k} exited {c[0]}" for k, c in zip(("cli-up", "cli-validate", "cli-down"), cli) if c[0]]
for base in bases if "render" in parts else []:
    r = steps.get(f"render-{base}")
    if r is None:
        failures.append(f"the rendered {base} selftest did not run")
        continue
    t = text(f"render-{base}")
    body = [ln.split("] ", 1)[-1] for ln in t.splitlines()]  # without the guest's time stamps
    oks = sum(ln.startswith("ok ") for ln in body)
    nots = sum(ln.startswith("not ok ") for ln in body)
    print(f"vm-scenario: rendered {base}: exit {r[0]}, {oks} ok, {nots} not ok, {r[1]:.1f} s")
    if r[0] != 0:
        failures.append(f"the rendered {base} exited {r[0]}: {t[-400:]}")
if status != 0:
    failures.append(f"testbed vm exited {status}")
for f in failures:
    print(f"vm-scenario: FAIL: {f}", file=sys.stderr)
print("vm-scenario: OK" if not failures else "vm-scenario: FAILED")
sys.exit(1 if failures else 0)
PY
