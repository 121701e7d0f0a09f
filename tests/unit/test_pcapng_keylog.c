/* lib/pcapng: the Decryption Secrets Block as Wireshark reads it, and the key log lines a
 * capture may send — each kind of bad line refused with a message naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "util/error.h"

#define RANDOM64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"
#define SECRET96                                                       \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" \
    "00112233445566778899aabbccddeeff"

static void test_dsb_round_trip(void **state)
{
    const char text[] = "CLIENT_RANDOM " RANDOM64 " " SECRET96 "\n";
    size_t n = strlen(text);
    struct pcapng_dsb dsb;
    struct nr_buf b;

    (void)state;
    nr_buf_init(&b, 1 << 22);
    assert_int_equal(pcapng_dsb_append(&b, PCAPNG_DSB_TLS_KEYLOG, text, n), 0);
    assert_int_equal(b.len, PCAPNG_DSB_MIN + PCAPNG_PAD4(n));
    assert_int_equal(pcapng_le32(b.data), PCAPNG_BT_DSB);
    assert_int_equal(pcapng_le32(b.data + 8), 0x544c534b); /* "TLSK" */
    assert_int_equal(pcapng_le32(b.data + 12), n);
    assert_int_equal(pcapng_le32(b.data + b.len - 4), b.len);
    assert_int_equal(pcapng_dsb_decode(b.data, b.len, &dsb), 0);
    assert_int_equal(dsb.secrets_type, PCAPNG_DSB_TLS_KEYLOG);
    assert_int_equal(dsb.len, n);
    assert_memory_equal(dsb.data, text, n);
    /* Nothing to carry, or too much: no block, nothing appended. */
    b.len = 0;
    assert_int_equal(pcapng_dsb_append(&b, PCAPNG_DSB_TLS_KEYLOG, text, 0), -EINVAL);
    assert_int_equal(pcapng_dsb_append(&b, PCAPNG_DSB_TLS_KEYLOG, text, PCAPNG_DSB_MAX_SECRETS + 1),
                     -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

static void test_dsb_decode_malformed(void **state)
{
    const char text[] = "CLIENT_RANDOM " RANDOM64 " " SECRET96 "\n"; /* 179 bytes: 1 pad */
    struct pcapng_dsb dsb;
    struct nr_buf b;
    uint8_t *p;

    (void)state;
    nr_buf_init(&b, 1 << 22);
    assert_int_equal(pcapng_dsb_append(&b, PCAPNG_DSB_TLS_KEYLOG, text, strlen(text)), 0);
    p = b.data;
    /* The secrets length past the block. */
    pcapng_put32(p + 12, (uint32_t)b.len);
    assert_int_equal(pcapng_dsb_decode(p, b.len, &dsb), NR_EPARSE);
    pcapng_put32(p + 12, (uint32_t)strlen(text));
    /* Padding that is not zero. */
    p[16 + strlen(text)] = 'x';
    assert_int_equal(pcapng_dsb_decode(p, b.len, &dsb), NR_EPARSE);
    p[16 + strlen(text)] = 0;
    /* Another block type, a trailer that lies, a block too short. */
    pcapng_put32(p, PCAPNG_BT_EPB);
    assert_int_equal(pcapng_dsb_decode(p, b.len, &dsb), NR_EPARSE);
    pcapng_put32(p, PCAPNG_BT_DSB);
    pcapng_put32(p + b.len - 4, 8);
    assert_int_equal(pcapng_dsb_decode(p, b.len, &dsb), NR_EPARSE);
    pcapng_put32(p + b.len - 4, (uint32_t)b.len);
    assert_int_equal(pcapng_dsb_decode(p, 16, &dsb), NR_EPARSE);
    assert_int_equal(pcapng_dsb_decode(p, b.len, &dsb), 0);
    nr_buf_free(&b);
}

static void test_keylog_valid(void **state)
{
    const char *labels[] = {"CLIENT_RANDOM",
                            "CLIENT_EARLY_TRAFFIC_SECRET",
                            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                            "CLIENT_TRAFFIC_SECRET_0",
                            "SERVER_TRAFFIC_SECRET_0",
                            "EARLY_EXPORTER_SECRET",
                            "EXPORTER_SECRET"};
    char text[4096];
    size_t o = 0, lines = 99, off = 0, len, n = 0;
    const uint8_t *line;
    char secret[300];

    (void)state;
    assert_int_equal(pcapng_keylog_validate((const uint8_t *)"", 0, &lines, NULL, 0), 0);
    assert_int_equal(lines, 0);
    for (size_t i = 0; i < 8; i++) {
        /* 32 and 128 bytes, the bounds, alternately. */
        size_t hex = i % 2 ? 256 : 64;
        memset(secret, i % 2 ? 'F' : 'a', hex);
        secret[hex] = '\0';
        o +=
            (size_t)snprintf(text + o, sizeof(text) - o, "%s %s %s\n", labels[i], RANDOM64, secret);
    }
    assert_int_equal(pcapng_keylog_validate((const uint8_t *)text, o, &lines, NULL, 0), 0);
    assert_int_equal(lines, 8);
    while (pcapng_keylog_next((const uint8_t *)text, o, &off, &line, &len) == 1) {
        assert_true(len <= PCAPNG_KEYLOG_LINE_MAX);
        assert_int_equal(line[len - 1], '\n');
        n++;
    }
    assert_int_equal(n, 8);
    assert_int_equal(off, o);
}

static void refused(const char *text, const char *words)
{
    char err[256] = "";

    assert_int_equal(
        pcapng_keylog_validate((const uint8_t *)text, strlen(text), NULL, err, sizeof(err)),
        NR_EPARSE);
    if (!strstr(err, words))
        fail_msg("\"%s\" does not say \"%s\"", err, words);
}

static void test_keylog_refused(void **state)
{
    char big[300];

    (void)state;
    refused("FOO " RANDOM64 " " SECRET96 "\n", "line 1: unknown label \"FOO\"");
    refused("client_random " RANDOM64 " " SECRET96 "\n", "unknown label");
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96, "line 1 does not end with a newline");
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96 "\nCLIENT_RANDOM", "line 2 does not end");
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96 "0\n", "secret");  /* odd */
    refused("CLIENT_RANDOM " RANDOM64 " 0011\n", "secret");           /* short */
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96 "zz\n", "secret"); /* not hex */
    refused("CLIENT_RANDOM " RANDOM64 "  " SECRET96 "\n", "secret");  /* two spaces */
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96 " \n", "secret");  /* trailing */
    refused("CLIENT_RANDOM " RANDOM64 " " SECRET96 "\r\n", "secret"); /* CRLF */
    refused("CLIENT_RANDOM abcd " SECRET96 "\n", "client random");
    refused("CLIENT_RANDOM " RANDOM64 "00 " SECRET96 "\n", "client random");
    refused("CLIENT_RANDOM " RANDOM64 "\n", "client random");
    refused("\n", "line 1");
    refused("# comment\n", "unknown label");
    memset(big, 'a', 258);
    big[258] = '\0';
    {
        char line[400];
        snprintf(line, sizeof(line), "EXPORTER_SECRET " RANDOM64 " %s\n", big);
        refused(line, "secret"); /* 129 bytes */
    }
}

static void test_keylog_oversize(void **state)
{
    size_t len = PCAPNG_KEYLOG_MAX + 1;
    uint8_t *p = malloc(len);
    char err[128];

    (void)state;
    assert_non_null(p);
    memset(p, '\n', len);
    assert_int_equal(pcapng_keylog_validate(p, len, NULL, err, sizeof(err)), NR_EOVERSIZE);
    assert_non_null(strstr(err, "over"));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsb_round_trip),  cmocka_unit_test(test_dsb_decode_malformed),
        cmocka_unit_test(test_keylog_valid),    cmocka_unit_test(test_keylog_refused),
        cmocka_unit_test(test_keylog_oversize),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
