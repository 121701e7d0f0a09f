/* Tests for lib/kube/target.c and filter.c: which pods are targeted, the bounds of the pod-name
 * regex (PCRE2), that the owner hears of a change only when the set really changes, and that
 * every filter text (empty set, IPv6, the largest allowed) compiles with libpcap, optimized or
 * not, on the capture's link types. */
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
    assert_true(kube_selector_match(&s, &p, NULL)); /* unanchored: a substring search */
    snprintf(p.name, sizeof(p.name), "db-1");
    assert_false(kube_selector_match(&s, &p, NULL));
    snprintf(p.name, sizeof(p.name), "myweb-2");
    assert_true(kube_selector_match(&s, &p, NULL));
    snprintf(p.namespace, sizeof(p.namespace), "other");
    assert_false(kube_selector_match(&s, &p, NULL)); /* not in --namespaces */
    snprintf(p.namespace, sizeof(p.namespace), "prod");
    assert_true(kube_selector_match(&s, &p, NULL));
    p.host_network = true;
    assert_false(kube_selector_match(&s, &p, NULL));
    p.host_network = false;
    p.finished = true;
    assert_false(kube_selector_match(&s, &p, NULL));
    p.finished = false;
    p.n_ips = 0;
    assert_false(kube_selector_match(&s, &p, NULL));
    kube_selector_free(&s);

    /* No regex, no namespaces: everything but the excluded. */
    assert_int_equal(kube_selector_init(&s, NULL, "", "kube-system", err, sizeof(err)), 0);
    p = pod("kube-system", "coredns", "10.0.0.9", NULL);
    assert_false(kube_selector_match(&s, &p, NULL));
    snprintf(p.namespace, sizeof(p.namespace), "anything");
    assert_true(kube_selector_match(&s, &p, NULL));
    kube_selector_free(&s);

    assert_int_equal(kube_selector_init(&s, "^web-[0-9]+$", NULL, NULL, err, sizeof(err)), 0);
    assert_false(kube_selector_match(&s, &p, NULL));
    snprintf(p.name, sizeof(p.name), "web-12");
    assert_true(kube_selector_match(&s, &p, NULL));
    kube_selector_free(&s);

    assert_int_equal(kube_selector_init(&s, "web(", NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err,
                        "invalid --pod-regex \"web(\": missing closing parenthesis at offset 4");
    assert_int_equal(kube_selector_init(&s, NULL, "ok,Not_OK", NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "Not_OK"));
}

static double since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Whether the selector takes a pod of this name, within `seconds`; *limited as
 * kube_selector_match sets it. */
static bool name_matches(const struct kube_selector *s, const char *name, bool *limited,
                         double seconds)
{
    struct kube_pod p = pod("default", "x", "10.0.0.1", NULL);
    struct timespec t0;
    bool m;

    snprintf(p.name, sizeof(p.name), "%s", name);
    *limited = false;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    m = kube_selector_match(s, &p, limited);
    if (since(&t0) > seconds)
        fail_msg("matching \"%.40s\" took %.3f s", name, since(&t0));
    return m;
}

/* PCRE2 reads what users type in RE2 and Perl: \d is a digit (glibc's ERE read it as 'd'). */
static void selector_perl_syntax(void **state)
{
    static const char *const good[] = {
        "^web-[0-9]+$",
        "a{1,255}",
        "(api|web)-v[0-9]+",
        "[\\1]",
        "(^|/)api($|-)",
        "web-\\b(api|db)\\B",
        "[$^]+",
        "(|web|api)-[0-9]+",
        "(?i)^WEB",
        "^web-(?:a|b)$",
        "web(?=-1)",
        "^web-.+?-x$",
        "[[:digit:]]+$",
        "\\\\<",
        "[\\<>]",
        "\\Q\\<\\E",
        "(\\b|\\B)(\\b|\\B)(\\b|\\B)(\\b|\\B)",
    };
    struct kube_selector s;
    char err[256];
    bool limited;

    assert_int_equal(kube_selector_init(&s, "^api-\\d+$", NULL, NULL, err, sizeof(err)), 0);
    assert_true(name_matches(&s, "api-12", &limited, 1.0));
    assert_false(limited);
    assert_false(name_matches(&s, "api-dd", &limited, 1.0));
    assert_false(limited);
    kube_selector_free(&s);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (kube_selector_init(&s, good[i], NULL, NULL, err, sizeof(err)) != 0)
            fail_msg("\"%s\" refused: %s", good[i], err);
        kube_selector_free(&s);
    }
}

