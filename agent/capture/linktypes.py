"""DLT / LINKTYPE values medtap decodes (https://www.tcpdump.org/linktypes.html)."""

NULL = 0  # BSD loopback: 4-byte host-order address family
ETHERNET = 1
RAW = 101  # raw IPv4 or IPv6, version nibble decides
RAW_OLD_12 = 12  # DLT_RAW on some BSDs
RAW_OLD_14 = 14  # DLT_RAW on OpenBSD
LOOP = 108  # OpenBSD loopback: 4-byte network-order address family
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276

SUPPORTED = frozenset(
    {NULL, ETHERNET, RAW, RAW_OLD_12, RAW_OLD_14, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2}
)

NAMES = {
    NULL: "BSD loopback",
    ETHERNET: "Ethernet",
    RAW: "raw IP",
    RAW_OLD_12: "raw IP",
    RAW_OLD_14: "raw IP",
    LOOP: "OpenBSD loopback",
    LINUX_SLL: "Linux cooked (SLL)",
    IPV4: "raw IPv4",
    IPV6: "raw IPv6",
    LINUX_SLL2: "Linux cooked v2 (SLL2)",
}
