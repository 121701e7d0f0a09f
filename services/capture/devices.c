/* The node's devices through rtnetlink (see devices.h). */
#include "capture/devices.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/error.h"

#define RECV_BYTES      (64u * 1024)
#define RECV_TIMEOUT_US 200000 /* one request: the kernel answers in microseconds */

struct capture_devices {
    int fd;
    uint32_t seq;
    uint8_t *buf;
};

struct capture_devices *capture_devices_open(char *err, size_t errlen)
{
    struct capture_devices *d = calloc(1, sizeof(*d));
    struct timeval tv = {.tv_sec = 0, .tv_usec = RECV_TIMEOUT_US};

    if (!d || !(d->buf = malloc(RECV_BYTES))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    d->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (d->fd < 0 || setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        snprintf(err, errlen, "netlink socket: %s", strerror(errno));
        goto fail;
    }
    return d;
fail:
    capture_devices_close(d);
    return NULL;
}

void capture_devices_close(struct capture_devices *d)
{
    if (!d)
        return;
    if (d->fd > 0)
        close(d->fd);
    free(d->buf);
    free(d);
}

/* Sends one request (header + payload) and walks the answer's messages with fn until the
 * kernel says it is done. Returns 0, the kernel's error, or what fn returned. */
static int transact(struct capture_devices *d, uint16_t type, uint16_t flags, const void *payload,
                    size_t len, int (*fn)(const struct capture_nl_msg *m, void *arg), void *arg)
{
    struct {
        struct nlmsghdr h;
        uint8_t payload[64];
    } req;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int rc = 0;

    if (len > sizeof(req.payload))
        return -EINVAL;
    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + len);
    req.h.nlmsg_type = type;
    req.h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    req.h.nlmsg_seq = ++d->seq;
    memcpy(req.payload, payload, len);
    if (sendto(d->fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(d->fd, d->buf, RECV_BYTES, 0);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
        rc = capture_nl_walk(d->buf, (size_t)n, req.h.nlmsg_seq, fn, arg);
        if (rc != 0)
            return rc == 1 ? 0 : rc;
        if (!(flags & NLM_F_DUMP))
            return 0; /* one answer, and it was it */
    }
}

/* Appends one attribute to a request payload at *off. */
static void put_attr(uint8_t *p, size_t *off, uint16_t type, const void *v, size_t n)
{
    struct rtattr a = {.rta_len = (unsigned short)(RTA_LENGTH(n)), .rta_type = type};

    memcpy(p + *off, &a, sizeof(a));
    memcpy(p + *off + sizeof(a), v, n);
    *off += RTA_ALIGN(a.rta_len);
}

struct one_link {
    struct capture_nl_link *out;
    bool found;
};

static int take_link(const struct capture_nl_msg *m, void *arg)
{
    struct one_link *o = arg;

    if (m->type != RTM_NEWLINK)
        return 0;
    if (capture_nl_link_parse(m, o->out) != 0)
        return NR_EPARSE;
    o->found = true;
    return 0;
}

int capture_devices_link(struct capture_devices *d, int32_t ifindex, struct capture_nl_link *out)
{
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex};
    struct one_link o = {.out = out};
    int rc = transact(d, RTM_GETLINK, 0, &ifi, sizeof(ifi), take_link, &o);

    if (rc == 0 && (!o.found || out->ifindex != ifindex))
        rc = -ENODEV;
    return rc;
}

struct route_ctx {
    struct capture_nl_route r;
    bool found;
};

static int take_route(const struct capture_nl_msg *m, void *arg)
{
    struct route_ctx *c = arg;

    if (m->type != RTM_NEWROUTE)
        return 0;
    if (capture_nl_route_parse(m, &c->r) != 0)
        return NR_EPARSE;
    c->found = true;
    return 0;
}

struct neigh_ctx {
    int32_t ifindex;   /* the bridge */
    const uint8_t *ip; /* looking for this address's MAC (ip_len bytes) ... */
    size_t ip_len;
    uint8_t mac[32]; /* ... or for the port that learnt this MAC */
    uint8_t mac_len;
    int32_t port;
};

