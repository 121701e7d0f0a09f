/* libFuzzer target for services/capture/netlink.c: the rtnetlink replies the capture reads about
 * the node's devices (links, routes, neighbours, bridge forwarding entries, errors). They come
 * from the kernel, but a pod's CNI names devices and sets link-layer addresses, and a parser that
 * trusts lengths is one bug away from reading past its buffer. The input is one reply buffer;
 * the request's sequence number is taken from its first message, so most inputs are walked.
 * Every message the walk hands over goes through all three parsers, whose results must stay
 * within their fields: names NUL-terminated, printable and short, addresses within their
 * arrays. */
#include <string.h>

#include "capture/netlink.h"
#include "fuzz.h"

static void printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK(s[i] > 0x20 && s[i] < 0x7f);
}

static int each(const struct capture_nl_msg *m, void *arg)
{
    struct capture_nl_link l;
    struct capture_nl_route r;
    struct capture_nl_neigh n;
    unsigned *count = arg;

    if (capture_nl_link_parse(m, &l) == 0) {
        printable(l.name, sizeof(l.name));
        printable(l.kind, sizeof(l.kind));
    }
    (void)capture_nl_route_parse(m, &r);
    if (capture_nl_neigh_parse(m, &n) == 0) {
        CHECK(n.dst_len == 0 || n.dst_len == 4 || n.dst_len == 16);
        CHECK(n.lladdr_len <= sizeof(n.lladdr));
    }
    return ++*count > 100000 ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seq = 0;
    unsigned count = 0;
    int rc;

    if (size >= 12)
        memcpy(&seq, data + 8, 4);
    rc = capture_nl_walk(data, size, seq, each, &count);
    CHECK(rc <= 1);
    return 0;
}
