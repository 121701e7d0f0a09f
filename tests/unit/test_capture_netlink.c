/* Tests for services/capture/netlink.c (rtnetlink replies parsed without trusting them) and,
 * against this machine's own kernel, services/capture/devices.c: a link, a route and the
 * bridge-port lookup of a pod's device. */
#include <errno.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "capture/devices.h"
#include "capture/netlink.h"
#include "util/error.h"

struct msgbuf {
    uint8_t b[4096];
    size_t len;
    size_t start; /* of the message being built */
};

static void begin(struct msgbuf *m, uint16_t type, uint32_t seq, const void *fixed, size_t n)
{
    struct nlmsghdr h = {.nlmsg_type = type, .nlmsg_seq = seq};

    m->start = m->len;
    memcpy(m->b + m->len, &h, sizeof(h));
    m->len += sizeof(h);
    memcpy(m->b + m->len, fixed, n);
    m->len += NLMSG_ALIGN(n);
}

static size_t attr(struct msgbuf *m, uint16_t type, const void *v, size_t n)
{
    struct rtattr a = {.rta_len = (unsigned short)RTA_LENGTH(n), .rta_type = type};
    size_t at = m->len;

    memcpy(m->b + m->len, &a, sizeof(a));
    memcpy(m->b + m->len + sizeof(a), v, n);
    m->len += RTA_ALIGN(a.rta_len);
    return at;
}

static void end(struct msgbuf *m)
{
    uint32_t len = (uint32_t)(m->len - m->start);

    memcpy(m->b + m->start, &len, sizeof(len));
}

struct seen {
    struct capture_nl_msg m[8];
    int n;
};

static int keep(const struct capture_nl_msg *m, void *arg)
{
    struct seen *s = arg;

    if (s->n < 8)
        s->m[s->n++] = *m;
    return 0;
}

static void link_message(struct msgbuf *m, uint32_t seq)
{
    struct ifinfomsg ifi = {.ifi_index = 7, .ifi_flags = IFF_UP, .ifi_type = 1};
    int32_t master = 3, peer = 2, nsid = 0;
    uint8_t info[64];
    struct rtattr a = {.rta_len = (unsigned short)RTA_LENGTH(5), .rta_type = IFLA_INFO_KIND};

    begin(m, RTM_NEWLINK, seq, &ifi, sizeof(ifi));
    attr(m, IFLA_IFNAME, "vethab12", 9);
    attr(m, IFLA_MASTER, &master, 4);
    attr(m, IFLA_LINK, &peer, 4);
    attr(m, IFLA_LINK_NETNSID, &nsid, 4);
    memcpy(info, &a, sizeof(a));
    memcpy(info + sizeof(a), "veth", 5);
    attr(m, IFLA_LINKINFO, info, RTA_ALIGN(a.rta_len));
    end(m);
}

static void a_link_with_its_kind_bridge_and_peer(void **state)
{
    struct msgbuf m = {0};
    struct seen s = {0};
    struct capture_nl_link l;

    link_message(&m, 5);
    assert_int_equal(capture_nl_walk(m.b, m.len, 5, keep, &s), 0); /* no DONE: a dump goes on */
    assert_int_equal(s.n, 1);
    assert_int_equal(capture_nl_link_parse(&s.m[0], &l), 0);
    assert_int_equal(l.ifindex, 7);
    assert_string_equal(l.name, "vethab12");
    assert_string_equal(l.kind, "veth");
    assert_int_equal(l.master, 3);
    assert_int_equal(l.link, 2);
    assert_true(l.has_link_netnsid);
    assert_int_equal(l.link_netnsid, 0);
    assert_true(l.flags & IFF_UP);
}

static void walk_stops_at_done_and_errors_skips_other_requests(void **state)
{
    struct msgbuf m = {0};
    struct seen s = {0};
    int32_t err = -ENODEV, zero = 0;

    link_message(&m, 4); /* a late answer to an earlier request */
    link_message(&m, 5);
    begin(&m, NLMSG_DONE, 5, &zero, 4);
    end(&m);
    link_message(&m, 5); /* after DONE: not read */
    assert_int_equal(capture_nl_walk(m.b, m.len, 5, keep, &s), 1);
    assert_int_equal(s.n, 1);

    m.len = 0;
    begin(&m, NLMSG_ERROR, 9, &err, 4);
    end(&m);
    assert_int_equal(capture_nl_walk(m.b, m.len, 9, keep, &s), -ENODEV);
    m.len = 0;
    begin(&m, NLMSG_ERROR, 9, &zero, 4); /* an acknowledgement */
    end(&m);
    assert_int_equal(capture_nl_walk(m.b, m.len, 9, keep, &s), 1);
    err = 5; /* not an errno */
    m.len = 0;
    begin(&m, NLMSG_ERROR, 9, &err, 4);
    end(&m);
    assert_int_equal(capture_nl_walk(m.b, m.len, 9, keep, &s), NR_EPARSE);
}

