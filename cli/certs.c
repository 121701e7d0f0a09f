/* The credentials of `tap --local` (certs.h): a private CA and one certificate per program made
 * with OpenSSL on first start and reused while they are sound, the hub's token, and the file
 * that tells the CLI where the local hub listens. Nothing here holds a secret longer than it
 * takes to write it. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "util/addr.h"
#include "util/error.h"

#define PEM_MAX      (64 * 1024)
#define VALID_DAYS   365
#define MIN_LEFT_SEC (24 * 3600) /* a certificate closer than this to its end is made anew */

static const char *const role_names[CLI_CERT_N] = {"store", "hub", "capture", "client"};

const char *const cli_cert_names[CLI_CERT_N] = {"netreel-store", "netreel-hub", "netreel-capture",
                                                "netreel CLI"};

/* ---- files ---- */

int cli_local_data_default(char *buf, size_t len)
{
    const char *env = getenv("NETREEL_DATA");
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (geteuid() == 0)
        snprintf(buf, len, "/var/lib/netreel");
    else if (xdg && xdg[0] == '/')
        snprintf(buf, len, "%s/netreel", xdg);
    else if (home && *home)
        snprintf(buf, len, "%s/.local/share/netreel", home);
    else
        return -ENOENT;
    return 0;
}

int cli_mkdir_private(const char *path)
{
    char p[PATH_MAX];

    if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
        return -ENAMETOOLONG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int cli_write_private(const char *dir, const char *name, const void *data, size_t len)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    const char *p = data;
    int fd, rc = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= sizeof(tmp) ||
        (size_t)snprintf(final, sizeof(final), "%s/%s", dir, name) >= sizeof(final))
        return -ENAMETOOLONG;
    fd = mkostemp(tmp, O_CLOEXEC); /* 0600, O_EXCL: never through a link someone left there */
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) != 0)
        rc = -errno;
    while (rc == 0 && len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return sync_dir(dir);
}

/* Reads a small file that must be ours alone: a regular file (not followed through a link),
 * no access for group or others. Returns its length, or a negative errno (-EPERM: too open). */
static ssize_t read_private(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    size_t n = 0;
    ssize_t rc = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
    } else if ((st.st_mode & 077) || st.st_uid != geteuid()) {
        rc = -EPERM;
    } else {
        for (;;) {
            ssize_t r = read(fd, buf + n, cap - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = -errno;
                break;
            }
            if (r == 0)
                break;
            n += (size_t)r;
            if (n == cap) {
                rc = -EFBIG;
                break;
            }
        }
    }
    close(fd);
    return rc < 0 ? rc : (ssize_t)n;
}

/* The folder DATA/.tls: made 0700, or an existing one of ours closed to others. */
static int private_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", dir, strerror(errno));
        return -errno;
    }
    if (lstat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        snprintf(err, errlen, "%s is not a folder of ours (a link, a file, or another user's)",
                 dir);
        return -EPERM;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot close %s to others: %s", dir, strerror(errno));
        return -errno;
    }
    return 0;
}

/* ---- checking a set ---- */

void cli_certs_paths(const char *data, struct cli_certs *c)
{
    snprintf(c->dir, sizeof(c->dir), "%s/.tls", data);
    snprintf(c->ca, sizeof(c->ca), "%s/ca.crt", c->dir);
    for (int i = 0; i < CLI_CERT_N; i++) {
        snprintf(c->cert[i], sizeof(c->cert[i]), "%s/%s.crt", c->dir, role_names[i]);
        snprintf(c->key[i], sizeof(c->key[i]), "%s/%s.key", c->dir, role_names[i]);
    }
}

/* Loads a PEM certificate (key false) or private key (key true). NULL with why set. */
static void *load_pem(const char *path, bool key, char *why, size_t len)
{
    char *buf = malloc(PEM_MAX);
    ssize_t n;
    BIO *b;
    void *obj = NULL;

    if (!buf) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    n = read_private(path, buf, PEM_MAX);
    if (n == -ENOENT)
        snprintf(why, len, "%s is missing", path);
    else if (n == -EPERM)
        snprintf(why, len, "%s is open to others or not ours", path);
    else if (n < 0)
        snprintf(why, len, "%s cannot be read: %s", path, strerror((int)-n));
    if (n < 0) {
        free(buf);
        return NULL;
    }
    b = BIO_new_mem_buf(buf, (int)n);
    if (b)
        obj = key ? (void *)PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)
                  : (void *)PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    OPENSSL_cleanse(buf, PEM_MAX);
    free(buf);
    ERR_clear_error();
    if (!obj)
        snprintf(why, len, "%s does not parse", path);
    return obj;
}

