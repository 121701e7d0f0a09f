/* Secrets records -> NSS key log lines (see keylog.h). */
#include "capture/tls/keylog.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

#define TLS12 0x0303
#define TLS13 0x0304

int capture_tls_keylog_expand_label(const char *md_name, const uint8_t *secret, size_t secret_len,
                                    const char *label, const uint8_t *context, size_t context_len,
                                    uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 255 + 1 + 255];
    size_t label_len = strlen(label), n = 0;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = NR_EPARSE;
    OSSL_PARAM params[5];

    if (6 + label_len > 255 || context_len > 255 || len > 0xffff || secret_len == 0)
        return NR_EPARSE;
    /* struct HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + Label;
     *                    opaque context<0..255>; } */
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = (uint8_t)context_len;
    memcpy(info + n, context, context_len);
    n += context_len;

    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!kctx) {
        rc = -ENOMEM;
        goto out;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name, 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
    params[4] = OSSL_PARAM_construct_end();
    rc = EVP_KDF_derive(kctx, out, len, params) == 1 ? 0 : NR_EPARSE;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

const char *capture_tls_keylog_tls13_md(uint32_t cipher_id, size_t *hash_len)
{
    switch (cipher_id) {
    case 0x03001301: /* TLS_AES_128_GCM_SHA256 */
    case 0x03001303: /* TLS_CHACHA20_POLY1305_SHA256 */
    case 0x03001304: /* TLS_AES_128_CCM_SHA256 */
    case 0x03001305: /* TLS_AES_128_CCM_8_SHA256 */ *hash_len = 32; return "SHA256";
    case 0x03001302: /* TLS_AES_256_GCM_SHA384 */ *hash_len = 48; return "SHA384";
    default: return NULL;
    }
}

/* By enum capture_tls_kdf_label. */
static const char *const kdf_labels[CAPTURE_TLS_KDF_LABEL_MAX + 1] = {
    [CAPTURE_TLS_KDF_CLIENT_RANDOM] = "CLIENT_RANDOM",
    [CAPTURE_TLS_KDF_CLIENT_EARLY] = "CLIENT_EARLY_TRAFFIC_SECRET",
    [CAPTURE_TLS_KDF_CLIENT_HANDSHAKE] = "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    [CAPTURE_TLS_KDF_SERVER_HANDSHAKE] = "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    [CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0] = "CLIENT_TRAFFIC_SECRET_0",
    [CAPTURE_TLS_KDF_SERVER_TRAFFIC_0] = "SERVER_TRAFFIC_SECRET_0",
    [CAPTURE_TLS_KDF_EXPORTER] = "EXPORTER_SECRET",
};

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void hex(char *dst, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[p[i] >> 4];
        dst[2 * i + 1] = digits[p[i] & 15];
    }
}

/* Appends one line; -ENOSPC when it does not fit. */
static int line(char *out, size_t outlen, size_t *pos, const char *label, const uint8_t *cr,
                const uint8_t *secret, size_t secret_len)
{
    size_t label_len = strlen(label), need = label_len + 1 + 64 + 1 + 2 * secret_len + 1;
    char *p = out + *pos;

    if (need > CAPTURE_TLS_KEYLOG_LINE_MAX || outlen - *pos < need)
        return -ENOSPC;
    memcpy(p, label, label_len);
    p += label_len;
    *p++ = ' ';
    hex(p, cr, 32);
    p += 64;
    *p++ = ' ';
    hex(p, secret, secret_len);
    p += 2 * secret_len;
    *p = '\n';
    *pos += need;
    return 0;
}

