/* Tests for lib/util/metrics.c: the exact text Prometheus reads, escaping, names it would refuse,
 * numbers at their limits, and a buffer cap that leaves whole lines behind. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "util/metrics.h"

/* The buffer's bytes as a string, for assert_string_equal. */
static const char *text(struct nr_buf *b)
{
    static char out[8192];

    assert_true(b->len < sizeof(out));
    memcpy(out, b->data, b->len);
    out[b->len] = '\0';
    return out;
}

static void test_families(void **state)
{
    struct nr_buf b;
    struct nr_metrics m;

    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    nr_metrics_family(&m, "netreel_store_bytes_total", NR_METRICS_COUNTER, "Bytes stored.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "pcapng"}), 1234);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "index"}, {"disk", "sda"}), 0);
    nr_metrics_family(&m, "netreel_store_up", NR_METRICS_GAUGE, "1 while serving.");
    nr_metrics_u64(&m, NULL, 1);
    nr_metrics_family(&m, "netreel:ratio", NR_METRICS_UNTYPED, NULL);
    nr_metrics_double(&m, NULL, 0.5);
    nr_metrics_family(&m, "netreel_store_clock_skew_seconds", NR_METRICS_GAUGE, "");
    nr_metrics_double(&m, NR_METRICS_LABELS({"_peer", "hub-0"}), -3);
    assert_int_equal(m.err, 0);
    assert_string_equal(text(&b), "# HELP netreel_store_bytes_total Bytes stored.\n"
                                  "# TYPE netreel_store_bytes_total counter\n"
                                  "netreel_store_bytes_total{kind=\"pcapng\"} 1234\n"
                                  "netreel_store_bytes_total{kind=\"index\",disk=\"sda\"} 0\n"
                                  "# HELP netreel_store_up 1 while serving.\n"
                                  "# TYPE netreel_store_up gauge\n"
                                  "netreel_store_up 1\n"
                                  "# TYPE netreel:ratio untyped\n"
                                  "netreel:ratio 0.5\n"
                                  "# HELP netreel_store_clock_skew_seconds \n"
                                  "# TYPE netreel_store_clock_skew_seconds gauge\n"
                                  "netreel_store_clock_skew_seconds{_peer=\"hub-0\"} -3\n");
    nr_buf_free(&b);
}

static void test_escaping(void **state)
{
    struct nr_buf b;
    struct nr_metrics m;

    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    /* HELP escapes backslash and newline but keeps quotes; label values escape all three. */
    nr_metrics_family(&m, "x", NR_METRICS_GAUGE, "a \\ b\nc \"d\"");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"path", "C:\\pods\n\"x\""}), 7);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"empty", ""}), 8);
    /* UTF-8 passes through; bytes that are not UTF-8 become U+FFFD each. */
    nr_metrics_u64(&m, NR_METRICS_LABELS({"pod", "caf\xC3\xA9 \xF0\x9F\x93\xA6"}), 9);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"iface", "e\xFFth\xC3"}), 10);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"v", "\xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80"}), 11);
    assert_int_equal(m.err, 0);
    assert_string_equal(text(&b), "# HELP x a \\\\ b\\nc \"d\"\n"
                                  "# TYPE x gauge\n"
                                  "x{path=\"C:\\\\pods\\n\\\"x\\\"\"} 7\n"
                                  "x{empty=\"\"} 8\n"
                                  "x{pod=\"caf\xC3\xA9 \xF0\x9F\x93\xA6\"} 9\n"
                                  "x{iface=\"e\xEF\xBF\xBDth\xEF\xBF\xBD\"} 10\n"
                                  "x{v=\"" /* overlong '/', a surrogate, past U+10FFFF */
                                  "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                                  "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 11\n");
    nr_buf_free(&b);
}

static void test_numbers(void **state)
{
    struct nr_buf b;
    struct nr_metrics m;

    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    nr_metrics_family(&m, "n", NR_METRICS_GAUGE, NULL);
    nr_metrics_u64(&m, NULL, UINT64_MAX);
    nr_metrics_double(&m, NULL, 0.1);
    nr_metrics_double(&m, NULL, -1.5e300);
    nr_metrics_double(&m, NULL, 1e-320); /* subnormal */
    nr_metrics_double(&m, NULL, 9007199254740993.0);
    nr_metrics_double(&m, NULL, -0.0);
    nr_metrics_double(&m, NULL, NAN);
    nr_metrics_double(&m, NULL, INFINITY);
    nr_metrics_double(&m, NULL, -INFINITY);
    assert_int_equal(m.err, 0);
    assert_string_equal(text(&b), "# TYPE n gauge\n"
                                  "n 18446744073709551615\n"
                                  "n 0.10000000000000001\n"
                                  "n -1.5000000000000001e+300\n"
                                  "n 9.9998886718268301e-321\n"
                                  "n 9007199254740992\n"
                                  "n -0\n"
                                  "n NaN\n"
                                  "n +Inf\n"
                                  "n -Inf\n");
    nr_buf_free(&b);
}

/* One bad call: -EINVAL, nothing of it written, and every later call refused too. */
static void check_refused(int (*write)(struct nr_metrics *m), const char *what)
{
    struct nr_buf b;
    struct nr_metrics m;
    size_t len;

    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    assert_int_equal(nr_metrics_family(&m, "ok", NR_METRICS_GAUGE, "fine"), 0);
    len = b.len;
    if (write(&m) != -EINVAL)
        fail_msg("%s: accepted", what);
    assert_int_equal(m.err, -EINVAL);
    assert_int_equal(b.len, len);
    assert_int_equal(nr_metrics_u64(&m, NULL, 1), -EINVAL);
    assert_int_equal(nr_metrics_family(&m, "other", NR_METRICS_GAUGE, NULL), -EINVAL);
    assert_int_equal(b.len, len);
    nr_buf_free(&b);
}

