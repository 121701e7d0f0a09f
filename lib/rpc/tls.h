/* TLS contexts for lib/rpc (internal to it: hence rpc_tls__): TLS >= 1.2 with ALPN "h2" only, mTLS
 * when a CA is given to a server, peer and host name verification on clients. The per-connection
 * TLS state (its BIOs) lives in conn.c. */
#ifndef NR_RPC_TLS_H
#define NR_RPC_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* A server context from PEM files. With `ca`, clients must present a certificate signed by it.
 * Returns NULL with a one-line reason in err (naming the file) on failure. */
SSL_CTX *rpc_tls__server_ctx_new(const char *cert, const char *key, const char *ca, char *err,
                                 size_t errlen);

/* A client context: verifies the server against `ca` (or the system's trust store when NULL),
 * and presents cert/key when both are given. Returns NULL with a reason in err on failure. */
SSL_CTX *rpc_tls__client_ctx_new(const char *ca, const char *cert, const char *key, char *err,
                                 size_t errlen);

/* The same, shared: clients of the same files get one context (a reference each, to
 * SSL_CTX_free), loaded again once one of the files changed on disk. A hub's thousand store
 * channels loaded and held the same CA, certificate and key a thousand times. */
SSL_CTX *rpc_tls__client_ctx(const char *ca, const char *cert, const char *key, char *err,
                             size_t errlen);

/* A client connection to `server` (any string that names the server and the identity verified:
 * the channel's target and authority) resumes the last session that server gave on a context
 * of the same files, if there is one and it has not expired; the sessions it gets are kept for
 * the next connection. 0, or -1 when out of memory (then it makes a full handshake and keeps
 * nothing). */
int rpc_tls__session_use(SSL *ssl, const char *server);
/* Counts a client's finished handshake: full or resumed; rpc_tls__handshakes reads the counts
 * (rpc_client_tls_handshakes). */
void rpc_tls__count_handshake(SSL *ssl);
void rpc_tls__handshakes(uint64_t *full, uint64_t *resumed);

/* Writes the reason of the last OpenSSL error ("unknown" if none) into buf; clears the queue. */
void rpc_tls__error_text(char *buf, size_t len);

/* The common name of the certificate the peer presented (verified against the CA), or "" when
 * it presented none. */
void rpc_tls__peer_name(SSL *ssl, char *buf, size_t len);

/* Writes the reason of the last OpenSSL error (or `fallback`) into err and clears the queue. */
void rpc_tls__error(char *err, size_t errlen, const char *fallback);

#endif
