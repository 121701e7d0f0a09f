/* Plaintext records into synthetic TCP packets (pure: no I/O, no BPF), so that Wireshark's
 * "Follow TCP stream" shows each TLS connection's plaintext in order. Per connection (pid and
 * SSL*): a made-up three-way handshake when it is first seen, then one data segment per record
 * with the sequence and acknowledgment numbers of each direction (write: from the traced
 * process, read: to it). Packets are Ethernet + IPv6 + TCP: an IPv4 connection's real addresses
 * as v4-mapped IPv6 (::ffff:a.b.c.d) and its real ports, so they never share a Wireshark
 * conversation with the encrypted packets of the same connection; without a known socket, a
 * stable placeholder (fd6e:6574::/32 + pid + SSL*). */
#ifndef NR_CAPTURE_TLS_SYNTH_H
#define NR_CAPTURE_TLS_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/tls/record.h"
#include "util/buf.h"

/* Ethernet 14 + IPv6 40 + TCP 20; LINUX_SLL2's header is 20 (..._MAX) */
#define CAPTURE_TLS_SYNTH_HEADERS     74u
#define CAPTURE_TLS_SYNTH_HEADERS_MAX 80u
/* The most one record appends: a handshake (3 packets, a comment on the first) and one data
 * segment, as EPBs. */
#define CAPTURE_TLS_SYNTH_MAX_BYTES \
    (4u * (32u + CAPTURE_TLS_SYNTH_HEADERS_MAX) + 256u + CAPTURE_TLS_CHUNK)

struct capture_tls_synth;

/* A table of at most max_conns connections (the least recently used is forgotten to make room
 * for a new one). NULL when out of memory. */
struct capture_tls_synth *capture_tls_synth_new(size_t max_conns);

/* Writes LINUX_SLL2 headers instead of Ethernet ones from now on: what a capture recording "any"
 * records, so that every interface of its files has one link type. */
void capture_tls_synth_set_sll2(struct capture_tls_synth *s, bool sll2);
void capture_tls_synth_free(struct capture_tls_synth *s);

/* Appends the packets of one ring buffer record (`size` bytes, not trusted) to `out` as EPBs of
 * interface `ifid` stamped `ts_ns`. Returns the number of packets appended, NR_EPARSE for a
 * record whose lengths or direction do not hold (nothing appended), or -EOVERFLOW when `out`
 * has not CAPTURE_TLS_SYNTH_MAX_BYTES of room (nothing appended, no state changed). */
int capture_tls_synth_record(struct capture_tls_synth *s, const void *rec, size_t size,
                             int64_t ts_ns, uint32_t ifid, struct nr_buf *out);

/* Connections tracked now, and forgotten to make room since the start. */
size_t capture_tls_synth_conns(const struct capture_tls_synth *s);
uint64_t capture_tls_synth_evicted(const struct capture_tls_synth *s);

#endif
