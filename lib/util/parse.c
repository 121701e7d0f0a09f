/* Parsers and formatters for what users type: durations ("1h30m"), sizes ("500MiB") and RFC 3339
 * times. Locale-free and exact: numbers are read digit by digit, overflow is checked before it
 * can happen, and every failure says in one line which input is wrong and why. */
#include "util/parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_SEC  INT64_C(1000000000)
#define NS_PER_MIN  (60 * NS_PER_SEC)
#define NS_PER_HOUR (60 * NS_PER_MIN)
#define NS_PER_DAY  (24 * NS_PER_HOUR)

/* Bytes of the input an error message quotes; longer input ends in "...". */
#define SHOW_MAX 64
/* Each shown byte takes at most 4 characters (\xNN), plus "..." and the NUL. */
#define SHOW_BUF (SHOW_MAX * 4 + 4)

#define DURATION_UNITS "ns, us, ms, s, m, h, d"
#define SIZE_UNITS     "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"

struct unit {
    const char *name;
    uint64_t mult; /* times 10 must fit in uint64_t: see decimal_scale() */
};

static const struct unit duration_units[] = {
    {"ns", 1},           {"us", 1000},      {"\xc2\xb5s", 1000}, /* U+00B5 MICRO SIGN, as Go writes
                                                                    it */
    {"\xce\xbcs", 1000}, /* U+03BC GREEK SMALL LETTER MU, which Go also reads */
    {"ms", 1000 * 1000}, {"s", NS_PER_SEC}, {"m", NS_PER_MIN},   {"h", NS_PER_HOUR},
    {"d", NS_PER_DAY},
};

/* Case matters: "m" is milli for Kubernetes and "b" is bits, so neither means a size here. */
static const struct unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"K", 1000},
    {"KB", 1000},
    {"k", 1000},
    {"kB", 1000},
    {"M", 1000 * 1000},
    {"MB", 1000 * 1000},
    {"G", 1000 * 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"T", UINT64_C(1000) * 1000 * 1000 * 1000},
    {"TB", UINT64_C(1000) * 1000 * 1000 * 1000},
    {"Ki", UINT64_C(1) << 10},
    {"KiB", UINT64_C(1) << 10},
    {"Mi", UINT64_C(1) << 20},
    {"MiB", UINT64_C(1) << 20},
    {"Gi", UINT64_C(1) << 30},
    {"GiB", UINT64_C(1) << 30},
    {"Ti", UINT64_C(1) << 40},
    {"TiB", UINT64_C(1) << 40},
};

static const char *const month_names[12] = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December",
};

/* A decimal number as typed: digits, then optionally "." and more digits. */
struct decimal {
    uint64_t whole;   /* the integer part; meaningless when overflow is set */
    bool overflow;    /* the integer part does not fit in uint64_t */
    const char *frac; /* the fraction's digits, frac_len of them */
    size_t frac_len;
};

enum scan_result { SCAN_OK = 0, SCAN_NO_DIGITS, SCAN_NO_FRACTION_DIGITS };

/* Writes n bytes of s into out (SHOW_BUF bytes) so an error message stays one printable line:
 * quotes, backslashes and control bytes are escaped as in C and long input is cut with "...". */