/* GNU's word boundaries would become the characters '<' and '>' in PCRE2 and silently match no
 * pod: refused, with the hint. */
static void selector_refuses_gnu_boundaries(void **state)
{
    struct kube_selector s;
    char err[256];

    assert_int_equal(kube_selector_init(&s, "\\<web", NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid --pod-regex \"\\<web\": \\< at offset 0 is GNU's word "
                             "boundary, which PCRE2 reads as the character <: use \\b");
    assert_int_equal(kube_selector_init(&s, "[a]web\\>", NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "\\> at offset 6 is GNU's word boundary"));
    assert_int_equal(kube_regex_check("(api|\\<db)", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "use \\b"));
}

/* Compiling is bounded by the length, the nesting and PCRE2's code cap. */
static void selector_bounds_compile(void **state)
{
    static char long_re[KUBE_REGEX_MAX + 2], deep[2 * KUBE_REGEX_NEST_MAX + 8];
    struct kube_selector s;
    char err[256];
    size_t n = 0;

    memset(long_re, 'a', KUBE_REGEX_MAX);
    assert_int_equal(kube_selector_init(&s, long_re, NULL, NULL, err, sizeof(err)), 0);
    kube_selector_free(&s);
    long_re[KUBE_REGEX_MAX] = 'a';
    assert_int_equal(kube_selector_init(&s, long_re, NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "...\": 16385 bytes, at most 16384"));
    assert_int_equal(kube_regex_check(long_re, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "16385 bytes, at most 16384");

    for (int i = 0; i <= KUBE_REGEX_NEST_MAX; i++)
        deep[n++] = '(';
    deep[n++] = 'a';
    for (int i = 0; i <= KUBE_REGEX_NEST_MAX; i++)
        deep[n++] = ')';
    assert_true(n < sizeof(deep));
    assert_int_equal(kube_regex_check(deep, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "parentheses are too deeply nested at offset"));
}

/* The patterns the guard for glibc refused (fuzz_cli_args found most of them: gigabytes or
 * minutes in regcomp) are refused by PCRE2's grammar, or compile and match within the limits:
 * at worst, a name that stops at the match limit counts as matching. The chart's tap.regex
 * and a snapshot's pod_regex reach the captures and stores without `netreel tap`'s check. */
static void selector_bounds_costly_regexes(void **state)
{
    /* empty alternatives repeated: 1.7 GB in glibc's regcomp (fuzz_cli_args, 2026-12-07) */
    static const char empty_alternatives[] =
        "((||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||"
        "||||||||||||||||||||||||||||||||||||||||||||||||a?){1,100})";
    static const struct {
        const char *re, *why;
    } refused[] = {
        {"zzzz++++++++++++++++++++++++++++++++++++++++",
         "quantifier does not follow a repeatable item at offset 6"},
        {"x??????????+++++++++", "quantifier does not follow a repeatable item at offset 3"},
        {"((a?){1,100}){1,100}", "regular expression is too large"},
        {"((a{1,200}){1,200}){1,200}", "regular expression is too large"},
        {"){1,10000}){1,10}", "unmatched closing parenthesis at offset 0"},
        {"^*a", "quantifier does not follow a repeatable item at offset 1"},
    };
    /* Anchors, back-references, empty alternatives: each took glibc from 1.6 s to minutes or
     * gigabytes (the guard refused them). */
    static const char *const compiled[] = {
        "a{0,10\\000}",
        "(a*)(a*)\\1\\2b",
        "(a*)(a*)(a*)(a*)\\1\\2\\3\\4b",
        empty_alternatives,
        "(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*(\\b|\\B)*",
        "((\\b|x)*(\\B|y)*)*",
        "((^|$)+){16}",
        "(^|$)(^|$)(^|$)(^|$)(^|$)",
        "(((\\b)*|(\\B)*)*|a)*",
        "(a+)+$",
        "^(a|aa)+$",
    };
    static char long_name[KUBE_NAME_MAX + 1];
    const char *names[] = {
        "web-7d4b9c6f5-x2x9z",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        "a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-!",
        long_name,
    };
    struct kube_selector s;
    char err[512];
    bool limited;

    memset(long_name, 'a', sizeof(long_name) - 2);
    long_name[sizeof(long_name) - 2] = '!';
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        err[0] = '\0';
        assert_int_equal(kube_selector_init(&s, refused[i].re, NULL, NULL, err, sizeof(err)),
                         -EINVAL);
        if (!strstr(err, refused[i].why))
            fail_msg("\"%s\": %s", refused[i].re, err);
    }
    for (size_t i = 0; i < sizeof(compiled) / sizeof(compiled[0]); i++) {
        if (kube_selector_init(&s, compiled[i], NULL, NULL, err, sizeof(err)) != 0)
            fail_msg("\"%.40s\" refused: %s", compiled[i], err);
        /* The match limit is about 1 ms of work; a second allows for ASan and a busy machine. */
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            name_matches(&s, names[k], &limited, 1.0);
        kube_selector_free(&s);
    }
}

/* (a+)+$ on 31 a's and a '!' backtracks 2^31 ways: PCRE2 stops at the match limit, promptly,
 * and the pod counts as matching, so it cannot escape the recording through its name. */
static void selector_match_limit_fails_open(void **state)
{
    struct kube_selector s;
    char name[40];
    bool limited;

    memset(name, 'a', 31);
    snprintf(name + 31, sizeof(name) - 31, "!");
    assert_int_equal(kube_selector_init(&s, "(a+)+$", NULL, NULL, NULL, 0), 0);
    assert_true(name_matches(&s, name, &limited, 1.0));
    assert_true(limited);
    assert_true(name_matches(&s, "web-aaa", &limited, 1.0)); /* a real match */
    assert_false(limited);
    assert_false(name_matches(&s, "web-1", &limited, 1.0));
    assert_false(limited);
    kube_selector_free(&s);
    /* A pattern may lower its limits, never raise them. */
    assert_int_equal(kube_selector_init(&s, "(*LIMIT_MATCH=1000000000)(a+)+$", NULL, NULL, NULL, 0),
                     0);
    assert_true(name_matches(&s, name, &limited, 1.0));
    assert_true(limited);
    kube_selector_free(&s);
}

/* The target says so once per pod that joined through the limit: not on its later events,
 * not when a relist finds it again, again for a new pod of the same name. */
static void target_reports_limit_once(void **state)
{
    struct kube_selector s;
    struct kube_target t;
    struct kube_pod a = pod("default", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-", "10.0.0.1", NULL);
    struct kube_pod b = pod("default", "aaaa", "10.0.0.2", NULL);

    snprintf(a.uid, sizeof(a.uid), "uid-1");
    assert_int_equal(kube_selector_init(&s, "^(a+)+$", NULL, NULL, NULL, 0), 0);
    kube_target_init(&t, &s);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &a), KUBE_TARGET_LIMITED);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &b), 0); /* a real match */
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_MODIFIED, &a), 0);
    assert_int_equal(kube_target_commit(&t), 1);
    assert_int_equal(t.set.n, 2);
    kube_target_clear(&t); /* a relist */
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &a), 0);
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_DELETED, &a), 0);
    assert_int_equal(kube_target_commit(&t), 1);
    snprintf(a.uid, sizeof(a.uid), "uid-2"); /* a new pod of the same name */
    assert_int_equal(kube_target_apply(&t, KUBE_EVENT_ADDED, &a), KUBE_TARGET_LIMITED);
    kube_target_free(&t);
    kube_selector_free(&s);
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
        cmocka_unit_test(selector_perl_syntax),
        cmocka_unit_test(selector_refuses_gnu_boundaries),
        cmocka_unit_test(selector_bounds_compile),
        cmocka_unit_test(selector_bounds_costly_regexes),
        cmocka_unit_test(selector_match_limit_fails_open),
        cmocka_unit_test(target_reports_limit_once),
        cmocka_unit_test(set_changes_only_when_it_changes),
        cmocka_unit_test(filter_text),
        cmocka_unit_test(filter_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
