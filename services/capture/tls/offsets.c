/* Calibration of the secrets' offsets against the libssl the capture links (see offsets.h).
 * The structs are read the way the eBPF program reads them (process_vm_readv on ourselves, the
 * user-space twin of bpf_probe_read_user): a span past the end of an allocation reads as
 * whatever is mapped there, never faults, and no sanitizer mistakes it for a bug. */
#include "capture/tls/offsets.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "capture/tls/keylog.h"
#include "util/error.h"

#define SSL_SPAN     0x2000 /* ssl_st is ~0x9c0 bytes in 3.0, SSL_CONNECTION larger in 3.2+ */
#define SESSION_SPAN 0x600
#define CIPHER_SPAN  0x40
#define MAX_LOGGED   8

struct keylog {
    char lines[MAX_LOGGED][CAPTURE_TLS_KEYLOG_LINE_MAX + 8];
    int n;
};

/* Two ends of one connection made in this process. */
struct pair {
    SSL_CTX *cctx, *sctx;
    SSL *c, *s;
    int sv[2];
    struct keylog kl; /* the client's key log lines */
};

/* What the structs of one connection hold, copied as the probe would read them. */
struct snap {
    uint8_t ssl[SSL_SPAN], sess[SESSION_SPAN], cipher[CIPHER_SPAN];
    const SSL_SESSION *sess_ptr;
    const SSL_CIPHER *cipher_ptr;
    uint8_t cr[32], mk[64];
    size_t mk_len;
    uint32_t cipher_id;
};

/* Copies n bytes at addr of this process; what cannot be read is zero. */
static void peek(const void *addr, void *buf, size_t n)
{
    struct iovec local = {.iov_base = buf, .iov_len = n};
    struct iovec remote = {.iov_base = (void *)addr, .iov_len = n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

    if (got < 0)
        got = 0;
    if ((size_t)got < n)
        memset((uint8_t *)buf + got, 0, n - (size_t)got);
}

static void on_keylog(const SSL *ssl, const char *line)
{
    struct keylog *k = SSL_get_app_data(ssl);

    if (k && k->n < MAX_LOGGED)
        snprintf(k->lines[k->n++], sizeof(k->lines[0]), "%s", line);
}

static int unhex(const char *s, uint8_t *out, size_t max)
{
    size_t n = 0;

    for (; s[0] && s[1] && s[0] != '\n' && n < max; s += 2) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
    }
    return (int)n;
}

/* The secret of the logged line with this label: its length, 0 when none. */
static size_t logged(const struct keylog *k, const char *label, uint8_t *out)
{
    size_t l = strlen(label);

    for (int i = 0; i < k->n; i++)
        if (strncmp(k->lines[i], label, l) == 0 && k->lines[i][l] == ' ') {
            const char *sp = strchr(k->lines[i] + l + 1, ' ');
            return sp ? (size_t)unhex(sp + 1, out, CAPTURE_TLS_SECRET_MAX) : 0;
        }
    return 0;
}

static void pair_free(struct pair *p)
{
    SSL_free(p->c);
    SSL_free(p->s);
    SSL_CTX_free(p->cctx);
    SSL_CTX_free(p->sctx);
    if (p->sv[0] >= 0)
        close(p->sv[0]);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
    memset(p, 0, sizeof(*p));
    p->sv[0] = p->sv[1] = -1;
}

/* A connection at `version` over a socketpair, handshake done and one message each way (TLS 1.3
 * tickets read). 0 or NR_EPARSE with the reason. */
