/* lib/pcapng/merge.c: the heap gives what sorting gives, ties by rank then push order, through
 * any mix of pushes and pops; and it holds no more than its max. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/merge.h"

/* xorshift64*: the same inputs on every run and every machine. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

struct item {
    int64_t ts;
    uint64_t rank;
    size_t pushed; /* index in push order */
};

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a;
    const struct item *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->pushed < y->pushed ? -1 : x->pushed > y->pushed;
}

/* Push everything, pop everything: the order qsort gives by (ts, rank, push order). */
static void test_pop_order_is_sorted_order(void **state)
{
    enum { N = 2000 };
    struct item *items = calloc(N, sizeof(*items));
    struct item *want = calloc(N, sizeof(*want));
    struct pcapng_merge m;

    assert_non_null(items);
    assert_non_null(want);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        /* Narrow ranges make many ties; wide ones, negative and extreme timestamps. */
        uint64_t ts_range = seed % 4 == 0 ? UINT64_MAX : (seed % 4) * 7;
        size_t n = (size_t)(seed * 97 % N) + 1;

        rng_state = seed * UINT64_C(0x9E3779B97F4A7C15);
        pcapng_merge_init(&m, n);
        for (size_t i = 0; i < n; i++) {
            items[i].ts = ts_range == UINT64_MAX ? (int64_t)rng() : (int64_t)(rng() % ts_range);
            items[i].rank = rng() % 3;
            items[i].pushed = i;
            assert_int_equal(pcapng_merge_push(&m, &items[i], items[i].ts, items[i].rank), 0);
        }
        assert_int_equal(pcapng_merge_size(&m), n);
        memcpy(want, items, n * sizeof(*items));
        qsort(want, n, sizeof(*want), item_cmp);
        for (size_t i = 0; i < n; i++) {
            int64_t peek_ts = 0;
            void *peek_src = NULL;
            int64_t ts = 0;
            struct item *got;

            assert_true(pcapng_merge_peek(&m, &peek_ts, &peek_src));
            got = pcapng_merge_pop(&m, &ts);
            assert_ptr_equal(got, peek_src);
            assert_int_equal(ts, peek_ts);
            if (got->pushed != want[i].pushed)
                fail_msg("seed %llu pop %zu: got push #%zu (ts %lld rank %llu), want #%zu",
                         (unsigned long long)seed, i, got->pushed, (long long)got->ts,
                         (unsigned long long)got->rank, want[i].pushed);
            assert_int_equal(ts, want[i].ts);
        }
        assert_int_equal(pcapng_merge_size(&m), 0);
        pcapng_merge_free(&m);
    }
    free(items);
    free(want);
}

/* Random pushes and pops against a linear scan for the smallest key. */
static void test_interleaved_against_scan(void **state)
{
    enum { MAX = 64, OPS = 20000 };
    struct item live[MAX];
    static struct item pool[OPS];
    size_t n_live = 0;
    size_t pushes = 0;
    struct pcapng_merge m;

    rng_state = 42;
    pcapng_merge_init(&m, MAX);
    for (size_t op = 0; op < OPS; op++) {
        bool push = n_live == 0 || (n_live < MAX && rng() % 3 != 0);

        if (push) {
            struct item *it = &pool[pushes];

            it->ts = (int64_t)(rng() % 50) - 25;
            it->rank = rng() % 4;
            it->pushed = pushes++;
            assert_int_equal(pcapng_merge_push(&m, it, it->ts, it->rank), 0);
            live[n_live++] = *it;
        } else {
            size_t best = 0;
            struct item *got;

            for (size_t i = 1; i < n_live; i++)
                if (item_cmp(&live[i], &live[best]) < 0)
                    best = i;
            got = pcapng_merge_pop(&m, NULL);
            assert_non_null(got);
            assert_int_equal(got->pushed, live[best].pushed);
            live[best] = live[--n_live];
        }
        assert_int_equal(pcapng_merge_size(&m), n_live);
    }
    pcapng_merge_free(&m);
}

