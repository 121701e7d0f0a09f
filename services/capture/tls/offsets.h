/* Where the libssl the capture itself links keeps a connection's TLS secrets, found at start by
 * experiment rather than from a table of OpenSSL versions (distribution builds differ from
 * upstream's layouts: Debian's 3.0.19 has ssl_st.session at 0x918, not 0x938): TLS 1.2 and 1.3
 * handshakes in this process over a socketpair, with a key log callback, then a search of the
 * opaque structs for the values OpenSSL reported. The eBPF program reads secrets at these
 * offsets only in library files of the same build (same ELF build-id). */
#ifndef NR_CAPTURE_TLS_OFFSETS_H
#define NR_CAPTURE_TLS_OFFSETS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capture/tls/record.h"

/* Finds the offsets in the linked libssl. 0, or a negative code with the reason in err (a
 * handshake failed, a field was not found or not at the same place in both connections). A
 * TLS 1.3 handshake secret / transcript hash pair that cannot be found leaves both offsets 0
 * (the handshake traffic secrets then cannot be derived; the rest still works). */
int capture_tls_offsets_calibrate(struct capture_tls_offsets *o, char *err, size_t errlen);

/* Proves `o` on fresh TLS 1.2 and TLS 1.3 connections: reads the secrets at the offsets as the
 * eBPF program does, turns them into key log lines (keylog.h) and compares them with the lines
 * OpenSSL's own key log callback gave. 0 when every line OpenSSL logged (the handshake lines only
 * when `o` has the handshake secret) is reproduced exactly; a negative code and the first
 * difference in err otherwise. */
int capture_tls_offsets_verify(const struct capture_tls_offsets *o, char *err, size_t errlen);

/* What makes two library files the same build: the ELF build-id (GNU note), or when a file has
 * none, its device and inode. */
struct capture_tls_build {
    uint8_t build_id[64];
    size_t build_id_len;
    dev_t dev;
    ino_t ino;
};

/* Reads `path`'s identity. 0 or a negative errno. */
int capture_tls_offsets_build_of(const char *path, struct capture_tls_build *b);

/* The identity of the libssl this process links (the calibrated one). 0 or a negative errno. */
int capture_tls_offsets_own_build(struct capture_tls_build *b, char *path, size_t pathlen);

/* Whether a and b are the same build. */
int capture_tls_offsets_same_build(const struct capture_tls_build *a,
                                   const struct capture_tls_build *b);

#endif
