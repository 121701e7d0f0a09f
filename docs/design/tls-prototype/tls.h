/* tls.h: the records the BPF side (tls.bpf.c) sends to user space through the ring buffer, and
 * the per-libssl offsets table user space gives it. Shared by both sides: fixed-width types only.
 */
#ifndef TLS_PROTO_H
#define TLS_PROTO_H

#define TLS_CHUNK 16384 /* plaintext bytes per data record */
#define TLS_MAX_CHUNKS 64 /* per SSL_read/SSL_write call: 1 MiB; the rest is reported lost */
#define TLS_MAX_LIBS 16 /* distinct libssl builds (offset tables), index = uprobe cookie */

enum tls_rec_type { TLS_REC_DATA = 1, TLS_REC_SECRETS = 2 };
enum tls_dir { TLS_DIR_WRITE = 0, TLS_DIR_READ = 1 }; /* as seen by the traced process */

/* the connection as the kernel sees it, learned from tcp_sendmsg/tcp_recvmsg inside the call */
struct tls_tuple {
    __u16 family; /* AF_INET, AF_INET6, 0 = unknown yet */
    __u16 sport;  /* host order; local side of the traced process */
    __u16 dport;
    __u16 pad;
    __u8 saddr[16]; /* IPv4 in the first 4 bytes */
    __u8 daddr[16];
};

struct tls_data_hdr {
    __u32 type; /* TLS_REC_DATA */
    __u32 pid;
    __u32 tid;
    __u32 dir;
    __u64 ts_ns;  /* bpf_ktime_get_ns at the uretprobe (CLOCK_MONOTONIC) */
    __u64 ssl;    /* SSL* (user address): the connection key with pid */
    __u64 total;  /* bytes the call moved */
    __u64 offset; /* of this chunk within the call */
    __u32 len;    /* bytes in data[] */
    __s32 fd;     /* rbio->num via offsets, -1 if unknown */
    __u64 lost;   /* bytes of this call not sent (beyond TLS_MAX_CHUNKS, or read errors) */
    struct tls_tuple tuple;
    char comm[16];
};

struct tls_data_rec {
    struct tls_data_hdr h;
    __u8 data[TLS_CHUNK];
};

struct tls_secrets_rec {
    __u32 type; /* TLS_REC_SECRETS */
    __u32 pid;
    __u64 ssl;
    __s32 version;    /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
    __u32 cipher_id;  /* 0x0300xxxx */
    __u32 master_key_len;
    __u32 pad;
    __u8 client_random[32];
    __u8 master_key[48];                /* TLS 1.2 */
    __u8 handshake_secret[64];          /* TLS 1.3 from here on */
    __u8 handshake_traffic_hash[64];
    __u8 client_app_traffic_secret[64];
    __u8 server_app_traffic_secret[64];
    __u8 exporter_master_secret[64];
};

/* offsets inside one libssl build's structs (0 = field not used) */
struct tls_offsets {
    __u32 ssl_version;
    __u32 ssl_rbio;
    __u32 ssl_session;
    __u32 ssl_client_random;
    __u32 bio_num;
    __u32 session_master_key_length;
    __u32 session_master_key;
    __u32 session_cipher;
    __u32 cipher_id;
    __u32 ssl_handshake_secret;
    __u32 ssl_handshake_traffic_hash;
    __u32 ssl_client_app_traffic_secret;
    __u32 ssl_server_app_traffic_secret;
    __u32 ssl_exporter_master_secret;
};

#endif
