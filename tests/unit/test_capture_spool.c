/* Tests for services/capture/spool.c: the spool never holds more than its bound, sends in
 * order, frees what acks cover, and after a reconnect sends everything unacknowledged again. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "capture/spool.h"
#include "rpc/call.h"

static int push(struct capture_spool *sp, uint64_t seq, size_t len)
{
    uint8_t *b = malloc(len);
    struct capture_spool_entry meta = {.seq = seq, .packets = 1};
    int rc = capture_spool_push(sp, b, len, NULL, 0, &meta);

    if (rc != 0)
        free(b);
    return rc;
}

static uint64_t next_seq(struct capture_spool *sp)
{
    struct capture_spool_entry *e = capture_spool_next(sp);

    return e ? e->seq : 0;
}

static void bounded_in_order_acked_and_resent(void **state)
{
    struct capture_spool sp;

    (void)state;
    capture_spool_init(&sp, 1000);
    assert_int_equal(push(&sp, 1, 400), 0);
    assert_int_equal(push(&sp, 2, 400), 0);
    assert_int_equal(push(&sp, 3, 400), -ENOSPC); /* 1200 > 1000: the new batch goes */
    assert_int_equal(sp.bytes, 800);
    assert_int_equal(next_seq(&sp), 1);
    assert_int_equal(push(&sp, 3, 200), 0);
    assert_int_equal(next_seq(&sp), 2);
    assert_int_equal(next_seq(&sp), 3);
    assert_int_equal(next_seq(&sp), 0);
    /* The call failed: everything unacknowledged again, oldest first. */
    capture_spool_rewind(&sp);
    assert_int_equal(next_seq(&sp), 1);
    /* An ack covers up to its seq, even entries not yet sent again. */
    assert_int_equal(capture_spool_ack(&sp, 2), 2);
    assert_int_equal(sp.bytes, 200);
    assert_int_equal(next_seq(&sp), 3);
    assert_int_equal(capture_spool_ack(&sp, 2), 0);
    /* A batch the store refused is dropped by seq. */
    assert_true(capture_spool_drop(&sp, 3));
    assert_false(capture_spool_drop(&sp, 3));
    assert_int_equal(sp.entries, 0);
    assert_int_equal(sp.bytes, 0);
    assert_int_equal(push(&sp, 4, 1000), 0);
    capture_spool_free(&sp);
}

static int released;

static void release(void *ctx, uint8_t *data, size_t cap)
{
    released++;
    free(data);
}

/* A body (the EPBs sent without a copy) counts with its whole allocation, and goes back to its
 * owner when an ack, a drop or the end frees its entry. */
static void bodies_count_their_allocation_and_go_back(void **state)
{
    struct capture_spool sp;
    struct capture_spool_entry meta = {.seq = 1, .packets = 1};

    (void)state;
    capture_spool_init(&sp, 1000);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        uint8_t *head = malloc(10), *data = malloc(300);
        struct rpc_wbuf *body = rpc_wbuf_wrap(data, 200, 300, release, NULL);
        assert_non_null(body);
        meta.seq = seq;
        assert_int_equal(capture_spool_push(&sp, head, 10, body, 300, &meta), 0);
    }
    assert_int_equal(sp.bytes, 3 * 310); /* 930: a fourth (310) does not fit in 1000 */
    {
        uint8_t *head = malloc(10), *data = malloc(300);
        struct rpc_wbuf *body = rpc_wbuf_wrap(data, 200, 300, release, NULL);
        meta.seq = 4;
        assert_int_equal(capture_spool_push(&sp, head, 10, body, 300, &meta), -ENOSPC);
        free(head);
        rpc_wbuf_unref(body); /* refused: still the caller's */
        assert_int_equal(released, 1);
    }
    assert_int_equal(capture_spool_ack(&sp, 1), 1);
    assert_int_equal(released, 2);
    assert_true(capture_spool_drop(&sp, 3));
    assert_int_equal(released, 3);
    assert_int_equal(sp.bytes, 310);
    capture_spool_free(&sp);
    assert_int_equal(released, 4);
    assert_int_equal(sp.bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounded_in_order_acked_and_resent),
        cmocka_unit_test(bodies_count_their_allocation_and_go_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
