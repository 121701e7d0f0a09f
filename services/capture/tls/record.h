/* The records tls.bpf.c sends to the capture through its ring buffer: one header and up to
 * CAPTURE_TLS_CHUNK bytes of plaintext. Shared by the BPF side and user space: fixed-width types
 * only. User space trusts none of these lengths (see synth.h). */
#ifndef NR_CAPTURE_TLS_RECORD_H
#define NR_CAPTURE_TLS_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CAPTURE_TLS_CHUNK        16384 /* plaintext bytes per record */
#define CAPTURE_TLS_MAX_CHUNKS   64    /* per SSL call: 1 MiB; the rest is reported lost */
#define CAPTURE_TLS_MAX_EXCLUDED 64    /* tgids never traced (the capture's own) */

enum capture_tls_dir {
    CAPTURE_TLS_WRITE = 0, /* from the traced process */
    CAPTURE_TLS_READ = 1,  /* to it */
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

#endif
