/* Tests for services/capture/tls/keylog.c's key derivation records (OpenSSL 3 builds other than
 * the calibrated one): one record, one key log line; hostile labels and lengths are refused; and
 * the recent lines let each (client random, label) line out once, whichever record made it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "capture/tls/keylog.h"
#include "util/error.h"

static void record(struct capture_tls_kdf_secret *k, uint32_t label, uint32_t len)
{
    memset(k, 0, sizeof(*k));
    k->type = CAPTURE_TLS_REC_KDF;
    k->pid = 42;
    k->ssl = 0x1000;
    k->label = label;
    k->secret_len = len;
    memset(k->client_random, 0xab, sizeof(k->client_random));
    for (unsigned i = 0; i < sizeof(k->secret); i++)
        k->secret[i] = (uint8_t)i;
}

static void one_record_one_line(void **state)
{
    struct capture_tls_kdf_secret k;
    char out[CAPTURE_TLS_KEYLOG_LINE_MAX + 1];
    char want[CAPTURE_TLS_KEYLOG_LINE_MAX + 1];
    int n;

    (void)state;
    record(&k, CAPTURE_TLS_KDF_CLIENT_RANDOM, 48);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = 0;
    snprintf(want, sizeof(want), "CLIENT_RANDOM %s ",
             "abababababababababababababababababababababababababababababababab");
    for (int i = 0; i < 48; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%02x", i);
    strcat(want, "\n");
    assert_string_equal(out, want);

    record(&k, CAPTURE_TLS_KDF_SERVER_TRAFFIC_0, 32);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out) - 1);
    assert_int_equal(n, (int)strlen("SERVER_TRAFFIC_SECRET_0 ") + 64 + 1 + 64 + 1);
    out[n] = 0;
    assert_true(strncmp(out, "SERVER_TRAFFIC_SECRET_0 abab", 28) == 0);
    record(&k, CAPTURE_TLS_KDF_EXPORTER, 48); /* SHA-384 */
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out) - 1);
    assert_int_equal(n, (int)strlen("EXPORTER_SECRET ") + 64 + 1 + 96 + 1);
    record(&k, CAPTURE_TLS_KDF_CLIENT_EARLY, 32);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = 0;
    assert_true(strncmp(out, "CLIENT_EARLY_TRAFFIC_SECRET ", 28) == 0);
}

static void hostile_records_are_refused(void **state)
{
    struct capture_tls_kdf_secret k;
    char out[CAPTURE_TLS_KEYLOG_LINE_MAX];
    static const uint32_t bad_len[] = {0, 1, 31, 33, 47, 49, 64, 65, 0xffffffffu};

    (void)state;
    record(&k, CAPTURE_TLS_KDF_CLIENT_HANDSHAKE, 32);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k) - 1, out, sizeof(out)), NR_EPARSE);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, 0, out, sizeof(out)), NR_EPARSE);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, 10), -ENOSPC);
    for (unsigned i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        record(&k, CAPTURE_TLS_KDF_CLIENT_HANDSHAKE, bad_len[i]);
        assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    }
    record(&k, CAPTURE_TLS_KDF_CLIENT_RANDOM, 32); /* a master secret is 48 bytes */
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, 0, 32);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, CAPTURE_TLS_KDF_LABEL_MAX + 1, 32);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, 0xffffffffu, 32);
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0, 32);
    memset(k.client_random, 0, sizeof(k.client_random));
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0, 32);
    memset(k.secret, 0, 32); /* only the bytes used count */
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
    record(&k, CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0, 32);
    k.type = CAPTURE_TLS_REC_SECRETS;
    assert_int_equal(capture_tls_keylog_kdf_line(&k, sizeof(k), out, sizeof(out)), NR_EPARSE);
}

static void each_line_goes_out_once(void **state)
{
    static struct capture_tls_keylog_recent r; /* all zero: none seen */
    struct capture_tls_kdf_secret k;
    char buf[4 * CAPTURE_TLS_KEYLOG_LINE_MAX], line[CAPTURE_TLS_KEYLOG_LINE_MAX];
    size_t len = 0;
    int n;

    (void)state;
    /* two lines of one connection */
    record(&k, CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0, 32);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), buf, sizeof(buf));
    assert_true(n > 0);
    len = (size_t)n;
    record(&k, CAPTURE_TLS_KDF_SERVER_TRAFFIC_0, 32);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), buf + len, sizeof(buf) - len);
    assert_true(n > 0);
    len += (size_t)n;
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, len), len);
    /* the other end sends the server's line again and a new one: only the new one is left */
    record(&k, CAPTURE_TLS_KDF_SERVER_TRAFFIC_0, 32);
    len = (size_t)capture_tls_keylog_kdf_line(&k, sizeof(k), buf, sizeof(buf));
    record(&k, CAPTURE_TLS_KDF_EXPORTER, 32);
    n = capture_tls_keylog_kdf_line(&k, sizeof(k), line, sizeof(line));
    assert_true(n > 0);
    memcpy(buf + len, line, (size_t)n);
    len += (size_t)n;
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, len), (size_t)n);
    assert_memory_equal(buf, line, (size_t)n);
    /* another connection's same label is new */
    record(&k, CAPTURE_TLS_KDF_SERVER_TRAFFIC_0, 32);
    k.client_random[0] = 1;
    len = (size_t)capture_tls_keylog_kdf_line(&k, sizeof(k), buf, sizeof(buf));
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, len), len);
    /* what is not a line of ours goes: an unknown label, a short or bad random, no newline */
    memcpy(buf, "NOT_A_LABEL ab\n", 15);
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, 15), 0);
    memcpy(buf, "CLIENT_RANDOM ab\n", 17);
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, 17), 0);
    record(&k, CAPTURE_TLS_KDF_CLIENT_RANDOM, 48);
    k.client_random[5] = 9;
    len = (size_t)capture_tls_keylog_kdf_line(&k, sizeof(k), buf, sizeof(buf));
    buf[20] = 'X';
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, len), 0);
    len = (size_t)capture_tls_keylog_kdf_line(&k, sizeof(k), buf, sizeof(buf));
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, len - 1), 0);
    assert_int_equal(capture_tls_keylog_recent_fresh(&r, buf, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_record_one_line),
        cmocka_unit_test(hostile_records_are_refused),
        cmocka_unit_test(each_line_goes_out_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
