/* Tests for services/hub/clock.c: NTP's offset and bound from the smallest delays each way,
 * chains through intermediate nodes, and what cannot be measured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hub/clock.h"

#define US 1000LL
#define MS 1000000LL

/* A packet from `from` to `to` that took `delay` on the wire, the receiver's clock `skew` ahead
 * of the sender's, sent at t on the sender's clock. */
static void packet(struct hub_clock *c, size_t from, size_t to, int64_t t, int64_t delay,
                   int64_t skew)
{
    hub_clock_sample(c, from, to, t, t + delay + skew);
}

static void two_nodes_three_ms_apart(void **state)
{
    struct hub_clock *c = hub_clock_new(2);
    struct hub_clock_offset o[2];

    assert_non_null(c);
    /* node 1 is 3 ms behind node 0; delays 80..500 us, queued ones longer */
    for (int i = 0; i < 50; i++) {
        packet(c, 0, 1, i * MS, 80 * US + (i % 7) * 60 * US, -3 * MS);
        packet(c, 1, 0, i * MS, 90 * US + (i % 5) * 70 * US, 3 * MS);
    }
    hub_clock_solve(c, 0, o);
    assert_true(o[0].known);
    assert_int_equal(o[0].offset_ns, 0);
    assert_true(o[1].known);
    /* (min(d01) - min(d10)) / 2 = ((80us - 3ms) - (90us + 3ms)) / 2 */
    assert_int_equal(o[1].offset_ns, -3 * MS - 5 * US);
    assert_int_equal(o[1].uncertainty_ns, 85 * US);
    assert_int_equal(o[1].samples, 100);
    /* the truth is within the bound */
    assert_true(o[1].offset_ns - o[1].uncertainty_ns <= -3 * MS);
    assert_true(o[1].offset_ns + o[1].uncertainty_ns >= -3 * MS);
    /* against node 1 instead: the other sign */
    hub_clock_solve(c, 1, o);
    assert_int_equal(o[0].offset_ns, 3 * MS + 5 * US);
    hub_clock_free(c);
}

static void chains_and_what_is_not_measured(void **state)
{
    struct hub_clock *c = hub_clock_new(4);
    struct hub_clock_offset o[4];

    /* 0 <-> 1 both ways, 1 <-> 2 both ways, 0 -> 3 only one way, 2 never meets 0 */
    packet(c, 0, 1, 0, 100 * US, 1 * MS);
    packet(c, 1, 0, 0, 100 * US, -1 * MS);
    packet(c, 1, 2, 0, 200 * US, 2 * MS);
    packet(c, 2, 1, 0, 200 * US, -2 * MS);
    packet(c, 0, 3, 0, 50 * US, 0);
    /* nonsense is ignored: a node with itself, nodes that do not exist */
    hub_clock_sample(c, 2, 2, 0, 5);
    hub_clock_sample(c, 9, 1, 0, 5);
    hub_clock_solve(c, 0, o);
    assert_true(o[1].known);
    assert_int_equal(o[1].offset_ns, 1 * MS);
    assert_int_equal(o[1].uncertainty_ns, 100 * US);
    assert_true(o[2].known); /* through node 1: offsets and bounds add up */
    assert_int_equal(o[2].offset_ns, 3 * MS);
    assert_int_equal(o[2].uncertainty_ns, 300 * US);
    assert_false(o[3].known);
    hub_clock_free(c);
    assert_null(hub_clock_new(0));
}

static void many_pairs(void **state)
{
    /* A ring of 500 nodes, each exchanging with the next: every node measured, through the
     * shorter way round. */
    size_t n = 500;
    struct hub_clock *c = hub_clock_new(n);
    struct hub_clock_offset o[500];

    for (size_t i = 0; i < n; i++) {
        size_t j = (i + 1) % n;
        packet(c, i, j, 0, 10 * US, 0);
        packet(c, j, i, 0, 10 * US, 0);
    }
    hub_clock_solve(c, 0, o);
    for (size_t i = 0; i < n; i++) {
        size_t hops = i < n - i ? i : n - i;
        assert_true(o[i].known);
        assert_int_equal(o[i].offset_ns, 0);
        assert_int_equal(o[i].uncertainty_ns, (int64_t)hops * 10 * US);
    }
    hub_clock_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_nodes_three_ms_apart),
        cmocka_unit_test(chains_and_what_is_not_measured),
        cmocka_unit_test(many_pairs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
