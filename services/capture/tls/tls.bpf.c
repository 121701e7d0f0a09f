// SPDX-License-Identifier: MIT OR GPL-2.0-only
/* The capture's eBPF program (--tls): uprobes on OpenSSL's SSL_read/SSL_write(_ex) send the
 * plaintext each call moved, in chunks, with the connection's 4-tuple (the fd of a read/write
 * syscall made inside the call, then the task's fd table -> struct sock, CO-RE) to a ring buffer.
 * In library files of the build the capture calibrated (the uprobe's cookie is 1), also each
 * connection's TLS secrets, once, read at the calibrated offsets (`offsets`). In any other OpenSSL
 * 3 build, each secret as libssl derives it through libcrypto's EVP_KDF_derive (public API and ABI:
 * no offsets), with the client random from the ClientHello in the socket syscalls. The capture's
 * own processes are never traced (they use OpenSSL for their mTLS). */
#include "vmlinux_min.h" /* hand-written, CO-RE: no BTF needed on the build machine */
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "record.h"

#define AF_INET  2
#define AF_INET6 10

/* The kernel takes "Dual MIT/GPL" as GPL-compatible: the GPL-only helpers (bpf_probe_read_user &
 * co.) are usable and the program keeps the project's MIT license. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct call {
    __u64 ssl;
    __u64 buf;
    __u64 outp; /* size_t * of the _ex variants, 0 otherwise */
    __u32 dir;
    __s32 fd;      /* of a syscall inside the call, -1 until one is seen */
    __u32 secrets; /* the uprobe's cookie: 1 when the library is of the calibrated build */
    __u32 pad;
    __u64 rbuf; /* the buffer of the read/recvfrom syscall in flight inside the call, 0: none */
};

struct conn_key {
    __u64 ssl;
    __u32 pid;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} rb SEC(".maps");

struct {
    /* LRU: a call whose return probe never ran (the thread died inside it) cannot fill it */
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64); /* pid_tgid: one SSL call in flight per thread */
    __type(value, struct call);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct conn_key);
    __type(value, struct capture_tls_tuple);
} tuples SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, CAPTURE_TLS_MAX_EXCLUDED);
    __type(key, __u32); /* tgid */
    __type(value, __u8);
} excluded SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct capture_tls_rec);
} scratch SEC(".maps");

/* Where the calibrated build keeps the secrets; written by the capture before any attach. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct capture_tls_offsets);
} offsets SEC(".maps");

/* Connections whose secrets went out: the client random they were sent for (an SSL* reused for
 * a new connection has a new one). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct conn_key);
    __type(value, __u8[32]);
} secrets_sent SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct capture_tls_secrets);
} secrets_scratch SEC(".maps");

/* 0: every process is traced; 1: only those whose network namespace is in `pod_netns` (the
 * targeted pods'). Written by user space after pod_netns is up to date. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} netns_mode SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, CAPTURE_TLS_MAX_POD_NETNS);
    __type(key, __u32); /* the network namespace's inode number */
    __type(value, __u8);
} pod_netns SEC(".maps");

/* The client random of each connection, from its ClientHello as written or read by the socket
 * syscalls inside an SSL call (a HelloRetryRequest's second ClientHello has the same). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct conn_key);
    __type(value, __u8[32]);
} randoms SEC(".maps");

/* An EVP_KDF_derive call of a traced SSL call whose output is a key log secret: what its return
 * probe needs. One per thread. */
struct kdf_call {
    __u64 out; /* TLS 1.3: where the secret is written; 0 for TLS 1.2 (read at the entry) */
    struct capture_tls_kdf_secret s;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct kdf_call);
} kdf_calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kdf_call);
} kdf_scratch SEC(".maps");

/* 0: records dropped (ring full), 1: plaintext bytes lost, 2: SSL calls that moved bytes,
 * 3: EVP_KDF_derive calls trapped (any process mapping a traced libcrypto), 4: key derivation
 * secrets sent, 5: TLS 1.3 key derivation secrets lost for want of the client random */
