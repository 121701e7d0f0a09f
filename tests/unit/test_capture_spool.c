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

static int push(struct capture_spool *sp, uint64_t seq, size_t len)
{
    uint8_t *b = malloc(len);
    struct capture_spool_entry meta = {.seq = seq, .packets = 1};
    int rc = capture_spool_push(sp, b, len, &meta);

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounded_in_order_acked_and_resent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
