/* lib/rpc/frame: the gRPC message decoder under every split of its input, and its limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/frame.h"

#define MAX_MSGS 64

struct sink {
    size_t n;
    size_t len[MAX_MSGS];
    uint8_t *data[MAX_MSGS];
    int stop_after; /* return 1 after this many messages (0: never) */
};

static int collect(void *arg, const uint8_t *msg, size_t len)
{
    struct sink *s = arg;

    assert_true(s->n < MAX_MSGS);
    s->len[s->n] = len;
    s->data[s->n] = malloc(len ? len : 1);
    if (len > 0)
        memcpy(s->data[s->n], msg, len);
    s->n++;
    return s->stop_after && (int)s->n >= s->stop_after ? 1 : 0;
}

static void sink_free(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->data[i]);
    memset(s, 0, sizeof(*s));
}

/* Appends one framed message to buf at *off. */
static void put_msg(uint8_t *buf, size_t *off, const uint8_t *payload, uint32_t len)
{
    rpc_frame_prefix(buf + *off, len);
    if (len > 0)
        memcpy(buf + *off + RPC_FRAME_PREFIX, payload, len);
    *off += RPC_FRAME_PREFIX + len;
}

static void test_prefix_encoding(void **state)
{
    uint8_t p[5];

    rpc_frame_prefix(p, 0x01020304);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[1], 1);
    assert_int_equal(p[2], 2);
    assert_int_equal(p[3], 3);
    assert_int_equal(p[4], 4);
}

/* Every way of cutting a stream in two or three pieces yields the same messages. */
static void test_every_split(void **state)
{
    uint8_t stream[64], a[] = "hello", b[] = "gRPC!!";
    size_t len = 0;

    put_msg(stream, &len, a, 5);
    put_msg(stream, &len, NULL, 0);
    put_msg(stream, &len, b, 6);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            struct rpc_frame_decoder d;
            struct sink s = {0};
            rpc_frame_decoder_init(&d, 0);
            assert_int_equal(rpc_frame_decoder_feed(&d, stream, i, collect, &s), 0);
            assert_int_equal(rpc_frame_decoder_feed(&d, stream + i, j - i, collect, &s), 0);
            assert_int_equal(rpc_frame_decoder_feed(&d, stream + j, len - j, collect, &s), 0);
            assert_int_equal(s.n, 3);
            assert_int_equal(s.len[0], 5);
            assert_memory_equal(s.data[0], "hello", 5);
            assert_int_equal(s.len[1], 0);
            assert_int_equal(s.len[2], 6);
            assert_memory_equal(s.data[2], "gRPC!!", 6);
            assert_false(rpc_frame_decoder_partial(&d));
            sink_free(&s);
            rpc_frame_decoder_free(&d);
        }
    }
}

/* Byte by byte, as the worst DATA framing a peer could choose. */
static void test_byte_at_a_time(void **state)
{
    uint8_t stream[300], payload[256];
    size_t len = 0;
    struct rpc_frame_decoder d;
    struct sink s = {0};

    for (int i = 0; i < 256; i++)
        payload[i] = (uint8_t)i;
    put_msg(stream, &len, payload, 256);
    rpc_frame_decoder_init(&d, 0);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(rpc_frame_decoder_feed(&d, stream + i, 1, collect, &s), 0);
        assert_int_equal(s.n, i + 1 == len ? 1 : 0);
        assert_int_equal(rpc_frame_decoder_partial(&d), i + 1 < len);
    }
    assert_memory_equal(s.data[0], payload, 256);
    sink_free(&s);
    rpc_frame_decoder_free(&d);
}

static void test_many_in_one_frame(void **state)
{
    uint8_t stream[50 * 8];
    size_t len = 0;
    struct rpc_frame_decoder d;
    struct sink s = {0};

    for (uint8_t i = 0; i < 50; i++) {
        uint8_t p[3] = {i, i, i};
        put_msg(stream, &len, p, 3);
    }
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, len, collect, &s), 0);
    assert_int_equal(s.n, 50);
    for (size_t i = 0; i < 50; i++) {
        assert_int_equal(s.len[i], 3);
        assert_int_equal(s.data[i][0], i);
    }
    sink_free(&s);
    rpc_frame_decoder_free(&d);
}

