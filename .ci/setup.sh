#!/usr/bin/env bash
# Install everything srl2 testbed needs on a fresh Debian 12 machine (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iproute2: render'd scripts and tests; iputils-ping: exec examples and tests;
# nftables/tcpdump: conformance checks and captures; graphviz: `testbed graph`.
apt-get install -y -qq --no-install-recommends \
    iproute2 iputils-ping nftables tcpdump graphviz >/dev/null
python3 -m pip install -q --root-user-action=ignore -e '.[test]'