#define CAPTURE_TLS_COUNTERS 6
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, CAPTURE_TLS_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 i, __u64 n)
{
    __u64 *v = bpf_map_lookup_elem(&counters, &i);

    if (v)
        *v += n;
}

/* With pod targeting (netns_mode 1): whether the current task runs in a targeted pod's network
 * namespace. A new process of a pod is in it from its first instruction: no race with a scan. */
static __always_inline int in_targeted_pod(void)
{
    __u32 zero = 0, inum;
    __u32 *mode = bpf_map_lookup_elem(&netns_mode, &zero);
    struct task_struct *task;

    if (!mode || *mode == 0)
        return 1;
    task = (struct task_struct *)bpf_get_current_task();
    inum = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
    return inum && bpf_map_lookup_elem(&pod_netns, &inum) != NULL;
}

/* Not the capture itself (its pid is in `excluded`) nor any netreel program; with pod
 * targeting, only processes of targeted pods. */
static __always_inline int traced(__u32 tgid)
{
    static const char own[] = "netreel";
    char comm[16];
    int own_prog = 1;

    if (bpf_map_lookup_elem(&excluded, &tgid))
        return 0;
    bpf_get_current_comm(comm, sizeof(comm));
    for (int i = 0; i < (int)sizeof(own) - 1; i++)
        if (comm[i] != own[i])
            own_prog = 0;
    return !own_prog && in_targeted_pod();
}

static __always_inline int enter(struct pt_regs *ctx, __u32 dir, int ex)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct call c = {
        .ssl = PT_REGS_PARM1(ctx),
        .buf = PT_REGS_PARM2(ctx),
        .outp = ex ? PT_REGS_PARM4(ctx) : 0,
        .dir = dir,
        .fd = -1,
        .secrets = bpf_get_attach_cookie(ctx) == 1,
    };

    if (!traced(id >> 32))
        return 0;
    bpf_map_update_elem(&calls, &id, &c, BPF_ANY);
    return 0;
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx)
{
    return enter(ctx, CAPTURE_TLS_WRITE, 0);
}

SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx)
{
    return enter(ctx, CAPTURE_TLS_WRITE, 1);
}

SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx)
{
    return enter(ctx, CAPTURE_TLS_READ, 0);
}

SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx)
{
    return enter(ctx, CAPTURE_TLS_READ, 1);
}

/* The handshake moves no plaintext, but its syscalls show the connection's fd: the 4-tuple is
 * then cached before the first SSL_read, which OpenSSL may serve from what it buffered during
 * the handshake (no syscall, so no fd of its own). Without it such a connection would start
 * with a placeholder address and change to the real one mid-stream. */
SEC("uprobe")
int ssl_handshake_enter(struct pt_regs *ctx)
{
    return enter(ctx, CAPTURE_TLS_HANDSHAKE, 0);
}

static __always_inline __u32 be24(const __u8 *p)
{
    return (__u32)p[0] << 16 | (__u32)p[1] << 8 | p[2];
}

/* Keeps the client random of a ClientHello that starts at b (n bytes of it were read): a whole
 * record (`16 03 0x LL LL 01 LL LL LL 03 03 random`) or, as OpenSSL reads a record's body apart
 * from its header, the handshake message alone (`01 LL LL LL 03 03 random`), which must then be
 * the whole read. The lengths must agree: encrypted bytes pass by chance only once in 2^48. */
static __always_inline void take_client_hello(const struct call *c, const __u8 *buf, __u64 n,
                                              __u32 pid)
{
    struct conn_key k = {.ssl = c->ssl, .pid = pid};
    __u8 b[43];
    const __u8 *random;

    if (n < 38 || bpf_probe_read_user(b, n >= 43 ? 43 : 38, buf))
        return;
    if (n >= 43 && b[0] == 0x16 && b[1] == 3 && b[2] <= 4 && b[5] == 1 && b[9] == 3 && b[10] == 3 &&
        be24(b + 6) + 4 == ((__u32)b[3] << 8 | b[4]))
        random = b + 11;
    else if (b[0] == 1 && b[4] == 3 && b[5] == 3 && be24(b + 1) + 4 == n)
        random = b + 6;
    else
        return;
    bpf_map_update_elem(&randoms, &k, random, BPF_ANY);
}

