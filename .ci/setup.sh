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
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
venv=${TESTBED_VENV:-$checkout/.venv}
python=${TESTBED_PYTHON:-/usr/bin/python3}
bindir=${TESTBED_BINDIR:-/usr/local/bin}
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
# iproute2: render'd scripts and tests; iputils-ping: exec examples and tests;
# procps: sysctl in rendered scripts, pgrep in tests (a minimal Debian lacks
# it); nftables/tcpdump: conformance checks and captures; graphviz: `testbed
# graph`; python3 + python3-venv: the interpreter and `python3 -m venv`.
apt-get install -y -qq --no-install-recommends \
    iproute2 iputils-ping procps nftables tcpdump graphviz python3 python3-venv >/dev/null

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$checkout[test]"

mkdir -p "$bindir"
ln -sfn "$venv/bin/testbed" "$bindir/testbed"
echo "srl2 testbed installed in $venv; $bindir/testbed -> $venv/bin/testbed"
echo "tests: $venv/bin/python -m pytest -n auto   (from $checkout)"
