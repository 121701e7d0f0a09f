/* Tests for lib/kube/target.c and filter.c: which pods are targeted, that the owner hears of a
 * change only when the set really changes, and that every filter text (empty set, IPv6, the
 * largest allowed) compiles with libpcap, optimized or not, on the capture's link types. */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kube/filter.h"
#include "kube/target.h"
#include "util/error.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif

static struct kube_pod pod(const char *ns, const char *name, const char *ip1, const char *ip2)
{
    struct kube_pod p;

    memset(&p, 0, sizeof(p));
    snprintf(p.namespace, sizeof(p.namespace), "%s", ns);
    snprintf(p.name, sizeof(p.name), "%s", name);
    for (const char *ip = ip1; ip != NULL; ip = ip == ip1 ? ip2 : NULL) {
        struct kube_ip *a = &p.ips[p.n_ips];

        if (inet_pton(AF_INET, ip, a->addr) == 1)
            a->family = AF_INET;
        else if (inet_pton(AF_INET6, ip, a->addr) == 1)
            a->family = AF_INET6;
        else
            fail_msg("bad test address %s", ip);
        p.n_ips++;
    }
    return p;
}

static void selector_rules(void **state)
{
    struct kube_selector s;
    struct kube_pod p = pod("default", "web-1", "10.0.0.1", NULL);
    char err[256] = "";

    assert_int_equal(
        kube_selector_init(&s, "eb-", " default , prod,,", "kube-system", err, sizeof(err)), 0);
    assert_true(kube_selector_match(&s, &p)); /* unanchored: a substring search */
    snprintf(p.name, sizeof(p.name), "db-1");
    assert_false(kube_selector_match(&s, &p));
    snprintf(p.name, sizeof(p.name), "myweb-2");
    assert_true(kube_selector_match(&s, &p));
    snprintf(p.namespace, sizeof(p.namespace), "other");
    assert_false(kube_selector_match(&s, &p)); /* not in --namespaces */
    snprintf(p.namespace, sizeof(p.namespace), "prod");
    assert_true(kube_selector_match(&s, &p));
    p.host_network = true;
    assert_false(kube_selector_match(&s, &p));
    p.host_network = false;
    p.finished = true;
    assert_false(kube_selector_match(&s, &p));
    p.finished = false;
    p.n_ips = 0;
    assert_false(kube_selector_match(&s, &p));
    kube_selector_free(&s);

    /* No regex, no namespaces: everything but the excluded. */
    assert_int_equal(kube_selector_init(&s, NULL, "", "kube-system", err, sizeof(err)), 0);
    p = pod("kube-system", "coredns", "10.0.0.9", NULL);
    assert_false(kube_selector_match(&s, &p));
    snprintf(p.namespace, sizeof(p.namespace), "anything");
    assert_true(kube_selector_match(&s, &p));
    kube_selector_free(&s);

    assert_int_equal(kube_selector_init(&s, "^web-[0-9]+$", NULL, NULL, err, sizeof(err)), 0);
    assert_false(kube_selector_match(&s, &p));
    snprintf(p.name, sizeof(p.name), "web-12");
    assert_true(kube_selector_match(&s, &p));
    kube_selector_free(&s);

    assert_int_equal(kube_selector_init(&s, "web(", NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "invalid --pod-regex \"web(\""));
    assert_int_equal(kube_selector_init(&s, NULL, "ok,Not_OK", NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "Not_OK"));
}

/* The chart's tap.regex reaches every capture without `netreel tap`'s checks: the capture
 * refuses what would take glibc gigabytes or minutes (found by fuzz_cli_args). */
