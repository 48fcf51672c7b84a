#!/usr/bin/env bash
# Install what `testbed vm` needs on the host, after .ci/setup.sh (as root):
# qemu; udev (vng streams the guest's output and returns its status only
# with it); kmod (depmod for an unpacked kernel package, modprobe for the
# guest, which shares the host's root); busybox-static (virtme's initramfs
# for a modular kernel); file (vng reads a kernel's version with it); and
# virtme-ng into the project's virtual environment.  CI runs it before the
# tests, so that the tests that boot kernels run (without it they SKIP).
#
# Environment: TESTBED_VENV as for .ci/setup.sh (default: .venv in the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TESTBED_VENV:-$PWD/.venv}
export DEBIAN_FRONTEND=noninteractive

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v udevadm >/dev/null || need+=(udev)
command -v depmod >/dev/null || need+=(kmod)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v file >/dev/null || need+=(file)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup-vm: installing ${need[*]}" >&2
    # Another apt (unattended upgrades) may hold the dpkg lock: wait, bounded.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The [vm] extra of pyproject.toml, without re-installing the project (a
# development tree may run from PYTHONPATH with its editable install elsewhere).
"$venv/bin/python" -m pip install -q --disable-pip-version-check 'virtme-ng>=1.30'
echo "setup-vm: $(command -v qemu-system-x86_64); $("$venv/bin/vng" --version 2>&1 | head -1)" >&2
