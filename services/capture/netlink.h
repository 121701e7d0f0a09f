/* rtnetlink replies, parsed without trusting them: a buffer read from a NETLINK_ROUTE socket
 * holds netlink messages (links, routes, neighbours, bridge forwarding entries, errors); each
 * length is checked against what is left before a byte behind it is read. Pure functions, no
 * I/O: unit-tested and fuzzed (fuzz_capture_netlink). The capture asks the kernel about
 * devices with them to tell which network device is whose (devices.h). */
#ifndef NR_CAPTURE_NETLINK_H
#define NR_CAPTURE_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPTURE_NL_IFNAME 16 /* IFNAMSIZ */
#define CAPTURE_NL_KIND   32

/* One message of a reply: its type (RTM_NEWLINK, ...), its payload after the netlink header. */
struct capture_nl_msg {
    uint16_t type;
    uint16_t flags;
    uint32_t seq;
    const uint8_t *data;
    size_t len;
};

/* Calls fn for each message of buf (len bytes) whose seq is `seq`, in order; others (late
 * answers to an earlier request) are skipped. Stops at NLMSG_DONE and returns 1; at an
 * NLMSG_ERROR returns its error (negative errno; 0 is an acknowledgement and ends the walk
 * with 1). A message whose length is below its header or past the buffer is NR_EPARSE.
 * Returns 0 when buf ended without DONE or an error (a dump may go on in the next read), or
 * what a non-zero fn returned. */
int capture_nl_walk(const uint8_t *buf, size_t len, uint32_t seq,
                    int (*fn)(const struct capture_nl_msg *m, void *arg), void *arg);

/* A network device (RTM_NEWLINK). */
struct capture_nl_link {
    int32_t ifindex;
    uint32_t flags;               /* IFF_* */
    uint16_t type;                /* ARPHRD_* */
    char name[CAPTURE_NL_IFNAME]; /* IFLA_IFNAME, "" when absent */
    char kind[CAPTURE_NL_KIND];   /* IFLA_LINKINFO/IFLA_INFO_KIND ("veth", "vxlan"), or "" */
    int32_t master;               /* IFLA_MASTER (its bridge or bond), 0 when none */
    int32_t link;                 /* IFLA_LINK (a veth's peer index), 0 when none */
    bool has_link_netnsid;        /* IFLA_LINK_NETNSID: the peer lives in another namespace */
    int32_t link_netnsid;
};
/* Parses an RTM_NEWLINK message. 0, or NR_EPARSE (not one, or an attribute past its end). A
 * name or kind with bytes outside [!-~] or too long is refused too. */
int capture_nl_link_parse(const struct capture_nl_msg *m, struct capture_nl_link *out);

/* A route (RTM_NEWROUTE): its family, destination length, table, type and output device. */
struct capture_nl_route {
    uint8_t family, dst_len, table, type;
    int32_t oif; /* RTA_OIF, 0 when absent (a multipath or blackhole route) */
};
int capture_nl_route_parse(const struct capture_nl_msg *m, struct capture_nl_route *out);

/* A neighbour or a bridge forwarding entry (RTM_NEWNEIGH): the device it is on, the bridge it
 * belongs to (NDA_MASTER, bridge entries), its address (NDA_DST) and link-layer address. */
struct capture_nl_neigh {
    uint8_t family; /* AF_INET, AF_INET6, or AF_BRIDGE for a forwarding entry */
    uint16_t state;
    int32_t ifindex;
    int32_t master;
    uint8_t dst[16];
    uint8_t dst_len; /* 0 when absent */
    uint8_t lladdr[32];
    uint8_t lladdr_len; /* 0 when absent */
};
int capture_nl_neigh_parse(const struct capture_nl_msg *m, struct capture_nl_neigh *out);

#endif
