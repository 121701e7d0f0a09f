/* Base64 decoding (lib/util/base64.h): bits gathered six at a time, a byte out per eight. */
#include "util/base64.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int nr_base64_decode(const char *s, size_t len, void *out, size_t cap, size_t *n)
{
    unsigned char *o = out;
    uint32_t acc = 0;
    size_t bits = 0, pad = 0, k = 0;
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];
        int v;

        if (ch != '\0' && strchr(" \t\n\v\f\r", ch) != NULL)
            continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        v = b64_value(ch);
        if (v < 0 || pad > 0) {
            rc = -EINVAL;
        } else {
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                if (k == cap)
                    rc = -EOVERFLOW;
                else
                    o[k++] = (unsigned char)(acc >> bits);
            }
        }
    }
    /* Leftover bits must be the zero padding of the last group; at most two '='. */
    if (rc == 0 && (bits >= 6 || pad > 2 || (acc & ((1u << bits) - 1)) != 0))
        rc = -EINVAL;
    if (rc == 0)
        *n = k;
    return rc;
}
