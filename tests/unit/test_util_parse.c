/* Tests for lib/util/parse.c: what users type as durations, sizes and times is read exactly or
 * refused with a message that names the input and the problem. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "util/parse.h"

#define NS INT64_C(1000000000)

/* Each helper checks one input and, on failure, says which input and what the parser said. */

static int64_t duration_ok(const char *s)
{
    char err[256] = "";
    int64_t ns = -1;
    int rc = nr_parse_duration(s, &ns, err, sizeof(err));

    if (rc != 0)
        fail_msg("duration \"%s\": rc %d: %s", s, rc, err);
    return ns;
}

static void duration_bad(const char *s, int want_rc, const char *want_text)
{
    char err[256] = "";
    int64_t ns = 12345;
    int rc = nr_parse_duration(s, &ns, err, sizeof(err));

    if (rc != want_rc)
        fail_msg("duration \"%s\": rc %d, want %d (%s)", s, rc, want_rc, err);
    if (strstr(err, want_text) == NULL)
        fail_msg("duration \"%s\": error \"%s\" lacks \"%s\"", s, err, want_text);
    assert_int_equal(ns, 12345); /* untouched on failure */
}

static uint64_t size_ok(const char *s)
{
    char err[256] = "";
    uint64_t bytes = 1;
    int rc = nr_parse_size(s, &bytes, err, sizeof(err));

    if (rc != 0)
        fail_msg("size \"%s\": rc %d: %s", s, rc, err);
    return bytes;
}

static void size_bad(const char *s, int want_rc, const char *want_text)
{
    char err[256] = "";
    uint64_t bytes = 12345;
    int rc = nr_parse_size(s, &bytes, err, sizeof(err));

    if (rc != want_rc)
        fail_msg("size \"%s\": rc %d, want %d (%s)", s, rc, want_rc, err);
    if (strstr(err, want_text) == NULL)
        fail_msg("size \"%s\": error \"%s\" lacks \"%s\"", s, err, want_text);
    assert_int_equal(bytes, 12345);
}

static int64_t time_ok(const char *s)
{
    char err[256] = "";
    int64_t ns = -1;
    int rc = nr_parse_time(s, &ns, err, sizeof(err));

    if (rc != 0)
        fail_msg("time \"%s\": rc %d: %s", s, rc, err);
    return ns;
}

static void time_bad(const char *s, int want_rc, const char *want_text)
{
    char err[256] = "";
    int64_t ns = 12345;
    int rc = nr_parse_time(s, &ns, err, sizeof(err));

    if (rc != want_rc)
        fail_msg("time \"%s\": rc %d, want %d (%s)", s, rc, want_rc, err);
    if (strstr(err, want_text) == NULL)
        fail_msg("time \"%s\": error \"%s\" lacks \"%s\"", s, err, want_text);
    assert_int_equal(ns, 12345);
}

/* ---- durations ---- */

static void test_duration_units(void **state)
{
    assert_int_equal(duration_ok("0"), 0);
    assert_int_equal(duration_ok("0s"), 0);
    assert_int_equal(duration_ok("1ns"), 1);
    assert_int_equal(duration_ok("1us"), 1000);
    assert_int_equal(duration_ok("1\xc2\xb5s"), 1000); /* micro sign, as Go writes it */
    assert_int_equal(duration_ok("1\xce\xbcs"), 1000); /* Greek mu */
    assert_int_equal(duration_ok("300ms"), 300 * 1000 * 1000);
    assert_int_equal(duration_ok("45s"), 45 * NS);
    assert_int_equal(duration_ok("5m"), 300 * NS);
    assert_int_equal(duration_ok("2h"), 7200 * NS);
    assert_int_equal(duration_ok("1d"), 86400 * NS);
    assert_int_equal(duration_ok("1h30m"), 5400 * NS);
    assert_int_equal(duration_ok("30m1h"), 5400 * NS);
    assert_int_equal(duration_ok("1h0m0s"), 3600 * NS); /* Go's String() form */
    assert_int_equal(duration_ok("1d2h3m4s5ms6us7ns"),
                     ((86400 + 7200 + 180 + 4) * NS) + 5000000 + 6000 + 7);
    assert_int_equal(duration_ok("007s"), 7 * NS);
}