/* The fd of the first read/write/send/recv syscall the thread makes inside an SSL call
 * (kubeshark's method: needs no OpenSSL struct offsets). A raw tracepoint needs no tracefs.
 * Also the ClientHello a client writes, and the buffer of a read, for sys_exit to look at. */
SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    long nr = ctx->args[1];
    __u64 id;
    struct call *c;
    struct pt_regs *regs;

    /* x86-64: read 0, write 1, readv 19, writev 20, sendto 44, recvfrom 45, sendmsg 46,
     * recvmsg 47 */
    if (!(nr == 0 || nr == 1 || nr == 19 || nr == 20 || (nr >= 44 && nr <= 47)))
        return 0;
    id = bpf_get_current_pid_tgid();
    c = bpf_map_lookup_elem(&calls, &id);
    if (!c)
        return 0;
    regs = (struct pt_regs *)ctx->args[0];
    if (c->fd < 0)
        c->fd = (int)BPF_CORE_READ(regs, di);
    if (nr == 1 || nr == 44)
        take_client_hello(c, (const __u8 *)BPF_CORE_READ(regs, si), BPF_CORE_READ(regs, dx),
                          id >> 32);
    else if (nr == 0 || nr == 45)
        c->rbuf = BPF_CORE_READ(regs, si);
    return 0;
}

/* A read inside an SSL call returned: the server's ClientHello. It must be looked at now: by the
 * next syscall OpenSSL may have released and wiped its read buffer (SSL_MODE_RELEASE_BUFFERS,
 * which CPython sets). Runs for every syscall of the node: most return less than a ClientHello
 * and go at the first test (no helper call); then only read and recvfrom get to the lookup. */
SEC("raw_tracepoint/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    long nr, ret = ctx->args[1];
    __u64 id, buf;
    struct call *c;

    if (ret < 38)
        return 0;
    nr = BPF_CORE_READ(regs, orig_ax);
    if (nr != 0 && nr != 45)
        return 0;
    id = bpf_get_current_pid_tgid();
    c = bpf_map_lookup_elem(&calls, &id);
    if (!c || !c->rbuf)
        return 0;
    buf = c->rbuf;
    c->rbuf = 0;
    take_client_hello(c, (const __u8 *)buf, (__u64)ret, id >> 32);
    return 0;
}

/* fd -> struct sock -> 4-tuple through the current task's fd table. Runs in the traced thread
 * (uretprobe), so "current" owns the fd. */
