/* Tests for lib/util/base64.c: kubeconfig "*-data" fields and Secret data decode as Kubernetes
 * and kubectl write them (padded, or wrapped by hand), and anything else is refused. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "util/base64.h"

/* s decodes to want (want_len bytes), into a roomy buffer and in place. */
static void decode_ok(const char *s, const char *want, size_t want_len)
{
    unsigned char out[256];
    char copy[256];
    size_t n = 12345, len = strlen(s);
    int rc = nr_base64_decode(s, len, out, sizeof(out), &n);

    if (rc != 0)
        fail_msg("\"%s\": rc %d, want 0", s, rc);
    if (n != want_len || memcmp(out, want, n) != 0)
        fail_msg("\"%s\": %zu bytes, want %zu", s, n, want_len);
    assert_true(n <= NR_BASE64_DECODED_MAX(len));
    memcpy(copy, s, len + 1);
    n = 12345;
    assert_int_equal(nr_base64_decode(copy, len, copy, len, &n), 0);
    assert_int_equal(n, want_len);
    assert_memory_equal(copy, want, n);
}

static void decode_bad(const char *s, size_t len)
{
    unsigned char out[256];
    size_t n = 12345;
    int rc = nr_base64_decode(s, len, out, sizeof(out), &n);

    if (rc != -EINVAL)
        fail_msg("\"%s\": rc %d, want -EINVAL", s, rc);
    assert_int_equal(n, 12345); /* untouched on failure */
}

static void test_padded(void **state)
{
    decode_ok("aGVsbG8=", "hello", 5);
    decode_ok("aGk=", "hi", 2);
    decode_ok("YQ==", "a", 1);
    decode_ok("aGVs", "hel", 3);
    decode_ok("AP8A", "\x00\xff\x00", 3);
    decode_ok("+/+/", "\xfb\xff\xbf", 3);
}

/* As the decoders of kubeconfig fields and Secret data did before they were one: unpadded
 * input and superfluous padding (at most two '=') are taken. */
static void test_padding_optional(void **state)
{
    decode_ok("aGVsbG8", "hello", 5);
    decode_ok("YQ", "a", 1);
    decode_ok("YQ=", "a", 1);
    decode_ok("aGVs=", "hel", 3);
    decode_ok("aGVs==", "hel", 3);
}

static void test_white_space(void **state)
{
    /* Wrapped by hand in a kubeconfig, kubectl's trailing newline, CRLF, tabs. */
    decode_ok("aGVs\n      bG8=\n", "hello", 5);
    decode_ok(" \taGVs bG8=\r\n", "hello", 5);
    decode_ok("a G V s b G 8 =", "hello", 5);
    decode_ok("YQ= =\n", "a", 1);
    decode_ok("\v\faGk=\v\f", "hi", 2);
}

/* Nothing to decode is not an error here: the token Secret's empty field means no token. */
static void test_empty(void **state)
{
    decode_ok("", "", 0);
    decode_ok(" \n\t\r\n", "", 0);
}

static void test_invalid(void **state)
{
    decode_bad("not base64!", 11);
    decode_bad("aGVs-bG8", 8); /* the URL alphabet is not the standard one */
    decode_bad("aGVs_bG8", 8);
    decode_bad("YQ==YQ==", 8); /* data after padding */
    decode_bad("dG9rZW4=garbage", 15);
    decode_bad("YQ===", 5); /* three '=' */
    decode_bad("===", 3);
    decode_bad("aGVsb", 5); /* one character alone: six bits, no byte */
    decode_bad("a", 1);
    decode_bad("aGl=", 4); /* leftover bits not zero: not what an encoder writes */
    decode_bad("YR==", 4);
    decode_bad("aG\0k=", 5); /* a NUL inside the length */
    decode_bad("aGk=\x80", 5);
    decode_bad("\xc3\xa9", 2);
}

static void test_cap(void **state)
{
    unsigned char out[8];
    size_t n = 12345;

    assert_int_equal(nr_base64_decode("aGVsbG8=", 8, out, 5, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    n = 12345;
    assert_int_equal(nr_base64_decode("aGVsbG8=", 8, out, 4, &n), -EOVERFLOW);
    assert_int_equal(nr_base64_decode("YQ==", 4, out, 0, &n), -EOVERFLOW);
    assert_int_equal(n, 12345);
    assert_int_equal(nr_base64_decode("  ", 2, out, 0, &n), 0);
    assert_int_equal(n, 0);
    /* Past the cap is reported before what is wrong further on. */
    assert_int_equal(nr_base64_decode("aGVsbG8=!", 9, out, 2, &n), -EOVERFLOW);
}

/* Every length of bytes as OpenSSL encodes them, wrapped at 76 columns, decodes back; the room
 * NR_BASE64_DECODED_MAX promises is enough for every length of text. */
static void test_round_trip(void **state)
{
    unsigned char bytes[200], out[200];
    char enc[300], wrapped[320];

    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof(bytes); len++) {
        int elen = EVP_EncodeBlock((unsigned char *)enc, bytes, (int)len);
        size_t w = 0, n = 0;

        for (int i = 0; i < elen; i++) {
            if (i > 0 && i % 76 == 0)
                wrapped[w++] = '\n';
            wrapped[w++] = enc[i];
        }
        assert_int_equal(nr_base64_decode(wrapped, w, out, len, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, bytes, len);
    }
    for (size_t len = 0; len < 64; len++) {
        char s[64];
        size_t n = 0;

        memset(s, 'A', len);
        if (nr_base64_decode(s, len, out, NR_BASE64_DECODED_MAX(len), &n) == 0)
            assert_true(n == len * 6 / 8);
        else
            assert_int_equal(len % 4, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padded),      cmocka_unit_test(test_padding_optional),
        cmocka_unit_test(test_white_space), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_invalid),     cmocka_unit_test(test_cap),
        cmocka_unit_test(test_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
