/* ssl_offsets: finds, empirically, the offsets inside OpenSSL's opaque ssl_st / SSL_SESSION /
 * SSL_CIPHER / BIO of the libssl this program runs against, by doing TLS 1.2 and 1.3 handshakes
 * over a socketpair with a keylog callback and searching the structs for the known values.
 * Prints them and checks them against a candidate table (ecapture's 3.0.12+ numbers).
 * Build: cc -O2 -o ssl_offsets ssl_offsets.c -lssl -lcrypto
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static char keylog[16][256];
static int nkeylog;

static void keylog_cb(const SSL *ssl, const char *line)
{
    (void)ssl;
    if (nkeylog < 16)
        snprintf(keylog[nkeylog++], sizeof(keylog[0]), "%s", line);
}

static int unhex(const char *s, unsigned char *out, size_t max)
{
    size_t n = 0;
    while (s[0] && s[1] && n < max) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (unsigned char)v;
        s += 2;
    }
    return (int)n;
}

/* secret bytes of the keylog line with this label (NULL if none) */
static int keylog_secret(const char *label, unsigned char *out)
{
    for (int i = 0; i < nkeylog; i++) {
        size_t l = strlen(label);
        if (strncmp(keylog[i], label, l) == 0 && keylog[i][l] == ' ') {
            const char *sp = strchr(keylog[i] + l + 1, ' ');
            return sp ? unhex(sp + 1, out, 64) : 0;
        }
    }
    return 0;
}

static long find(const void *hay, size_t haylen, const void *needle, size_t n)
{
    for (size_t i = 0; i + n <= haylen; i++)
        if (memcmp((const char *)hay + i, needle, n) == 0)
            return (long)i;
    return -1;
}

/* HKDF-Expand-Label(secret, label, ctx, len) of RFC 8446 7.1, one HMAC block (len <= hash) */
static void hkdf_expand_label(const EVP_MD *md, const unsigned char *secret, size_t slen,
                              const char *label, const unsigned char *ctx, size_t clen,
                              unsigned char *out, size_t len)
{
    unsigned char info[600], t[EVP_MAX_MD_SIZE];
    size_t i = 0, ll = 6 + strlen(label);
    unsigned tl = 0;
    info[i++] = (unsigned char)(len >> 8);
    info[i++] = (unsigned char)len;
    info[i++] = (unsigned char)ll;
    memcpy(info + i, "tls13 ", 6);
    memcpy(info + i + 6, label, ll - 6);
    i += ll;
    info[i++] = (unsigned char)clen;
    memcpy(info + i, ctx, clen);
    i += clen;
    info[i++] = 1;
    HMAC(md, secret, (int)slen, info, i, t, &tl);
    memcpy(out, t, len);
}

