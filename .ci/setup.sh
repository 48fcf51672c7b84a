#!/usr/bin/env bash
# Install everything srl2 testbed needs on a fresh Debian 12 machine (as root).
#
# Debian's python3 is "externally managed" (PEP 668: pip refuses to install
# into it, and python3-pip is not even installed), so the project goes into a
# virtual environment of its own, and `testbed` is linked where root's PATH
# (and sudo's secure_path) finds it.  Afterwards, from the checkout:
#
#   testbed up topologies/p2p.yaml
#   .venv/bin/python -m pytest -n auto
#
# Environment (all optional):
#   TESTBED_VENV    the virtual environment (default: .venv in the checkout)
#   TESTBED_PYTHON  the interpreter it is made from (default: Debian's /usr/bin/python3)
#   TESTBED_BINDIR  where `testbed` is linked (default: /usr/local/bin)
#   TESTBED_APT_LOCK_WAIT  seconds to wait for another apt to finish (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
venv=${TESTBED_VENV:-$checkout/.venv}
python=${TESTBED_PYTHON:-/usr/bin/python3}
bindir=${TESTBED_BINDIR:-/usr/local/bin}
lock_wait=${TESTBED_APT_LOCK_WAIT:-300}
export DEBIAN_FRONTEND=noninteractive

# Another apt may hold apt's locks (on a fresh machine: apt-daily and
# unattended-upgrades, minutes after boot).  apt-get install waits for the
# dpkg locks with DPkg::Lock::Timeout, but silently under -qq, and apt-get
# update does not wait for the lists lock at all (apt 2.6, Debian 12).  So
# wait here, bounded, saying for whom; install gets the timeout as well, for
# an apt that starts in between.
eval "$(apt-config shell lists Dir::State::lists/d archives Dir::Cache::archives/d status Dir::State::status/f)"
dpkg_dir=$(dirname "$status")

# "PID (COMMAND) holds FILE" for the first FILE whose lock a process holds, if any.
lock_holder() {
    local f id pid
    for f in "$@"; do
        id=$(stat -c '%Hd %Ld %i' "$f" 2>/dev/null) || continue
        # /proc/locks: "1: POSIX ADVISORY WRITE PID MAJ:MIN:INODE ..." (hex device; "->" marks a waiter)
        # shellcheck disable=SC2086  # $id: three numbers
        pid=$(awk -v id="$(printf '%02x:%02x:%s' $id)" '$2 != "->" && $6 == id { print $5; exit }' /proc/locks)
        if [ -n "$pid" ]; then
            echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?')) holds $f"
            return
        fi
    done
}

wait_for_apt() {
    local holder waited=0
    while holder=$(lock_holder "$@") && [ -n "$holder" ]; do
        if [ "$waited" = 0 ]; then
            echo "setup: another apt is running (pid $holder): waiting for it, up to $lock_wait s" >&2
        elif [ "$waited" -ge "$lock_wait" ]; then
            echo "setup: pid $holder still after $lock_wait s; giving up (TESTBED_APT_LOCK_WAIT=SECONDS waits longer)" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

wait_for_apt "${lists}lock"
apt-get update -qq
# iproute2: render'd scripts and tests; iputils-ping: exec examples and tests;
# procps: sysctl in rendered scripts, pgrep in tests (a minimal Debian lacks
# it); nftables/tcpdump: conformance checks and captures; graphviz: `testbed
# graph`; python3 + python3-venv: the interpreter and `python3 -m venv`.
wait_for_apt "$dpkg_dir/lock-frontend" "$dpkg_dir/lock" "${archives}lock"
apt-get install -y -qq --no-install-recommends -o "DPkg::Lock::Timeout=$lock_wait" \
    iproute2 iputils-ping procps nftables tcpdump graphviz python3 python3-venv >/dev/null

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$checkout[test]"

mkdir -p "$bindir"
# Root has one `testbed` on its PATH: linking this checkout's takes it from
# whichever other checkout had it, which that checkout's user should hear.
link=$bindir/testbed
if { [ -e "$link" ] || [ -L "$link" ]; } && [ "$(readlink -f "$link")" != "$(readlink -f "$venv/bin/testbed")" ]; then
    was=$(readlink "$link" || echo "a file, not a link")
    echo "setup: $link pointed to $was; it now points to $venv/bin/testbed" >&2
fi
ln -sfn "$venv/bin/testbed" "$link"
echo "srl2 testbed installed in $venv; $bindir/testbed -> $venv/bin/testbed"
echo "tests: $venv/bin/python -m pytest -n auto   (from $checkout)"
