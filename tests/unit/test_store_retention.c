/* Tests for services/store/retention.c: which segment goes, and why, under max-time, max-size
 * and the free-disk floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "store/retention.h"
#include "store/segment.h"

#define S   INT64_C(1000000000)
#define NOW (INT64_C(1795600000) * S)
#define MB  (UINT64_C(1) << 20)

static struct store st;
static struct store_stream stream;

static struct store_segment *seg(int64_t newest, uint64_t size, bool active)
{
    struct store_segment *g = store_segment_new(&stream, 0, "/nonexistent/seg");

    g->size = size;
    g->idx_size = 0;
    g->first_ts_ns = newest ? newest - S : 0;
    g->last_ts_ns = newest;
    g->packets = newest ? 1 : 0;
    g->created_ns = newest ? newest - 2 * S : NOW - 10 * S;
    g->active = active;
    store_segment_link(&st, g);
    return g;
}

static int setup(void **state)
{
    st = (struct store){0};
    st.cfg.max_time_ns = 3600 * S;
    st.cfg.max_size = 100 * MB;
    st.cfg.min_free_pct = 5;
    stream.store = &st;
    return 0;
}

static int teardown(void **state)
{
    while (st.seg_head) {
        struct store_segment *g = st.seg_head;
        st.seg_head = g->next;
        store_segment_unref(g);
    }
    return 0;
}

static struct store_segment *pick(uint64_t needed, uint64_t free_bytes, enum store_reason *why)
{
    return store_retention_pick(&st, NOW, needed, free_bytes, 1000 * MB, why);
}

static void nothing_goes_within_every_limit(void **state)
{
    enum store_reason why;

    seg(NOW - 100 * S, 10 * MB, false);
    seg(NOW - 10 * S, 10 * MB, true);
    assert_null(pick(MB, 500 * MB, &why));
    assert_int_equal(st.bytes, 20 * MB);
}

static void max_time_takes_segments_whose_newest_packet_is_too_old(void **state)
{
    enum store_reason why;
    struct store_segment *young = seg(NOW - 100 * S, 10 * MB, false);
    struct store_segment *old = seg(NOW - 3601 * S, 10 * MB, false);

    (void)young;
    assert_ptr_equal(pick(MB, 500 * MB, &why), old);
    assert_int_equal(why, STORE_DEL_MAX_TIME);
    /* A segment with no packets ages from when it was made. */
    st.cfg.max_time_ns = 5 * S;
    old->last_ts_ns = NOW - S;
    young->last_ts_ns = 0;
    young->packets = 0;
    assert_ptr_equal(pick(MB, 500 * MB, &why), young);
    assert_int_equal(why, STORE_DEL_MAX_TIME);
    /* max-time 0: no time limit. */
    st.cfg.max_time_ns = 0;
    assert_null(pick(MB, 500 * MB, &why));
}

static void max_size_takes_the_oldest_closed_segment_first(void **state)
{
    enum store_reason why;
    struct store_segment *active_old = seg(NOW - 300 * S, 30 * MB, true);
    struct store_segment *closed_mid = seg(NOW - 200 * S, 30 * MB, false);
    struct store_segment *closed_new = seg(NOW - 100 * S, 30 * MB, false);

    (void)closed_new;
    /* 90 MiB + 10 MiB fits exactly; one more byte does not. */
    assert_null(pick(10 * MB, 500 * MB, &why));
    assert_ptr_equal(pick(10 * MB + 1, 500 * MB, &why), closed_mid);
    assert_int_equal(why, STORE_DEL_MAX_SIZE);
    /* With only active segments left, the oldest active one goes. */
    closed_mid->active = true;
    closed_new->active = true;
    assert_ptr_equal(pick(10 * MB + 1, 500 * MB, &why), active_old);
}

static void the_free_disk_floor_overrides_both_limits(void **state)
{
    enum store_reason why;
    struct store_segment *a = seg(NOW - 300 * S, MB, false);

    seg(NOW - 100 * S, MB, false);
    /* 5% of 1000 MiB is 50 MiB: 60 free and 5 needed is fine, 54 free is not. */
    assert_null(pick(5 * MB, 60 * MB, &why));
    assert_ptr_equal(pick(5 * MB, 54 * MB, &why), a);
    assert_int_equal(why, STORE_DEL_MIN_FREE);
    /* Bytes of deleted segments that a snapshot still holds count as coming back. */
    st.pending_free = 10 * MB;
    assert_null(pick(5 * MB, 54 * MB, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(nothing_goes_within_every_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(max_time_takes_segments_whose_newest_packet_is_too_old,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(max_size_takes_the_oldest_closed_segment_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_free_disk_floor_overrides_both_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
