/* Tests for services/capture/tls/netns.c: the local addresses of a network namespace from its
 * fib_trie and if_inet6 (hostile and truncated text included), and a /proc scan that names each
 * namespace once, by inode, when it holds a targeted address. The scan runs on a made-up /proc
 * in a temporary folder, where processes sharing a namespace share an ns/net inode (hard link). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/tls/netns.h"

#define MAX_GOT 16

struct got {
    char text[MAX_GOT][64];
    int n;
    int stop_at; /* return non-zero at this call (1-based), 0: never */
};

static int collect(void *arg, const struct capture_tls_netns_addr *a)
{
    struct got *g = arg;
    char buf[64];

    if (a->a[10] == 0xff && a->a[11] == 0xff && !memcmp(a->a, (uint8_t[10]){0}, 10))
        inet_ntop(AF_INET, a->a + 12, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, a->a, buf, sizeof(buf));
    if (g->n < MAX_GOT)
        snprintf(g->text[g->n], sizeof(g->text[0]), "%s", buf);
    g->n++;
    return g->stop_at && g->n == g->stop_at ? 7 : 0;
}

static const char fib_trie[] = "Main:\n"
                               "  +-- 0.0.0.0/0 3 0 5\n"
                               "     |-- 0.0.0.0\n"
                               "        /0 universe UNICAST\n"
                               "     +-- 127.0.0.0/8 2 0 2\n"
                               "        +-- 127.0.0.0/31 1 0 0\n"
                               "           |-- 127.0.0.0\n"
                               "              /8 host LOCAL\n"
                               "           |-- 127.0.0.1\n"
                               "              /32 host LOCAL\n"
                               "        |-- 127.255.255.255\n"
                               "           /32 link BROADCAST\n"
                               "     +-- 10.78.0.0/24 2 0 2\n"
                               "        |-- 10.78.0.0\n"
                               "           /24 link UNICAST\n"
                               "        |-- 10.78.0.1\n"
                               "           /24 link UNICAST\n"
                               "           /32 host LOCAL\n"
                               "Local:\n"
                               "  +-- 0.0.0.0/0 3 0 5\n";

static void local_ipv4_addresses_from_fib_trie(void **state)
{
    struct got g = {0};

    (void)state;
    assert_int_equal(capture_tls_netns_parse_fib_trie(fib_trie, strlen(fib_trie), collect, &g), 0);
    /* the /32 host LOCAL leaves only: not networks, broadcasts, /8 host routes */
    assert_int_equal(g.n, 2);
    assert_string_equal(g.text[0], "127.0.0.1");
    assert_string_equal(g.text[1], "10.78.0.1");
    /* the callback's non-zero answer stops the walk and is returned */
    memset(&g, 0, sizeof(g));
    g.stop_at = 1;
    assert_int_equal(capture_tls_netns_parse_fib_trie(fib_trie, strlen(fib_trie), collect, &g), 7);
    assert_int_equal(g.n, 1);
}

static void hostile_or_truncated_fib_trie(void **state)
{
    char big[2048];
    struct got g = {0};
    static const char *const bad[] = {
        "|-- 10.1.1.1",                                   /* cut before its prefixes */
        "|-- 10.1.1.1\n/32 host LOCA",                    /* cut inside */
        "/32 host LOCAL\n",                               /* no leaf */
        "|-- 999.1.1.1\n/32 host LOCAL\n",                /* not an address */
        "|-- 10.1.1.1junk\n/32 host LOCAL\n",             /* trailing bytes */
        "|-- 10.1.1.1 \n/32 host LOCAL\n",                /* trailing space */
        "|-- 10.1.1.10.1.1.1.1\n/32 host LOCAL\n",        /* longer than an address */
        "|-- \n/32 host LOCAL\n",                         /* empty */
        "|-- 10.1.1.1\n+-- 10.0.0.0/8\n/32 host LOCAL\n", /* another node in between */
        "|-- 10.1.1.1\n/32 host LOCAL extra\n",           /* not the exact line */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&g, 0, sizeof(g));
        assert_int_equal(capture_tls_netns_parse_fib_trie(bad[i], strlen(bad[i]), collect, &g), 0);
        assert_int_equal(g.n, 0);
    }
    /* NUL bytes and a line longer than any real one: skipped, the next leaf still read */
    memset(big, 'x', sizeof(big));
    memcpy(big, "|-- 10.9.9.9\0\n", 14);
    memcpy(big + 600, "\n|-- 10.2.2.2\n   /32 host LOCAL\n", 32);
    memset(&g, 0, sizeof(g));
    assert_int_equal(capture_tls_netns_parse_fib_trie(big, sizeof(big), collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.text[0], "10.2.2.2");
    /* length 0 */
    assert_int_equal(capture_tls_netns_parse_fib_trie("", 0, collect, &g), 0);
    /* a file cut after blanks, in a buffer of exactly its length: not one byte past it read
     * (ASan) */
    {
        static const char cut[] = "|-- 10.3.3.3\n   ";
        char *exact = malloc(sizeof(cut) - 1);
        assert_non_null(exact);
        memcpy(exact, cut, sizeof(cut) - 1);
        memset(&g, 0, sizeof(g));
        assert_int_equal(capture_tls_netns_parse_fib_trie(exact, sizeof(cut) - 1, collect, &g), 0);
        assert_int_equal(g.n, 0);
        free(exact);
    }
}