static void selector_refuses_costly_regexes(void **state)
{
    /* empty alternatives repeated: 1.7 GB in regcomp (fuzz_cli_args, 2026-12-07) */
    static const char empty_alternatives[] =
        "((||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
        "||||||||||||||||||||||||||||||||||||||||||||||||a?){1,100})";
    static const char *const bad[] = {
        "zzzz++++++++++++++++++++++++++++++++++++++++",
        "x??????????+++++++++",
        "((a?){1,100}){1,100}",
        "){1,10000}){1,10}",
        "a{0,10\\000}",
        "(a*)(a*)\\1\\2b",
        empty_alternatives,
    };
    /* Anchors: glibc's closures through them take exponential time in regcomp (looked for
     * after a stall of fuzz_cli_args): the first three and the fifth took from 1.6 s to more
     * than 10 s; the others break the same rule (more than 8, or one repeated). */
    static const char *const bad_anchors[] = {
        "(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*",
        "((\\b|x)*(\\B|y)*)*",
        "((^|$)+){16}",
        "(^|$)(^|$)(^|$)(^|$)(^|$)",
        "(((\\b)*|(\\B)*)*|a)*",
        "^*a",
    };
    static const char *const good[] = {
        "^web-[0-9]+$",
        "a{1,255}",
        "(api|web)-v[0-9]+",
        "[\\1]",
        "(^|/)api($|-)",
        "web-\\b(api|db)\\B",
        "[$^]+",
        "(\\b|\\B)(\\b|\\B)(\\b|\\B)(\\b|\\B)",
        "(|web|api)-[0-9]+",
    };
    struct kube_selector s;
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(kube_selector_init(&s, bad[i], NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_true(strstr(err, "repeats too much") || strstr(err, "back-reference"));
    }
    for (size_t i = 0; i < sizeof(bad_anchors) / sizeof(bad_anchors[0]); i++) {
        err[0] = '\0';
        assert_int_equal(kube_selector_init(&s, bad_anchors[i], NULL, NULL, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "repeats an anchor, or has more than 8"));
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(kube_selector_init(&s, good[i], NULL, NULL, err, sizeof(err)), 0);
        kube_selector_free(&s);
    }
}

static void set_changes_only_when_it_changes(void **state)
{
    struct kube_selector s;
    struct kube_target t;
    struct kube_pod a = pod("default", "web-1", "10.0.0.2", "fd00::1");
    struct kube_pod b = pod("default", "web-2", "10.0.0.1", NULL);
    struct kube_pod c = pod("default", "db", "10.0.0.3", NULL);
    char buf[64];

    assert_int_equal(kube_selector_init(&s, "web", NULL, NULL, NULL, 0), 0);
    kube_target_init(&t, &s);
    assert_int_equal(kube_target_commit(&t), 1); /* the first set, empty, is news */
    assert_int_equal(t.set.n, 0);
    assert_int_equal(kube_target_commit(&t), 0);

    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &a), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &b), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &c), 0); /* not targeted */
    assert_int_equal(kube_target_commit(&t), 1);
    assert_int_equal(t.set.n, 3);
    /* Sorted: IPv4 by address, then IPv6. */
    assert_string_equal(kube_ip_format(&t.set.entries[0].ip, buf, sizeof(buf)), "10.0.0.1");
    assert_string_equal(t.set.entries[0].name, "web-2");
    assert_string_equal(kube_ip_format(&t.set.entries[1].ip, buf, sizeof(buf)), "10.0.0.2");
    assert_string_equal(kube_ip_format(&t.set.entries[2].ip, buf, sizeof(buf)), "fd00::1");

    /* A MODIFIED that changes nothing targeting sees, a BOOKMARK, a relist with the same
     * pods: no change. */
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_MODIFIED, &a), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_BOOKMARK, &c), 0);
    assert_int_equal(kube_target_commit(&t), 0);
    kube_target_clear(&t);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &b), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &a), 0);
    assert_int_equal(kube_target_commit(&t), 0);

    /* It finishes: out. */
    a.finished = true;
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_MODIFIED, &a), 0);
    assert_int_equal(kube_target_commit(&t), 1);
    assert_int_equal(t.set.n, 1);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_DELETED, &b), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_DELETED, &b), 0); /* twice: harmless */
    assert_int_equal(kube_target_commit(&t), 1);
    assert_int_equal(t.set.n, 0);
    kube_target_free(&t);
    kube_selector_free(&s);
}