static void test_duration_fractions(void **state)
{
    assert_int_equal(duration_ok("1.5s"), 1500000000);
    assert_int_equal(duration_ok("0.001s"), 1000000);
    assert_int_equal(duration_ok("0.5h"), 1800 * NS);
    assert_int_equal(duration_ok("1.25d"), 108000 * NS);
    assert_int_equal(duration_ok("2.5ms"), 2500000);
    assert_int_equal(duration_ok("1h0.5s"), 3600 * NS + 500000000);
    /* Below a nanosecond is dropped, never rounded up. */
    assert_int_equal(duration_ok("1.5ns"), 1);
    assert_int_equal(duration_ok("1.9999999999999999999999s"), 1999999999);
    assert_int_equal(duration_ok("0.000000001s"), 1);
    assert_int_equal(duration_ok("0.0000000009s"), 0);
}

static void test_duration_errors(void **state)
{
    duration_bad("", -EINVAL, "invalid duration \"\": empty");
    assert_int_equal(nr_parse_duration(NULL, &(int64_t){0}, NULL, 0), -EINVAL);
    duration_bad("5x", -EINVAL,
                 "invalid duration \"5x\": unknown unit \"x\" (use ns, us, ms, s, m, h, d)");
    duration_bad("5", -EINVAL, "missing unit after \"5\"");
    duration_bad("1h5", -EINVAL, "missing unit after \"5\"");
    duration_bad("00", -EINVAL, "missing unit");
    duration_bad("-5s", -EINVAL, "negative durations are not allowed");
    duration_bad("+5s", -EINVAL, "sign is not allowed");
    duration_bad("1h -5m", -EINVAL, "spaces are not allowed");
    duration_bad(" 5s", -EINVAL, "spaces are not allowed");
    duration_bad("5s\n", -EINVAL, "spaces are not allowed");
    duration_bad("1.s", -EINVAL, "expected a digit after \".\"");
    duration_bad(".5s", -EINVAL, "expected a number at \".5s\"");
    duration_bad("s", -EINVAL, "expected a number at \"s\"");
    duration_bad("1h-5m", -EINVAL, "unknown unit \"h-\"");
    duration_bad("1.2.3s", -EINVAL, "missing unit after \"1.2\"");
    /* Units are lower-case only: "M" could be a month, "S" is nothing Go reads. */
    duration_bad("1H", -EINVAL, "unknown unit \"H\"");
    duration_bad("1S", -EINVAL, "unknown unit \"S\"");
    duration_bad("1M", -EINVAL, "unknown unit \"M\"");
    duration_bad("1sec", -EINVAL, "unknown unit \"sec\"");
    duration_bad("1w", -EINVAL, "unknown unit \"w\"");
    /* Control bytes are escaped so the message stays on one line. */
    duration_bad("1\x01", -EINVAL, "unknown unit \"\\x01\"");
    duration_bad("1\"", -EINVAL, "invalid duration \"1\\\"\": unknown unit \"\\\"\"");
}

static void test_duration_limits(void **state)
{
    assert_int_equal(duration_ok("9223372036854775807ns"), INT64_MAX);
    duration_bad("9223372036854775808ns", -ERANGE, "too large");
    assert_int_equal(duration_ok("106751d"), INT64_C(106751) * 86400 * NS);
    duration_bad("106752d", -ERANGE, "too large (the maximum is 106751d23h47m16.854775807s)");
    assert_int_equal(duration_ok("106751d23h47m16.854775807s"), INT64_MAX);
    duration_bad("106751d23h47m16.854775808s", -ERANGE, "too large");
    assert_int_equal(duration_ok("9223372036854775806ns1ns"), INT64_MAX);
    duration_bad("9223372036854775807ns1ns", -ERANGE, "too large");
    /* A fraction alone can be what tips the sum over. */
    duration_bad("9223372036854775807ns0.5s", -ERANGE, "too large");
    duration_bad("106751d23h47m16s0.9s", -ERANGE, "too large");
    assert_int_equal(duration_ok("106751d23h47m16s0.854775807s"), INT64_MAX);
    duration_bad("99999999999999999999999999s", -ERANGE, "too large");
    /* A malformed input is reported as malformed, even when its number is too large. */
    duration_bad("99999999999999999999999999x", -EINVAL, "unknown unit \"x\"");
    duration_bad("106752d1x", -EINVAL, "unknown unit \"x\"");
}

