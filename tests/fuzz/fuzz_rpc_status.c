/* libFuzzer target for the gRPC header values a peer sends (lib/rpc/status.c): grpc-message's
 * percent-decoding (any bytes, any output room: always NUL-terminated inside the buffer, a
 * prefix of the roomy result, and the inverse of the encoding) and grpc-timeout (1-8 digits and
 * a unit, or refused; formatting any timeout gives text that parses back to no less time). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "fuzz.h"

static const int64_t unit_ns[] = {
    1, 1000, 1000000, INT64_C(1000000000), INT64_C(60000000000), INT64_C(3600000000000)};

static void check_decode(const char *in, size_t len, size_t room)
{
    char *full = malloc(len + 1);
    char *small = malloc(room ? room : 1);
    size_t n, m;

    CHECK(full && small);
    n = rpc_percent_decode(in, len, full, len + 1);
    CHECK(n <= len && full[n] == '\0');
    m = rpc_percent_decode(in, len, small, room);
    if (room == 0) {
        CHECK(m == 0);
    } else {
        CHECK(m < room && small[m] == '\0');
        CHECK(m <= n && memcmp(small, full, m) == 0);
    }
    free(full);
    free(small);
}

/* in as a C string: encoded, it holds only what stays literal and escapes, decodes back
 * whole, and a cut encoding is a prefix of the whole one ending on a whole escape. */
static void check_encode(const char *in, size_t room)
{
    size_t len = strlen(in);
    char *enc = malloc(3 * len + 1);
    char *dec = malloc(len + 1);
    char *cut = malloc(room ? room : 1);
    size_t n, k;

    CHECK(enc && dec && cut);
    n = rpc_percent_encode(in, enc, 3 * len + 1);
    CHECK(n == strlen(enc) && n >= len && n <= 3 * len);
    for (size_t i = 0; i < n; i++)
        CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
    CHECK(rpc_percent_decode(enc, n, dec, len + 1) == len);
    CHECK(memcmp(dec, in, len) == 0);

    CHECK(rpc_percent_encode(in, cut, room) == n);
    if (room > 0) {
        k = strlen(cut);
        CHECK(k < room && memcmp(cut, enc, k) == 0);
        /* Cut on a whole escape: no '%' in the last two bytes. */
        CHECK(k == n || ((k < 1 || cut[k - 1] != '%') && (k < 2 || cut[k - 2] != '%')));
    }
    free(enc);
    free(dec);
    free(cut);
}

static void check_timeout_text(const char *s, size_t len)
{
    int64_t ns = -1;
    bool digits = len >= 2 && len <= 9;
    const char *unit;

    for (size_t i = 0; digits && i + 1 < len; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    unit = len > 0 ? memchr("HMSmun", s[len - 1], 6) : NULL;
    if (rpc_timeout_parse(s, len, &ns) != 0) {
        CHECK(!digits || unit == NULL);
        return;
    }
    CHECK(digits && unit);
    CHECK(ns >= 0);
}

static void check_timeout_value(int64_t ns)
{
    char buf[10];
    static const char units[] = "numSMH";
    int64_t back = -1;
    const char *unit;
    size_t n;

    rpc_timeout_format(ns, buf);
    n = strlen(buf);
    CHECK(n >= 2 && n <= 9);
    CHECK(rpc_timeout_parse(buf, n, &back) == 0);
    if (ns <= 0) {
        CHECK(back == 1);
        return;
    }
    /* Rounded up to the unit written: never shorter, less than one unit longer. */
    unit = strchr(units, buf[n - 1]);
    CHECK(unit != NULL && buf[n - 1] != '\0');
    CHECK(back >= ns && back - ns < unit_ns[unit - units]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    size_t room;
    int64_t ns;

    if (size < 1)
        return 0;
    room = data[0] % 40;
    data++;
    size--;
    /* An allocation of exactly size bytes: header values are not NUL-terminated. */
    s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);

    check_decode(s, size, room);
    check_timeout_text(s, size);
    {
        char *z = malloc(size + 1);
        if (z) {
            memcpy(z, data, size);
            z[size] = '\0';
            check_encode(z, room);
            free(z);
        }
    }
    if (size >= sizeof(ns)) {
        memcpy(&ns, data, sizeof(ns));
        check_timeout_value(ns);
    }
    CHECK(rpc_code_name(
              size >= 4 ? (int)(data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24)
                        : (int)size) != NULL);
    free(s);
    return 0;
}
