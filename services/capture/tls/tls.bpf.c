// SPDX-License-Identifier: MIT OR GPL-2.0-only
/* The capture's eBPF program (--tls): uprobes on OpenSSL's SSL_read/SSL_write(_ex) send the
 * plaintext each call moved, in chunks, with the connection's 4-tuple (the fd of a read/write
 * syscall made inside the call, then the task's fd table -> struct sock, CO-RE) to a ring buffer.
 * In library files of the build the capture calibrated (the uprobe's cookie is 1), also each
 * connection's TLS secrets, once, read at the calibrated offsets (`offsets`).
 * The capture's own processes are never traced (they use OpenSSL for their mTLS). */
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

/* 0: records dropped (ring full), 1: plaintext bytes lost, 2: SSL calls that moved bytes */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 3);
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

/* The fd of the first read/write/send/recv syscall the thread makes inside an SSL call
 * (kubeshark's method: needs no OpenSSL struct offsets). A raw tracepoint needs no tracefs. */
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
    if (!c || c->fd >= 0)
        return 0;
    regs = (struct pt_regs *)ctx->args[0];
    c->fd = (int)BPF_CORE_READ(regs, di);
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
