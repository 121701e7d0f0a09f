/* lib/rpc/status and addr: grpc-message percent-encoding, grpc-timeout, status mappings and the
 * host:port parser, as a gRPC peer and a user typing flags rely on them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <string.h>

#include "util/addr.h"
#include "rpc/status.h"

static void test_code_names(void **state)
{
    assert_string_equal(rpc_code_name(RPC_OK), "OK");
    assert_string_equal(rpc_code_name(RPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(rpc_code_name(RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(rpc_code_name(17), "UNKNOWN_CODE");
    assert_string_equal(rpc_code_name(-1), "UNKNOWN_CODE");
}

static void test_percent_encode(void **state)
{
    char out[128];

    assert_int_equal(rpc_percent_encode("plain text ~!", out, sizeof(out)), 13);
    assert_string_equal(out, "plain text ~!");
    rpc_percent_encode("100% sure\n", out, sizeof(out));
    assert_string_equal(out, "100%25 sure%0A");
    rpc_percent_encode("\xc3\xbc", out, sizeof(out)); /* ü in UTF-8 */
    assert_string_equal(out, "%C3%BC");
    /* Truncation cuts on a whole escape and reports the full length. */
    assert_int_equal(rpc_percent_encode("ab%cd", out, 5), 7);
    assert_string_equal(out, "ab");
}

static void test_percent_decode(void **state)
{
    char out[64];
    const char *in = "100%25 sure%0A%C3%BC";

    assert_int_equal(rpc_percent_decode(in, strlen(in), out, sizeof(out)), 12);
    assert_string_equal(out, "100% sure\n\xc3\xbc");
    /* Bad escapes are kept literally, never an error. */
    rpc_percent_decode("50%zz%4", 7, out, sizeof(out));
    assert_string_equal(out, "50%zz%4");
    rpc_percent_decode("%", 1, out, sizeof(out));
    assert_string_equal(out, "%");
    /* Lower-case hex decodes too; the output is bounded. */
    rpc_percent_decode("%3a%3A", 6, out, sizeof(out));
    assert_string_equal(out, "::");
    rpc_percent_decode("abcdef", 6, out, 4);
    assert_string_equal(out, "abc");
}

static void test_percent_round_trip(void **state)
{
    char enc[1024], dec[256], msg[256];

    for (int i = 1; i < 256; i++)
        msg[i - 1] = (char)i;
    msg[255] = '\0';
    rpc_percent_encode(msg, enc, sizeof(enc));
    for (const char *p = enc; *p; p++)
        assert_true(*p >= 0x20 && *p <= 0x7e);
    rpc_percent_decode(enc, strlen(enc), dec, sizeof(dec));
    assert_string_equal(dec, msg);
}

static void test_timeout_parse(void **state)
{
    int64_t ns;

    assert_int_equal(rpc_timeout_parse("1S", 2, &ns), 0);
    assert_int_equal(ns, 1000000000);
    assert_int_equal(rpc_timeout_parse("250m", 4, &ns), 0);
    assert_int_equal(ns, 250000000);
    assert_int_equal(rpc_timeout_parse("3H", 2, &ns), 0);
    assert_int_equal(ns, 3LL * 3600 * 1000000000);
    assert_int_equal(rpc_timeout_parse("2M", 2, &ns), 0);
    assert_int_equal(ns, 120000000000LL);
    assert_int_equal(rpc_timeout_parse("7u", 2, &ns), 0);
    assert_int_equal(ns, 7000);
    assert_int_equal(rpc_timeout_parse("99999999n", 9, &ns), 0);
    assert_int_equal(ns, 99999999);
    assert_int_equal(rpc_timeout_parse("99999999H", 9, &ns), 0);
    assert_int_equal(ns, INT64_MAX);                                     /* saturates */
    assert_int_equal(rpc_timeout_parse("123456789S", 10, &ns), -EINVAL); /* 9 digits */
    assert_int_equal(rpc_timeout_parse("S", 1, &ns), -EINVAL);
    assert_int_equal(rpc_timeout_parse("10", 2, &ns), -EINVAL);
    assert_int_equal(rpc_timeout_parse("1x", 2, &ns), -EINVAL);
    assert_int_equal(rpc_timeout_parse("-1S", 3, &ns), -EINVAL);
    assert_int_equal(rpc_timeout_parse("1 S", 3, &ns), -EINVAL);
}