static void compiles(const char *text, double *seconds)
{
    static const int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL2};
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t d = 0; d < 2; d++) {
        pcap_t *p = pcap_open_dead(dlts[d], 262144);

        for (int opt = 0; opt <= 1; opt++) {
            struct bpf_program prog;

            if (pcap_compile(p, &prog, text, opt, PCAP_NETMASK_UNKNOWN) != 0)
                fail_msg("pcap_compile(dlt %d, optimize %d) of \"%.100s\": %s", dlts[d], opt, text,
                         pcap_geterr(p));
            pcap_freecode(&prog);
        }
        pcap_close(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (seconds != NULL)
        *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void filter_text(void **state)
{
    struct kube_target_entry e[4];
    struct kube_target_set set = {e, 0};
    struct nr_buf out;
    struct kube_pod p = pod("a", "b", "10.0.0.1", "fd00::1");

    nr_buf_init(&out, 1u << 20);
    assert_int_equal(kube_filter_build(&set, &out), 0);
    assert_string_equal((char *)out.data, KUBE_FILTER_NOTHING);
    assert_int_equal(out.len, strlen(KUBE_FILTER_NOTHING) + 1);
    compiles((char *)out.data, NULL); /* the optimizer must not call it "rejects all" */

    memset(e, 0, sizeof(e));
    e[0].ip = p.ips[0];
    e[1].ip = p.ips[0]; /* the same address from two pods: one term */
    e[2].ip = p.ips[1];
    set.n = 3;
    assert_int_equal(kube_filter_build(&set, &out), 0);
    assert_string_equal((char *)out.data, "ip host 10.0.0.1 or ip6 host fd00::1");
    compiles((char *)out.data, NULL);

    /* Too small a buffer: -EOVERFLOW, nothing half-written. */
    nr_buf_free(&out);
    nr_buf_init(&out, 20);
    assert_int_equal(kube_filter_build(&set, &out), -EOVERFLOW);
    assert_int_equal(out.len, 0);
    nr_buf_free(&out);
}

/* The largest allowed set, half IPv4 and half IPv6, compiles; one more address is refused. The
 * time it takes is printed (no threshold: it depends on the machine). */
static void filter_bound(void **state)
{
    static struct kube_target_entry e[KUBE_FILTER_HOSTS_MAX + 1];
    struct kube_target_set set = {e, KUBE_FILTER_HOSTS_MAX};
    struct nr_buf out;
    double secs = 0;

    for (size_t i = 0; i <= KUBE_FILTER_HOSTS_MAX; i++) {
        e[i].ip.family = i < KUBE_FILTER_HOSTS_MAX / 2 ? AF_INET : AF_INET6;
        if (e[i].ip.family == AF_INET) {
            e[i].ip.addr[0] = 10;
            e[i].ip.addr[2] = (uint8_t)(i >> 8);
            e[i].ip.addr[3] = (uint8_t)i;
        } else {
            e[i].ip.addr[0] = 0xfd;
            e[i].ip.addr[14] = (uint8_t)(i >> 8);
            e[i].ip.addr[15] = (uint8_t)i;
        }
    }
    nr_buf_init(&out, KUBE_FILTER_HOSTS_MAX * 47 + 64);
    assert_int_equal(kube_filter_build(&set, &out), 0);
    compiles((char *)out.data, &secs);
    printf("# filter of %d addresses: %zu bytes, pcap_compile x4 (2 link types, optimized or "
           "not) %.3f s\n",
           KUBE_FILTER_HOSTS_MAX, out.len, secs);
    set.n = KUBE_FILTER_HOSTS_MAX + 1;
    assert_int_equal(kube_filter_build(&set, &out), NR_EOVERSIZE);
    nr_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(selector_rules),
        cmocka_unit_test(selector_refuses_costly_regexes),
        cmocka_unit_test(set_changes_only_when_it_changes),
        cmocka_unit_test(filter_text),
        cmocka_unit_test(filter_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
