/* gRPC status names and the encodings of grpc-message and grpc-timeout (PROTOCOL-HTTP2.md). */
#include "rpc/status.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <string.h>

#include "util/parse.h"

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_code_name(int code)
{
    if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
        return "UNKNOWN_CODE";
    return code_names[code];
}

static bool stays_literal(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '%';
}

size_t rpc_percent_encode(const char *msg, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t full = 0, o = 0;
    bool room = len > 0;

    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        size_t need = stays_literal(*p) ? 1 : 3;
        full += need;
        if (!room || o + need >= len) {
            room = false;
            continue;
        }
        if (need == 1) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (len > 0)
        out[o] = '\0';
    return full;
}

size_t rpc_percent_decode(const char *in, size_t in_len, char *out, size_t len)
{
    size_t o = 0;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < in_len && o + 1 < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < in_len && (hi = nr_hex_digit(in[i + 1])) >= 0 &&
            (lo = nr_hex_digit(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return o;
}

int rpc_timeout_parse(const char *s, size_t len, int64_t *ns)
{
    int64_t v = 0, mult;

    if (len < 2 || len > 9)
        return -EINVAL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    switch (s[len - 1]) {
    case 'H': mult = 3600LL * 1000000000LL; break;
    case 'M': mult = 60LL * 1000000000LL; break;
    case 'S': mult = 1000000000LL; break;
    case 'm': mult = 1000000LL; break;
    case 'u': mult = 1000LL; break;
    case 'n': mult = 1; break;
    default: return -EINVAL;
    }
    *ns = v > INT64_MAX / mult ? INT64_MAX : v * mult;
    return 0;
}

void rpc_timeout_format(int64_t ns, char buf[static 10])
{
    static const struct {
        char unit;
        int64_t ns;
    } units[] = {
        {'n', 1},
        {'u', 1000},
        {'m', 1000000},
        {'S', 1000000000},
        {'M', 60LL * 1000000000},
        {'H', 3600LL * 1000000000},
    };
    int64_t v = 1;
    char unit = 'n';

    if (ns > 0) {
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            /* Round up so the peer never sees a shorter deadline than ours. */
            int64_t q = ns / units[i].ns + (ns % units[i].ns != 0);
            v = q;
            unit = units[i].unit;
            if (q <= 99999999)
                break;
        }
        if (v > 99999999)
            v = 99999999;
    }
    int n = 0;
    char digits[9];
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (int i = 0; i < n; i++)
        buf[i] = digits[n - 1 - i];
    buf[n] = unit;
    buf[n + 1] = '\0';
}

int rpc_code_from_http(int http_status)
{
    switch (http_status) {
    case 400: return RPC_INTERNAL;
    case 401: return RPC_UNAUTHENTICATED;
    case 403: return RPC_PERMISSION_DENIED;
    case 404: return RPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504: return RPC_UNAVAILABLE;
    default: return RPC_UNKNOWN;
    }
}

int rpc_code_from_h2_error(uint32_t h2_error)
{
    switch (h2_error) {
    case NGHTTP2_REFUSED_STREAM: return RPC_UNAVAILABLE;
    case NGHTTP2_CANCEL: return RPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM: return RPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY: return RPC_PERMISSION_DENIED;
    default: return RPC_INTERNAL;
    }
}
