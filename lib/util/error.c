/* nr_strerror: one function for errno values and netreel's own codes. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *nr_strerror(int err)
{
    static _Thread_local char buf[64];

    switch (err) {
    case NR_EPROTO_H2: return "HTTP/2 protocol error";
    case NR_ETLS: return "TLS error";
    case NR_EOVERSIZE: return "length past its limit";
    case NR_EPARSE: return "malformed input";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    snprintf(buf, sizeof(buf), "unknown error %d", err);
    return buf;
}

int nr_errf(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