static int family_empty(struct nr_metrics *m)
{
    return nr_metrics_family(m, "", NR_METRICS_GAUGE, NULL);
}
static int family_digit(struct nr_metrics *m)
{
    return nr_metrics_family(m, "9lives", NR_METRICS_GAUGE, NULL);
}
static int family_dash(struct nr_metrics *m)
{
    return nr_metrics_family(m, "netreel-store", NR_METRICS_GAUGE, NULL);
}
static int family_space(struct nr_metrics *m)
{
    return nr_metrics_family(m, "a b", NR_METRICS_GAUGE, NULL);
}
static int family_null(struct nr_metrics *m)
{
    return nr_metrics_family(m, NULL, NR_METRICS_GAUGE, NULL);
}
static int family_utf8(struct nr_metrics *m)
{
    return nr_metrics_family(m, "caf\xC3\xA9", NR_METRICS_GAUGE, NULL);
}
static int family_type(struct nr_metrics *m)
{
    return nr_metrics_family(m, "t", (enum nr_metrics_type)7, NULL);
}
static int family_too_long(struct nr_metrics *m)
{
    char name[NR_METRICS_NAME_MAX + 2];

    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    return nr_metrics_family(m, name, NR_METRICS_GAUGE, NULL);
}
static int label_colon(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"a:b", "x"}), 1);
}
static int label_reserved(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"__name__", "x"}), 1);
}
static int label_digit(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"1a", "x"}), 1);
}
static int label_empty(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"", "x"}), 1);
}
static int label_duplicate(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"a", "x"}, {"b", "y"}, {"a", "z"}), 1);
}
static int label_null_value(struct nr_metrics *m)
{
    return nr_metrics_u64(m, NR_METRICS_LABELS({"a", NULL}), 1);
}

static void test_names_refused(void **state)
{
    check_refused(family_empty, "empty name");
    check_refused(family_digit, "name starting with a digit");
    check_refused(family_dash, "name with a dash");
    check_refused(family_space, "name with a space");
    check_refused(family_null, "NULL name");
    check_refused(family_utf8, "name with UTF-8");
    check_refused(family_type, "unknown type");
    check_refused(family_too_long, "name past NR_METRICS_NAME_MAX");
    check_refused(label_colon, "label name with a colon");
    check_refused(label_reserved, "label name starting with __");
    check_refused(label_digit, "label name starting with a digit");
    check_refused(label_empty, "empty label name");
    check_refused(label_duplicate, "label given twice");
    check_refused(label_null_value, "NULL label value");
}

static void test_longest_name(void **state)
{
    char name[NR_METRICS_NAME_MAX + 1];
    struct nr_buf b;
    struct nr_metrics m;

    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    assert_int_equal(nr_metrics_family(&m, name, NR_METRICS_COUNTER, NULL), 0);
    assert_int_equal(nr_metrics_u64(&m, NULL, 1), 0);
    assert_int_equal(b.len, 2 * NR_METRICS_NAME_MAX + strlen("# TYPE  counter\n 1\n"));
    nr_buf_free(&b);
}

static void test_sample_before_family(void **state)
{
    struct nr_buf b;
    struct nr_metrics m;

    nr_buf_init(&b, 1 << 20);
    nr_metrics_init(&m, &b);
    assert_int_equal(nr_metrics_double(&m, NULL, 1.0), -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

/* Past the cap: -EOVERFLOW, and the buffer keeps only the lines written whole before it. */
static void test_cap(void **state)
{
    static const char want[] = "# TYPE c counter\n"
                               "c{k=\"v\"} 1\n";
    struct nr_buf b;
    struct nr_metrics m;

    for (size_t cap = 0; cap < sizeof(want) + 8; cap++) {
        nr_buf_init(&b, cap);
        nr_metrics_init(&m, &b);
        nr_metrics_family(&m, "c", NR_METRICS_COUNTER, NULL);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"k", "v"}), 1);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"k", "w"}), 2);
        if (cap < strlen("# TYPE c counter\n")) {
            assert_int_equal(m.err, -EOVERFLOW);
            assert_int_equal(b.len, 0);
        } else if (cap < strlen(want)) {
            assert_int_equal(m.err, -EOVERFLOW);
            assert_int_equal(b.len, strlen("# TYPE c counter\n"));
        } else if (cap < strlen(want) + strlen("c{k=\"w\"} 2\n")) {
            assert_int_equal(m.err, -EOVERFLOW);
            assert_int_equal(b.len, strlen(want));
            assert_memory_equal(b.data, want, b.len);
        } else {
            assert_int_equal(m.err, 0);
        }
        nr_buf_free(&b);
    }
}

/* A long escaped label value crossing the cap in the middle of an escape. */
static void test_cap_inside_escape(void **state)
{
    char value[600];
    struct nr_buf b;
    struct nr_metrics m;

    memset(value, '"', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    nr_buf_init(&b, 1000);
    nr_metrics_init(&m, &b);
    assert_int_equal(nr_metrics_family(&m, "q", NR_METRICS_GAUGE, NULL), 0);
    assert_int_equal(nr_metrics_u64(&m, NR_METRICS_LABELS({"v", value}), 1), -EOVERFLOW);
    assert_string_equal(text(&b), "# TYPE q gauge\n");
    nr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),     cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),      cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_longest_name), cmocka_unit_test(test_sample_before_family),
        cmocka_unit_test(test_cap),          cmocka_unit_test(test_cap_inside_escape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
