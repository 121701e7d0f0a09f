// SPDX-License-Identifier: GPL-2.0
/* tls.bpf.c: uprobes on OpenSSL's SSL_read/SSL_write(_ex) that send the plaintext (in chunks),
 * the connection's 4-tuple (fd from rbio->num or from a syscall inside the call, then the
 * current task's fd table -> struct sock) and, once
 * per connection, the TLS secrets (read at struct offsets user space supplies) to a ring buffer.
 */
#ifdef FULL_VMLINUX_H
#include "vmlinux.h" /* bpftool btf dump file /sys/kernel/btf/vmlinux format c */
#else
#include "vmlinux_min.h" /* hand-written, CO-RE: no BTF needed on the build machine */
#endif
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "tls.h"

#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "GPL";

/* set by the loader before load (benchmarks): 1 = probes only, no copy; 2 = no ring wakeups;
 * 3 = wake the reader only when 1 MiB waits */
const volatile int bench_mode = 0;
/* 1: chunks > 4 KiB are read straight into a reserved ring record (one copy) */
const volatile int one_copy = 0; /* bpf_probe_read_user & co. are GPL-only helpers */

struct call {
    __u64 ssl;
    __u64 buf;
    __u64 outp; /* size_t * of the _ex variants, 0 otherwise */
    __u32 dir;
    __u32 lib; /* index into offsets, the uprobe's cookie */
    __s32 fd;  /* learned from a syscall inside the call, -1 until then */
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
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64); /* pid_tgid: one SSL call in flight per thread */
    __type(value, struct call);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct conn_key);
    __type(value, struct tls_tuple);
} conns SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct conn_key);
    __type(value, __u8[32]); /* client_random whose secrets were sent */
} secrets_sent SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TLS_MAX_LIBS);
    __type(key, __u32);
    __type(value, struct tls_offsets);
} offsets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tls_data_rec);
} data_scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tls_secrets_rec);
} secrets_scratch SEC(".maps");

/* counters: 0 ring buffer full (records dropped), 1 bytes lost, 2 calls seen */
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

/* Waking the reader per record costs a context switch per SSL call: wake it only when 1 MiB is
 * waiting; it also polls with a short timeout (bounded latency). */
static __always_inline __u64 wakeup_flags(void)
{
    if (bench_mode == 0)
        return 0;
    if (bench_mode == 2)
        return BPF_RB_NO_WAKEUP;
    return bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA) > (1 << 20) ? BPF_RB_FORCE_WAKEUP
                                                                 : BPF_RB_NO_WAKEUP;
}

/* Prototype's target filter (netreel: a map of the targeted pods' cgroup ids, checked the same
 * way): only processes whose comm starts with comm_filter, if set. */
const volatile char comm_filter[16] = {};

static __always_inline int targeted(void)
{
    char comm[16];
    if (!comm_filter[0])
        return 1;
    bpf_get_current_comm(comm, sizeof(comm));
    for (int i = 0; i < 16 && comm_filter[i]; i++)
        if (comm[i] != comm_filter[i])
            return 0;
    return 1;
}

static __always_inline int enter(struct pt_regs *ctx, __u32 dir, int ex)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!targeted())
        return 0;
    struct call c = {
        .ssl = PT_REGS_PARM1(ctx),
        .buf = PT_REGS_PARM2(ctx),
        .outp = ex ? PT_REGS_PARM4(ctx) : 0,
        .dir = dir,
        .lib = (__u32)bpf_get_attach_cookie(ctx),
        .fd = -1,
    };
    bpf_map_update_elem(&calls, &id, &c, BPF_ANY);
    return 0;
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx) { return enter(ctx, TLS_DIR_WRITE, 0); }
SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx) { return enter(ctx, TLS_DIR_WRITE, 1); }
SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx) { return enter(ctx, TLS_DIR_READ, 0); }
SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx) { return enter(ctx, TLS_DIR_READ, 1); }

/* fd -> struct sock -> 4-tuple, walking the current task's fd table (CO-RE). Run in the traced
 * thread (uretprobe), so "current" owns the fd. */
