/* rtnetlink replies parsed without trusting them (see netlink.h). */
#include "capture/netlink.h"

#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>

#include "util/error.h"

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)

int capture_nl_walk(const uint8_t *buf, size_t len, uint32_t seq,
                    int (*fn)(const struct capture_nl_msg *m, void *arg), void *arg)
{
    size_t off = 0;

    while (len - off >= sizeof(struct nlmsghdr)) {
        struct nlmsghdr h;
        struct capture_nl_msg m;
        memcpy(&h, buf + off, sizeof(h));
        if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - off)
            return NR_EPARSE;
        m.type = h.nlmsg_type;
        m.flags = h.nlmsg_flags;
        m.seq = h.nlmsg_seq;
        m.data = buf + off + sizeof(h);
        m.len = h.nlmsg_len - sizeof(h);
        off += ALIGN4(h.nlmsg_len) < len - off ? ALIGN4(h.nlmsg_len) : len - off;
        if (m.seq != seq)
            continue;
        if (m.type == NLMSG_DONE)
            return 1;
        if (m.type == NLMSG_ERROR) {
            int32_t e;
            if (m.len < sizeof(e))
                return NR_EPARSE;
            memcpy(&e, m.data, sizeof(e));
            if (e > 0 || e < -4095)
                return NR_EPARSE;
            return e == 0 ? 1 : e;
        }
        if (m.type == NLMSG_NOOP || m.type == NLMSG_OVERRUN)
            continue;
        int rc = fn(&m, arg);
        if (rc != 0)
            return rc;
    }
    return off == len ? 0 : NR_EPARSE;
}

/* Walks the attributes in [p, p + len): fn(type, payload, payload length, arg) for each. An
 * attribute whose length is below its header or past the end is NR_EPARSE. */
static int attrs(const uint8_t *p, size_t len,
                 int (*fn)(uint16_t type, const uint8_t *v, size_t n, void *arg), void *arg)
{
    size_t off = 0;

    while (len - off >= sizeof(struct rtattr)) {
        struct rtattr a;
        int rc;
        memcpy(&a, p + off, sizeof(a));
        if (a.rta_len < sizeof(a) || a.rta_len > len - off)
            return NR_EPARSE;
        rc = fn(a.rta_type & NLA_TYPE_MASK, p + off + sizeof(a), a.rta_len - sizeof(a), arg);
        if (rc != 0)
            return rc;
        off += ALIGN4(a.rta_len) < len - off ? ALIGN4(a.rta_len) : len - off;
    }
    return off == len ? 0 : NR_EPARSE;
}

static int u32_attr(const uint8_t *v, size_t n, int32_t *out)
{
    if (n < 4)
        return NR_EPARSE;
    memcpy(out, v, 4);
    return 0;
}

/* A string attribute: NUL-terminated within n, printable ASCII, shorter than cap. */
static int str_attr(const uint8_t *v, size_t n, char *out, size_t cap)
{
    size_t k = 0;

    while (k < n && v[k])
        k++;
    if (k == n || k >= cap)
        return NR_EPARSE;
    for (size_t i = 0; i < k; i++)
        if (v[i] <= 0x20 || v[i] >= 0x7f)
            return NR_EPARSE;
    memcpy(out, v, k);
    out[k] = '\0';
    return 0;
}

static int linkinfo_attr(uint16_t type, const uint8_t *v, size_t n, void *arg)
{
    struct capture_nl_link *l = arg;

    return type == IFLA_INFO_KIND ? str_attr(v, n, l->kind, sizeof(l->kind)) : 0;
}

static int link_attr(uint16_t type, const uint8_t *v, size_t n, void *arg)
{
    struct capture_nl_link *l = arg;

    switch (type) {
    case IFLA_IFNAME: return str_attr(v, n, l->name, sizeof(l->name));
    case IFLA_MASTER: return u32_attr(v, n, &l->master);
    case IFLA_LINK: return u32_attr(v, n, &l->link);
    case IFLA_LINK_NETNSID: l->has_link_netnsid = true; return u32_attr(v, n, &l->link_netnsid);
    case IFLA_LINKINFO: return attrs(v, n, linkinfo_attr, l);
    default: return 0;
    }
}

int capture_nl_link_parse(const struct capture_nl_msg *m, struct capture_nl_link *out)
{
    struct ifinfomsg ifi;

    memset(out, 0, sizeof(*out));
    if (m->type != RTM_NEWLINK || m->len < sizeof(ifi))
        return NR_EPARSE;
    memcpy(&ifi, m->data, sizeof(ifi));
    out->ifindex = ifi.ifi_index;
    out->flags = ifi.ifi_flags;
    out->type = ifi.ifi_type;
    return attrs(m->data + NLMSG_ALIGN(sizeof(ifi)),
                 m->len - (NLMSG_ALIGN(sizeof(ifi)) < m->len ? NLMSG_ALIGN(sizeof(ifi)) : m->len),
                 link_attr, out);
}

static int route_attr(uint16_t type, const uint8_t *v, size_t n, void *arg)
{
    struct capture_nl_route *r = arg;

    return type == RTA_OIF ? u32_attr(v, n, &r->oif) : 0;
}

int capture_nl_route_parse(const struct capture_nl_msg *m, struct capture_nl_route *out)
{
    struct rtmsg rt;

    memset(out, 0, sizeof(*out));
    if (m->type != RTM_NEWROUTE || m->len < sizeof(rt))
        return NR_EPARSE;
    memcpy(&rt, m->data, sizeof(rt));
    out->family = rt.rtm_family;
    out->dst_len = rt.rtm_dst_len;
    out->table = rt.rtm_table;
    out->type = rt.rtm_type;
    return attrs(m->data + NLMSG_ALIGN(sizeof(rt)), m->len - NLMSG_ALIGN(sizeof(rt)), route_attr,
                 out);
}

static int neigh_attr(uint16_t type, const uint8_t *v, size_t n, void *arg)
{
    struct capture_nl_neigh *nb = arg;

    switch (type) {
    case NDA_DST:
        if (n != 4 && n != 16)
            return NR_EPARSE;
        memcpy(nb->dst, v, n);
        nb->dst_len = (uint8_t)n;
        return 0;
    case NDA_LLADDR:
        if (n > sizeof(nb->lladdr))
            return NR_EPARSE;
        memcpy(nb->lladdr, v, n);
        nb->lladdr_len = (uint8_t)n;
        return 0;
    case NDA_MASTER: return u32_attr(v, n, &nb->master);
    default: return 0;
    }
}

int capture_nl_neigh_parse(const struct capture_nl_msg *m, struct capture_nl_neigh *out)
{
    struct ndmsg nd;

    memset(out, 0, sizeof(*out));
    if (m->type != RTM_NEWNEIGH || m->len < sizeof(nd))
        return NR_EPARSE;
    memcpy(&nd, m->data, sizeof(nd));
    out->family = nd.ndm_family;
    out->state = nd.ndm_state;
    out->ifindex = nd.ndm_ifindex;
    return attrs(m->data + NLMSG_ALIGN(sizeof(nd)), m->len - NLMSG_ALIGN(sizeof(nd)), neigh_attr,
                 out);
}
