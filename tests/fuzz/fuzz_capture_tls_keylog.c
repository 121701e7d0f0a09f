/* libFuzzer target for services/capture/tls/keylog.c: a secrets record is bytes the kernel hands
 * over, read at offsets that may be wrong, or (key derivation records) with lengths a traced
 * process chose. The input is XORed over a valid TLS 1.2 or 1.3 secrets record, or a valid key
 * derivation record (its first byte picks which; a second byte of 0xff cuts the record short) so
 * that most inputs reach the line making. Every record is refused or becomes well-formed NSS key
 * log lines (label, 64 lowercase hex digits, an even number of them, each line at most 200 bytes)
 * that never pass the room given; the dedupe of recent lines keeps whole lines and lets none
 * out twice. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/tls/keylog.h"
#include "fuzz.h"
#include "util/error.h"

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_lines(const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n), *sp1, *sp2;
        size_t len;
        CHECK(nl);
        len = (size_t)(nl - p) + 1;
        CHECK(len <= CAPTURE_TLS_KEYLOG_LINE_MAX);
        sp1 = memchr(p, ' ', len);
        CHECK(sp1 && sp1 > p);
        for (const char *c = p; c < sp1; c++)
            CHECK((*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9'));
        sp2 = sp1 + 65;
        CHECK(sp2 < nl && *sp2 == ' ');
        for (const char *c = sp1 + 1; c < sp2; c++)
            CHECK(is_hex(*c));
        CHECK((nl - sp2 - 1) >= 64 && (nl - sp2 - 1) % 2 == 0);
        for (const char *c = sp2 + 1; c < nl; c++)
            CHECK(is_hex(*c));
        n -= len;
        p += len;
    }
}

static struct capture_tls_keylog_recent recent; /* all zero: none seen */

/* A key derivation record (first byte & 4): the same checks, then through the dedupe twice. */
static int kdf_record(const uint8_t *data, size_t size)
{
    struct capture_tls_kdf_secret k;
    uint8_t *raw = (uint8_t *)&k, *rec;
    size_t rec_size = sizeof(k), room, kept;
    char *out;
    int n;

    memset(&k, 0, sizeof(k));
    k.type = CAPTURE_TLS_REC_KDF;
    k.label = 1 + data[0] % CAPTURE_TLS_KDF_LABEL_MAX;
    k.secret_len = k.label == CAPTURE_TLS_KDF_CLIENT_RANDOM ? 48 : 32;
    memset(k.client_random, 0x11, sizeof(k.client_random));
    memset(k.secret, 0x22, sizeof(k.secret));
    for (size_t i = 2; i < size; i++)
        raw[(i - 2) % sizeof(k)] ^= data[i];
    if (size > 2 && data[1] == 0xff)
        rec_size = data[2] % sizeof(k);
    room = size > 1 && data[1] < 0x40 ? data[1] : CAPTURE_TLS_KEYLOG_LINE_MAX;
    rec = malloc(rec_size ? rec_size : 1);
    out = malloc(room ? room : 1);
    CHECK(rec && out);
    memcpy(rec, raw, rec_size);
    n = capture_tls_keylog_kdf_line(rec, rec_size, out, room);
    CHECK(n == NR_EPARSE || n == -ENOSPC || (n > 0 && (size_t)n <= room));
    if (room == CAPTURE_TLS_KEYLOG_LINE_MAX)
        CHECK(n != -ENOSPC);
    if (n > 0) {
        check_lines(out, (size_t)n);
        kept = capture_tls_keylog_recent_fresh(&recent, out, (size_t)n);
        CHECK(kept == 0 || kept == (size_t)n);
        CHECK(capture_tls_keylog_recent_fresh(&recent, out, kept) == 0);
    }
    free(rec);
    free(out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct capture_tls_secrets s;
    uint8_t *raw = (uint8_t *)&s, *rec;
    size_t rec_size = sizeof(s), room;
    char *out;
    int n;

    if (size && data[0] & 4)
        return kdf_record(data, size);
    memset(&s, 0, sizeof(s));
    s.type = CAPTURE_TLS_REC_SECRETS;
    memset(s.client_random, 0x11, sizeof(s.client_random));
    if (size && data[0] & 1) {
        s.version = 0x0304;
        s.cipher_id = data[0] & 2 ? 0x03001302 : 0x03001301;
        memset(s.handshake_secret, 0x22, sizeof(s.handshake_secret));
        memset(s.handshake_traffic_hash, 0x33, sizeof(s.handshake_traffic_hash));
        memset(s.client_app_traffic_secret, 0x44, sizeof(s.client_app_traffic_secret));
        memset(s.server_app_traffic_secret, 0x55, sizeof(s.server_app_traffic_secret));
        memset(s.exporter_master_secret, 0x66, sizeof(s.exporter_master_secret));
    } else {
        s.version = 0x0303;
        s.master_key_len = 48;
        memset(s.master_key, 0x77, sizeof(s.master_key));
    }
    for (size_t i = 2; i < size; i++)
        raw[(i - 2) % sizeof(s)] ^= data[i];
    if (size > 2 && data[1] == 0xff)
        rec_size = data[2] % sizeof(s);
    /* Room: all of it, or (second byte below 0x40) as little as that many bytes. */
    room = size > 1 && data[1] < 0x40 ? data[1] : CAPTURE_TLS_KEYLOG_REC_MAX;
    rec = malloc(rec_size ? rec_size : 1); /* their own allocations: ASan sees reads and */
    out = malloc(room ? room : 1);         /* writes past the end */
    CHECK(rec && out);
    memcpy(rec, raw, rec_size);
    n = capture_tls_keylog_lines(rec, rec_size, out, room);
    CHECK(n == NR_EPARSE || n == -ENOSPC || (n > 0 && (size_t)n <= room));
    if (room == CAPTURE_TLS_KEYLOG_REC_MAX)
        CHECK(n != -ENOSPC);
    if (n > 0) {
        size_t kept;
        check_lines(out, (size_t)n);
        kept = capture_tls_keylog_recent_fresh(&recent, out, (size_t)n);
        CHECK(kept <= (size_t)n);
        check_lines(out, kept);
    }
    free(rec);
    free(out);
    return 0;
}
