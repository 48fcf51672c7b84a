"""The words of `testbed capture --filter` (testbed/decode.py reads them):
apart, so that the CLI can show them in its help without loading the
decoder, which every `testbed` command would otherwise pay for at start."""

TERMS = ("srv6", "srh", "arp", "nd", "icmp", "icmp6", "ipv4", "ipv6", "udp", "tcp", "vlan")
VALUE_TERMS = ("vlan", "ethertype", "sid", "host")
FILTER_HELP = (
    "show only frames matching any of TERMS, separated by '|' or ',' (a term starting with '!' hides "
    "frames that match it). Terms: " + ", ".join(TERMS) + ", vlan=ID, ethertype=0xNNNN, sid=ADDR (in an SRH "
    "or the outer destination), host=ADDR (any IP address). As in tcpdump, icmp is ICMP for IPv4 and icmp6 "
    "ICMPv6 (nd: neighbour discovery alone). A term matches any layer, outer or inner: 'icmp' shows ICMP "
    "carried across a pseudowire too. Examples: 'srv6', 'arp|nd', 'vlan=10', "
    "'ethertype=0x88b5', 'srv6,!nd'")