static void test_zero_length_messages(void **state)
{
    uint8_t stream[15];
    size_t len = 0;
    struct rpc_frame_decoder d;
    struct sink s = {0};

    put_msg(stream, &len, NULL, 0);
    put_msg(stream, &len, NULL, 0);
    put_msg(stream, &len, NULL, 0);
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, len, collect, &s), 0);
    assert_int_equal(s.n, 3);
    sink_free(&s);
    rpc_frame_decoder_free(&d);
}

static void test_oversize_is_refused_before_allocation(void **state)
{
    uint8_t prefix[5];
    struct rpc_frame_decoder d;
    struct sink s = {0};

    /* 4 GiB - 1 announced: refused from the prefix alone, nothing allocated. */
    rpc_frame_prefix(prefix, 0xffffffffu);
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, prefix, 5, collect, &s), -EMSGSIZE);
    assert_null(d.buf);
    assert_int_equal(s.n, 0);
    rpc_frame_decoder_free(&d);

    /* The default is 4 MiB exactly: 4 MiB passes the check, 4 MiB + 1 does not. */
    rpc_frame_decoder_init(&d, 0);
    rpc_frame_prefix(prefix, RPC_DEFAULT_MAX_MESSAGE + 1);
    assert_int_equal(rpc_frame_decoder_feed(&d, prefix, 5, collect, &s), -EMSGSIZE);
    rpc_frame_decoder_free(&d);
    rpc_frame_decoder_init(&d, 0);
    rpc_frame_prefix(prefix, RPC_DEFAULT_MAX_MESSAGE);
    assert_int_equal(rpc_frame_decoder_feed(&d, prefix, 5, collect, &s), 0);
    assert_true(rpc_frame_decoder_partial(&d));
    rpc_frame_decoder_free(&d);

    /* A per-method limit. */
    rpc_frame_decoder_init(&d, 10);
    rpc_frame_prefix(prefix, 11);
    assert_int_equal(rpc_frame_decoder_feed(&d, prefix, 5, collect, &s), -EMSGSIZE);
    rpc_frame_decoder_free(&d);
}

static void test_compressed_flag_without_encoding(void **state)
{
    uint8_t stream[] = {1, 0, 0, 0, 1, 'x'};
    uint8_t bad_flag[] = {2, 0, 0, 0, 0};
    struct rpc_frame_decoder d;
    struct sink s = {0};

    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, sizeof(stream), collect, &s), -EPROTO);
    assert_int_equal(s.n, 0);
    rpc_frame_decoder_free(&d);
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, bad_flag, sizeof(bad_flag), collect, &s), -EPROTO);
    rpc_frame_decoder_free(&d);
}

static void test_truncated_message_is_partial(void **state)
{
    uint8_t stream[] = {0, 0, 0, 0, 4, 'a', 'b'};
    struct rpc_frame_decoder d;
    struct sink s = {0};

    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, sizeof(stream), collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_true(rpc_frame_decoder_partial(&d));
    rpc_frame_decoder_free(&d); /* frees the partial payload (checked by ASan) */
    /* Three bytes of a prefix are partial too. */
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, 3, collect, &s), 0);
    assert_true(rpc_frame_decoder_partial(&d));
    rpc_frame_decoder_free(&d);
}

static void test_callback_stop(void **state)
{
    uint8_t stream[30];
    size_t len = 0;
    struct rpc_frame_decoder d;
    struct sink s = {.stop_after = 1};

    put_msg(stream, &len, (const uint8_t *)"ab", 2);
    put_msg(stream, &len, (const uint8_t *)"cd", 2);
    rpc_frame_decoder_init(&d, 0);
    assert_int_equal(rpc_frame_decoder_feed(&d, stream, len, collect, &s), 1);
    assert_int_equal(s.n, 1);
    sink_free(&s);
    rpc_frame_decoder_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_encoding),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_many_in_one_frame),
        cmocka_unit_test(test_zero_length_messages),
        cmocka_unit_test(test_oversize_is_refused_before_allocation),
        cmocka_unit_test(test_compressed_flag_without_encoding),
        cmocka_unit_test(test_truncated_message_is_partial),
        cmocka_unit_test(test_callback_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