static void addresses_from_if_inet6(void **state)
{
    static const char text[] = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
                               "fd000000000000000000000000000002 04 40 00 82     eth0\n"
                               "fd00000000000000000000000000000g 04 40 00 82     eth0\n" /* hex */
                               "fd0000000000000000000000000003 04 40 00 82     eth0\n"   /* short */
                               "fd000000000000000000000000000004";                       /* cut */
    struct got g = {0};

    (void)state;
    assert_int_equal(capture_tls_netns_parse_if_inet6(text, strlen(text), collect, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.text[0], "fe80::fc:ff:fe00:1");
    assert_string_equal(g.text[1], "fd00::2");
}

static void put(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* dir/pid, or dir/pid/sub */
static void mkdirf(const char *dir, int pid, const char *sub)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/%d%s%s", dir, pid, sub[0] ? "/" : "", sub);
    assert_int_equal(mkdir(p, 0700), 0);
}

static ino_t inode_of(const char *dir, int pid)
{
    char p[512];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%d/ns/net", dir, pid);
    assert_int_equal(stat(p, &st), 0);
    return st.st_ino;
}

static struct capture_tls_netns_addr v4(const char *s)
{
    struct capture_tls_netns_addr a = {{0}};

    a.a[10] = a.a[11] = 0xff;
    assert_int_equal(inet_pton(AF_INET, s, a.a + 12), 1);
    return a;
}

static void scan_names_each_targeted_namespace_once(void **state)
{
    char dir[] = "/tmp/nr-netns-XXXXXX", p[512], q[512], *huge;
    struct capture_tls_netns_addr t[3];
    struct capture_tls_netns_result res;
    uint32_t out[8];
    size_t hlen = CAPTURE_TLS_NETNS_FILE_MAX + 4096;

    (void)state;
    assert_non_null(mkdtemp(dir));
    /* 10 and 11: one pod's namespace (same inode); 12: an IPv6 pod; 13: a namespace that cannot
     * be named (like pid 1 here); 14: a huge fib_trie whose address comes past the cap; 15: the
     * host, no targeted address; "self": no pid */
    for (int pid = 10; pid <= 15; pid++) {
        mkdirf(dir, pid, "");
        mkdirf(dir, pid, "net");
        if (pid != 13)
            mkdirf(dir, pid, "ns");
    }
    assert_int_equal(mkdir(strcat(strcpy(p, dir), "/self"), 0700), 0);
    snprintf(p, sizeof(p), "%s/10/ns/net", dir);
    put(p, "", 0);
    snprintf(q, sizeof(q), "%s/11/ns/net", dir);
    assert_int_equal(link(p, q), 0);
    for (int pid = 12; pid <= 15; pid++) {
        if (pid == 13)
            continue;
        snprintf(p, sizeof(p), "%s/%d/ns/net", dir, pid);
        put(p, "", 0);
    }
    snprintf(p, sizeof(p), "%s/10/net/fib_trie", dir);
    put(p, fib_trie, strlen(fib_trie));
    snprintf(q, sizeof(q), "%s/11/net/fib_trie", dir); /* one namespace: the same files */
    assert_int_equal(link(p, q), 0);
    snprintf(p, sizeof(p), "%s/12/net/if_inet6", dir);
    put(p, "fd000000000000000000000000000099 04 40 00 82 eth0\n", 50);
    snprintf(p, sizeof(p), "%s/13/net/fib_trie", dir);
    put(p, fib_trie, strlen(fib_trie));
    huge = malloc(hlen);
    assert_non_null(huge);
    memset(huge, '\n', hlen);
    memcpy(huge + hlen - 40, "|-- 10.78.0.7\n  /32 host LOCAL\n", 31);
    snprintf(p, sizeof(p), "%s/14/net/fib_trie", dir);
    put(p, huge, hlen);
    free(huge);
    snprintf(p, sizeof(p), "%s/15/net/fib_trie", dir);
    put(p, "|-- 192.0.2.2\n /32 host LOCAL\n", 30);

    t[0] = v4("10.78.0.7");
    t[1] = v4("10.78.0.1");
    memset(&t[2], 0, sizeof(t[2]));
    assert_int_equal(inet_pton(AF_INET6, "fd00::99", t[2].a), 1);
    capture_tls_netns_sort(t, 3);

    assert_int_equal(capture_tls_netns_scan(dir, t, 3, out, 8, &res), 0);
    assert_int_equal(res.namespaces, 4); /* 10/11, 12, 14, 15 */
    assert_int_equal(res.matched, 2);
    assert_int_equal(res.left_out, 0);
    assert_true((out[0] == inode_of(dir, 10) && out[1] == inode_of(dir, 12)) ||
                (out[1] == inode_of(dir, 10) && out[0] == inode_of(dir, 12)));
    /* no room for the second: counted */
    assert_int_equal(capture_tls_netns_scan(dir, t, 3, out, 1, &res), 0);
    assert_int_equal(res.matched, 1);
    assert_int_equal(res.left_out, 1);
    /* nothing targeted: nothing matches, nothing read */
    assert_int_equal(capture_tls_netns_scan(dir, t, 0, out, 8, &res), 0);
    assert_int_equal(res.matched, 0);
    assert_int_equal(capture_tls_netns_scan("/nonexistent-proc", t, 3, out, 8, &res), -ENOENT);
    {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_ipv4_addresses_from_fib_trie),
        cmocka_unit_test(hostile_or_truncated_fib_trie),
        cmocka_unit_test(addresses_from_if_inet6),
        cmocka_unit_test(scan_names_each_targeted_namespace_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