static int pair_run(struct pair *p, int version, EVP_PKEY *key, X509 *cert, char *err,
                    size_t errlen)
{
    char buf[64];
    int i;

    memset(p, 0, sizeof(*p));
    p->sv[0] = p->sv[1] = -1;
    p->cctx = SSL_CTX_new(TLS_client_method());
    p->sctx = SSL_CTX_new(TLS_server_method());
    if (!p->cctx || !p->sctx || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv) != 0)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: cannot make a connection");
    SSL_CTX_set_min_proto_version(p->cctx, version);
    SSL_CTX_set_max_proto_version(p->cctx, version);
    SSL_CTX_set_min_proto_version(p->sctx, version);
    SSL_CTX_set_max_proto_version(p->sctx, version);
    SSL_CTX_set_keylog_callback(p->cctx, on_keylog);
    if (SSL_CTX_use_certificate(p->sctx, cert) != 1 || SSL_CTX_use_PrivateKey(p->sctx, key) != 1)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: server certificate refused");
    p->c = SSL_new(p->cctx);
    p->s = SSL_new(p->sctx);
    if (!p->c || !p->s)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: SSL_new failed");
    SSL_set_app_data(p->c, &p->kl);
    BIO_socket_nbio(p->sv[0], 1);
    BIO_socket_nbio(p->sv[1], 1);
    SSL_set_fd(p->c, p->sv[0]);
    SSL_set_fd(p->s, p->sv[1]);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
    for (i = 0; i < 100 && (!SSL_is_init_finished(p->c) || !SSL_is_init_finished(p->s)); i++) {
        SSL_do_handshake(p->c);
        SSL_do_handshake(p->s);
    }
    if (!SSL_is_init_finished(p->c) || !SSL_is_init_finished(p->s))
        return nr_errf(NR_EPARSE, err, errlen, "calibration: the TLS %s handshake failed",
                       version == TLS1_3_VERSION ? "1.3" : "1.2");
    if (SSL_write(p->c, "ping", 4) != 4)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: SSL_write failed");
    for (i = 0; i < 10 && SSL_read(p->s, buf, sizeof(buf)) <= 0; i++)
        ;
    if (SSL_write(p->s, "pong", 4) != 4)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: SSL_write failed");
    for (i = 0; i < 10 && SSL_read(p->c, buf, sizeof(buf)) <= 0; i++)
        ;
    if (i == 10)
        return nr_errf(NR_EPARSE, err, errlen, "calibration: no answer over the connection");
    return 0;
}

static void take_snap(const struct pair *p, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    peek(p->c, s->ssl, sizeof(s->ssl));
    s->sess_ptr = SSL_get_session(p->c);
    SSL_get_client_random(p->c, s->cr, sizeof(s->cr));
    if (!s->sess_ptr)
        return;
    peek(s->sess_ptr, s->sess, sizeof(s->sess));
    s->mk_len = SSL_SESSION_get_master_key(s->sess_ptr, s->mk, sizeof(s->mk));
    s->cipher_ptr = SSL_SESSION_get0_cipher(s->sess_ptr);
    if (s->cipher_ptr) {
        peek(s->cipher_ptr, s->cipher, sizeof(s->cipher));
        s->cipher_id = (uint32_t)SSL_CIPHER_get_id(s->cipher_ptr);
    }
}

/* The first offset (a multiple of `align`) where a holds x and b holds y (n bytes each); -1. */
static long find2(const uint8_t *a, const uint8_t *b, size_t span, const void *x, const void *y,
                  size_t n, size_t align)
{
    for (size_t o = 0; o + n <= span; o += align)
        if (memcmp(a + o, x, n) == 0 && memcmp(b + o, y, n) == 0)
            return (long)o;
    return -1;
}

static long find1(const uint8_t *a, size_t span, const void *x, size_t n)
{
    return find2(a, a, span, x, x, n, 1);
}

/* The TLS 1.3 handshake secret and transcript hash are never logged: the pair of offsets from
 * which HKDF-Expand-Label(hs, "c hs traffic", hash) gives the logged client handshake secret.
 * OpenSSL keeps the hash right before the application traffic secrets: look there first. */
static void find_handshake(const struct snap *s, const uint8_t *chts, size_t hl, const char *md,
                           long cats, struct capture_tls_offsets *o)
{
    uint8_t d[CAPTURE_TLS_SECRET_MAX];

    for (long b = cats - 256; b < cats; b += 4) {
        if (b < 0)
            continue;
        for (long a = 0; a + CAPTURE_TLS_SECRET_MAX <= SSL_SPAN; a += 4) {
            if (capture_tls_keylog_expand_label(md, s->ssl + a, hl, "c hs traffic", s->ssl + b, hl,
                                                d, hl) == 0 &&
                memcmp(d, chts, hl) == 0) {
                o->ssl_handshake_secret = (uint32_t)a;
                o->ssl_handshake_traffic_hash = (uint32_t)b;
                return;
            }
        }
    }
}