static void test_duration_error_buffer(void **state)
{
    char err[8];
    int64_t ns;

    memset(err, 'x', sizeof(err));
    assert_int_equal(nr_parse_duration("5x", &ns, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid");
    memset(err, 'x', sizeof(err));
    assert_int_equal(nr_parse_duration("5x", &ns, err, 1), -EINVAL);
    assert_string_equal(err, "");
    assert_int_equal(nr_parse_duration("5x", &ns, err, 0), -EINVAL);
    assert_int_equal(nr_parse_duration("5x", &ns, NULL, 100), -EINVAL);
    assert_int_equal(nr_parse_duration("9223372036854775808ns", &ns, NULL, 0), -ERANGE);
}

static void test_duration_long_input_is_cut_in_message(void **state)
{
    char input[400];
    char err[512];
    int64_t ns;

    memset(input, 'q', sizeof(input) - 1);
    input[0] = '1';
    input[sizeof(input) - 1] = '\0';
    assert_int_equal(nr_parse_duration(input, &ns, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "qqq...\""));
    assert_true(strlen(err) < 300);
}

static void test_duration_format(void **state)
{
    static const struct {
        int64_t ns;
        const char *text;
    } cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {999, "999ns"},
        {1000, "1us"},
        {1500, "1.5us"},
        {250 * 1000 * 1000, "250ms"},
        {1500000, "1.5ms"},
        {1500000000, "1.5s"},
        {1000000001, "1.000000001s"},
        {59 * NS, "59s"},
        {60 * NS, "1m"},
        {5400 * NS, "1h30m"},
        {3600 * NS + 500000000, "1h500ms"},
        {86400 * NS, "1d"},
        {90061 * NS, "1d1h1m1s"},
        {INT64_MAX, "106751d23h47m16.854775807s"},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = nr_format_duration(cases[i].ns, buf, sizeof(buf));

        assert_int_equal(n, strlen(cases[i].text));
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(duration_ok(buf), cases[i].ns);
    }
    assert_int_equal(nr_format_duration(-1, buf, sizeof(buf)), -EINVAL);
    /* "1h30m" needs 6 bytes with its NUL. */
    assert_int_equal(nr_format_duration(5400 * NS, buf, 5), -ENOSPC);
    assert_int_equal(nr_format_duration(5400 * NS, buf, 6), 5);
}

static void test_duration_round_trip(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    char buf[64];

    /* xorshift: values of every magnitude, each written and read back to the nanosecond. */
    for (int i = 0; i < 20000; i++) {
        int64_t ns;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ns = (int64_t)(x >> (1 + i % 63));
        assert_true(nr_format_duration(ns, buf, sizeof(buf)) > 0);
        assert_int_equal(duration_ok(buf), ns);
    }
}

/* ---- sizes ---- */

static void test_size_units(void **state)
{
    assert_int_equal(size_ok("0"), 0);
    assert_int_equal(size_ok("512"), 512);
    assert_int_equal(size_ok("512B"), 512);
    assert_int_equal(size_ok("1K"), 1000);
    assert_int_equal(size_ok("1KB"), 1000);
    assert_int_equal(size_ok("1k"), 1000);
    assert_int_equal(size_ok("1kB"), 1000);
    assert_int_equal(size_ok("500MB"), 500000000);
    assert_int_equal(size_ok("500M"), 500000000);
    assert_int_equal(size_ok("2G"), 2000000000);
    assert_int_equal(size_ok("2GB"), 2000000000);
    assert_int_equal(size_ok("3T"), UINT64_C(3000000000000));
    assert_int_equal(size_ok("3TB"), UINT64_C(3000000000000));
    assert_int_equal(size_ok("1Ki"), 1024);
    assert_int_equal(size_ok("1KiB"), 1024);
    assert_int_equal(size_ok("500Mi"), 500 * 1048576);
    assert_int_equal(size_ok("500MiB"), 500 * 1048576);
    assert_int_equal(size_ok("2Gi"), UINT64_C(2) << 30);
    assert_int_equal(size_ok("2GiB"), UINT64_C(2) << 30);
    assert_int_equal(size_ok("3Ti"), UINT64_C(3) << 40);
    assert_int_equal(size_ok("3TiB"), UINT64_C(3) << 40);
}

static void test_size_fractions(void **state)
{
    assert_int_equal(size_ok("1.5GiB"), 1610612736);
    assert_int_equal(size_ok("1.5GB"), 1500000000);
    assert_int_equal(size_ok("0.5KiB"), 512);
    assert_int_equal(size_ok("0.1KB"), 100);
    /* Rounded down to whole bytes. */
    assert_int_equal(size_ok("1.5"), 1);
    assert_int_equal(size_ok("1.9B"), 1);
    assert_int_equal(size_ok("1.0001KiB"), 1024);
    assert_int_equal(size_ok("0.9999999999999999999999TiB"), (UINT64_C(1) << 40) - 1);
}

static void test_size_errors(void **state)
{
    size_bad("12QB", -EINVAL,
             "invalid size \"12QB\": unknown unit \"QB\" "
             "(use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
    size_bad("", -EINVAL, "invalid size \"\": empty");
    assert_int_equal(nr_parse_size(NULL, &(uint64_t){0}, NULL, 0), -EINVAL);
    size_bad("-1MB", -EINVAL, "negative sizes are not allowed");
    size_bad("+1MB", -EINVAL, "sign is not allowed");
    size_bad("500 MB", -EINVAL, "spaces are not allowed");
    size_bad("MB", -EINVAL, "expected a number");
    size_bad(".5MB", -EINVAL, "expected a number");
    size_bad("1.MB", -EINVAL, "expected a digit after \".\"");
    size_bad("1MB5", -EINVAL, "unknown unit \"MB5\"");
    size_bad("1PB", -EINVAL, "unknown unit \"PB\"");
    /* Case matters: "b" would be bits, "m" is milli to Kubernetes. */
    size_bad("1kb", -EINVAL, "unknown unit \"kb\"");
    size_bad("1mb", -EINVAL, "unknown unit \"mb\"");
    size_bad("1Mb", -EINVAL, "unknown unit \"Mb\"");
    size_bad("1m", -EINVAL, "unknown unit \"m\"");
    size_bad("1b", -EINVAL, "unknown unit \"b\"");
    size_bad("1KIB", -EINVAL, "unknown unit \"KIB\"");
    size_bad("1kiB", -EINVAL, "unknown unit \"kiB\"");
}

static void test_size_limits(void **state)
{
    assert_int_equal(size_ok("18446744073709551615"), UINT64_MAX);
    assert_int_equal(size_ok("18446744073709551615B"), UINT64_MAX);
    size_bad("18446744073709551616", -ERANGE,
             "too large (the maximum is 18446744073709551615 bytes)");
    assert_int_equal(size_ok("18446744073.709551615GB"), UINT64_MAX);
    size_bad("18446744073.709551616GB", -ERANGE, "too large");
    size_bad("16777216TiB", -ERANGE, "too large");
    assert_int_equal(size_ok("16777215.9999999999999TiB"), UINT64_MAX);
    size_bad("99999999999999999999999999999", -ERANGE, "too large");
    size_bad("99999999999999999999999999999XB", -EINVAL, "unknown unit");
}

static void test_size_format(void **state)
{
    static const struct {
        uint64_t bytes;
        const char *text;
    } cases[] = {
        {0, "0B"},
        {512, "512B"},
        {1023, "1023B"},
        {1024, "1.0KiB"},
        {1536, "1.5KiB"},
        {1024 * 1024 - 1, "1023.9KiB"}, /* rounded down, not up to 1024.0KiB */
        {500 * 1048576, "500.0MiB"},
        {1610612736, "1.5GiB"},
        {UINT64_C(3) << 40, "3.0TiB"},
        {UINT64_MAX, "16777215.9TiB"},
    };
    char buf[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(nr_format_size(cases[i].bytes, buf, sizeof(buf)), strlen(cases[i].text));
        assert_string_equal(buf, cases[i].text);
        /* People may paste it back: it reads as the same count, to a tenth. */
        assert_true(cases[i].bytes - size_ok(buf) <= cases[i].bytes / 10);
    }
    assert_int_equal(nr_format_size(1536, buf, 6), -ENOSPC);
    assert_int_equal(nr_format_size(1536, buf, 7), 6);
}

/* ---- times ---- */

static void test_time_basic(void **state)
{
    assert_int_equal(time_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(time_ok("2026-11-26T05:08:19Z"), 1795669699 * NS);
    assert_int_equal(time_ok("2026-11-26T05:08:19.5Z"), 1795669699 * NS + 500000000);
    assert_int_equal(time_ok("2026-11-26T05:08:19.123456789Z"), 1795669699 * NS + 123456789);
    assert_int_equal(time_ok("2026-11-26T05:08:19.000000001Z"), 1795669699 * NS + 1);
    assert_int_equal(time_ok("1969-12-31T23:59:59.999999999Z"), -1);
    assert_int_equal(time_ok("1900-03-01T00:00:00Z"), INT64_C(-2203891200) * NS);
    /* 't', 'z' and a space for 'T' are accepted. */
    assert_int_equal(time_ok("2026-11-26t05:08:19z"), 1795669699 * NS);
    assert_int_equal(time_ok("2026-11-26 05:08:19Z"), 1795669699 * NS);
}

static void test_time_offsets(void **state)
{
    int64_t utc = time_ok("2026-11-26T05:08:19.5Z");

    /* +01:00 is an hour ahead of UTC: the same instant reads an hour later. */
    assert_int_equal(time_ok("2026-11-26T06:08:19.5+01:00"), utc);
    assert_int_equal(time_ok("2026-11-26T05:08:19.5+01:00"), utc - 3600 * NS);
    assert_int_equal(time_ok("2026-11-25T23:38:19.5-05:30"), utc);
    assert_int_equal(time_ok("2026-11-26T05:08:19.5+00:00"), utc);
    assert_int_equal(time_ok("2026-11-26T05:08:19.5-00:00"), utc);
    assert_int_equal(time_ok("2026-11-27T04:08:19.5+23:00"), utc);
    assert_int_equal(time_ok("2026-11-26T06:08:19.5+01:00"), utc);
    time_bad("2026-11-26T05:08:19+24:00", -EINVAL, "offset 24:00 is out of range");
    time_bad("2026-11-26T05:08:19+01:60", -EINVAL, "offset 01:60 is out of range");
    time_bad("2026-11-26T05:08:19+0100", -EINVAL, "expected an offset like \"+01:00\"");
    time_bad("2026-11-26T05:08:19+1:00", -EINVAL, "expected an offset like \"+01:00\"");
    time_bad("2026-11-26T05:08:19+01", -EINVAL, "expected an offset like \"+01:00\"");
}

static void test_time_calendar(void **state)
{
    assert_int_equal(time_ok("2024-02-29T00:00:00Z"), INT64_C(1709164800) * NS);
    assert_int_equal(time_ok("2000-02-29T12:00:00Z"), INT64_C(951825600) * NS);
    time_bad("2025-02-29T00:00:00Z", -EINVAL,
             "invalid time \"2025-02-29T00:00:00Z\": day 29 is past the end of February 2025");
    time_bad("1900-02-29T00:00:00Z", -EINVAL, "day 29 is past the end of February 1900");
    time_bad("2100-02-29T00:00:00Z", -EINVAL, "day 29 is past the end of February 2100");
    time_bad("2026-02-30T00:00:00Z", -EINVAL,
             "invalid time \"2026-02-30T00:00:00Z\": day 30 is past the end of February 2026");
    time_bad("2026-04-31T00:00:00Z", -EINVAL, "day 31 is past the end of April 2026");
    time_bad("2026-01-32T00:00:00Z", -EINVAL, "day 32 is past the end of January 2026");
    assert_int_equal(time_ok("2026-12-31T00:00:00Z") + 86400 * NS, time_ok("2027-01-01T00:00:00Z"));
    time_bad("2026-01-00T00:00:00Z", -EINVAL, "day 00 is out of range");
    time_bad("2026-13-01T00:00:00Z", -EINVAL, "month 13 is out of range (01-12)");
    time_bad("2026-00-01T00:00:00Z", -EINVAL, "month 00 is out of range");
    time_bad("2026-11-26T24:00:00Z", -EINVAL, "hour 24 is out of range (00-23)");
    time_bad("2026-11-26T05:60:00Z", -EINVAL, "minute 60 is out of range (00-59)");
    time_bad("2026-11-26T05:08:61Z", -EINVAL, "second 61 is out of range (00-60)");
    /* A leap second counts as the first second of the next minute. */
    assert_int_equal(time_ok("2016-12-31T23:59:60Z"), time_ok("2017-01-01T00:00:00Z"));
    assert_int_equal(time_ok("2016-12-31T23:59:60.5Z"), time_ok("2017-01-01T00:00:00.5Z"));
}

static void test_time_syntax(void **state)
{
    time_bad("", -EINVAL, "invalid time \"\": empty");
    assert_int_equal(nr_parse_time(NULL, &(int64_t){0}, NULL, 0), -EINVAL);
    time_bad("2026-11-26", -EINVAL, "missing the time of day");
    time_bad("2026-11-26T05:08:19", -EINVAL, "missing the time zone (add \"Z\" for UTC");
    time_bad("2026-11-26T05:08:19.", -EINVAL, "expected a digit after \".\"");
    time_bad("2026-11-26T05:08:19.Z", -EINVAL, "expected a digit after \".\"");
    time_bad("2026-11-26T05:08:19.1234567891Z", -EINVAL, "more than 9 digits after \".\"");
    time_bad("2026-11-26T05:08:19Zjunk", -EINVAL, "unexpected \"junk\" after the time zone");
    time_bad("2026-11-26T05:08:19Z ", -EINVAL, "unexpected \" \" after the time zone");
    time_bad("2026-11-26T05:08:19UTC", -EINVAL, "expected \"Z\" or an offset like \"+01:00\"");
    time_bad("2026-11-26X05:08:19Z", -EINVAL, "expected \"T\" between the date and the time");
    time_bad("26-11-26T05:08:19Z", -EINVAL, "expected a 4-digit year");
    time_bad("+2026-11-26T05:08:19Z", -EINVAL, "expected a 4-digit year");
    time_bad("2026/11/26T05:08:19Z", -EINVAL, "expected \"-\" and a 2-digit month");
    time_bad("2026-1-26T05:08:19Z", -EINVAL, "expected \"-\" and a 2-digit month");
    time_bad("2026-11-6T05:08:19Z", -EINVAL, "expected \"-\" and a 2-digit day");
    time_bad("2026-11-26T5:08:19Z", -EINVAL, "expected the time of day as HH:MM:SS");
    time_bad("2026-11-26T05:08Z", -EINVAL, "expected the time of day as HH:MM:SS");
    time_bad("2026-11-26T05:08:1", -EINVAL, "expected the time of day as HH:MM:SS");
    time_bad("2026", -EINVAL, "expected \"-\" and a 2-digit month");
}

static void test_time_limits(void **state)
{
    assert_int_equal(time_ok("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
    time_bad("2262-04-11T23:47:16.854775808Z", -ERANGE,
             "outside what int64 nanoseconds since 1970 hold");
    assert_int_equal(time_ok("1677-09-21T00:12:43.145224192Z"), INT64_MIN);
    time_bad("1677-09-21T00:12:43.145224191Z", -ERANGE, "1677-09-21T00:12:43.145224192Z to");
    /* The offset can move a time out of range, or back in. */
    assert_int_equal(time_ok("2262-04-12T00:47:16.854775807+01:00"), INT64_MAX);
    time_bad("2262-04-11T23:47:16.854775807-01:00", -ERANGE, "outside");
    time_bad("0000-01-01T00:00:00Z", -ERANGE, "outside");
    time_bad("9999-12-31T23:59:59.999999999Z", -ERANGE, "outside");
    /* Year 0000 is a leap year in the proleptic calendar: a valid date, out of range. */
    time_bad("0000-02-29T00:00:00Z", -ERANGE, "outside");
    time_bad("0001-02-29T00:00:00Z", -EINVAL, "day 29 is past the end of February 0001");
}

static void test_time_format(void **state)
{
    char buf[40];

    assert_int_equal(nr_format_time(0, 0, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(nr_format_time(1795669699 * NS + 123456789, 3, buf, sizeof(buf)), 24);
    assert_string_equal(buf, "2026-11-26T05:08:19.123Z");
    nr_format_time(1795669699 * NS + 123456789, 6, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-26T05:08:19.123456Z");
    nr_format_time(1795669699 * NS + 123456789, 9, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-26T05:08:19.123456789Z");
    nr_format_time(1795669699 * NS + 999999999, 0, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-26T05:08:19Z"); /* truncated, not rounded */
    nr_format_time(-1, 9, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999999999Z");
    nr_format_time(-1, 0, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    nr_format_time(INT64_MAX, 9, buf, sizeof(buf));
    assert_string_equal(buf, "2262-04-11T23:47:16.854775807Z");
    nr_format_time(INT64_MIN, 9, buf, sizeof(buf));
    assert_string_equal(buf, "1677-09-21T00:12:43.145224192Z");
    nr_format_time(INT64_C(1709164800) * NS, 0, buf, sizeof(buf));
    assert_string_equal(buf, "2024-02-29T00:00:00Z");

    assert_int_equal(nr_format_time(0, 2, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(nr_format_time(0, 0, buf, 20), -ENOSPC);
    assert_int_equal(nr_format_time(0, 0, buf, 21), 20);
}

static void test_time_round_trip(void **state)
{
    static const int fracs[] = {0, 3, 6, 9};
    static const int64_t divisor[] = {NS, 1000000, 1000, 1};
    uint64_t x = 0x2545f4914f6cdd1du;
    char buf[40];

    /* Every day from 1678 to 2262 is reached by some value; each reads back as written. */
    for (int i = 0; i < 50000; i++) {
        int64_t ns;
        int64_t floor_ns;
        int k = i % 4;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ns = (int64_t)x;
        /* INT64_MIN's second, cut to whole seconds, is before INT64_MIN. */
        if (ns < INT64_MIN + NS)
            continue;
        assert_true(nr_format_time(ns, fracs[k], buf, sizeof(buf)) > 0);
        floor_ns = ns / divisor[k] * divisor[k];
        if (floor_ns > ns)
            floor_ns -= divisor[k];
        assert_int_equal(time_ok(buf), floor_ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_fractions),
        cmocka_unit_test(test_duration_errors),
        cmocka_unit_test(test_duration_limits),
        cmocka_unit_test(test_duration_error_buffer),
        cmocka_unit_test(test_duration_long_input_is_cut_in_message),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_duration_round_trip),
        cmocka_unit_test(test_size_units),
        cmocka_unit_test(test_size_fractions),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_size_format),
        cmocka_unit_test(test_time_basic),
        cmocka_unit_test(test_time_offsets),
        cmocka_unit_test(test_time_calendar),
        cmocka_unit_test(test_time_syntax),
        cmocka_unit_test(test_time_limits),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