static void show(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t shown = n < SHOW_MAX ? n : SHOW_MAX;
    size_t o = 0;

    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            out[o++] = (char)c;
        }
    }
    if (shown < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Writes `invalid <what> "<s>": <why>` into err (when there is one) and returns rc. */
__attribute__((format(printf, 6, 7))) static int
fail(int rc, char *err, size_t errlen, const char *what, const char *s, const char *why_fmt, ...)
{
    char shown[SHOW_BUF];
    char why[256];
    va_list ap;

    if (err != NULL && errlen > 0) {
        show(shown, s, strlen(s));
        va_start(ap, why_fmt);
        vsnprintf(why, sizeof(why), why_fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "invalid %s \"%s\": %s", what, shown, why);
    }
    return rc;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool has_space(const char *s)
{
    return strpbrk(s, " \t\n\v\f\r") != NULL;
}

/* The checks every quantity shares: present, unsigned, no spaces. Returns 0 or fail()'s. */
static int check_plain(const char *s, const char *what, char *err, size_t errlen)
{
    if (s == NULL || *s == '\0')
        return fail(-EINVAL, err, errlen, what, "", "empty");
    if (*s == '-')
        return fail(-EINVAL, err, errlen, what, s, "negative %ss are not allowed", what);
    if (*s == '+')
        return fail(-EINVAL, err, errlen, what, s, "a sign is not allowed");
    if (has_space(s))
        return fail(-EINVAL, err, errlen, what, s, "spaces are not allowed");
    return 0;
}

/* Reads the decimal number at the start of s into *d and the bytes it took into *used. */
static enum scan_result decimal_scan(const char *s, struct decimal *d, size_t *used)
{
    size_t i = 0;

    d->whole = 0;
    d->overflow = false;
    d->frac = NULL;
    d->frac_len = 0;
    if (!is_digit(s[0]))
        return SCAN_NO_DIGITS;
    for (; is_digit(s[i]); i++) {
        uint64_t digit = (uint64_t)(s[i] - '0');

        if (d->whole > (UINT64_MAX - digit) / 10)
            d->overflow = true;
        else
            d->whole = d->whole * 10 + digit;
    }
    if (s[i] == '.') {
        i++;
        d->frac = s + i;
        while (is_digit(s[i]))
            i++;
        d->frac_len = (size_t)(s + i - d->frac);
        if (d->frac_len == 0)
            return SCAN_NO_FRACTION_DIGITS;
    }
    *used = i;
    return SCAN_OK;
}

/* Sets *out to floor(d * mult) and returns true, or returns false when that exceeds max. Exact
 * for any number of fraction digits: they are folded in from the last one, so no step needs more
 * than 10 * mult. */
static bool decimal_scale(const struct decimal *d, uint64_t mult, uint64_t max, uint64_t *out)
{
    uint64_t part = 0;

    for (size_t i = d->frac_len; i > 0; i--)
        part = ((uint64_t)(d->frac[i - 1] - '0') * mult + part) / 10;
    if (d->overflow || part > max || d->whole > (max - part) / mult)
        return false;
    *out = d->whole * mult + part;
    return true;
}

static const struct unit *unit_find(const struct unit *units, size_t count, const char *name,
                                    size_t len)
{
    for (size_t i = 0; i < count; i++) {
        if (strlen(units[i].name) == len && memcmp(units[i].name, name, len) == 0)
            return &units[i];
    }
    return NULL;
}

int nr_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen)
{
    static const char what[] = "duration";
    char shown[SHOW_BUF];
    uint64_t total = 0;
    bool too_large = false;
    const char *p = s;
    int rc = 0;

    rc = check_plain(s, what, err, errlen);
    if (rc != 0)
        goto out;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        goto out;
    }
    while (*p != '\0') {
        struct decimal d;
        const struct unit *unit;
        const char *name;
        size_t used = 0;
        size_t name_len;
        uint64_t value;

        switch (decimal_scan(p, &d, &used)) {
        case SCAN_NO_DIGITS:
            show(shown, p, strlen(p));
            rc = fail(-EINVAL, err, errlen, what, s, "expected a number at \"%s\"", shown);
            goto out;
        case SCAN_NO_FRACTION_DIGITS:
            rc = fail(-EINVAL, err, errlen, what, s, "expected a digit after \".\"");
            goto out;
        case SCAN_OK: break;
        }
        name = p + used;
        name_len = strcspn(name, "0123456789.");
        if (name_len == 0) {
            show(shown, p, used);
            rc = fail(-EINVAL, err, errlen, what, s,
                      "missing unit after \"%s\" (use " DURATION_UNITS ")", shown);
            goto out;
        }
        unit = unit_find(duration_units, sizeof(duration_units) / sizeof(duration_units[0]), name,
                         name_len);
        if (unit == NULL) {
            show(shown, name, name_len);
            rc = fail(-EINVAL, err, errlen, what, s, "unknown unit \"%s\" (use " DURATION_UNITS ")",
                      shown);
            goto out;
        }
        /* Keep reading past an overflow: a malformed input is reported as such, not as ERANGE. */
        if (!too_large && decimal_scale(&d, unit->mult, (uint64_t)INT64_MAX - total, &value))
            total += value;
        else
            too_large = true;
        p = name + name_len;
    }
    if (too_large) {
        rc = fail(-ERANGE, err, errlen, what, s,
                  "too large (the maximum is 106751d23h47m16.854775807s)");
        goto out;
    }
    *ns = (int64_t)total;
out:
    return rc;
}

