/* libFuzzer target for lib/util/parse.c: any input is either refused with a one-line message
 * that fits the caller's buffer, or read exactly: formatting the value and parsing it again
 * gives the same value back. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"
#include "fuzz.h"

#define NS INT64_C(1000000000)

/* What every parser promises about a failure: -EINVAL or -ERANGE, a message on one line that
 * names the kind of input, and the same message cut to fit a small buffer. */
static void check_failure(int rc, const char *what, const char *err, const char *small,
                          size_t small_len)
{
    char prefix[32];

    CHECK(rc == -EINVAL || rc == -ERANGE);
    snprintf(prefix, sizeof(prefix), "invalid %s \"", what);
    CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(strlen(small) < small_len);
    CHECK(strncmp(err, small, strlen(small)) == 0);
}

static void check_duration_round_trip(int64_t ns)
{
    char buf[64];
    int64_t back = -1;
    int n = nr_format_duration(ns, buf, sizeof(buf));

    CHECK(n > 0 && (size_t)n == strlen(buf));
    CHECK(nr_parse_duration(buf, &back, NULL, 0) == 0);
    CHECK(back == ns);
    /* One byte short of the NUL is refused, not cut. */
    CHECK(nr_format_duration(ns, buf, (size_t)n) == -ENOSPC);
}

static void check_time_round_trip(int64_t ns)
{
    static const int fracs[] = {0, 3, 6, 9};
    static const int64_t units[] = {NS, 1000000, 1000, 1};
    char buf[64];

    for (size_t i = 0; i < sizeof(fracs) / sizeof(fracs[0]); i++) {
        int64_t back = 0;
        int64_t want;
        int n = nr_format_time(ns, fracs[i], buf, sizeof(buf));

        CHECK(n > 0 && (size_t)n == strlen(buf));
        /* Written with fewer digits, the time reads back cut down to them; in INT64_MIN's
         * second that is before INT64_MIN, which does not fit. */
        if (ns < INT64_MIN + NS && fracs[i] != 9) {
            CHECK(nr_parse_time(buf, &back, NULL, 0) == -ERANGE || back <= ns);
            continue;
        }
        want = ns / units[i] * units[i];
        if (want > ns)
            want -= units[i];
        CHECK(nr_parse_time(buf, &back, NULL, 0) == 0);
        CHECK(back == want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    char small[32];
    /* The first byte picks how small the second error buffer is: 1 to 32 bytes. */
    size_t small_len = size > 0 ? 1 + data[0] % sizeof(small) : sizeof(small);
    char *s = malloc(size + 1);
    int64_t ns = 0;
    uint64_t bytes = 0;
    int rc;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    rc = nr_parse_duration(s, &ns, err, sizeof(err));
    CHECK(nr_parse_duration(s, &(int64_t){0}, small, small_len) == rc);
    CHECK(nr_parse_duration(s, &(int64_t){0}, NULL, 0) == rc);
    if (rc == 0) {
        CHECK(ns >= 0);
        check_duration_round_trip(ns);
    } else {
        check_failure(rc, "duration", err, small, small_len);
    }

    rc = nr_parse_size(s, &bytes, err, sizeof(err));
    CHECK(nr_parse_size(s, &(uint64_t){0}, small, small_len) == rc);
    if (rc == 0) {
        char buf[32];
        uint64_t back = 0;

        /* One decimal, rounded down, for people: it reads back at most a tenth of its unit
         * (so a tenth of the whole) lower. */
        CHECK(nr_format_size(bytes, buf, sizeof(buf)) > 0);
        CHECK(nr_parse_size(buf, &back, NULL, 0) == 0);
        CHECK(back <= bytes);
        CHECK(bytes - back <= bytes / 10 + 1);
    } else {
        check_failure(rc, "size", err, small, small_len);
    }

    rc = nr_parse_time(s, &ns, err, sizeof(err));
    CHECK(nr_parse_time(s, &(int64_t){0}, small, small_len) == rc);
    if (rc == 0)
        check_time_round_trip(ns);
    else
        check_failure(rc, "time", err, small, small_len);

    /* The raw bytes as a number reach values no text above would. */
    if (size >= sizeof(ns)) {
        memcpy(&ns, data, sizeof(ns));
        check_time_round_trip(ns);
        if (ns >= 0)
            check_duration_round_trip(ns);
        else
            CHECK(nr_format_duration(ns, err, sizeof(err)) == -EINVAL);
    }

    free(s);
    return 0;
}
