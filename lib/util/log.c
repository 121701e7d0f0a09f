/* logfmt logging to stderr. Each event is built in a buffer on the caller's stack and written
 * with one write(2), so lines from different threads do not interleave and nothing is shared
 * but the level threshold. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"

/* PIPE_BUF on Linux: a line no longer than this reaches a pipe in one piece even when several
 * processes share it. Longer lines are cut and marked with TRUNCATED. */
#define LOG_LINE_MAX  4096
#define TRUNCATED     "..."
#define TRUNCATED_LEN (sizeof(TRUNCATED) - 1)

static _Atomic int log_threshold = NR_LOG_INFO;

static const char *const level_names[] = {
    [NR_LOG_DEBUG] = "debug",
    [NR_LOG_INFO] = "info",
    [NR_LOG_WARN] = "warn",
    [NR_LOG_ERROR] = "error",
};

void nr_log_set_level(enum nr_log_level level)
{
    atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
}

enum nr_log_level nr_log_get_level(void)
{
    return (enum nr_log_level)atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

int nr_log_parse_level(const char *s, enum nr_log_level *level)
{
    int rc = -EINVAL;

    if (s == NULL)
        goto out;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *level = (enum nr_log_level)i;
            rc = 0;
            goto out;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *level = NR_LOG_WARN;
        rc = 0;
    }
out:
    return rc;
}

/* As go-logfmt decides: empty values, and values with spaces, control bytes, '"' or '=', are
 * quoted. A backslash alone does not need quotes. */
static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= ' ' || c == '"' || c == '=' || c == 0x7f)
            return true;
    }
    return false;
}

/* Writes byte c as it appears inside a quoted value into esc and returns its length. Control
 * bytes without a short escape become \u00XX, which logfmt and JSON readers both decode. */
static size_t escape(unsigned char c, char esc[6])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    switch (c) {
    case '"':
    case '\\':
        esc[n++] = '\\';
        esc[n++] = (char)c;
        break;
    case '\n':
        esc[n++] = '\\';
        esc[n++] = 'n';
        break;
    case '\r':
        esc[n++] = '\\';
        esc[n++] = 'r';
        break;
    case '\t':
        esc[n++] = '\\';
        esc[n++] = 't';
        break;
    default:
        if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            n = 4;
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 0xf];
        } else {
            esc[n++] = (char)c;
        }
        break;
    }
    return n;
}

static size_t value_len(const char *s, bool quoted)
{
    char esc[6];
    size_t n = 0;

    if (!quoted)
        return strlen(s);
    for (; *s != '\0'; s++)
        n += escape((unsigned char)*s, esc);
    return n + 2;
}

/* Writes s as a logfmt value into dst, at most cap bytes and no NUL, and returns the bytes
 * written. A value that does not fit is cut before an escape or a UTF-8 sequence would be split
 * and ends in TRUNCATED, inside the closing quote, so the line still parses. */
static size_t value_write(char *dst, size_t cap, const char *s)
{
    bool quoted = needs_quotes(s);
    size_t quote = quoted ? 1 : 0;
    bool cut = value_len(s, quoted) > cap;
    size_t budget;
    size_t n = 0;
    size_t boundary;

    if (cut && cap < 2 * quote + TRUNCATED_LEN)
        return 0;
    budget = cut ? cap - quote - TRUNCATED_LEN : cap - quote;
    if (quoted)
        dst[n++] = '"';
    boundary = n;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        size_t len;

        if ((c & 0xc0) != 0x80)
            boundary = n;
        len = quoted ? escape(c, esc) : 1;
        if (n + len > budget) {
            if ((c & 0xc0) == 0x80)
                n = boundary;
            break;
        }
        if (quoted)
            memcpy(dst + n, esc, len);
        else
            dst[n] = (char)c;
        n += len;
    }
    if (cut) {
        memcpy(dst + n, TRUNCATED, TRUNCATED_LEN);
        n += TRUNCATED_LEN;
    }
    if (quoted)
        dst[n++] = '"';
    return n;
}

const char *nr_log_quote(char *buf, size_t len, const char *s)
{
    if (len > 0)
        buf[value_write(buf, len - 1, s != NULL ? s : "")] = '\0';
    return buf;
}

/* Writes all of buf to stderr. A short write continues where it stopped; a failure other than
 * EINTR drops the line, as there is nowhere left to report it. */
static void write_stderr(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        buf += w;
        len -= (size_t)w;
    }
}

void nr_log(enum nr_log_level level, const char *msg, const char *fields_fmt, ...)
{
    char line[LOG_LINE_MAX];
    /* The last byte is kept for the '\n'. */
    const size_t cap = sizeof(line) - 1;
    int saved_errno = errno;
    const char *name = "unknown";
    char ts[40];
    struct timespec now;
    int64_t now_ns = 0;
    size_t n;
    int w;

    if ((int)level < atomic_load_explicit(&log_threshold, memory_order_relaxed))
        goto out;
    if ((int)level >= NR_LOG_DEBUG && (int)level <= NR_LOG_ERROR)
        name = level_names[level];
    if (clock_gettime(CLOCK_REALTIME, &now) == 0)
        now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    if (nr_format_time(now_ns, 3, ts, sizeof(ts)) < 0)
        ts[0] = '\0';

    w = snprintf(line, cap, "ts=%s level=%s msg=", ts, name);
    n = w > 0 ? (size_t)w : 0;
    n += value_write(line + n, cap - n, msg != NULL ? msg : "");
    if (fields_fmt != NULL && fields_fmt[0] != '\0' && n + 1 < cap) {
        va_list ap;

        line[n++] = ' ';
        va_start(ap, fields_fmt);
        /* Writes its NUL at most at line[cap], the byte kept for the '\n'. */
        w = vsnprintf(line + n, cap - n + 1, fields_fmt, ap);
        va_end(ap);
        if (w <= 0) {
            n--; /* nothing to show, or an encoding error: no trailing space */
        } else if ((size_t)w > cap - n) {
            n = cap;
            memcpy(line + n - TRUNCATED_LEN, TRUNCATED, TRUNCATED_LEN);
        } else {
            n += (size_t)w;
        }
    }
    line[n++] = '\n';
    write_stderr(line, n);
out:
    /* Callers log an error and then return -errno: leave it as it was. */
    errno = saved_errno;
}