/* The use it is made for: sorted runs, each pushed again with its next packet after a pop. */
static void test_k_way_merge_of_sorted_runs(void **state)
{
    enum { K = 7, LEN = 300 };
    struct run {
        int64_t ts[LEN];
        size_t next;
        uint64_t rank;
    } runs[K];
    struct item want[K * LEN];
    size_t n = 0;
    struct pcapng_merge m;

    rng_state = 7;
    for (size_t k = 0; k < K; k++) {
        int64_t t = (int64_t)(rng() % 10);

        runs[k].next = 0;
        runs[k].rank = K - k; /* ranks need not follow the order of the runs */
        for (size_t i = 0; i < LEN; i++) {
            t += (int64_t)(rng() % 3); /* steps of 0 make ties within a run */
            runs[k].ts[i] = t;
            want[n++] = (struct item){t, runs[k].rank, i};
        }
    }
    qsort(want, n, sizeof(want[0]), item_cmp); /* (ts, rank, index in its run) */

    pcapng_merge_init(&m, K);
    for (size_t k = 0; k < K; k++)
        assert_int_equal(pcapng_merge_push(&m, &runs[k], runs[k].ts[0], runs[k].rank), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t ts;
        struct run *r = pcapng_merge_pop(&m, &ts);

        assert_non_null(r);
        assert_int_equal(ts, want[i].ts);
        assert_int_equal(r->rank, want[i].rank);
        assert_int_equal(r->next, want[i].pushed);
        if (++r->next < LEN)
            assert_int_equal(pcapng_merge_push(&m, r, r->ts[r->next], r->rank), 0);
    }
    assert_null(pcapng_merge_pop(&m, NULL));
    pcapng_merge_free(&m);
}

static void test_limits(void **state)
{
    int sources[1000];
    struct pcapng_merge m;
    int64_t ts = 99;
    void *src = &ts;

    /* Empty: nothing to pop or peek, outputs untouched. */
    pcapng_merge_init(&m, 5);
    assert_null(pcapng_merge_pop(&m, &ts));
    assert_false(pcapng_merge_peek(&m, &ts, &src));
    assert_int_equal(ts, 99);
    assert_ptr_equal(src, &ts);

    for (int i = 0; i < 5; i++)
        assert_int_equal(pcapng_merge_push(&m, &sources[i], 10 - i, 0), 0);
    assert_int_equal(pcapng_merge_push(&m, &sources[5], 0, 0), -ENOSPC);
    assert_int_equal(pcapng_merge_size(&m), 5);
    assert_true(pcapng_merge_peek(&m, NULL, NULL));
    assert_ptr_equal(pcapng_merge_pop(&m, NULL), &sources[4]);
    assert_int_equal(pcapng_merge_push(&m, &sources[5], 0, 0), 0); /* room again */
    assert_int_equal(pcapng_merge_push(&m, &sources[6], 0, 0), -ENOSPC);
    assert_ptr_equal(pcapng_merge_pop(&m, &ts), &sources[5]);
    assert_int_equal(ts, 0);
    pcapng_merge_free(&m);

    pcapng_merge_init(&m, 0);
    assert_int_equal(pcapng_merge_push(&m, &sources[0], 0, 0), -ENOSPC);
    pcapng_merge_free(&m);

    /* Growing past the first allocation, up to a max that is no power of two. */
    pcapng_merge_init(&m, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pcapng_merge_push(&m, &sources[i], i % 10, (uint64_t)i), 0);
    assert_int_equal(pcapng_merge_push(&m, &sources[0], 0, 0), -ENOSPC);
    assert_true(m.cap <= 1000);
    for (int i = 0; i < 1000; i++) {
        int *got = pcapng_merge_pop(&m, &ts);

        assert_int_equal(ts, i / 100);
        assert_int_equal(got - sources, i % 100 * 10 + i / 100);
    }
    pcapng_merge_free(&m);
    pcapng_merge_free(&m); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_order_is_sorted_order),
        cmocka_unit_test(test_interleaved_against_scan),
        cmocka_unit_test(test_k_way_merge_of_sorted_runs),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