int capture_tls_keylog_lines(const void *rec, size_t size, char *out, size_t outlen)
{
    struct capture_tls_secrets s;
    const char *md;
    size_t hl = 0, pos = 0;
    uint8_t chts[CAPTURE_TLS_SECRET_MAX], shts[CAPTURE_TLS_SECRET_MAX];
    int rc;

    if (size < sizeof(s))
        return NR_EPARSE;
    memcpy(&s, rec, sizeof(s));
    if (s.type != CAPTURE_TLS_REC_SECRETS || all_zero(s.client_random, 32))
        return NR_EPARSE;
    if (s.version == TLS12) {
        if (s.master_key_len != 48 || all_zero(s.master_key, 48))
            return NR_EPARSE;
        rc = line(out, outlen, &pos, "CLIENT_RANDOM", s.client_random, s.master_key, 48);
        return rc ? rc : (int)pos;
    }
    if (s.version != TLS13)
        return NR_EPARSE;
    md = capture_tls_keylog_tls13_md(s.cipher_id, &hl);
    if (!md || all_zero(s.client_app_traffic_secret, hl) ||
        all_zero(s.server_app_traffic_secret, hl))
        return NR_EPARSE;
    if (!all_zero(s.handshake_secret, hl)) {
        rc = capture_tls_keylog_expand_label(md, s.handshake_secret, hl, "c hs traffic",
                                             s.handshake_traffic_hash, hl, chts, hl);
        if (rc == 0)
            rc = capture_tls_keylog_expand_label(md, s.handshake_secret, hl, "s hs traffic",
                                                 s.handshake_traffic_hash, hl, shts, hl);
        if (rc == 0)
            rc = line(out, outlen, &pos, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", s.client_random, chts,
                      hl);
        if (rc == 0)
            rc = line(out, outlen, &pos, "SERVER_HANDSHAKE_TRAFFIC_SECRET", s.client_random, shts,
                      hl);
        if (rc)
            return rc;
    }
    rc = line(out, outlen, &pos, "CLIENT_TRAFFIC_SECRET_0", s.client_random,
              s.client_app_traffic_secret, hl);
    if (rc == 0)
        rc = line(out, outlen, &pos, "SERVER_TRAFFIC_SECRET_0", s.client_random,
                  s.server_app_traffic_secret, hl);
    if (rc == 0 && !all_zero(s.exporter_master_secret, hl))
        rc = line(out, outlen, &pos, "EXPORTER_SECRET", s.client_random, s.exporter_master_secret,
                  hl);
    return rc ? rc : (int)pos;
}

int capture_tls_keylog_kdf_line(const void *rec, size_t size, char *out, size_t outlen)
{
    struct capture_tls_kdf_secret k;
    size_t pos = 0;
    int rc;

    if (size < sizeof(k))
        return NR_EPARSE;
    memcpy(&k, rec, sizeof(k));
    if (k.type != CAPTURE_TLS_REC_KDF || k.label == 0 || k.label > CAPTURE_TLS_KDF_LABEL_MAX ||
        all_zero(k.client_random, 32))
        return NR_EPARSE;
    /* TLS 1.2: the 48-byte master secret; TLS 1.3: a SHA-256 or SHA-384 hash long. */
    if (k.label == CAPTURE_TLS_KDF_CLIENT_RANDOM ? k.secret_len != 48
                                                 : k.secret_len != 32 && k.secret_len != 48)
        return NR_EPARSE;
    if (all_zero(k.secret, k.secret_len))
        return NR_EPARSE;
    rc = line(out, outlen, &pos, kdf_labels[k.label], k.client_random, k.secret, k.secret_len);
    return rc ? rc : (int)pos;
}

int capture_tls_keylog_recent_seen(struct capture_tls_keylog_recent *r, const uint8_t cr[32],
                                   uint8_t label)
{
    uint8_t key[33];

    memcpy(key, cr, 32);
    key[32] = label;
    for (unsigned i = 0; i < CAPTURE_TLS_KEYLOG_RECENT; i++)
        if (memcmp(r->keys[i], key, sizeof(key)) == 0)
            return 1;
    memcpy(r->keys[r->next], key, sizeof(key));
    r->next = (r->next + 1) % CAPTURE_TLS_KEYLOG_RECENT;
    return 0;
}

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t capture_tls_keylog_recent_fresh(struct capture_tls_keylog_recent *r, char *lines, size_t len)
{
    size_t in = 0, kept = 0;

    while (in < len) {
        const char *nl = memchr(lines + in, '\n', len - in), *sp;
        size_t n = nl ? (size_t)(nl - (lines + in)) + 1 : len - in;
        const char *l = lines + in;
        uint8_t cr[32], label = 0;
        int ok = nl != NULL;

        sp = ok ? memchr(l, ' ', n) : NULL;
        for (uint8_t i = 1; sp && i <= CAPTURE_TLS_KDF_LABEL_MAX; i++)
            if (strlen(kdf_labels[i]) == (size_t)(sp - l) && memcmp(l, kdf_labels[i], sp - l) == 0)
                label = i;
        ok = label && n >= (size_t)(sp - l) + 1 + 64 + 1;
        for (int i = 0; ok && i < 32; i++) {
            int hi = unhex(sp[1 + 2 * i]), lo = unhex(sp[2 + 2 * i]);
            ok = hi >= 0 && lo >= 0;
            if (ok)
                cr[i] = (uint8_t)(hi << 4 | lo);
        }
        if (ok && !capture_tls_keylog_recent_seen(r, cr, label)) {
            memmove(lines + kept, l, n);
            kept += n;
        }
        in += n;
    }
    return kept;
}