static void lengths_that_lie_are_refused(void **state)
{
    struct msgbuf m = {0};
    struct seen s = {0};
    struct capture_nl_link l;
    uint32_t len;

    link_message(&m, 1);
    /* a message longer than the buffer */
    len = (uint32_t)m.len + 4;
    memcpy(m.b, &len, 4);
    assert_int_equal(capture_nl_walk(m.b, m.len, 1, keep, &s), NR_EPARSE);
    /* shorter than its header */
    len = 8;
    memcpy(m.b, &len, 4);
    assert_int_equal(capture_nl_walk(m.b, m.len, 1, keep, &s), NR_EPARSE);
    /* a tail shorter than a header */
    m.len = 0;
    link_message(&m, 1);
    assert_int_equal(capture_nl_walk(m.b, m.len + 3, 1, keep, &s), NR_EPARSE);

    /* an attribute past the message's end */
    m.len = 0;
    s.n = 0;
    link_message(&m, 1);
    {
        struct rtattr a;
        size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg));
        memcpy(&a, m.b + at, sizeof(a));
        a.rta_len = 4000;
        memcpy(m.b + at, &a, sizeof(a));
    }
    assert_int_equal(capture_nl_walk(m.b, m.len, 1, keep, &s), 0);
    assert_int_equal(capture_nl_link_parse(&s.m[0], &l), NR_EPARSE);
}

static void names_must_be_terminated_and_printable(void **state)
{
    struct ifinfomsg ifi = {.ifi_index = 9};
    const char *bad[] = {"eth\n0", "a name far too long", "no-nul"};
    size_t lens[] = {6, 20, 6};

    for (size_t i = 0; i < 3; i++) {
        struct msgbuf m = {0};
        struct seen s = {0};
        struct capture_nl_link l;
        begin(&m, RTM_NEWLINK, 1, &ifi, sizeof(ifi));
        attr(&m, IFLA_IFNAME, bad[i], lens[i]);
        end(&m);
        assert_int_equal(capture_nl_walk(m.b, m.len, 1, keep, &s), 0);
        assert_int_equal(capture_nl_link_parse(&s.m[0], &l), NR_EPARSE);
    }
}

static void routes_and_neighbours(void **state)
{
    struct msgbuf m = {0};
    struct seen s = {0};
    struct rtmsg rt = {.rtm_family = AF_INET,
                       .rtm_dst_len = 32,
                       .rtm_table = RT_TABLE_MAIN,
                       .rtm_type = RTN_UNICAST};
    struct ndmsg nd = {.ndm_family = AF_BRIDGE, .ndm_ifindex = 12, .ndm_state = NUD_REACHABLE};
    int32_t oif = 12, master = 4;
    uint8_t ip[4] = {10, 91, 0, 2}, mac[6] = {2, 0, 0, 0, 0, 9}, big[40] = {0};
    struct capture_nl_route r;
    struct capture_nl_neigh n;

    begin(&m, RTM_NEWROUTE, 3, &rt, sizeof(rt));
    attr(&m, RTA_DST, ip, 4);
    attr(&m, RTA_OIF, &oif, 4);
    end(&m);
    begin(&m, RTM_NEWNEIGH, 3, &nd, sizeof(nd));
    attr(&m, NDA_DST, ip, 4);
    attr(&m, NDA_LLADDR, mac, 6);
    attr(&m, NDA_MASTER, &master, 4);
    end(&m);
    assert_int_equal(capture_nl_walk(m.b, m.len, 3, keep, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(capture_nl_route_parse(&s.m[0], &r), 0);
    assert_int_equal(r.oif, 12);
    assert_int_equal(r.dst_len, 32);
    assert_int_equal(r.type, RTN_UNICAST);
    assert_int_equal(capture_nl_neigh_parse(&s.m[1], &n), 0);
    assert_int_equal(n.family, AF_BRIDGE);
    assert_int_equal(n.ifindex, 12);
    assert_int_equal(n.master, 4);
    assert_int_equal(n.dst_len, 4);
    assert_memory_equal(n.dst, ip, 4);
    assert_int_equal(n.lladdr_len, 6);
    assert_memory_equal(n.lladdr, mac, 6);
    /* each parser refuses the other's message, and a link-layer address that does not fit */
    assert_int_equal(capture_nl_route_parse(&s.m[1], &r), NR_EPARSE);
    assert_int_equal(capture_nl_neigh_parse(&s.m[0], &n), NR_EPARSE);
    m.len = 0;
    s.n = 0;
    begin(&m, RTM_NEWNEIGH, 3, &nd, sizeof(nd));
    attr(&m, NDA_LLADDR, big, sizeof(big));
    end(&m);
    assert_int_equal(capture_nl_walk(m.b, m.len, 3, keep, &s), 0);
    assert_int_equal(capture_nl_neigh_parse(&s.m[0], &n), NR_EPARSE);
}

/* devices.c against this machine's kernel: lo is index 1 of every namespace. */
static void the_kernel_describes_lo(void **state)
{
    char err[256];
    struct capture_devices *d = capture_devices_open(err, sizeof(err));
    struct capture_nl_link l;
    uint8_t local[4] = {127, 0, 0, 1};
    int32_t dev = 0, up[8];

    assert_non_null(d);
    assert_int_equal(capture_devices_link(d, 1, &l), 0);
    assert_string_equal(l.name, "lo");
    assert_true(l.flags & IFF_LOOPBACK);
    assert_int_equal(capture_devices_link(d, 0x7ffffff0, &l), -ENODEV);
    /* 127.0.0.1 is the node's own: no pod's device leads there */
    assert_int_equal(capture_devices_pod_device(d, 4, local, &dev), -ENOENT);
    assert_true(capture_devices_uplinks(d, up, 8) >= 0);
    capture_devices_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_link_with_its_kind_bridge_and_peer),
        cmocka_unit_test(walk_stops_at_done_and_errors_skips_other_requests),
        cmocka_unit_test(lengths_that_lie_are_refused),
        cmocka_unit_test(names_must_be_terminated_and_printable),
        cmocka_unit_test(routes_and_neighbours),
        cmocka_unit_test(the_kernel_describes_lo),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
