/* OpenSSL contexts for servers and clients: the policy (versions, ALPN, verification) is set here
 * once so that every connection gets the same. */
#include "rpc/tls.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/hash.h"

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
    /* Sessions (TLS 1.3 tickets) a client resumes: OpenSSL resumes none that verified a client
     * certificate without a context to bind them to. */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"netreel", 7) != 1) {
        rpc_tls__error(err, errlen, "cannot set the TLS session context");
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int session_new(SSL *ssl, SSL_SESSION *sess);

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
    /* Sessions are kept by rpc_tls__session_use's table, not OpenSSL's. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, session_new);
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

/* ---- client sessions, for resumption ---- */

/* The last session each server gave, by server (the key rpc_tls__session_use is given) and
 * context: a new connection resumes it (a TLS 1.3 ticket) without a full handshake's
 * certificates and signatures. At most SESSIONS_MAX servers; one more replaces one of them. */
#define SESSION_SLOTS 4096
#define SESSIONS_MAX  8192

struct session_entry {
    struct session_entry *next;
    SSL_CTX *ctx;      /* a reference: no other context takes its address while it is here */
    SSL_SESSION *sess; /* a reference */
    char server[];
};

static struct session_entry *sessions[SESSION_SLOTS];
static size_t n_sessions, evict_at;
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static int server_index = -1; /* the SSL's ex_data: the server key (heap string) */
static pthread_once_t server_index_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t handshakes_full, handshakes_resumed;

static void server_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void server_index_new(void)
{
    server_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, server_free);
}

static size_t slot_of(const char *server)
{
    return (size_t)(nr_hash_bytes(server, strlen(server)) % SESSION_SLOTS);
}

static void entry_free(struct session_entry *e)
{
    SSL_SESSION_free(e->sess);
    SSL_CTX_free(e->ctx);
    free(e);
}

/* Takes the entry of (ctx, server) out of the table: NULL when there is none. Locked. */
static struct session_entry *take(SSL_CTX *ctx, const char *server)
{
    for (struct session_entry **pp = &sessions[slot_of(server)]; *pp; pp = &(*pp)->next) {
        struct session_entry *e = *pp;
        if (e->ctx == ctx && strcmp(e->server, server) == 0) {
            *pp = e->next;
            n_sessions--;
            return e;
        }
    }
    return NULL;
}

/* OpenSSL has a new session (after a handshake, or a ticket after it): the server's last. */
static int session_new(SSL *ssl, SSL_SESSION *sess)
{
    const char *server = server_index >= 0 ? SSL_get_ex_data(ssl, server_index) : NULL;
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    size_t len = server ? strlen(server) : 0;
    struct session_entry *e, *old, *evicted = NULL;

    if (!server || !SSL_SESSION_is_resumable(sess) || !(e = malloc(sizeof(*e) + len + 1)))
        return 0; /* not kept: OpenSSL frees it */
    if (SSL_CTX_up_ref(ctx) != 1) {
        free(e);
        return 0;
    }
    e->ctx = ctx;
    e->sess = sess; /* returning 1 hands us OpenSSL's reference */
    memcpy(e->server, server, len + 1);
    pthread_mutex_lock(&sessions_lock);
    old = take(ctx, server);
    if (!old && n_sessions >= SESSIONS_MAX) {
        for (size_t i = 0; i < SESSION_SLOTS && !evicted; i++, evict_at++) {
            struct session_entry **head = &sessions[evict_at % SESSION_SLOTS];
            if ((evicted = *head)) {
                *head = evicted->next;
                n_sessions--;
            }
        }
    }
    e->next = sessions[slot_of(server)];
    sessions[slot_of(server)] = e;
    n_sessions++;
    pthread_mutex_unlock(&sessions_lock);
    if (old)
        entry_free(old);
    if (evicted)
        entry_free(evicted);
    return 1;
}

int rpc_tls__session_use(SSL *ssl, const char *server)
{
    char *copy = strdup(server);
    struct session_entry *e;

    pthread_once(&server_index_once, server_index_new);
    if (!copy || server_index < 0 || SSL_set_ex_data(ssl, server_index, copy) != 1) {
        free(copy);
        return -1;
    }
    pthread_mutex_lock(&sessions_lock);
    e = take(SSL_get_SSL_CTX(ssl), server); /* a ticket is for one resumption */
    pthread_mutex_unlock(&sessions_lock);
    if (!e)
        return 0;
    if (SSL_SESSION_get_time(e->sess) + SSL_SESSION_get_timeout(e->sess) > (long)time(NULL))
        SSL_set_session(ssl, e->sess); /* (takes a reference of its own) */
    entry_free(e);
    return 0;
}

void rpc_tls__count_handshake(SSL *ssl)
{
    atomic_fetch_add(SSL_session_reused(ssl) ? &handshakes_resumed : &handshakes_full, 1);
}

void rpc_tls__handshakes(uint64_t *full, uint64_t *resumed)
{
    *full = atomic_load(&handshakes_full);
    *resumed = atomic_load(&handshakes_resumed);
}