/* A throw-away key and self-signed certificate for the server end. */
static int make_cert(EVP_PKEY **key, X509 **cert)
{
    X509_NAME *name;

    *key = EVP_EC_gen("P-256");
    *cert = X509_new();
    if (!*key || !*cert)
        return -ENOMEM;
    name = X509_get_subject_name(*cert);
    if (X509_set_version(*cert, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(*cert), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(*cert), 3600) || X509_set_pubkey(*cert, *key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"netreel-calibration", -1, -1, 0) != 1 ||
        X509_set_issuer_name(*cert, name) != 1 || X509_sign(*cert, *key, EVP_sha256()) <= 0)
        return NR_EPARSE;
    return 0;
}

#define NEED(cond, what)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            rc = nr_errf(NR_EPARSE, err, errlen, "calibration: %s not found", what); \
            goto out;                                                                \
        }                                                                            \
    } while (0)

int capture_tls_offsets_calibrate(struct capture_tls_offsets *o, char *err, size_t errlen)
{
    struct pair p12, p13;
    struct snap *s12 = calloc(1, sizeof(*s12)), *s13 = calloc(1, sizeof(*s13));
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    uint8_t sec[CAPTURE_TLS_SECRET_MAX], chts[CAPTURE_TLS_SECRET_MAX];
    int32_t v12 = TLS1_2_VERSION, v13 = TLS1_3_VERSION;
    uint64_t l12, l13;
    long off, cats;
    size_t hl = 0, n;
    const char *md;
    int rc;

    memset(o, 0, sizeof(*o));
    memset(&p12, 0, sizeof(p12));
    memset(&p13, 0, sizeof(p13));
    p12.sv[0] = p12.sv[1] = p13.sv[0] = p13.sv[1] = -1;
    if (!s12 || !s13) {
        rc = nr_errf(-ENOMEM, err, errlen, "calibration: out of memory");
        goto out;
    }
    rc = make_cert(&key, &cert);
    if (rc != 0) {
        nr_errf(rc, err, errlen, "calibration: cannot make a certificate");
        goto out;
    }
    rc = pair_run(&p12, TLS1_2_VERSION, key, cert, err, errlen);
    if (rc == 0)
        rc = pair_run(&p13, TLS1_3_VERSION, key, cert, err, errlen);
    if (rc != 0)
        goto out;
    take_snap(&p12, s12);
    take_snap(&p13, s13);
    NEED(s12->sess_ptr && s13->sess_ptr && s12->cipher_ptr && s13->cipher_ptr, "SSL_SESSION");
    NEED(s12->mk_len == 48 && s13->mk_len > 0, "master key");

    /* Each field at the same place in the TLS 1.2 and the TLS 1.3 connection. */
    off = find2(s12->ssl, s13->ssl, 0x100, &v12, &v13, 4, 4);
    NEED(off >= 0, "ssl version");
    o->ssl_version = (uint32_t)off;
    off = find2(s12->ssl, s13->ssl, SSL_SPAN, &s12->sess_ptr, &s13->sess_ptr, 8, 8);
    NEED(off >= 0, "ssl session");
    o->ssl_session = (uint32_t)off;
    off = find2(s12->ssl, s13->ssl, SSL_SPAN, s12->cr, s13->cr, 32, 1);
    NEED(off >= 0, "client random");
    o->ssl_client_random = (uint32_t)off;
    off = find2(s12->sess, s13->sess, SESSION_SPAN, s12->mk, s13->mk, 48, 1);
    if (s13->mk_len != 48) /* a SHA256 suite: its resumption secret is 32 bytes */
        for (off = 0; off + 48 <= SESSION_SPAN; off++)
            if (memcmp(s12->sess + off, s12->mk, 48) == 0 &&
                memcmp(s13->sess + off, s13->mk, s13->mk_len) == 0)
                break;
    NEED(off >= 0 && off + 48 <= SESSION_SPAN, "session master key");
    o->session_master_key = (uint32_t)off;
    l12 = s12->mk_len;
    l13 = s13->mk_len;
    off = find2(s12->sess, s13->sess, (size_t)o->session_master_key, &l12, &l13, 8, 8);
    NEED(off >= 0, "session master key length");
    o->session_master_key_length = (uint32_t)off;
    off = find2(s12->sess, s13->sess, SESSION_SPAN, &s12->cipher_ptr, &s13->cipher_ptr, 8, 8);
    NEED(off >= 0, "session cipher");
    o->session_cipher = (uint32_t)off;
    off = find2(s12->cipher, s13->cipher, CIPHER_SPAN, &s12->cipher_id, &s13->cipher_id, 4, 4);
    NEED(off >= 0, "cipher id");
    o->cipher_id = (uint32_t)off;

    /* TLS 1.3: the secrets OpenSSL logged, in the client's SSL. */
    md = capture_tls_keylog_tls13_md(s13->cipher_id, &hl);
    NEED(md != NULL, "a known TLS 1.3 cipher");
    n = logged(&p13.kl, "CLIENT_TRAFFIC_SECRET_0", sec);
    cats = n == hl ? find1(s13->ssl, SSL_SPAN, sec, n) : -1;
    NEED(cats >= 0, "client application traffic secret");
    o->ssl_client_app_traffic_secret = (uint32_t)cats;
    n = logged(&p13.kl, "SERVER_TRAFFIC_SECRET_0", sec);
    off = n == hl ? find1(s13->ssl, SSL_SPAN, sec, n) : -1;
    NEED(off >= 0, "server application traffic secret");
    o->ssl_server_app_traffic_secret = (uint32_t)off;
    n = logged(&p13.kl, "EXPORTER_SECRET", sec);
    off = n == hl ? find1(s13->ssl, SSL_SPAN, sec, n) : -1;
    NEED(off >= 0, "exporter secret");
    o->ssl_exporter_master_secret = (uint32_t)off;
    if (logged(&p13.kl, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", chts) == hl)
        find_handshake(s13, chts, hl, md, cats, o);
    rc = 0;
out:
    pair_free(&p12);
    pair_free(&p13);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(s12);
    free(s13);
    if (rc != 0)
        memset(o, 0, sizeof(*o));
    return rc;
}

/* What the eBPF program sends for this SSL (tls.bpf.c read_secrets does the same reads). */
static void read_secrets(const struct capture_tls_offsets *o, const SSL *ssl,
                         struct capture_tls_secrets *s)
{
    const uint8_t *base = (const uint8_t *)ssl;
    uint64_t sess = 0, cipher = 0;

    memset(s, 0, sizeof(*s));
    s->type = CAPTURE_TLS_REC_SECRETS;
    s->pid = (uint32_t)getpid();
    s->ssl = (uint64_t)(uintptr_t)ssl;
    peek(base + o->ssl_client_random, s->client_random, 32);
    peek(base + o->ssl_version, &s->version, 4);
    peek(base + o->ssl_session, &sess, 8);
    if (sess) {
        peek((const uint8_t *)(uintptr_t)sess + o->session_master_key_length, &s->master_key_len,
             8);
        peek((const uint8_t *)(uintptr_t)sess + o->session_master_key, s->master_key, 48);
        peek((const uint8_t *)(uintptr_t)sess + o->session_cipher, &cipher, 8);
        if (cipher)
            peek((const uint8_t *)(uintptr_t)cipher + o->cipher_id, &s->cipher_id, 4);
    }
    if (s->version == TLS1_3_VERSION) {
        if (o->ssl_handshake_secret) {
            peek(base + o->ssl_handshake_secret, s->handshake_secret, CAPTURE_TLS_SECRET_MAX);
            peek(base + o->ssl_handshake_traffic_hash, s->handshake_traffic_hash,
                 CAPTURE_TLS_SECRET_MAX);
        }
        peek(base + o->ssl_client_app_traffic_secret, s->client_app_traffic_secret,
             CAPTURE_TLS_SECRET_MAX);
        peek(base + o->ssl_server_app_traffic_secret, s->server_app_traffic_secret,
             CAPTURE_TLS_SECRET_MAX);
        peek(base + o->ssl_exporter_master_secret, s->exporter_master_secret,
             CAPTURE_TLS_SECRET_MAX);
    }
}

/* Every line OpenSSL logged for p (but the handshake ones when o has no handshake secret) is
 * among `ours`, and ours has no other. */
static int compare(const struct capture_tls_offsets *o, const struct pair *p, const char *ours,
                   const char *what, char *err, size_t errlen)
{
    int want = 0, have = 0;

    for (const char *c = ours; *c; c++)
        have += *c == '\n';
    for (int i = 0; i < p->kl.n; i++) {
        char line[CAPTURE_TLS_KEYLOG_LINE_MAX + 8];
        if (!o->ssl_handshake_secret && strstr(p->kl.lines[i], "_HANDSHAKE_TRAFFIC_SECRET "))
            continue;
        want++;
        snprintf(line, sizeof(line), "%s\n", p->kl.lines[i]);
        if (!strstr(ours, line))
            return nr_errf(NR_EPARSE, err, errlen,
                           "calibration: %s: OpenSSL logged a line the offsets do not give: %.40s",
                           what, p->kl.lines[i]);
    }
    if (want == 0 || want != have)
        return nr_errf(NR_EPARSE, err, errlen,
                       "calibration: %s: %d lines from the offsets, %d from OpenSSL", what, have,
                       want);
    return 0;
}

int capture_tls_offsets_verify(const struct capture_tls_offsets *o, char *err, size_t errlen)
{
    struct pair p;
    struct capture_tls_secrets s;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char ours[CAPTURE_TLS_KEYLOG_REC_MAX + 1];
    int versions[2] = {TLS1_2_VERSION, TLS1_3_VERSION}, rc, n;

    memset(&p, 0, sizeof(p));
    p.sv[0] = p.sv[1] = -1;
    rc = make_cert(&key, &cert);
    if (rc != 0) {
        nr_errf(rc, err, errlen, "calibration: cannot make a certificate");
        goto out;
    }
    for (int i = 0; i < 2 && rc == 0; i++) {
        const char *what = versions[i] == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2";
        rc = pair_run(&p, versions[i], key, cert, err, errlen);
        if (rc != 0)
            break;
        read_secrets(o, p.c, &s);
        n = capture_tls_keylog_lines(&s, sizeof(s), ours, sizeof(ours) - 1);
        if (n < 0)
            rc = nr_errf(NR_EPARSE, err, errlen,
                         "calibration: %s: the offsets give no valid secrets", what);
        else {
            ours[n] = 0;
            rc = compare(o, &p, ours, what, err, errlen);
        }
        pair_free(&p);
    }
out:
    pair_free(&p);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* The GNU build-id note of an ELF64 file (the note in a PT_NOTE segment). */
static int read_build_id(int fd, struct capture_tls_build *b)
{
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    uint8_t notes[4096];

    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(ph) || eh.e_phnum > 128)
        return -ENOEXEC;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        size_t len, pos = 0;
        if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
            return -ENOEXEC;
        if (ph.p_type != PT_NOTE)
            continue;
        len = ph.p_filesz < sizeof(notes) ? (size_t)ph.p_filesz : sizeof(notes);
        if (pread(fd, notes, len, (off_t)ph.p_offset) != (ssize_t)len)
            continue;
        while (pos + sizeof(Elf64_Nhdr) <= len) {
            Elf64_Nhdr nh;
            size_t name_at, desc_at;
            memcpy(&nh, notes + pos, sizeof(nh));
            name_at = pos + sizeof(nh);
            desc_at = name_at + ((nh.n_namesz + 3u) & ~3u);
            if (desc_at > len || nh.n_descsz > len - desc_at)
                break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                memcmp(notes + name_at, "GNU", 4) == 0 && nh.n_descsz > 0 &&
                nh.n_descsz <= sizeof(b->build_id)) {
                memcpy(b->build_id, notes + desc_at, nh.n_descsz);
                b->build_id_len = nh.n_descsz;
                return 0;
            }
            pos = desc_at + ((nh.n_descsz + 3u) & ~3u);
        }
    }
    return -ENOENT;
}

int capture_tls_offsets_build_of(const char *path, struct capture_tls_build *b)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    memset(b, 0, sizeof(*b));
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    b->dev = st.st_dev;
    b->ino = st.st_ino;
    read_build_id(fd, b); /* none: dev and inode decide */
out:
    close(fd);
    return rc;
}

int capture_tls_offsets_own_build(struct capture_tls_build *b, char *path, size_t pathlen)
{
    Dl_info info;

    if (dladdr((void *)SSL_new, &info) == 0 || !info.dli_fname)
        return -ENOENT;
    snprintf(path, pathlen, "%s", info.dli_fname);
    return capture_tls_offsets_build_of(info.dli_fname, b);
}

int capture_tls_offsets_same_build(const struct capture_tls_build *a,
                                   const struct capture_tls_build *b)
{
    if (a->build_id_len && b->build_id_len)
        return a->build_id_len == b->build_id_len &&
               memcmp(a->build_id, b->build_id, a->build_id_len) == 0;
    return a->dev == b->dev && a->ino == b->ino;
}
