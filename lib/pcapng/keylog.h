/* NSS key log text (the TLS secrets a Decryption Secrets Block carries, secrets type "TLSK"):
 * strict validation of what a capture sends, and a walker over lines already validated. Pure,
 * no I/O: unit-tested and fuzzed (tests/fuzz/fuzz_pcapng_decode.c). */
#ifndef NR_PCAPNG_KEYLOG_H
#define NR_PCAPNG_KEYLOG_H

#include <stddef.h>
#include <stdint.h>

/* The most key log text one PacketBatch or one StoreChunk carries. */
#define PCAPNG_KEYLOG_MAX (1u << 20)
/* The longest valid line: the longest label, two spaces, 64 + 256 hex digits, '\n'. */
#define PCAPNG_KEYLOG_LINE_MAX 384u

/* Checks that [p, p + len) is nothing but whole lines `LABEL <64 hex client random> <secret>\n`:
 * LABEL one of CLIENT_RANDOM, CLIENT_EARLY_TRAFFIC_SECRET, CLIENT_HANDSHAKE_TRAFFIC_SECRET,
 * SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0,
 * EARLY_EXPORTER_SECRET, EXPORTER_SECRET; the secret 32..128 bytes as an even number of hex
 * digits (either case); single spaces; the last line ends with '\n'. len 0 is valid (no lines).
 * Returns 0 and the number of lines in *lines (may be NULL), or NR_EPARSE with one line in err
 * naming the first bad line ("line 3: unknown label \"FOO\""), or NR_EOVERSIZE when len is over
 * PCAPNG_KEYLOG_MAX. */
int pcapng_keylog_validate(const uint8_t *p, size_t len, size_t *lines, char *err, size_t errlen);

/* The next line of validated text at *off: 1 with the line (its '\n' included) and *off moved
 * past it, 0 at the end. */
int pcapng_keylog_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **line,
                       size_t *line_len);

#endif
