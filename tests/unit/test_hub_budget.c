/* Tests for services/hub/budget.c: the memory budget's split among snapshots and stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hub/budget.h"

static void shares_shrink_with_stores_down_to_the_floors(void **state)
{
    struct hub_share a, b, c;

    (void)state;
    /* 128 MiB for 4 snapshots: 32 MiB each; 16 stores: 2 MiB each. */
    hub_budget_share(128u << 20, 4, 16, &a);
    assert_int_equal(a.chunk, 256u << 10); /* the ceiling: 2 MiB / 4 would be 512 KiB */
    assert_int_equal(a.window, 1u << 20);  /* 2 MiB / 2 */
    /* 128 stores: 256 KiB each. */
    hub_budget_share(128u << 20, 4, 128, &b);
    assert_int_equal(b.chunk, 64u << 10);
    assert_int_equal(b.window, 128u << 10);
    /* 1024 stores: 32 KiB each, a window of two messages and two message buffers. */
    hub_budget_share(128u << 20, 4, 1024, &b);
    assert_int_equal(b.chunk, 8u << 10);
    assert_int_equal(b.window, 16u << 10);
    assert_true(b.window + 2 * b.chunk <= 32u << 10);
    /* 4096 stores (the most a snapshot takes): 8 KiB each, the floors that keep the merge
     * moving, which the default budget holds. */
    hub_budget_share(128u << 20, 4, 4096, &c);
    assert_int_equal(c.chunk, HUB_CHUNK_MIN);
    assert_int_equal(c.window, HUB_WINDOW_MIN);
    assert_true(c.window + 2 * c.chunk <= 8u << 10);
    /* More stores than the budget holds at the floors: the floors. */
    hub_budget_share(HUB_MIN_BUDGET, 4, 4096, &c);
    assert_int_equal(c.chunk, HUB_CHUNK_MIN);
    assert_int_equal(c.window, HUB_WINDOW_MIN);
}

static void one_store_gets_at_most_the_ceilings(void **state)
{
    struct hub_share s;

    (void)state;
    hub_budget_share(1u << 30, 1, 1, &s);
    assert_int_equal(s.chunk, HUB_CHUNK_MAX);
    assert_int_equal(s.window, HUB_WINDOW_MAX);
    hub_budget_share(HUB_MIN_BUDGET, 0, 0, &s); /* nonsense in: still within the bounds */
    assert_true(s.chunk >= HUB_CHUNK_MIN && s.chunk <= HUB_CHUNK_MAX);
    assert_true(s.window >= HUB_WINDOW_MIN && s.window <= HUB_WINDOW_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares_shrink_with_stores_down_to_the_floors),
        cmocka_unit_test(one_store_gets_at_most_the_ceilings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
