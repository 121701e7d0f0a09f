/* Tests for services/capture/pipeline.c's key log lines: handed in by the source that learns
 * them, they ride the next batch spooled whatever its source, once; they wait while the spool
 * refuses batches; at most PCAPNG_KEYLOG_MAX bytes wait, and lines that do not fit are refused
 * whole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capture/pipeline.h"
#include "capture/source.h"
#include "capture/spool.h"
#include "capture/uplink.h"
#include "netreel/v1/store.pb-c.h"
#include "pcapng/keylog.h"

#define LINE_A "CLIENT_RANDOM 0a0a 0b0b\n"
#define LINE_B "CLIENT_RANDOM 0c0c 0d0d\n"

struct fixture {
    uv_loop_t loop;
    struct capture cap;
    struct capture_spool spool;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    if (!f || uv_loop_init(&f->loop) != 0)
        return -1;
    f->cap.loop = &f->loop;
    f->cap.next_seq = 1;
    f->cap.cfg.batch_bytes = 1 << 16;
    f->cap.cfg.store = "127.0.0.1:1"; /* never answers: batches stay in the spool */
    snprintf(f->cap.cfg.node, sizeof(f->cap.cfg.node), "node-a");
    capture_pipeline_name_stream(&f->cap.cfg);
    capture_pipeline_init(&f->cap);
    capture_spool_init(&f->spool, 1 << 20);
    f->cap.spool = &f->spool;
    f->cap.uplink = capture_uplink_new(&f->cap, err, sizeof(err));
    if (!f->cap.uplink)
        return -1;
    *state = f;
    return 0;
}

static void uplink_closed(void *arg)
{
    *(int *)arg = 1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int closed = 0;

    capture_uplink_close(f->cap.uplink, 0, uplink_closed, &closed);
    while (!closed && uv_run(&f->loop, UV_RUN_ONCE))
        ;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    capture_spool_free(&f->spool);
    capture_pipeline_free(&f->cap);
    uv_loop_close(&f->loop);
    free(f);
    return closed ? 0 : -1;
}

/* The tls_keylog of a spooled batch without packets (its bytes are the whole message). */
static Netreel__V1__PacketBatch *unpack(const struct capture_spool_entry *e)
{
    assert_non_null(e);
    assert_null(e->body);
    return netreel__v1__packet_batch__unpack(NULL, e->len, e->bytes);
}

static void lines_wait_while_the_spool_refuses_then_go_once(void **state)
{
    struct fixture *f = *state;
    Netreel__V1__PacketBatch *m;

    assert_int_equal(capture_pipeline_keylog_add(&f->cap, LINE_A, strlen(LINE_A)), 0);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), strlen(LINE_A));
    /* The spool is full: the batch is dropped, its lines wait for the next one. */
    f->spool.max = 8;
    capture_pipeline_heartbeat(&f->cap);
    assert_int_equal(f->spool.entries, 0);
    assert_int_equal(f->cap.c.spool_dropped_batches, 1);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), strlen(LINE_A));
    /* Room again: the next batch carries both, in the order they came, and they leave. */
    f->spool.max = 1 << 20;
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, LINE_B, strlen(LINE_B)), 0);
    capture_pipeline_heartbeat(&f->cap);
    assert_int_equal(f->spool.entries, 1);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), 0);
    m = unpack(f->spool.head);
    assert_non_null(m);
    assert_int_equal(m->seq, 1);
    assert_int_equal(m->tls_keylog.len, strlen(LINE_A LINE_B));
    assert_memory_equal(m->tls_keylog.data, LINE_A LINE_B, strlen(LINE_A LINE_B));
    netreel__v1__packet_batch__free_unpacked(m, NULL);
    /* Once: the batch after carries none. The spool holds the first until the store acks it. */
    capture_pipeline_heartbeat(&f->cap);
    assert_int_equal(f->spool.entries, 2);
    m = unpack(f->spool.tail);
    assert_non_null(m);
    assert_int_equal(m->seq, 2);
    assert_int_equal(m->tls_keylog.len, 0);
    netreel__v1__packet_batch__free_unpacked(m, NULL);
}

static void lines_ride_a_batch_of_packets_of_any_source(void **state)
{
    struct fixture *f = *state;
    struct capture_batch b = {.packets = 1, .first_ts_ns = 1, .last_ts_ns = 1};
    const struct capture_spool_entry *e;
    static const uint8_t epb[32] = {6, 0, 0, 0, 32};

    nr_buf_init(&b.blocks, 1 << 16);
    assert_int_equal(nr_buf_append(&b.blocks, epb, sizeof(epb)), 0);
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, LINE_A, strlen(LINE_A)), 0);
    capture_pipeline_spool(&f->cap, &b);
    assert_int_equal(f->spool.entries, 1);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), 0);
    e = f->spool.head;
    assert_non_null(e->body);
    /* The lines are in the head, ahead of the blocks that follow it. */
    assert_non_null(memmem(e->bytes, e->len, LINE_A, strlen(LINE_A)));
    nr_buf_free(&b.blocks);
}

static void at_most_pcapng_keylog_max_waits_and_lines_go_whole(void **state)
{
    struct fixture *f = *state;
    size_t rest = PCAPNG_KEYLOG_MAX - strlen(LINE_A);
    char *big = calloc(1, PCAPNG_KEYLOG_MAX);

    assert_non_null(big);
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, LINE_A, strlen(LINE_A)), 0);
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, big, rest + 1), -ENOBUFS);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), strlen(LINE_A));
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, big, rest), 0);
    assert_int_equal(capture_pipeline_keylog_pending(&f->cap), PCAPNG_KEYLOG_MAX);
    assert_int_equal(capture_pipeline_keylog_add(&f->cap, LINE_B, 1), -ENOBUFS);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lines_wait_while_the_spool_refuses_then_go_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lines_ride_a_batch_of_packets_of_any_source, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(at_most_pcapng_keylog_max_waits_and_lines_go_whole, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
