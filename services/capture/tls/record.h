/* The records tls.bpf.c sends to the capture through its ring buffer: plaintext (one header and
 * up to CAPTURE_TLS_CHUNK bytes), a connection's TLS secrets or one secret of OpenSSL 3's key
 * derivation, told apart by their first field;
 * and the struct offsets the capture calibrated (offsets.h) that the BPF side reads secrets at.
 * Shared by the BPF side and user space: fixed-width types only. User space trusts none of these
 * lengths (see synth.h, keylog.h). */
#ifndef NR_CAPTURE_TLS_RECORD_H
#define NR_CAPTURE_TLS_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CAPTURE_TLS_CHUNK         16384 /* plaintext bytes per record */
#define CAPTURE_TLS_MAX_CHUNKS    64    /* per SSL call: 1 MiB; the rest is reported lost */
#define CAPTURE_TLS_MAX_EXCLUDED  64    /* tgids never traced (the capture's own) */
#define CAPTURE_TLS_MAX_POD_NETNS 4096  /* network namespaces of targeted pods traced */

/* The first __u32 of every record. */
enum capture_tls_rec_type {
    CAPTURE_TLS_REC_DATA = 0,    /* struct capture_tls_rec */
    CAPTURE_TLS_REC_SECRETS = 1, /* struct capture_tls_secrets */
    CAPTURE_TLS_REC_KDF = 2,     /* struct capture_tls_kdf_secret */
};

enum capture_tls_dir {
    CAPTURE_TLS_WRITE = 0,     /* from the traced process */
    CAPTURE_TLS_READ = 1,      /* to it */
    CAPTURE_TLS_HANDSHAKE = 2, /* SSL_do_handshake: no plaintext, only the fd (BPF side) */
};

/* The connection's socket as the kernel sees it, from the traced process's side. */
struct capture_tls_tuple {
    __u16 family; /* AF_INET, AF_INET6, 0: not known */
    __u16 sport;  /* host order: the traced process's port */
    __u16 dport;
    __u16 pad;
    __u8 saddr[16]; /* IPv4 in the first 4 bytes */
    __u8 daddr[16];
};

struct capture_tls_hdr {
    __u32 type; /* CAPTURE_TLS_REC_DATA */
    __u32 pad0;
    __u32 pid; /* tgid */
    __u32 tid;
    __u32 dir;
    __u32 len;    /* bytes of plaintext after the header, <= CAPTURE_TLS_CHUNK */
    __u64 ts_ns;  /* bpf_ktime_get_ns (CLOCK_MONOTONIC) at the call's return */
    __u64 ssl;    /* the SSL* (with pid: the connection) */
    __u64 offset; /* of this chunk within the call */
    __u64 lost;   /* bytes after this chunk the call moved but were not sent */
    struct capture_tls_tuple tuple;
    char comm[16];
};

struct capture_tls_rec {
    struct capture_tls_hdr h;
    __u8 data[CAPTURE_TLS_CHUNK];
};

/* Where OpenSSL keeps a connection's secrets in the libssl build the capture calibrated against
 * (byte offsets; offsets.c finds them). ssl_* inside the SSL object, session_* inside its
 * SSL_SESSION, cipher_id inside the SSL_CIPHER. */
struct capture_tls_offsets {
    __u32 ssl_version;
    __u32 ssl_session;
    __u32 ssl_client_random;
    __u32 session_master_key_length; /* a size_t */
    __u32 session_master_key;
    __u32 session_cipher;
    __u32 cipher_id;
    __u32 ssl_handshake_secret; /* TLS 1.3 from here on */
    __u32 ssl_handshake_traffic_hash;
    __u32 ssl_client_app_traffic_secret;
    __u32 ssl_server_app_traffic_secret;
    __u32 ssl_exporter_master_secret;
};

#define CAPTURE_TLS_SECRET_MAX 64 /* EVP_MAX_MD_SIZE: the arrays OpenSSL keeps secrets in */

/* One connection's secrets, read once (at its first SSL call that moved data, when the
 * handshake is done). */
struct capture_tls_secrets {
    __u32 type; /* CAPTURE_TLS_REC_SECRETS */
    __u32 pid;
    __u64 ssl;
    __s32 version;   /* 0x0303 TLS 1.2, 0x0304 TLS 1.3, as the SSL object says */
    __u32 cipher_id; /* 0x0300xxxx */
    __u64 master_key_len;
    __u8 client_random[32];
    __u8 master_key[48];                           /* TLS 1.2 */
    __u8 handshake_secret[CAPTURE_TLS_SECRET_MAX]; /* TLS 1.3 from here on */
    __u8 handshake_traffic_hash[CAPTURE_TLS_SECRET_MAX];
    __u8 client_app_traffic_secret[CAPTURE_TLS_SECRET_MAX];
    __u8 server_app_traffic_secret[CAPTURE_TLS_SECRET_MAX];
    __u8 exporter_master_secret[CAPTURE_TLS_SECRET_MAX];
};

/* The key log label of a secret taken from OpenSSL 3's EVP_KDF_derive (tls.bpf.c): which
 * derivation it was the output (or, for TLS 1.2, the input) of. */
enum capture_tls_kdf_label {
    CAPTURE_TLS_KDF_CLIENT_RANDOM = 1,    /* TLS 1.2 master secret ("key expansion" PRF) */
    CAPTURE_TLS_KDF_CLIENT_EARLY = 2,     /* "c e traffic" */
    CAPTURE_TLS_KDF_CLIENT_HANDSHAKE = 3, /* "c hs traffic" */
    CAPTURE_TLS_KDF_SERVER_HANDSHAKE = 4, /* "s hs traffic" */
    CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0 = 5, /* "c ap traffic" */
    CAPTURE_TLS_KDF_SERVER_TRAFFIC_0 = 6, /* "s ap traffic" */
    CAPTURE_TLS_KDF_EXPORTER = 7,         /* "exp master" */
    CAPTURE_TLS_KDF_LABEL_MAX = 7,
};

/* One key log line's worth, from a libcrypto of any OpenSSL 3 build (no struct offsets): the
 * secret, its label, and the connection's client random (TLS 1.2: a PRF seed; TLS 1.3: from the
 * ClientHello seen in the socket syscalls made inside the SSL call). */
struct capture_tls_kdf_secret {
    __u32 type; /* CAPTURE_TLS_REC_KDF */
    __u32 pid;
    __u64 ssl;
    __u32 label;      /* enum capture_tls_kdf_label */
    __u32 secret_len; /* bytes of secret used: 48 for TLS 1.2, the hash's length for TLS 1.3 */
    __u8 client_random[32];
    __u8 secret[CAPTURE_TLS_SECRET_MAX];
};

#endif
