/* logfmt logging to stderr: `ts=... level=info msg="..." key=value ...`, one line per event. */
#ifndef NR_UTIL_LOG_H
#define NR_UTIL_LOG_H

#include <stddef.h>

enum nr_log_level { NR_LOG_DEBUG = 0, NR_LOG_INFO, NR_LOG_WARN, NR_LOG_ERROR };

/* Events below `level` are dropped. The default is NR_LOG_INFO. */
void nr_log_set_level(enum nr_log_level level);
enum nr_log_level nr_log_get_level(void);

/* "debug", "info", "warn" (or "warning"), "error" → 0 and *level; anything else, upper case
 * included, → -EINVAL and *level untouched. */
int nr_log_parse_level(const char *s, enum nr_log_level *level);

/* Writes one line: ts (UTC, milliseconds), level, msg (quoted as logfmt needs), then the fields
 * that `fields_fmt` formats printf-style ("addr=%s n=%d"), or none when it is NULL. Values that
 * may hold spaces, quotes or '=' go through nr_log_quote(). The line is built on the stack and
 * written with one write(2) to fd 2, so threads' lines do not interleave; it is capped at 4096
 * bytes (PIPE_BUF), a longer one cut and marked with "...". Write errors are ignored and errno
 * is left as it was, so a caller may log and then return -errno. */
void nr_log(enum nr_log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes `s` for a logfmt value into buf and returns buf: unchanged when it needs no quotes,
 * else "..." with \" \\ \n \r \t escaped and other control bytes as \u00XX. Empty strings and
 * values with spaces, control bytes, '"' or '=' need quotes. Always NUL-terminated when len > 0;
 * a value that does not fit is cut (never inside an escape or a UTF-8 character) and ends in
 * "...", inside the closing quote; with no room even for that, buf is "". NULL reads as "". */
const char *nr_log_quote(char *buf, size_t len, const char *s);

#define NR_DEBUG(msg, ...) nr_log(NR_LOG_DEBUG, msg, __VA_ARGS__)
#define NR_INFO(msg, ...)  nr_log(NR_LOG_INFO, msg, __VA_ARGS__)
#define NR_WARN(msg, ...)  nr_log(NR_LOG_WARN, msg, __VA_ARGS__)
#define NR_ERROR(msg, ...) nr_log(NR_LOG_ERROR, msg, __VA_ARGS__)

#endif
