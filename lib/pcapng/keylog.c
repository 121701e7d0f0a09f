/* NSS key log validation (see keylog.h): a capture's word is checked before the store writes it
 * into a segment, where Wireshark will later parse it. */
#include "pcapng/keylog.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

static const char *const labels[] = {
    "CLIENT_RANDOM",
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
};

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The length of the run of hex digits at p (at most n bytes looked at). */
static size_t hex_run(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n && is_hex(p[i]))
        i++;
    return i;
}

static bool known_label(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
        if (strlen(labels[i]) == n && memcmp(labels[i], p, n) == 0)
            return true;
    return false;
}

/* One line [p, p + n) without its '\n'. */
static int line_check(const uint8_t *p, size_t n, size_t lineno, char *err, size_t errlen)
{
    const uint8_t *sp = memchr(p, ' ', n);
    size_t label, hex;

    if (!sp) {
        say(err, errlen, "key log line %zu: not LABEL CLIENT_RANDOM SECRET", lineno);
        return NR_EPARSE;
    }
    label = (size_t)(sp - p);
    if (!known_label(p, label)) {
        char name[40];
        size_t k = 0;
        for (size_t i = 0; i < label && k < sizeof(name) - 1; i++)
            name[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? (char)p[i] : '?';
        name[k] = '\0';
        say(err, errlen, "key log line %zu: unknown label \"%s\"", lineno, name);
        return NR_EPARSE;
    }
    p += label + 1;
    n -= label + 1;
    hex = hex_run(p, n);
    if (hex != 64 || n == 64 || p[64] != ' ') {
        say(err, errlen, "key log line %zu: the client random must be 64 hex digits", lineno);
        return NR_EPARSE;
    }
    p += 65;
    n -= 65;
    hex = hex_run(p, n);
    if (hex != n || n < 64 || n > 256 || n % 2 != 0) {
        say(err, errlen,
            "key log line %zu: the secret must be 32..128 bytes as an even number of hex digits",
            lineno);
        return NR_EPARSE;
    }
    return 0;
}

int pcapng_keylog_validate(const uint8_t *p, size_t len, size_t *lines, char *err, size_t errlen)
{
    size_t off = 0, n = 0;

    if (len > PCAPNG_KEYLOG_MAX) {
        say(err, errlen, "key log of %zu bytes is over %u", len, PCAPNG_KEYLOG_MAX);
        return NR_EOVERSIZE;
    }
    while (off < len) {
        const uint8_t *nl = memchr(p + off, '\n', len - off);
        if (!nl) {
            say(err, errlen, "key log line %zu does not end with a newline", n + 1);
            return NR_EPARSE;
        }
        if (line_check(p + off, (size_t)(nl - (p + off)), n + 1, err, errlen) != 0)
            return NR_EPARSE;
        off = (size_t)(nl - p) + 1;
        n++;
    }
    if (lines)
        *lines = n;
    return 0;
}

int pcapng_keylog_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **line,
                       size_t *line_len)
{
    const uint8_t *nl;

    if (*off >= len)
        return 0;
    nl = memchr(p + *off, '\n', len - *off);
    *line = p + *off;
    *line_len = nl ? (size_t)(nl - *line) + 1 : len - *off;
    *off += *line_len;
    return 1;
}