int nr_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
    static const char what[] = "size";
    char shown[SHOW_BUF];
    struct decimal d;
    const struct unit *unit;
    size_t used = 0;
    uint64_t value;
    int rc = 0;

    rc = check_plain(s, what, err, errlen);
    if (rc != 0)
        goto out;
    switch (decimal_scan(s, &d, &used)) {
    case SCAN_NO_DIGITS: rc = fail(-EINVAL, err, errlen, what, s, "expected a number"); goto out;
    case SCAN_NO_FRACTION_DIGITS:
        rc = fail(-EINVAL, err, errlen, what, s, "expected a digit after \".\"");
        goto out;
    case SCAN_OK: break;
    }
    unit = unit_find(size_units, sizeof(size_units) / sizeof(size_units[0]), s + used,
                     strlen(s + used));
    if (unit == NULL) {
        show(shown, s + used, strlen(s + used));
        rc = fail(-EINVAL, err, errlen, what, s, "unknown unit \"%s\" (use " SIZE_UNITS ")", shown);
        goto out;
    }
    if (!decimal_scale(&d, unit->mult, UINT64_MAX, &value)) {
        rc = fail(-ERANGE, err, errlen, what, s,
                  "too large (the maximum is 18446744073709551615 bytes)");
        goto out;
    }
    *bytes = value;
out:
    return rc;
}

static bool is_leap(int year)
{
    return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar, after Howard
 * Hinnant's days_from_civil: March-based years put the leap day last. */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    int64_t y = month <= 2 ? year - 1 : year;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                                 /* [0, 399] */
    int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                         /* [0, 146096] */

    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */

    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = era * 400 + yoe + (*month <= 2);
}

/* Reads exactly n digits at *p into *value and advances *p; false when there are fewer. */
static bool read_digits(const char **p, int n, int *value)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *value = v;
    return true;
}