static __always_inline int tuple_from_fd(int fd, struct capture_tls_tuple *t)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
    unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
    struct file *f = NULL;
    struct socket *sock;
    struct sock *sk;

    if (fd < 0 || (unsigned int)fd >= max)
        return -1;
    if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
        return -1;
    sock = BPF_CORE_READ(f, private_data);
    if (!sock || BPF_CORE_READ(sock, file) != f) /* the private_data of a file not a socket */
        return -1;
    sk = BPF_CORE_READ(sock, sk);
    if (!sk)
        return -1;
    t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
    t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
    t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    t->pad = 0;
    /* BPF_CORE_READ_INTO on an array reads one element: read the bytes. */
    if (t->family == AF_INET) {
        bpf_core_read(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
        bpf_core_read(t->daddr, 4, &sk->__sk_common.skc_daddr);
    } else if (t->family == AF_INET6) {
        bpf_core_read(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
        bpf_core_read(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
    } else {
        return -1; /* AF_UNIX and the like: no 4-tuple */
    }
    return 0;
}

static __always_inline int same32(const __u8 *a, const __u8 *b)
{
    for (int i = 0; i < 32; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* The connection's secrets, once: at its first call that moved data the handshake is done.
 * offsets.c read_secrets makes the same reads (and its tests prove them). */
static __always_inline void send_secrets(__u64 ssl_addr, __u32 pid)
{
    const __u8 *ssl = (const __u8 *)ssl_addr;
    struct conn_key k = {.ssl = ssl_addr, .pid = pid};
    __u32 zero = 0;
    __u64 sess = 0, cipher = 0;
    struct capture_tls_offsets *o = bpf_map_lookup_elem(&offsets, &zero);
    struct capture_tls_secrets *s = bpf_map_lookup_elem(&secrets_scratch, &zero);
    __u8 *sent;

    if (!o || !s || !o->ssl_client_random)
        return;
    if (bpf_probe_read_user(s->client_random, 32, ssl + o->ssl_client_random))
        return;
    sent = bpf_map_lookup_elem(&secrets_sent, &k);
    if (sent && same32(sent, s->client_random))
        return;
    s->type = CAPTURE_TLS_REC_SECRETS;
    s->pid = pid;
    s->ssl = ssl_addr;
    s->version = 0;
    s->cipher_id = 0;
    s->master_key_len = 0;
    __builtin_memset(s->client_app_traffic_secret, 0, sizeof(s->client_app_traffic_secret));
    __builtin_memset(s->server_app_traffic_secret, 0, sizeof(s->server_app_traffic_secret));
    __builtin_memset(s->master_key, 0, sizeof(s->master_key));
    __builtin_memset(s->handshake_secret, 0, sizeof(s->handshake_secret));
    __builtin_memset(s->handshake_traffic_hash, 0, sizeof(s->handshake_traffic_hash));
    bpf_probe_read_user(&s->version, 4, ssl + o->ssl_version);
    bpf_probe_read_user(&sess, 8, ssl + o->ssl_session);
    if (sess) {
        bpf_probe_read_user(&s->master_key_len, 8,
                            (const __u8 *)sess + o->session_master_key_length);
        bpf_probe_read_user(s->master_key, 48, (const __u8 *)sess + o->session_master_key);
        bpf_probe_read_user(&cipher, 8, (const __u8 *)sess + o->session_cipher);
        if (cipher)
            bpf_probe_read_user(&s->cipher_id, 4, (const __u8 *)cipher + o->cipher_id);
    }
    if (s->version == 0x0304) {
        if (o->ssl_handshake_secret) {
            bpf_probe_read_user(s->handshake_secret, CAPTURE_TLS_SECRET_MAX,
                                ssl + o->ssl_handshake_secret);
            bpf_probe_read_user(s->handshake_traffic_hash, CAPTURE_TLS_SECRET_MAX,
                                ssl + o->ssl_handshake_traffic_hash);
        }
        bpf_probe_read_user(s->client_app_traffic_secret, CAPTURE_TLS_SECRET_MAX,
                            ssl + o->ssl_client_app_traffic_secret);
        bpf_probe_read_user(s->server_app_traffic_secret, CAPTURE_TLS_SECRET_MAX,
                            ssl + o->ssl_server_app_traffic_secret);
        bpf_probe_read_user(s->exporter_master_secret, CAPTURE_TLS_SECRET_MAX,
                            ssl + o->ssl_exporter_master_secret);
    }
    /* Not all there yet (a TLS 1.3 server writing before its client's Finished has no client
     * traffic secret): not sent, not marked, read again at the connection's next call. */
    if (s->version == 0x0304 ? *(__u64 *)s->client_app_traffic_secret == 0 ||
                                   *(__u64 *)s->server_app_traffic_secret == 0
                             : s->master_key_len == 0)
        return;
    if (bpf_ringbuf_output(&rb, s, sizeof(*s), 0) == 0)
        bpf_map_update_elem(&secrets_sent, &k, s->client_random, BPF_ANY);
    else
        count(0, 1); /* not marked sent: the next call tries again */
}

SEC("uretprobe")
int ssl_handshake_ret(struct pt_regs *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct call *cp = bpf_map_lookup_elem(&calls, &id);
    struct capture_tls_tuple t = {0};
    struct conn_key k = {0};
    int fd;

    if (!cp)
        return 0;
    k.ssl = cp->ssl;
    k.pid = id >> 32;
    fd = cp->fd;
    bpf_map_delete_elem(&calls, &id);
    if (fd >= 0 && tuple_from_fd(fd, &t) == 0)
        bpf_map_update_elem(&tuples, &k, &t, BPF_ANY);
    return 0;
}

SEC("uretprobe")
int ssl_ret(struct pt_regs *ctx)
{
    __u64 id = bpf_get_current_pid_tgid(), n = 0, lost = 0;
    __u32 zero = 0;
    struct call c, *cp = bpf_map_lookup_elem(&calls, &id);
    struct capture_tls_rec *r;
    struct conn_key k = {0};
    struct capture_tls_tuple *t;
    long ret;

    if (!cp)
        return 0;
    c = *cp;
    bpf_map_delete_elem(&calls, &id);
    ret = PT_REGS_RC(ctx);
    if (c.outp) {
        if ((int)ret == 1 && bpf_probe_read_user(&n, sizeof(n), (void *)c.outp))
            n = 0;
    } else if ((int)ret > 0) {
        n = (__u32)ret;
    }
    if (n == 0)
        return 0;
    count(2, 1);
    if (c.secrets)
        send_secrets(c.ssl, id >> 32);
    r = bpf_map_lookup_elem(&scratch, &zero);
    if (!r)
        return 0;
    k.ssl = c.ssl;
    k.pid = id >> 32;
    /* A fresh walk whenever the call showed its fd (an SSL* may be reused for a new
     * connection); the cached tuple when it did not (a read served from OpenSSL's buffer). */
    if (c.fd >= 0 && tuple_from_fd(c.fd, &r->h.tuple) == 0) {
        bpf_map_update_elem(&tuples, &k, &r->h.tuple, BPF_ANY);
    } else {
        t = bpf_map_lookup_elem(&tuples, &k);
        if (t)
            r->h.tuple = *t;
        else
            __builtin_memset(&r->h.tuple, 0, sizeof(r->h.tuple));
    }
    r->h.type = CAPTURE_TLS_REC_DATA;
    r->h.pad0 = 0;
    r->h.pid = id >> 32;
    r->h.tid = (__u32)id;
    r->h.dir = c.dir;
    r->h.ts_ns = bpf_ktime_get_ns();
    r->h.ssl = c.ssl;
    bpf_get_current_comm(r->h.comm, sizeof(r->h.comm));
    for (__u32 i = 0; i < CAPTURE_TLS_MAX_CHUNKS; i++) {
        __u64 off = (__u64)i * CAPTURE_TLS_CHUNK;
        __u32 len;

        if (off >= n)
            break;
        len = n - off > CAPTURE_TLS_CHUNK ? CAPTURE_TLS_CHUNK : n - off;
        asm volatile("" : "+r"(len)); /* keep the bound check below for the verifier */
        if (len > CAPTURE_TLS_CHUNK)
            len = CAPTURE_TLS_CHUNK;
        r->h.offset = off;
        r->h.len = len;
        r->h.lost = 0;
        if (i == CAPTURE_TLS_MAX_CHUNKS - 1 && n > off + len)
            r->h.lost = n - off - len; /* the call was cut: user space leaves a gap */
        if (bpf_probe_read_user(r->data, len, (void *)(c.buf + off))) {
            lost += len;
            continue;
        }
        if (bpf_ringbuf_output(&rb, r, sizeof(r->h) + len, 0)) {
            count(0, 1);
            lost += len;
        }
    }
    if (n > (__u64)CAPTURE_TLS_MAX_CHUNKS * CAPTURE_TLS_CHUNK)
        lost += n - (__u64)CAPTURE_TLS_MAX_CHUNKS * CAPTURE_TLS_CHUNK;
    if (lost)
        count(1, lost);
    return 0;
}

/* struct ossl_param_st (openssl/core.h): public ABI of OpenSSL 3. */
struct ossl_param {
    __u64 key; /* const char *, NULL ends the array */
    __u32 data_type;
    __u32 pad;
    __u64 data;
    __u64 data_size;
    __u64 return_size;
};

#define KDF_PARAMS_MAX 8 /* TLS1-PRF: digest, secret, 5 seeds, end; TLS13-KDF: 6 and end */

/* What the walk over the parameters found. In a map value, not on the stack: the verifier then
 * does not follow each combination of findings through every turn of the loop. */
struct kdf_scan {
    __u64 secret, secret_len, cr;
    __u32 seeds, label, key_expansion, tls13;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kdf_scan);
} kdf_scan_scratch SEC(".maps");

/* Up to 16 bytes of a string literal as two words (little-endian, zero-padded): names and labels
 * compare in one or two instructions. Folded at compile time. */
struct word2 {
    __u64 lo, hi;
};

#define WORD2(lit)                                                               \
    ({                                                                           \
        struct word2 w_ = {0, 0};                                                \
        __builtin_memcpy(&w_, lit, sizeof(lit) - 1 < 16 ? sizeof(lit) - 1 : 16); \
        w_;                                                                      \
    })

/* The key log label of a TLS13-KDF "label" parameter of n bytes (read into w, zero-padded), 0 for
 * the others ("key", "iv", "derived", "finished"...). */
static __always_inline __u32 tls13_label(struct word2 w)
{
    struct word2 c_hs = WORD2("c hs traffic"), s_hs = WORD2("s hs traffic"),
                 c_ap = WORD2("c ap traffic"), s_ap = WORD2("s ap traffic"),
                 c_e = WORD2("c e traffic"), exp = WORD2("exp master");

    if (w.lo == c_hs.lo && w.hi == c_hs.hi)
        return CAPTURE_TLS_KDF_CLIENT_HANDSHAKE;
    if (w.lo == s_hs.lo && w.hi == s_hs.hi)
        return CAPTURE_TLS_KDF_SERVER_HANDSHAKE;
    if (w.lo == c_ap.lo && w.hi == c_ap.hi)
        return CAPTURE_TLS_KDF_CLIENT_TRAFFIC_0;
    if (w.lo == s_ap.lo && w.hi == s_ap.hi)
        return CAPTURE_TLS_KDF_SERVER_TRAFFIC_0;
    if (w.lo == c_e.lo && w.hi == c_e.hi)
        return CAPTURE_TLS_KDF_CLIENT_EARLY;
    if (w.lo == exp.lo && w.hi == exp.hi)
        return CAPTURE_TLS_KDF_EXPORTER;
    return 0;
}

/* One parameter into the scan. Its name and value are the traced process's: a read that fails
 * leaves the finding out. */
static __always_inline void kdf_param(struct kdf_scan *f, const struct ossl_param *p)
{
    struct word2 name = {0, 0}, v = {0, 0};
    __u64 n = p->data_size;

    if (bpf_probe_read_user_str(&name.lo, sizeof(name.lo), (const void *)p->key) < 0)
        return;
    if (name.lo == WORD2("secret").lo) {
        f->secret = p->data;
        f->secret_len = n;
    } else if (name.lo == WORD2("seed").lo) {
        f->seeds++;
        if (f->seeds == 1 && n == 13 && bpf_probe_read_user(&v, 13, (const void *)p->data) == 0)
            f->key_expansion =
                v.lo == WORD2("key expansion").lo && v.hi == WORD2("key expansion").hi;
        else if (f->seeds == 3 && n == 32)
            f->cr = p->data;
    } else if (name.lo == WORD2("prefix").lo) {
        f->tls13 = n == 6 && bpf_probe_read_user(&v, 6, (const void *)p->data) == 0 &&
                   v.lo == WORD2("tls13 ").lo;
    } else if (name.lo == WORD2("label").lo) {
        if (n >= 10 && n <= 12 && bpf_probe_read_user(&v, 12, (const void *)p->data) == 0) {
            v.hi &= n == 10 ? 0xffff : n == 11 ? 0xffffff : 0xffffffff; /* its n bytes only */
            f->label = tls13_label(v);
        }
    }
}

/* EVP_KDF_derive(ctx, key, keylen, params) inside a traced SSL call of a library not of the
 * calibrated build: TLS 1.2's key expansion (TLS1-PRF: secret = the master secret, seeds "key
 * expansion", server random, client random) gives the CLIENT_RANDOM line whole; TLS 1.3's
 * HKDF-Expand-Label (TLS13-KDF: prefix "tls13 ", label) of a key log secret is kept for the
 * return probe. Nothing the process passes is trusted: a read that fails skips the call. */
SEC("uprobe")
int kdf_enter(struct pt_regs *ctx)
{
    __u64 id = bpf_get_current_pid_tgid(), params = PT_REGS_PARM4(ctx);
    __u64 keylen = PT_REGS_PARM3(ctx);
    __u32 zero = 0;
    struct call *c = bpf_map_lookup_elem(&calls, &id);
    struct kdf_scan *f;
    struct kdf_call *k;

    count(3, 1);
    if (!c || c->secrets || !params)
        return 0;
    f = bpf_map_lookup_elem(&kdf_scan_scratch, &zero);
    k = bpf_map_lookup_elem(&kdf_scratch, &zero);
    if (!f || !k)
        return 0;
    __builtin_memset(f, 0, sizeof(*f));
    for (int i = 0; i < KDF_PARAMS_MAX; i++) {
        struct ossl_param p;

        if (bpf_probe_read_user(&p, sizeof(p), (const void *)(params + i * sizeof(p))) || !p.key)
            break;
        kdf_param(f, &p);
    }
    __builtin_memset(&k->s, 0, sizeof(k->s));
    k->s.type = CAPTURE_TLS_REC_KDF;
    k->s.pid = id >> 32;
    k->s.ssl = c->ssl;
    if (f->key_expansion && f->secret && f->secret_len == 48 && f->cr) {
        if (bpf_probe_read_user(k->s.secret, 48, (const void *)f->secret) ||
            bpf_probe_read_user(k->s.client_random, 32, (const void *)f->cr))
            return 0;
        k->out = 0;
        k->s.label = CAPTURE_TLS_KDF_CLIENT_RANDOM;
        k->s.secret_len = 48;
    } else if (f->tls13 && f->label && keylen >= 32 && keylen <= CAPTURE_TLS_SECRET_MAX) {
        k->out = PT_REGS_PARM2(ctx);
        k->s.label = f->label;
        k->s.secret_len = keylen;
    } else {
        return 0;
    }
    bpf_map_update_elem(&kdf_calls, &id, k, BPF_ANY);
    return 0;
}

SEC("uretprobe")
int kdf_ret(struct pt_regs *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 zero = 0;
    struct kdf_call *k = bpf_map_lookup_elem(&kdf_scratch, &zero), *saved;
    struct conn_key ck = {0};
    __u8 *random;
    __u64 len;

    saved = bpf_map_lookup_elem(&kdf_calls, &id);
    if (!saved || !k)
        return 0;
    *k = *saved;
    bpf_map_delete_elem(&kdf_calls, &id);
    if ((int)PT_REGS_RC(ctx) <= 0)
        return 0;
    if (k->out) {
        len = k->s.secret_len;
        asm volatile("" : "+r"(len)); /* keep the bound check below for the verifier */
        if (len == 0 || len > CAPTURE_TLS_SECRET_MAX)
            return 0;
        if (bpf_probe_read_user(k->s.secret, len, (const void *)k->out))
            return 0;
        ck.ssl = k->s.ssl;
        ck.pid = k->s.pid;
        random = bpf_map_lookup_elem(&randoms, &ck);
        if (!random) {
            count(5, 1);
            return 0;
        }
        __builtin_memcpy(k->s.client_random, random, 32);
    }
    if (bpf_ringbuf_output(&rb, &k->s, sizeof(k->s), 0) == 0)
        count(4, 1);
    else
        count(0, 1);
    return 0;
}