static void test_timeout_format(void **state)
{
    char buf[10];
    int64_t ns;

    rpc_timeout_format(200000000, buf);
    assert_string_equal(buf, "200000u");
    rpc_timeout_format(1, buf);
    assert_string_equal(buf, "1n");
    rpc_timeout_format(0, buf);
    assert_string_equal(buf, "1n");
    rpc_timeout_format(-5, buf);
    assert_string_equal(buf, "1n");
    rpc_timeout_format(INT64_MAX, buf);
    assert_int_equal(rpc_timeout_parse(buf, strlen(buf), &ns), 0);
    /* Never shorter than asked, and always parseable. */
    for (int64_t t = 1; t < INT64_MAX / 7; t = t * 7 + 3) {
        rpc_timeout_format(t, buf);
        assert_true(strlen(buf) <= 9);
        assert_int_equal(rpc_timeout_parse(buf, strlen(buf), &ns), 0);
        assert_true(ns >= t);
    }
}

static void test_http_and_reset_mapping(void **state)
{
    assert_int_equal(rpc_code_from_http(400), RPC_INTERNAL);
    assert_int_equal(rpc_code_from_http(401), RPC_UNAUTHENTICATED);
    assert_int_equal(rpc_code_from_http(403), RPC_PERMISSION_DENIED);
    assert_int_equal(rpc_code_from_http(404), RPC_UNIMPLEMENTED);
    assert_int_equal(rpc_code_from_http(429), RPC_UNAVAILABLE);
    assert_int_equal(rpc_code_from_http(503), RPC_UNAVAILABLE);
    assert_int_equal(rpc_code_from_http(415), RPC_UNKNOWN);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_REFUSED_STREAM), RPC_UNAVAILABLE);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_CANCEL), RPC_CANCELLED);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_ENHANCE_YOUR_CALM), RPC_RESOURCE_EXHAUSTED);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_INADEQUATE_SECURITY), RPC_PERMISSION_DENIED);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_PROTOCOL_ERROR), RPC_INTERNAL);
    assert_int_equal(rpc_code_from_h2_error(NGHTTP2_NO_ERROR), RPC_INTERNAL);
}

static void test_addr_split(void **state)
{
    char host[64], err[128];
    uint16_t port;

    assert_int_equal(nr_addr_split("127.0.0.1:8897", host, sizeof(host), &port, err, 128), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8897);
    assert_int_equal(nr_addr_split(":8898", host, sizeof(host), &port, err, 128), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8898);
    assert_int_equal(nr_addr_split("[::1]:0", host, sizeof(host), &port, err, 128), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(
        nr_addr_split("netreel-store.ns.svc:8897", host, sizeof(host), &port, err, 128), 0);
    assert_string_equal(host, "netreel-store.ns.svc");

    assert_int_equal(nr_addr_split("localhost", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_non_null(strstr(err, "want host:port"));
    assert_int_equal(nr_addr_split("h:70000", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_non_null(strstr(err, "0-65535"));
    assert_int_equal(nr_addr_split("h:", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_non_null(strstr(err, "missing port"));
    assert_int_equal(nr_addr_split("::1:80", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_non_null(strstr(err, "brackets"));
    assert_int_equal(nr_addr_split("[::1]80", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_int_equal(nr_addr_split("", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_int_equal(nr_addr_split("h:8x", host, sizeof(host), &port, err, 128), -EINVAL);
    assert_int_equal(nr_addr_split("h:99999999999999999999", host, sizeof(host), &port, err, 128),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_percent_encode),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_percent_round_trip),
        cmocka_unit_test(test_timeout_parse),
        cmocka_unit_test(test_timeout_format),
        cmocka_unit_test(test_http_and_reset_mapping),
        cmocka_unit_test(test_addr_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