int nr_parse_time(const char *s, int64_t *ns, char *err, size_t errlen)
{
    static const char what[] = "time";
    static const char min_max[] =
        "1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z";
    char shown[SHOW_BUF];
    const char *p = s;
    int year, month, day, hour, minute, second;
    int off_hour = 0, off_minute = 0, off_sign = 0;
    int64_t frac = 0;
    int64_t secs;
    int rc = 0;

    if (s == NULL || *s == '\0') {
        rc = fail(-EINVAL, err, errlen, what, "", "empty");
        goto out;
    }
    if (!read_digits(&p, 4, &year)) {
        rc = fail(-EINVAL, err, errlen, what, s,
                  "expected a 4-digit year (the format is 2026-11-26T05:08:19Z)");
        goto out;
    }
    if (*p++ != '-' || !read_digits(&p, 2, &month)) {
        rc = fail(-EINVAL, err, errlen, what, s,
                  "expected \"-\" and a 2-digit month after the year");
        goto out;
    }
    if (month < 1 || month > 12) {
        rc = fail(-EINVAL, err, errlen, what, s, "month %02d is out of range (01-12)", month);
        goto out;
    }
    if (*p++ != '-' || !read_digits(&p, 2, &day)) {
        rc =
            fail(-EINVAL, err, errlen, what, s, "expected \"-\" and a 2-digit day after the month");
        goto out;
    }
    if (day < 1) {
        rc = fail(-EINVAL, err, errlen, what, s, "day 00 is out of range (01-31)");
        goto out;
    }
    if (day > days_in_month(year, month)) {
        rc = fail(-EINVAL, err, errlen, what, s, "day %d is past the end of %s %04d", day,
                  month_names[month - 1], year);
        goto out;
    }
    if (*p == '\0') {
        rc = fail(-EINVAL, err, errlen, what, s,
                  "missing the time of day (add one, as in \"T00:00:00Z\")");
        goto out;
    }
    if (*p != 'T' && *p != 't' && *p != ' ') {
        rc = fail(-EINVAL, err, errlen, what, s, "expected \"T\" between the date and the time");
        goto out;
    }
    p++;
    if (!read_digits(&p, 2, &hour) || *p++ != ':' || !read_digits(&p, 2, &minute) || *p++ != ':' ||
        !read_digits(&p, 2, &second)) {
        rc = fail(-EINVAL, err, errlen, what, s, "expected the time of day as HH:MM:SS");
        goto out;
    }
    if (hour > 23) {
        rc = fail(-EINVAL, err, errlen, what, s, "hour %02d is out of range (00-23)", hour);
        goto out;
    }
    if (minute > 59) {
        rc = fail(-EINVAL, err, errlen, what, s, "minute %02d is out of range (00-59)", minute);
        goto out;
    }
    /* 60 is a leap second: it counts as the first second of the next minute. */
    if (second > 60) {
        rc = fail(-EINVAL, err, errlen, what, s, "second %02d is out of range (00-60)", second);
        goto out;
    }
    if (*p == '.') {
        int digits = 0;

        for (p++; is_digit(*p); p++, digits++) {
            if (digits == 9) {
                rc = fail(-EINVAL, err, errlen, what, s,
                          "more than 9 digits after \".\" (nanoseconds are the limit)");
                goto out;
            }
            frac = frac * 10 + (*p - '0');
        }
        if (digits == 0) {
            rc = fail(-EINVAL, err, errlen, what, s, "expected a digit after \".\"");
            goto out;
        }
        for (; digits < 9; digits++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        off_sign = *p++ == '+' ? 1 : -1;
        if (!read_digits(&p, 2, &off_hour) || *p++ != ':' || !read_digits(&p, 2, &off_minute)) {
            rc = fail(-EINVAL, err, errlen, what, s, "expected an offset like \"+01:00\"");
            goto out;
        }
        if (off_hour > 23 || off_minute > 59) {
            rc = fail(-EINVAL, err, errlen, what, s, "offset %02d:%02d is out of range", off_hour,
                      off_minute);
            goto out;
        }
    } else if (*p == '\0') {
        rc = fail(-EINVAL, err, errlen, what, s,
                  "missing the time zone (add \"Z\" for UTC or an offset like \"+01:00\")");
        goto out;
    } else {
        show(shown, p, strlen(p));
        rc = fail(-EINVAL, err, errlen, what, s,
                  "expected \"Z\" or an offset like \"+01:00\" at \"%s\"", shown);
        goto out;
    }
    if (*p != '\0') {
        show(shown, p, strlen(p));
        rc = fail(-EINVAL, err, errlen, what, s, "unexpected \"%s\" after the time zone", shown);
        goto out;
    }

    /* Years 0000-9999 keep every step below within about 3.2e11 seconds: no overflow here. */
    secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
           off_sign * (off_hour * 3600 + off_minute * 60);
    /* Borrow a second so frac is negative like secs: INT64_MIN itself has a fraction. */
    if (secs < 0 && frac > 0) {
        secs += 1;
        frac -= NS_PER_SEC;
    }
    if (secs > INT64_MAX / NS_PER_SEC || secs < INT64_MIN / NS_PER_SEC ||
        (secs == INT64_MAX / NS_PER_SEC && frac > INT64_MAX % NS_PER_SEC) ||
        (secs == INT64_MIN / NS_PER_SEC && frac < INT64_MIN % NS_PER_SEC)) {
        rc = fail(-ERANGE, err, errlen, what, s,
                  "outside what int64 nanoseconds since 1970 hold (%s)", min_max);
        goto out;
    }
    *ns = secs * NS_PER_SEC + frac;
out:
    return rc;
}

/* Copies the n bytes of out (and its NUL) into buf: n, or -ENOSPC when buf's len cannot hold
 * them. */
static int copy_out(char *buf, size_t len, const char *out, int n)
{
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    memcpy(buf, out, (size_t)n + 1);
    return n;
}

int nr_format_time(int64_t ns, int frac, char *buf, size_t len)
{
    char out[48];
    int64_t frac_unit = 1;
    int64_t secs = ns / NS_PER_SEC;
    int64_t sub = ns % NS_PER_SEC;
    int64_t days, year;
    int month, day, sod;
    int n;
    int rc;

    if (frac != 0 && frac != 3 && frac != 6 && frac != 9) {
        rc = -EINVAL;
        goto out;
    }
    if (sub < 0) {
        sub += NS_PER_SEC;
        secs -= 1;
    }
    days = secs / 86400;
    sod = (int)(secs % 86400);
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    civil_from_days(days, &year, &month, &day);
    n = snprintf(out, sizeof(out), "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d", year, month, day,
                 sod / 3600, sod / 60 % 60, sod % 60);
    /* Truncate, never round: a time must not move into the next second. */
    for (int i = frac; i < 9; i++)
        frac_unit *= 10;
    if (frac > 0)
        n += snprintf(out + n, sizeof(out) - (size_t)n, ".%0*" PRId64, frac, sub / frac_unit);
    n += snprintf(out + n, sizeof(out) - (size_t)n, "Z");
    rc = copy_out(buf, len, out, n);
out:
    return rc;
}

/* Appends `whole[.fraction]unit` for value / scale, the fraction without trailing zeros. */
static int append_scaled(char *out, size_t len, uint64_t value, uint64_t scale, const char *unit)
{
    uint64_t whole = value / scale;
    uint64_t rem = value % scale;
    int width = 0;

    if (rem == 0)
        return snprintf(out, len, "%" PRIu64 "%s", whole, unit);
    for (uint64_t s = scale; s > 1; s /= 10)
        width++;
    while (rem % 10 == 0) {
        rem /= 10;
        width--;
    }
    return snprintf(out, len, "%" PRIu64 ".%0*" PRIu64 "%s", whole, width, rem, unit);
}

int nr_format_duration(int64_t ns, char *buf, size_t len)
{
    static const struct {
        uint64_t ns;
        const char *name;
    } whole_units[] = {{NS_PER_DAY, "d"}, {NS_PER_HOUR, "h"}, {NS_PER_MIN, "m"}};
    /* The longest is INT64_MAX: "106751d23h47m16.854775807s", 26 characters. */
    char out[64];
    uint64_t v = (uint64_t)ns;
    int n = 0;
    int rc;

    if (ns < 0) {
        rc = -EINVAL;
        goto out;
    }
    if (ns == 0)
        n = snprintf(out, sizeof(out), "0s");
    for (size_t i = 0; i < sizeof(whole_units) / sizeof(whole_units[0]); i++) {
        uint64_t count = v / whole_units[i].ns;

        if (count > 0)
            n += snprintf(out + n, sizeof(out) - (size_t)n, "%" PRIu64 "%s", count,
                          whole_units[i].name);
        v %= whole_units[i].ns;
    }
    /* What is left of the minute takes the largest unit it reaches, with a fraction: "1.5s",
     * "250ms", "1.5us", "7ns", as Go writes durations under a second. */
    if (v >= (uint64_t)NS_PER_SEC)
        n += append_scaled(out + n, sizeof(out) - (size_t)n, v, NS_PER_SEC, "s");
    else if (v >= 1000 * 1000)
        n += append_scaled(out + n, sizeof(out) - (size_t)n, v, 1000 * 1000, "ms");
    else if (v >= 1000)
        n += append_scaled(out + n, sizeof(out) - (size_t)n, v, 1000, "us");
    else if (v > 0)
        n += append_scaled(out + n, sizeof(out) - (size_t)n, v, 1, "ns");
    rc = copy_out(buf, len, out, n);
out:
    return rc;
}

int nr_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const struct {
        const char *name;
        unsigned shift;
    } units[] = {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}};
    char out[48];
    int n = -1;

    /* TiB is the largest unit nr_parse_size() reads, so it is the largest written too. */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && n < 0; i++) {
        uint64_t mask = (UINT64_C(1) << units[i].shift) - 1;

        if (bytes >> units[i].shift == 0)
            continue;
        /* Tenths are rounded down, so 1023.99KiB reads 1023.9KiB and not 1024.0KiB. */
        n = snprintf(out, sizeof(out), "%" PRIu64 ".%" PRIu64 "%s", bytes >> units[i].shift,
                     ((bytes & mask) * 10) >> units[i].shift, units[i].name);
    }
    if (n < 0)
        n = snprintf(out, sizeof(out), "%" PRIu64 "B", bytes);
    return copy_out(buf, len, out, n);
}

int nr_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
