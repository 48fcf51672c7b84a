#!/bin/bash
# The README's two commands on a stock Debian 12, with no other Python on
# PATH: a minimal bookworm (debootstrap --variant=minbase: no python3, no
# iproute2, no ping) in a chroot of its own, in a private mount namespace;
# a fresh clone of this checkout in it; then, with an empty environment,
#
#   bash .ci/setup.sh && testbed up topologies/p2p.yaml     (the README's first)
#   testbed validate p2p && testbed down p2p
#   .venv/bin/python -m pytest -n auto [STOCK_DEBIAN_TESTS] (the README's second)
#
# The chroot shares this machine's kernel (labs are namespaces) and its
# network.  What is taken from the host is only how this machine reaches its
# package mirrors: the local CA certificates under /usr/local/share/ca-
# certificates and pip's configuration (/etc/pip.conf, /etc/xdg/pip and the
# local indexes it names under /opt).  Exit status: the first command that
# failed, 0 when all passed.
#
#   STOCK_DEBIAN_ROOT    where the system is made (default: a new dir under /tmp),
#                        reused when it already holds one (debootstrap is minutes)
#   STOCK_DEBIAN_MIRROR  default http://deb.debian.org/debian
#   STOCK_DEBIAN_TESTS   pytest arguments (default: none, the whole suite)
#   TESTBED_*            passed into the chroot (e.g. TESTBED_INTERRUPT_SEED)
# pytest's whole output is kept in /tmp/stock-debian-pytest.XXXXXX.log.
#   STOCK_DEBIAN_KEEP=1  keep the root afterwards
set -uo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
say() { echo "stock-debian: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "must be run as root (debootstrap, chroot, namespaces)"; exit 1; }
root=${STOCK_DEBIAN_ROOT:-$(mktemp -d /tmp/stock-debian.XXXXXX)}
made_root=0
[ -n "${STOCK_DEBIAN_ROOT:-}" ] || made_root=1
cleanup() {
    if [ "$made_root" = 1 ] && [ "${STOCK_DEBIAN_KEEP:-0}" != 1 ]; then
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT

if [ ! -x "$root/bin/bash" ]; then
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    t=$(date +%s)
    say "debootstrap --variant=minbase bookworm $root"
    debootstrap --variant=minbase bookworm "$root" "${STOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
        > "$root.debootstrap.log" 2>&1 || { say "debootstrap failed: see $root.debootstrap.log"; exit 1; }
    rm -f "$root.debootstrap.log"
    say "debootstrap: $(( $(date +%s) - t )) s"
fi
# This machine's way to its mirrors (see above), nothing else of the host.
if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
cp /etc/resolv.conf "$root/etc/resolv.conf"
rm -rf "$root/root/srl2-testbed"
git clone -q "$checkout" "$root/root/srl2-testbed" || exit 1
say "python3 in the chroot before set-up: $(chroot "$root" sh -c 'command -v python3 || echo none')"

# Inside: a private mount namespace in which the chroot's / is a mount point
# (`ip netns exec` remounts / as a slave) with its own /proc, /sys, /dev, /run.
inside() {
    unshare -m --propagation private bash -c '
        root=$1; shift
        mount --rbind "$root" "$root"
        for d in proc sys dev; do mount --rbind "/$d" "$root/$d"; done
        mount -t tmpfs tmpfs "$root/run"
        for d in /opt/pypi /opt/pypi-more /opt/wheels /etc/xdg/pip; do
            [ -e "$d" ] && mkdir -p "$root$d" && mount --bind "$d" "$root$d"
        done
        cd "$root" && exec chroot . env -i HOME=/root TERM=dumb $(env | grep "^TESTBED_") \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            bash -c "update-ca-certificates >/dev/null 2>&1; cd /root/srl2-testbed && $1"' _ "$root" "$1"
}
status=0
t=$(date +%s)
say "the README's first command: bash .ci/setup.sh && testbed up topologies/p2p.yaml"
inside 'bash .ci/setup.sh >/dev/null && testbed up topologies/p2p.yaml >/dev/null && echo "$(command -v testbed) -> $(readlink -f "$(command -v testbed)")" && testbed validate p2p; rc=$?; testbed down p2p; exit $rc' \
    || { say "FAIL: set-up, up, validate or down"; status=1; }
say "set-up and p2p: $(( $(date +%s) - t )) s"
if [ "$status" = 0 ]; then
    t=$(date +%s)
    say "the README's test command: .venv/bin/python -m pytest -n auto ${STOCK_DEBIAN_TESTS:-}"
    log=$(mktemp /tmp/stock-debian-pytest.XXXXXX.log)
    inside ".venv/bin/python -m pytest -n auto -p no:cacheprovider -q ${STOCK_DEBIAN_TESTS:-}" > "$log" 2>&1
    rc=$?
    grep -v "^SKIPPED" "$log" | tail -n 25 >&2
    [ "$rc" -eq 0 ] || { say "FAIL: the test command (exit $rc; its whole output: $log)"; status=1; }
    say "tests: $(( $(date +%s) - t )) s"
fi
[ "$status" = 0 ] && say "OK" || say "FAILED"
exit "$status"