/* True when x is valid now and for MIN_LEFT_SEC more; else why says what is wrong. */
static bool valid_long_enough(X509 *x, const char *path, char *why, size_t len)
{
    time_t now = time(NULL), soon = now + MIN_LEFT_SEC;
    const ASN1_TIME *end = X509_get0_notAfter(x);

    if (X509_cmp_time(X509_get0_notBefore(x), &now) >= 0) {
        snprintf(why, len, "%s is not valid yet (is the clock right?)", path);
        return false;
    }
    if (X509_cmp_time(end, &soon) <= 0) {
        struct tm tm;
        char when[32] = "?";
        if (ASN1_TIME_to_tm(end, &tm) == 1)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(why, len, "%s %s %s", path,
                 X509_cmp_time(end, &now) <= 0 ? "expired on" : "expires on", when);
        return false;
    }
    return true;
}

/* 0 when every file of the set is sound; else why names the first that is not. */
static int check_set(const struct cli_certs *c, char *why, size_t len)
{
    X509 *ca = load_pem(c->ca, false, why, len);
    int rc = -1;

    if (!ca || !valid_long_enough(ca, c->ca, why, len))
        goto out;
    for (int i = 0; i < CLI_CERT_N; i++) {
        X509 *x = load_pem(c->cert[i], false, why, len);
        EVP_PKEY *k = x ? load_pem(c->key[i], true, why, len) : NULL;
        bool ok = x && k && valid_long_enough(x, c->cert[i], why, len);
        if (ok && X509_verify(x, X509_get0_pubkey(ca)) != 1) {
            snprintf(why, len, "%s is not signed by %s", c->cert[i], c->ca);
            ok = false;
        }
        if (ok && X509_check_private_key(x, k) != 1) {
            snprintf(why, len, "%s does not match %s", c->key[i], c->cert[i]);
            ok = false;
        }
        X509_free(x);
        EVP_PKEY_free(k);
        ERR_clear_error();
        if (!ok)
            goto out;
    }
    rc = 0;
out:
    X509_free(ca);
    return rc;
}

/* ---- making a set ---- */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1) == 1;

    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A certificate for key, signed by issuer (NULL: self-signed, the CA). NULL on failure. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *eku)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    X509_NAME *name;
    X509V3_CTX ctx;
    bool ok = false;

    if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    name = X509_get_subject_name(x);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        X509_set_version(x, 2) != 1 || /* v3 */
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)VALID_DAYS * 24 * 3600) ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   (const unsigned char *)"netreel tap --local", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1)
        goto out;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0)
        goto out;
    if (!issuer) {
        if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
            add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") != 0)
            goto out;
    } else if (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") != 0 ||
               add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
               add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") != 0 ||
               add_ext(x, &ctx, NID_ext_key_usage, eku) != 0 ||
               add_ext(x, &ctx, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost") != 0) {
        goto out;
    }
    ok = X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
out:
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes x (or key) as PEM to path's folder under its name. */
static int write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = -ENOMEM;

    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (!b)
        return rc;
    if (x ? PEM_write_bio_X509(b, x) == 1
          : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1) {
        n = BIO_get_mem_data(b, &p);
        rc = cli_write_private(dir, slash + 1, p, (size_t)n);
        OPENSSL_cleanse(p, (size_t)n);
    }
    BIO_free(b);
    return rc;
}

