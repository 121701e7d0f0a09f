/* Error codes: functions return 0 or a negative errno, or one of the negative NR_E* codes below
 * for failures errno has no word for. nr_strerror() turns either into text. */
#ifndef NR_UTIL_ERROR_H
#define NR_UTIL_ERROR_H

#include <stddef.h>

enum nr_error {
    NR_EPROTO_H2 = -10001, /* the HTTP/2 layer (nghttp2) failed; see the log for its message */
    NR_ETLS = -10002,      /* a TLS (OpenSSL) operation failed */
    NR_EOVERSIZE = -10003, /* a length from a peer or a file is past its cap */
    NR_EPARSE = -10004,    /* malformed input */
};

/* Text for a negative errno or NR_E* code. Never NULL; the string is static or thread-local. */
const char *nr_strerror(int err);

/* Writes a one-line error message printf-style into err (cut to errlen, always terminated);
 * nothing when err is NULL or errlen 0. Returns `code`, so a parser can say
 * `return nr_errf(NR_EPARSE, err, errlen, "...", ...)`. */
int nr_errf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