static int take_neigh(const struct capture_nl_msg *m, void *arg)
{
    struct neigh_ctx *c = arg;
    struct capture_nl_neigh n;

    if (m->type != RTM_NEWNEIGH || capture_nl_neigh_parse(m, &n) != 0)
        return 0; /* a dump goes on past an entry it cannot read */
    if (c->ip) {
        if (n.ifindex == c->ifindex && n.dst_len == c->ip_len && n.lladdr_len &&
            memcmp(n.dst, c->ip, c->ip_len) == 0 && !(n.state & (NUD_FAILED | NUD_INCOMPLETE))) {
            memcpy(c->mac, n.lladdr, n.lladdr_len);
            c->mac_len = n.lladdr_len;
        }
    } else if (n.family == AF_BRIDGE && n.master == c->ifindex && n.ifindex != c->ifindex &&
               n.lladdr_len == c->mac_len && memcmp(n.lladdr, c->mac, c->mac_len) == 0) {
        c->port = n.ifindex;
    }
    return 0;
}

/* The bridge port behind which the pod at ip was learnt: the neighbour entry's MAC, then the
 * forwarding entry of that MAC. */
static int bridge_port(struct capture_devices *d, int32_t bridge, int family, const uint8_t *ip,
                       int32_t *port)
{
    struct ndmsg nd = {.ndm_family = (uint8_t)(family == 4 ? AF_INET : AF_INET6)};
    struct neigh_ctx c = {.ifindex = bridge, .ip = ip, .ip_len = family == 4 ? 4 : 16};
    int rc = transact(d, RTM_GETNEIGH, NLM_F_DUMP, &nd, sizeof(nd), take_neigh, &c);

    if (rc != 0)
        return rc;
    if (!c.mac_len)
        return -ENOENT;
    c.ip = NULL;
    nd.ndm_family = AF_BRIDGE;
    rc = transact(d, RTM_GETNEIGH, NLM_F_DUMP, &nd, sizeof(nd), take_neigh, &c);
    if (rc == 0 && c.port <= 0)
        rc = -ENOENT;
    if (rc == 0)
        *port = c.port;
    return rc;
}

int capture_devices_pod_device(struct capture_devices *d, int family, const uint8_t *ip,
                               int32_t *ifindex)
{
    uint8_t req[sizeof(struct rtmsg) + 32];
    struct rtmsg rt = {.rtm_family = (uint8_t)(family == 4 ? AF_INET : AF_INET6),
                       .rtm_dst_len = (uint8_t)(family == 4 ? 32 : 128)};
    struct route_ctx c = {0};
    struct capture_nl_link link;
    size_t off = sizeof(rt);
    int32_t dev;
    int rc;

    memcpy(req, &rt, sizeof(rt));
    put_attr(req, &off, RTA_DST, ip, family == 4 ? 4 : 16);
    rc = transact(d, RTM_GETROUTE, 0, req, off, take_route, &c);
    if (rc != 0)
        return rc == -ENETUNREACH || rc == -EHOSTUNREACH ? -ENOENT : rc;
    if (!c.found || c.r.type != RTN_UNICAST || c.r.oif <= 0)
        return -ENOENT;
    dev = c.r.oif;
    rc = capture_devices_link(d, dev, &link);
    if (rc == 0 && strcmp(link.kind, "bridge") == 0) {
        rc = bridge_port(d, dev, family, ip, &dev);
        if (rc == 0)
            rc = capture_devices_link(d, dev, &link);
    }
    if (rc != 0)
        return rc;
    /* A pod's end of the wire lives in the pod's network namespace. */
    if (!link.has_link_netnsid)
        return -ENOENT;
    *ifindex = dev;
    return 0;
}

struct uplink_ctx {
    int32_t *out;
    int cap, n;
};

static int take_default(const struct capture_nl_msg *m, void *arg)
{
    struct uplink_ctx *c = arg;
    struct capture_nl_route r;

    if (m->type != RTM_NEWROUTE || capture_nl_route_parse(m, &r) != 0)
        return 0;
    if (r.dst_len != 0 || r.table != RT_TABLE_MAIN || r.type != RTN_UNICAST || r.oif <= 0)
        return 0;
    for (int i = 0; i < c->n; i++)
        if (c->out[i] == r.oif)
            return 0;
    if (c->n < c->cap)
        c->out[c->n++] = r.oif;
    return 0;
}

int capture_devices_uplinks(struct capture_devices *d, int32_t *out, int cap)
{
    struct uplink_ctx c = {.out = out, .cap = cap};
    static const uint8_t families[] = {AF_INET, AF_INET6};

    for (size_t i = 0; i < sizeof(families); i++) {
        struct rtmsg rt = {.rtm_family = families[i]};
        int rc = transact(d, RTM_GETROUTE, NLM_F_DUMP, &rt, sizeof(rt), take_default, &c);
        if (rc != 0)
            return rc;
    }
    return c.n;
}
