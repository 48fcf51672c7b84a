"""SRv6 and netlink encodings, pure bytes and numbers (no sockets of their own):

- srh.py        the Segment Routing Header (RFC 8754) as it goes on the wire
- seg6.py       the seg6/seg6local/srl2 UAPI numbers, kept in one place
- nla.py        pyroute2 NLA definitions: srl2 link data, seg6local End.DT2U/L2DEV/counters
- seg6encap.py  route encapsulation (`encap seg6 mode ...`) attributes
- seg6genl.py   the SEG6 generic-netlink family (`ip sr tunsrc`)
"""
