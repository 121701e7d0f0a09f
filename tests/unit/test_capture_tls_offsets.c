/* Tests for services/capture/tls/offsets.c and keylog.c: the calibration finds the offsets of
 * the secrets in the libssl this test links, and the secrets read at those offsets from a fresh
 * connection give exactly the key log lines OpenSSL itself logs; wrong offsets are caught; the
 * key log lines of a record and the records refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "capture/tls/keylog.h"
#include "capture/tls/offsets.h"

static void calibration_finds_offsets_that_reproduce_openssls_key_log(void **state)
{
    struct capture_tls_offsets o;
    char err[256] = "";

    (void)state;
    assert_int_equal(capture_tls_offsets_calibrate(&o, err, sizeof(err)), 0);
    assert_true(o.ssl_session > 0);
    assert_true(o.ssl_client_random > 0);
    assert_true(o.session_master_key > o.session_master_key_length);
    assert_true(o.ssl_client_app_traffic_secret > 0);
    assert_true(o.ssl_server_app_traffic_secret > 0);
    assert_true(o.ssl_handshake_secret > 0); /* OpenSSL 1.1.1 and 3.x keep it */
    assert_true(o.ssl_handshake_traffic_hash > 0);
    /* Fresh connections, read the way the eBPF program reads them. */
    assert_int_equal(capture_tls_offsets_verify(&o, err, sizeof(err)), 0);
}

static void wrong_offsets_are_caught(void **state)
{
    struct capture_tls_offsets o, bad;
    char err[256] = "";

    (void)state;
    assert_int_equal(capture_tls_offsets_calibrate(&o, err, sizeof(err)), 0);
    bad = o;
    bad.ssl_client_random += 8;
    assert_int_not_equal(capture_tls_offsets_verify(&bad, err, sizeof(err)), 0);
    bad = o;
    bad.ssl_session += 8;
    assert_int_not_equal(capture_tls_offsets_verify(&bad, err, sizeof(err)), 0);
    bad = o;
    bad.ssl_client_app_traffic_secret += 4;
    assert_int_not_equal(capture_tls_offsets_verify(&bad, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "TLS 1.3"));
    bad = o;
    bad.ssl_handshake_traffic_hash += 4;
    assert_int_not_equal(capture_tls_offsets_verify(&bad, err, sizeof(err)), 0);
    /* Without the handshake secret the other lines still must match. */
    bad = o;
    bad.ssl_handshake_secret = bad.ssl_handshake_traffic_hash = 0;
    assert_int_equal(capture_tls_offsets_verify(&bad, err, sizeof(err)), 0);
}

static void own_libssl_is_the_same_build_as_itself(void **state)
{
    struct capture_tls_build a, b;
    char path[512];

    (void)state;
    assert_int_equal(capture_tls_offsets_own_build(&a, path, sizeof(path)), 0);
    assert_non_null(strstr(path, "libssl"));
    assert_true(a.build_id_len >= 16); /* Debian's libssl carries a GNU build-id */
    assert_int_equal(capture_tls_offsets_build_of(path, &b), 0);
    assert_true(capture_tls_offsets_same_build(&a, &b));
    /* the test program is another build */
    assert_int_equal(capture_tls_offsets_build_of("/proc/self/exe", &b), 0);
    assert_false(capture_tls_offsets_same_build(&a, &b));
    assert_int_equal(capture_tls_offsets_build_of("/nonexistent/libssl.so.3", &b), -ENOENT);
}

static void tls12_line_and_refused_records(void **state)
{
    struct capture_tls_secrets s;
    char out[CAPTURE_TLS_KEYLOG_REC_MAX + 1];
    int n;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.type = CAPTURE_TLS_REC_SECRETS;
    s.version = 0x0303;
    s.master_key_len = 48;
    for (int i = 0; i < 32; i++)
        s.client_random[i] = (uint8_t)i;
    for (int i = 0; i < 48; i++)
        s.master_key[i] = (uint8_t)(0xa0 + i);
    n = capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out) - 1);
    assert_int_equal(n, 13 + 1 + 64 + 1 + 96 + 1);
    out[n] = 0;
    assert_string_equal(out, "CLIENT_RANDOM "
                             "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f "
                             "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                             "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf\n");
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s) - 1, out, sizeof(out)), -10004);
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, 10), -ENOSPC);
    s.master_key_len = 47;
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out)), -10004);
    s.master_key_len = 48;
    s.version = 0x0302;
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out)), -10004);
    s.version = 0x0304; /* TLS 1.3 with no known cipher, no secrets */
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out)), -10004);
    s.cipher_id = 0x03001301;
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out)), -10004);
    memset(s.client_app_traffic_secret, 1, 32);
    memset(s.server_app_traffic_secret, 2, 32);
    n = capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = 0;
    /* no handshake secret, no exporter secret: the two traffic lines only */
    assert_int_equal(strncmp(out, "CLIENT_TRAFFIC_SECRET_0 0001", 28), 0);
    assert_non_null(strstr(out, "\nSERVER_TRAFFIC_SECRET_0 "));
    assert_null(strstr(out, "HANDSHAKE"));
    s.type = CAPTURE_TLS_REC_DATA;
    assert_int_equal(capture_tls_keylog_lines(&s, sizeof(s), out, sizeof(out)), -10004);
}

static void recent_lines_send_a_connection_once(void **state)
{
    static struct capture_tls_keylog_recent r; /* all zero: none seen */
    uint8_t cr[32] = {1, 2, 3};

    (void)state;
    assert_false(capture_tls_keylog_recent_seen(&r, cr, 5));
    assert_true(capture_tls_keylog_recent_seen(&r, cr, 5));  /* the other end */
    assert_false(capture_tls_keylog_recent_seen(&r, cr, 1)); /* another label */
    /* Only the last CAPTURE_TLS_KEYLOG_RECENT are remembered. */
    for (unsigned i = 0; i < CAPTURE_TLS_KEYLOG_RECENT; i++) {
        uint8_t other[32] = {0xff, (uint8_t)i, (uint8_t)(i >> 8)};
        assert_false(capture_tls_keylog_recent_seen(&r, other, 5));
    }
    assert_false(capture_tls_keylog_recent_seen(&r, cr, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(calibration_finds_offsets_that_reproduce_openssls_key_log),
        cmocka_unit_test(wrong_offsets_are_caught),
        cmocka_unit_test(own_libssl_is_the_same_build_as_itself),
        cmocka_unit_test(tls12_line_and_refused_records),
        cmocka_unit_test(recent_lines_send_a_connection_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