static __always_inline int tuple_from_fd(int fd, struct tls_tuple *t)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
    unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
    struct file *f = NULL;
    if (fd < 0 || (unsigned int)fd >= max)
        return -1;
    if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
        return -1;
    struct socket *sock = BPF_CORE_READ(f, private_data);
    if (!sock || BPF_CORE_READ(sock, file) != f) /* private_data of a non-socket file */
        return -1;
    struct sock *sk = BPF_CORE_READ(sock, sk);
    if (!sk)
        return -1;
    t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
    t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
    t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (t->family == AF_INET) {
        bpf_core_read(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
        bpf_core_read(t->daddr, 4, &sk->__sk_common.skc_daddr);
    } else if (t->family == AF_INET6) {
        bpf_core_read(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
        bpf_core_read(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
    } else {
        return -1; /* AF_UNIX etc.: no 4-tuple */
    }
    return 0;
}

/* Fallback for libraries whose offsets are unknown: the fd of the read/write/send/recv syscall
 * made by the same thread while the SSL call is in flight (kubeshark's method). A raw
 * tracepoint needs no tracefs; it runs for every syscall of the node, so it is attached only
 * when some library lacks offsets. */
SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    long nr = ctx->args[1];
    /* x86-64: read 0, write 1, readv 19, writev 20, sendto 44, recvfrom 45, sendmsg 46,
     * recvmsg 47 */
    if (!(nr == 0 || nr == 1 || nr == 19 || nr == 20 || (nr >= 44 && nr <= 47)))
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    struct call *c = bpf_map_lookup_elem(&calls, &id);
    if (!c || c->fd >= 0)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    c->fd = (int)BPF_CORE_READ(regs, di);
    return 0;
}

static __always_inline int same32(const __u8 *a, const __u8 *b)
{
    const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline void send_secrets(const struct call *c, const struct tls_offsets *o,
                                         __u32 pid)
{
    const char *ssl = (const char *)c->ssl;
    struct conn_key k = { .ssl = c->ssl, .pid = pid };
    __u32 zero = 0;
    __u64 sess = 0, cipher = 0;
    struct tls_secrets_rec *s = bpf_map_lookup_elem(&secrets_scratch, &zero);
    if (!s || !o->ssl_client_random)
        return;
    if (bpf_probe_read_user(s->client_random, 32, ssl + o->ssl_client_random))
        return;
    __u8 *sent = bpf_map_lookup_elem(&secrets_sent, &k);
    if (sent && same32(sent, s->client_random))
        return; /* this connection's secrets already went out */
    s->type = TLS_REC_SECRETS;
    s->pid = pid;
    s->ssl = c->ssl;
    s->cipher_id = 0;
    s->master_key_len = 0;
    bpf_probe_read_user(&s->version, 4, ssl + o->ssl_version);
    bpf_probe_read_user(&sess, 8, ssl + o->ssl_session);
    if (sess) {
        __u64 mkl = 0;
        bpf_probe_read_user(&mkl, 8, (void *)(sess + o->session_master_key_length));
        s->master_key_len = mkl > 48 ? 48 : mkl;
        bpf_probe_read_user(s->master_key, 48, (void *)(sess + o->session_master_key));
        bpf_probe_read_user(&cipher, 8, (void *)(sess + o->session_cipher));
        if (cipher)
            bpf_probe_read_user(&s->cipher_id, 4, (void *)(cipher + o->cipher_id));
    }
    if (s->version == 0x0304) {
        bpf_probe_read_user(s->handshake_secret, 64, ssl + o->ssl_handshake_secret);
        bpf_probe_read_user(s->handshake_traffic_hash, 64, ssl + o->ssl_handshake_traffic_hash);
        bpf_probe_read_user(s->client_app_traffic_secret, 64,
                            ssl + o->ssl_client_app_traffic_secret);
        bpf_probe_read_user(s->server_app_traffic_secret, 64,
                            ssl + o->ssl_server_app_traffic_secret);
        bpf_probe_read_user(s->exporter_master_secret, 64, ssl + o->ssl_exporter_master_secret);
    }
    if (bpf_ringbuf_output(&rb, s, sizeof(*s), 0) == 0)
        bpf_map_update_elem(&secrets_sent, &k, s->client_random, BPF_ANY);
    else
        count(0, 1);
}

SEC("uretprobe")
int ssl_ret(struct pt_regs *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 zero = 0;
    struct call *cp = bpf_map_lookup_elem(&calls, &id);
    if (!cp)
        return 0;
    struct call c = *cp;
    bpf_map_delete_elem(&calls, &id);

    long ret = PT_REGS_RC(ctx);
    __u64 n = 0;
    if (c.outp) {
        if ((int)ret == 1)
            bpf_probe_read_user(&n, sizeof(n), (void *)c.outp);
    } else if ((int)ret > 0) {
        n = (__u32)ret;
    }
    if (n == 0)
        return 0;
    count(2, 1);

    if (bench_mode == 1)
        return 0;
    __u32 lib = c.lib;
    struct tls_offsets *o = bpf_map_lookup_elem(&offsets, &lib);
    if (o)
        send_secrets(&c, o, id >> 32);

    struct tls_data_rec *r = bpf_map_lookup_elem(&data_scratch, &zero);
    if (!r)
        return 0;
    struct conn_key k = { .ssl = c.ssl, .pid = id >> 32 };
    int fd = c.fd;
    if (o && o->ssl_rbio) {
        __u64 bio = 0;
        if (!bpf_probe_read_user(&bio, 8, (void *)(c.ssl + o->ssl_rbio)) && bio)
            bpf_probe_read_user(&fd, 4, (void *)(bio + o->bio_num));
    }
    struct tls_tuple *t = bpf_map_lookup_elem(&conns, &k);
    if (!t && fd >= 0 && tuple_from_fd(fd, &r->h.tuple) == 0) {
        bpf_map_update_elem(&conns, &k, &r->h.tuple, BPF_ANY);
        t = &r->h.tuple;
    }
    r->h.type = TLS_REC_DATA;
    r->h.pid = id >> 32;
    r->h.tid = (__u32)id;
    r->h.dir = c.dir;
    r->h.ts_ns = bpf_ktime_get_ns();
    r->h.ssl = c.ssl;
    r->h.total = n;
    r->h.fd = fd;
    if (!t)
        __builtin_memset(&r->h.tuple, 0, sizeof(r->h.tuple));
    else if (t != &r->h.tuple)
        r->h.tuple = *t;
    bpf_get_current_comm(r->h.comm, sizeof(r->h.comm));

    __u64 lost = 0;
    for (__u32 i = 0; i < TLS_MAX_CHUNKS; i++) {
        __u64 off = (__u64)i * TLS_CHUNK;
        if (off >= n)
            break;
        __u32 len = n - off > TLS_CHUNK ? TLS_CHUNK : n - off;
        asm volatile("" : "+r"(len)); /* keep the bound check below for the verifier */
        if (len > TLS_CHUNK)
            len = TLS_CHUNK;
        r->h.offset = off;
        r->h.len = len;
        r->h.lost = 0;
        if (one_copy && len > 4096) {
            /* big chunk: reserve a whole record and copy user memory straight into the ring
             * (one copy instead of two); costs ring space for the unused tail */
            struct tls_data_rec *rr = bpf_ringbuf_reserve(&rb, sizeof(*rr), 0);
            if (!rr) {
                count(0, 1);
                lost += len;
                continue;
            }
            rr->h = r->h;
            if (i == TLS_MAX_CHUNKS - 1 && n > off + len)
                rr->h.lost = n - off - len;
            if (bpf_probe_read_user(rr->data, len, (void *)(c.buf + off))) {
                bpf_ringbuf_discard(rr, 0);
                lost += len;
                continue;
            }
            bpf_ringbuf_submit(rr, wakeup_flags());
            continue;
        }
        if (bpf_probe_read_user(r->data, len, (void *)(c.buf + off))) {
            lost += len;
            continue;
        }
        if (i == TLS_MAX_CHUNKS - 1 && n > off + len)
            r->h.lost = n - off - len; /* tell user space the call was cut */
        if (bpf_ringbuf_output(&rb, r, sizeof(r->h) + len, wakeup_flags())) {
            count(0, 1);
            lost += len;
        }
    }
    if (n > (__u64)TLS_MAX_CHUNKS * TLS_CHUNK)
        lost += n - (__u64)TLS_MAX_CHUNKS * TLS_CHUNK;
    if (lost)
        count(1, lost);
    return 0;
}
