/* The probe's secrets records as NSS key log lines (the SSLKEYLOGFILE format Wireshark reads):
 * `LABEL <client random hex> <secret hex>\n`, lowercase hex. TLS 1.2: CLIENT_RANDOM with the
 * master secret; TLS 1.3: the handshake traffic secrets (derived here with HKDF-Expand-Label from
 * the handshake secret and transcript hash OpenSSL keeps), the application traffic secrets and
 * the exporter secret. Pure: no I/O. */
#ifndef NR_CAPTURE_TLS_KEYLOG_H
#define NR_CAPTURE_TLS_KEYLOG_H

#include <stddef.h>
#include <stdint.h>

#include "capture/tls/record.h"

#define CAPTURE_TLS_KEYLOG_LINE_MAX 200 /* bytes of one line, its newline included */
/* Bytes the lines of one record take at most (five lines). */
#define CAPTURE_TLS_KEYLOG_REC_MAX (5 * CAPTURE_TLS_KEYLOG_LINE_MAX)

/* HKDF-Expand-Label(secret, label, context, len) of RFC 8446 §7.1 with the digest `md_name`
 * ("SHA256", "SHA384"); label without the "tls13 " prefix. 0, NR_EPARSE (bad sizes, or OpenSSL
 * refused), or -ENOMEM when OpenSSL cannot make the HKDF. */
int capture_tls_keylog_expand_label(const char *md_name, const uint8_t *secret, size_t secret_len,
                                    const char *label, const uint8_t *context, size_t context_len,
                                    uint8_t *out, size_t len);

/* The digest of a TLS 1.3 cipher suite (id 0x0300130x as OpenSSL's SSL_CIPHER_get_id gives
 * it): "SHA256" or "SHA384", NULL for one it does not know. */
const char *capture_tls_keylog_tls13_md(uint32_t cipher_id, size_t *hash_len);

/* Writes the key log lines of one secrets record (`size` bytes as received: not trusted) to
 * out, which has room for `outlen` bytes (CAPTURE_TLS_KEYLOG_REC_MAX is always enough). The
 * TLS 1.3 handshake lines are left out when the record's handshake secret is all zero (the
 * calibration did not find it). Returns the bytes written, or NR_EPARSE when the record is not
 * a usable one: short, another type, a version other than TLS 1.2/1.3, a TLS 1.2 master key not
 * 48 bytes, an unknown TLS 1.3 cipher, an all-zero client random or secret (what wrong offsets
 * give); -ENOSPC when out is too small. */
int capture_tls_keylog_lines(const void *rec, size_t size, char *out, size_t outlen);

/* Writes the key log line of one key derivation record (struct capture_tls_kdf_secret, `size`
 * bytes as received: not trusted) to out. Returns its bytes, NR_EPARSE when the record is not a
 * usable one (short, another type, an unknown label, a length other than 48 for CLIENT_RANDOM
 * or than 32/48 for a TLS 1.3 secret, an all-zero client random or secret), -ENOSPC when out is
 * too small (CAPTURE_TLS_KEYLOG_LINE_MAX is always enough). */
int capture_tls_keylog_kdf_line(const void *rec, size_t size, char *out, size_t outlen);

/* The lines (client random and label) that went out lately: both traced ends of one connection,
 * the calibrated record of one end and the key derivation secrets of the other, a TLS 1.2
 * session's key block made again, give the same lines: they go out once. Embedded; all zero, it
 * remembers none. */
#define CAPTURE_TLS_KEYLOG_RECENT 4096
struct capture_tls_keylog_recent {
    uint8_t keys[CAPTURE_TLS_KEYLOG_RECENT][33]; /* client random + enum capture_tls_kdf_label */
    unsigned next;
};

/* Whether the line of this client random and label (enum capture_tls_kdf_label) was seen
 * lately; if not, it is now. */
int capture_tls_keylog_recent_seen(struct capture_tls_keylog_recent *r, const uint8_t cr[32],
                                   uint8_t label);

/* Drops from `lines` (len bytes of key log lines, as this module writes them) those seen lately
 * and marks the others seen; returns the bytes left (moved to the front). A line not of a known
 * label with a hex client random, or without its newline, is dropped. */
size_t capture_tls_keylog_recent_fresh(struct capture_tls_keylog_recent *r, char *lines,
                                       size_t len);

#endif
