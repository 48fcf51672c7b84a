"""The topology format's vocabulary (testbed/topology/vocabulary.yaml),
loaded once, as the constants the passes use.  The keys live in the YAML
file, not in code; docs/topology.md explains them."""
from __future__ import annotations

import os
import re

import yaml

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocabulary.yaml")) as _f:
    DATA = yaml.safe_load(_f)

KEYS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in DATA["keys"].items()}
TOP_KEYS = KEYS["topology"]
NODE_KEYS = KEYS["node"]
IFACE_KEYS = KEYS["interface"]
BRIDGE_KEYS = KEYS["bridge"]
PORT_KEYS = KEYS["port"]
VRF_KEYS = KEYS["vrf"]
SRL2_KEYS = KEYS["srl2"]
ROUTE_KEYS = KEYS["route"]
ENCAP_KEYS = KEYS["encap"]
RULE_KEYS = KEYS["rule"]
SID_KEYS = KEYS["sid"]
HMAC_KEY_KEYS = KEYS["hmac_key"]
LINK_KEYS = KEYS["link"]
CHECK_KEYS = KEYS["check"]
PING_KEYS = KEYS["ping"]
COUNTERS_KEYS = KEYS["counters"]
FRAME_KEYS = KEYS["frame"]
LINK_CHECK_KEYS = KEYS["link_check"]

_choices: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in DATA["choices"].items()}
DATAPATHS = _choices["datapath"]
REVISIONS = _choices["revision"]
KINDS = _choices["kind"]
ROUTE_TYPES = _choices["route_type"]
ENCAP_TYPES = _choices["encap_type"]
ENCAP_MODES = _choices["encap_mode"]
SRL2_MODES = _choices["srl2_mode"]
HMAC_ALGORITHMS = _choices["hmac_algorithm"]
SID_ACTIONS = _choices["sid_action"]
CHECK_KINDS = _choices["check_kind"]
AFS = _choices["af"]
FRAME_KINDS = _choices["frame_kind"]
DEFAULTS: dict = DATA["defaults"]

SID_ATTR: dict[str, str] = DATA["sid_attr"]
SID_ATTR_WHY: dict[str, str] = DATA["sid_attr_why"]
TABLE_NAMES: dict[str, int] = DATA["table_names"]

_limits = DATA["limits"]
U32: int = _limits["u32"]
MTU_MIN, MTU_MAX = _limits["mtu"]
VLAN_MIN, VLAN_MAX = _limits["vlan"]
HOPLIMIT_MIN, HOPLIMIT_MAX = _limits["hoplimit"]
MAX_SEGS: int = _limits["segs"]
LAB_NAME_MAX: int = _limits["lab_name"]
NODE_NAME_MAX: int = _limits["node_name"]
IFNAME_MAX: int = _limits["ifname"]
PING_COUNT_MIN, PING_COUNT_MAX = _limits["ping_count"]
TIMEOUT_MIN, TIMEOUT_MAX = _limits["timeout"]
ETHERTYPE_MIN, ETHERTYPE_MAX = _limits["ethertype"]
HMAC_KEYID_MIN, HMAC_KEYID_MAX = _limits["hmac_keyid"]
HMAC_SECRET_MAX: int = _limits["hmac_secret"]
RESERVED_ETHERTYPES: dict[int, str] = DATA["reserved_ethertypes"]

_patterns = {k: re.compile(v) for k, v in DATA["patterns"].items()}
LAB_NAME_RE = _patterns["lab_name"]
NODE_NAME_RE = _patterns["node_name"]
MAC_RE = _patterns["mac"]
SYSCTL_RE = _patterns["sysctl"]
