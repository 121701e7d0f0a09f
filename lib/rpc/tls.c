/* OpenSSL contexts for servers and clients: the policy (versions, ALPN, verification) is set here
 * once so that every connection gets the same. */
#include "rpc/tls.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char alpn_h2[] = {2, 'h', '2'};

void rpc_tls__error_text(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, len, "%s", reason ? reason : "unknown error");
    ERR_clear_error();
}

void rpc_tls__peer_name(SSL *ssl, char *buf, size_t len)
{
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

    buf[0] = '\0';
    if (x && X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len) < 0)
        buf[0] = '\0';
}

void rpc_tls__error(char *err, size_t errlen, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err, errlen, "%s: %s", fallback, buf);
    } else {
        snprintf(err, errlen, "%s", fallback);
    }
    ERR_clear_error();
}

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* gRPC is HTTP/2 only */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (!ctx) {
        rpc_tls__error(err, errlen, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
    char what[512];

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(what, sizeof(what), "cannot load certificate %s", cert);
        rpc_tls__error(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "cannot load private key %s", key);
        rpc_tls__error(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof(what), "private key %s does not match certificate %s", key, cert);
        rpc_tls__error(err, errlen, what);
        return -1;
    }
    return 0;
}

static int load_ca(SSL_CTX *ctx, const char *ca, char *err, size_t errlen)
{
    char what[512];

    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        snprintf(what, sizeof(what), "cannot load CA certificates %s", ca);
        rpc_tls__error(err, errlen, what);
        return -1;
    }
    return 0;
}

SSL_CTX *rpc_tls__server_ctx_new(const char *cert, const char *key, const char *ca, char *err,
                                 size_t errlen)
{
    SSL_CTX *ctx;

    if (!cert || !key) {
        snprintf(err, errlen, "TLS needs both a certificate and a key");
        return NULL;
    }
    ctx = ctx_new(TLS_server_method(), err, errlen);
    if (!ctx)
        return NULL;
    if (load_pair(ctx, cert, key, err, errlen) != 0)
        goto fail;
    if (ca) {
        if (load_ca(ctx, ca, err, errlen) != 0)
            goto fail;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *rpc_tls__client_ctx_new(const char *ca, const char *cert, const char *key, char *err,
                                 size_t errlen)
{
    SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);

    if (!ctx)
        return NULL;
    if (ca) {
        if (load_ca(ctx, ca, err, errlen) != 0)
            goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rpc_tls__error(err, errlen, "cannot load the system's CA certificates");
        goto fail;
    }
    if ((cert != NULL) != (key != NULL)) {
        snprintf(err, errlen, "a client certificate needs both --tls-cert and --tls-key");
        goto fail;
    }
    if (cert && load_pair(ctx, cert, key, err, errlen) != 0)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
        rpc_tls__error(err, errlen, "cannot set ALPN");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- client contexts, shared ---- */

/* A file as it is on disk now: a change (a rotated certificate, a Secret's files swapped) gives
 * another identity. All zero for no file. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

static int file_id(const char *path, struct file_id *id)
{
    struct stat st;

    memset(id, 0, sizeof(*id));
    if (!path)
        return 0;
    if (stat(path, &st) != 0)
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    return 0;
}

static bool same_path(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

#define CLIENT_CTX_CACHE 4

static struct client_ctx_entry {
    char *ca, *cert, *key;
    struct file_id ids[3];
    SSL_CTX *ctx; /* the cache's reference; NULL: a free slot */
} client_cache[CLIENT_CTX_CACHE];
static unsigned client_cache_next;
static pthread_mutex_t client_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;

    if (s && !d)
        *oom = true;
    return d;
}

/* Keeps ctx (a reference of its own) for the files and their identities, in the slot of the same
 * files if there is one (what was there is stale), else in turn. */
static void cache_put(const char *ca, const char *cert, const char *key,
                      const struct file_id ids[3], SSL_CTX *ctx)
{
    struct client_ctx_entry *e = NULL, fresh = {0};
    bool oom = false;

    fresh.ca = dup_or_null(ca, &oom);
    fresh.cert = dup_or_null(cert, &oom);
    fresh.key = dup_or_null(key, &oom);
    if (oom || SSL_CTX_up_ref(ctx) != 1) {
        free(fresh.ca);
        free(fresh.cert);
        free(fresh.key);
        return; /* not kept: the next channel loads its own */
    }
    memcpy(fresh.ids, ids, sizeof(fresh.ids));
    fresh.ctx = ctx;
    pthread_mutex_lock(&client_cache_lock);
    for (unsigned i = 0; i < CLIENT_CTX_CACHE && !e; i++)
        if (client_cache[i].ctx && same_path(client_cache[i].ca, ca) &&
            same_path(client_cache[i].cert, cert) && same_path(client_cache[i].key, key))
            e = &client_cache[i];
    if (!e)
        e = &client_cache[client_cache_next++ % CLIENT_CTX_CACHE];
    SSL_CTX_free(e->ctx);
    free(e->ca);
    free(e->cert);
    free(e->key);
    *e = fresh;
    pthread_mutex_unlock(&client_cache_lock);
}

SSL_CTX *rpc_tls__client_ctx(const char *ca, const char *cert, const char *key, char *err,
                             size_t errlen)
{
    struct file_id ids[3];
    bool known =
        file_id(ca, &ids[0]) == 0 && file_id(cert, &ids[1]) == 0 && file_id(key, &ids[2]) == 0;
    SSL_CTX *ctx = NULL;

    if (known) {
        pthread_mutex_lock(&client_cache_lock);
        for (unsigned i = 0; i < CLIENT_CTX_CACHE && !ctx; i++) {
            struct client_ctx_entry *e = &client_cache[i];
            if (e->ctx && same_path(e->ca, ca) && same_path(e->cert, cert) &&
                same_path(e->key, key) && memcmp(e->ids, ids, sizeof(ids)) == 0 &&
                SSL_CTX_up_ref(e->ctx) == 1)
                ctx = e->ctx;
        }
        pthread_mutex_unlock(&client_cache_lock);
        if (ctx)
            return ctx;
    }
    ctx = rpc_tls__client_ctx_new(ca, cert, key, err, errlen); /* says which file is wrong */
    if (ctx && known)
        cache_put(ca, cert, key, ids, ctx);
    return ctx;
}