static int make_set(const struct cli_certs *c, char *err, size_t errlen)
{
    static const char *const ekus[CLI_CERT_N] = {"serverAuth", "serverAuth,clientAuth",
                                                 "clientAuth", "clientAuth"};
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    X509 *ca = ca_key ? make_cert("netreel local CA", ca_key, NULL, NULL, NULL) : NULL;
    int rc = ca ? 0 : -EPROTO;

    /* The leaves first, the CA last: a set cut short by a crash does not chain, and is made
     * again on the next start. */
    for (int i = 0; rc == 0 && i < CLI_CERT_N; i++) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = k ? make_cert(cli_cert_names[i], k, ca, ca_key, ekus[i]) : NULL;
        if (!x)
            rc = -EPROTO;
        if (rc == 0 && (rc = write_pem(c->key[i], NULL, k)) != 0)
            snprintf(err, errlen, "cannot write %s: %s", c->key[i], nr_strerror(rc));
        if (rc == 0 && (rc = write_pem(c->cert[i], x, NULL)) != 0)
            snprintf(err, errlen, "cannot write %s: %s", c->cert[i], nr_strerror(rc));
        X509_free(x);
        EVP_PKEY_free(k);
    }
    if (rc == 0 && (rc = write_pem(c->ca, ca, NULL)) != 0)
        snprintf(err, errlen, "cannot write %s: %s", c->ca, nr_strerror(rc));
    if (rc == -EPROTO) {
        unsigned long e = ERR_peek_last_error();
        snprintf(err, errlen, "cannot make the certificates with OpenSSL: %s",
                 e ? ERR_reason_error_string(e) : "unknown error");
    }
    ERR_clear_error();
    X509_free(ca);
    EVP_PKEY_free(ca_key); /* the CA's key is never written: nobody can sign with it later */
    return rc;
}

int cli_certs_ensure(const char *data, struct cli_certs *c, char *made, size_t made_len, char *err,
                     size_t errlen)
{
    char why[PATH_MAX + 128];
    struct stat st;
    bool first;
    int rc;

    cli_certs_paths(data, c);
    made[0] = 0;
    first = stat(c->dir, &st) != 0;
    if ((rc = private_dir(c->dir, err, errlen)) != 0)
        return rc;
    if (!first && check_set(c, why, sizeof(why)) == 0)
        return 0;
    if (first || (access(c->ca, F_OK) != 0 && errno == ENOENT))
        snprintf(made, made_len,
                 "made a CA and certificates for store, hub, capture and the "
                 "CLI in %s (mTLS between all of them)",
                 c->dir);
    else
        snprintf(made, made_len, "%s: made a new CA and certificates in %s", why, c->dir);
    return make_set(c, err, errlen);
}

/* ---- the token and the hub's address ---- */

static bool is_token(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n != 2 * CLI_TOKEN_BYTES)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int cli_token_ensure(const char *data, char *path, size_t len, bool *made, char *err, size_t errlen)
{
    unsigned char rnd[CLI_TOKEN_BYTES];
    char text[2 * CLI_TOKEN_BYTES + 2], buf[256];
    ssize_t n;
    int rc;

    snprintf(path, len, "%s/hub.token", data);
    *made = false;
    n = read_private(path, buf, sizeof(buf));
    if (n > 0 && is_token(buf, (size_t)n))
        return 0;
    OPENSSL_cleanse(buf, sizeof(buf));
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "cannot make a token: OpenSSL has no randomness");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(text + 2 * i, 3, "%02x", rnd[i]);
    text[2 * CLI_TOKEN_BYTES] = '\n';
    text[2 * CLI_TOKEN_BYTES + 1] = 0;
    OPENSSL_cleanse(rnd, sizeof(rnd));
    rc = cli_write_private(data, "hub.token", text, 2 * CLI_TOKEN_BYTES + 1);
    OPENSSL_cleanse(text, sizeof(text));
    if (rc != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, nr_strerror(rc));
        return rc;
    }
    *made = true;
    return 0;
}

int cli_hub_addr_write(const char *data, const char *addr, char *err, size_t errlen)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "%s\n", addr);
    int rc = cli_write_private(data, "hub.addr", line, (size_t)n);

    if (rc != 0)
        snprintf(err, errlen, "cannot write %s/hub.addr: %s", data, nr_strerror(rc));
    return rc;
}

int cli_hub_addr_read(const char *data, char *addr, size_t len)
{
    char path[PATH_MAX], buf[300], host[256], err[128];
    int fd;
    ssize_t n;
    uint16_t port;

    snprintf(path, sizeof(path), "%s/hub.addr", data);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return -EIO;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = 0;
    if (n == 0 || strlen(buf) != (size_t)n ||
        nr_addr_split(buf, host, sizeof(host), &port, err, sizeof(err)) != 0 || !host[0])
        return -EINVAL;
    snprintf(addr, len, "%s", buf);
    return 0;
}

void cli_hub_addr_remove(const char *data)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/hub.addr", data);
    unlink(path);
}