static int run(int version, const char *cert, const char *key)
{
    int sv[2], rc = 1;
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method()), *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    SSL_CTX_set_keylog_callback(cctx, keylog_cb);
    if (SSL_CTX_use_certificate_file(sctx, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "cert/key\n");
        return 1;
    }
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    SSL_set_fd(c, sv[0]);
    SSL_set_fd(s, sv[1]);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    nkeylog = 0;
    /* blocking sockets, small messages: client write triggers its handshake half; interleave
     * by making both non-blocking */
    BIO_socket_nbio(sv[0], 1);
    BIO_socket_nbio(sv[1], 1);
    for (int i = 0; i < 100 && (!SSL_is_init_finished(c) || !SSL_is_init_finished(s)); i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    char buf[64];
    SSL_write(c, "ping", 4);
    for (int i = 0; i < 10 && SSL_read(s, buf, sizeof buf) <= 0; i++)
        SSL_write(c, "", 0);
    SSL_write(s, "pong", 4);
    for (int i = 0; i < 10 && SSL_read(c, buf, sizeof buf) <= 0; i++)
        ;

    const unsigned char *ssl = (const unsigned char *)c;
    size_t sslsz = 0x1000; /* ssl_st is ~0x9c0 in 3.0 (calloc'd; reading a little more is ok) */
    unsigned char cr[32], mk[64], sec[64];
    SSL_get_client_random(c, cr, sizeof cr);
    SSL_SESSION *sess = SSL_get_session(c);
    size_t mklen = SSL_SESSION_get_master_key(sess, mk, sizeof mk);
    const SSL_CIPHER *ciph = SSL_SESSION_get0_cipher(sess);
    uint32_t cid = SSL_CIPHER_get_id(ciph);
    BIO *rbio = SSL_get_rbio(c);
    int fd = SSL_get_fd(c);

    printf("== %s (%s, cipher 0x%08x, %d keylog lines)\n", SSL_get_version(c),
           SSL_CIPHER_get_name(ciph), cid, nkeylog);
    printf("ssl_st.version               %#lx\n", find(ssl, 16, &(int){version}, 4));
    /* the server flag: 1 in the server's SSL, 0 in the client's, at the same offset */
    long srv = -1;
    for (long o = 0; o < 0x100 && srv < 0; o += 4)
        if (*(const int *)((const char *)s + o) == 1 && *(const int *)(ssl + o) == 0 &&
            SSL_is_server(s) == 1)
            srv = o;
    printf("ssl_st.server (first int 1 in server, 0 in client) %#lx\n", srv);
    printf("ssl_st.rbio                  %#lx\n", find(ssl, sslsz, &rbio, 8));
    printf("ssl_st.session               %#lx\n", find(ssl, sslsz, &sess, 8));
    printf("ssl_st.s3.client_random      %#lx\n", find(ssl, sslsz, cr, 32));
    printf("bio_st.num (fd %d)            %#lx\n", fd, find(rbio, 0x40, &fd, 4));
    printf("ssl_session_st.master_key    %#lx (len %zu)\n", find(sess, 0x400, mk, mklen), mklen);
    printf("ssl_session_st.master_key_length %#lx\n", find(sess, 0x50, &(size_t){mklen}, 8));
    printf("ssl_session_st.cipher        %#lx\n", find(sess, 0x400, &ciph, 8));
    printf("ssl_cipher_st.id             %#lx\n", find(ciph, 0x40, &cid, 4));
    if (version == TLS1_3_VERSION) {
        int n;
        long cats = -1, sats = -1, ems = -1;
        if ((n = keylog_secret("CLIENT_TRAFFIC_SECRET_0", sec)) > 0)
            cats = find(ssl, sslsz, sec, (size_t)n);
        if ((n = keylog_secret("SERVER_TRAFFIC_SECRET_0", sec)) > 0)
            sats = find(ssl, sslsz, sec, (size_t)n);
        if ((n = keylog_secret("EXPORTER_SECRET", sec)) > 0)
            ems = find(ssl, sslsz, sec, (size_t)n);
        printf("ssl_st.client_app_traffic_secret %#lx\n", cats);
        printf("ssl_st.server_app_traffic_secret %#lx\n", sats);
        printf("ssl_st.exporter_master_secret    %#lx\n", ems);
        /* handshake_secret and handshake_traffic_hash are not logged: find the pair of offsets
         * from which HKDF-Expand-Label(hs, "c hs traffic", hth) gives the logged secret */
        unsigned char chts[64], d[64];
        int hl = keylog_secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", chts);
        const EVP_MD *md = hl == 48 ? EVP_sha384() : EVP_sha256();
        long hs = -1, hth = -1;
        for (long a = 0; a + 64 <= (long)sslsz && hs < 0; a += 4)
            for (long b = 0; b + 64 <= (long)sslsz; b += 4) {
                hkdf_expand_label(md, ssl + a, hl, "c hs traffic", ssl + b, hl, d, hl);
                if (memcmp(d, chts, hl) == 0) {
                    hs = a;
                    hth = b;
                    break;
                }
            }
        printf("ssl_st.handshake_secret      %#lx\n", hs);
        printf("ssl_st.handshake_traffic_hash %#lx\n", hth);
    }
    rc = 0;
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cert = argc > 2 ? argv[1] : "cert.pem", *key = argc > 2 ? argv[2] : "key.pem";
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    return run(TLS1_2_VERSION, cert, key) | run(TLS1_3_VERSION, cert, key);
}
