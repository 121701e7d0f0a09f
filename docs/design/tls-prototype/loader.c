/* loader: loads tls.bpf.o (through the bpftool skeleton), attaches uprobes to the given libssl
 * files by function name, prints the plaintext records and writes keylog lines (TLS 1.3
 * handshake secrets derived here with HKDF-Expand-Label) and a raw record dump.
 *   ./loader [-q] [-k KEYLOG] [-w DUMP] [-p PID]... [LIBSSL_PATH]...
 * -p PID: find libssl in /proc/PID/maps and attach to /proc/PID/root/<path> (the inode: every
 *         process mapping it); with -P only in that process (the kernel installs the
 *         breakpoints in that process's memory only)
 * -S: also learn the fd from syscalls inside the SSL call (raw_tracepoint sys_enter)
 * -O: pretend the library's offsets are unknown (no rbio->num fd, no secrets)
 * -B 1: probes only (no copy), -B 2: copy but no ring wakeups,
 *      -B 3: wake the reader only when 1 MiB waits, poll every 20 ms (benchmarks)
 * -c COMM: only processes whose command name starts with COMM (e.g. openssl, python3)
 * -1: one copy for chunks > 4 KiB (reserve a whole record, read user memory into it)
 * -q: no per-record output (benchmarks); prints totals at exit (SIGINT/SIGTERM)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tls.h"
#include "tls.skel.h"

static volatile sig_atomic_t stop;
static int quiet, use_sys_enter, no_offsets, bench_mode, one_copy, per_pid;
static const char *comm_filter;
static FILE *keylog, *dump;
static unsigned long long n_data, n_bytes, n_secrets;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int libbpf_print(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
    if (lvl == LIBBPF_DEBUG)
        return 0;
    return vfprintf(stderr, fmt, ap);
}

static void hex(FILE *f, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

/* RFC 8446 7.1 HKDF-Expand-Label, out_len <= hash length (one HMAC block) */
static void hkdf_expand_label(const EVP_MD *md, const unsigned char *secret, size_t slen,
                              const char *label, const unsigned char *ctx, size_t clen,
                              unsigned char *out, size_t out_len)
{
    unsigned char info[2 + 1 + 255 + 1 + 255 + 1], t[EVP_MAX_MD_SIZE];
    size_t i = 0, ll = 6 + strlen(label);
    unsigned tl = 0;
    info[i++] = (unsigned char)(out_len >> 8);
    info[i++] = (unsigned char)out_len;
    info[i++] = (unsigned char)ll;
    memcpy(info + i, "tls13 ", 6);
    memcpy(info + i + 6, label, ll - 6);
    i += ll;
    info[i++] = (unsigned char)clen;
    memcpy(info + i, ctx, clen);
    i += clen;
    info[i++] = 1;
    HMAC(md, secret, (int)slen, info, i, t, &tl);
    memcpy(out, t, out_len);
}

static void keylog_line(const char *label, const unsigned char *cr, const unsigned char *sec,
                        size_t n)
{
    FILE *outs[2] = { keylog, quiet ? NULL : stdout };
    for (int i = 0; i < 2; i++) {
        if (!outs[i])
            continue;
        fprintf(outs[i], "%s%s ", outs[i] == stdout ? "keylog: " : "", label);
        hex(outs[i], cr, 32);
        fputc(' ', outs[i]);
        hex(outs[i], sec, n);
        fputc('\n', outs[i]);
    }
    if (keylog)
        fflush(keylog);
}

static void on_secrets(const struct tls_secrets_rec *s)
{
    n_secrets++;
    if (s->version != 0x0304) {
        keylog_line("CLIENT_RANDOM", s->client_random, s->master_key,
                    s->master_key_len ? s->master_key_len : 48);
        return;
    }
    /* TLS 1.3 suites: only TLS_AES_256_GCM_SHA384 (0x1302) uses SHA-384 */
    int sha384 = (s->cipher_id & 0xffff) == 0x1302;
    const EVP_MD *md = sha384 ? EVP_sha384() : EVP_sha256();
    size_t hl = sha384 ? 48 : 32;
    unsigned char chts[64], shts[64];
    hkdf_expand_label(md, s->handshake_secret, hl, "c hs traffic", s->handshake_traffic_hash,
                      hl, chts, hl);
    hkdf_expand_label(md, s->handshake_secret, hl, "s hs traffic", s->handshake_traffic_hash,
                      hl, shts, hl);
    keylog_line("CLIENT_HANDSHAKE_TRAFFIC_SECRET", s->client_random, chts, hl);
    keylog_line("SERVER_HANDSHAKE_TRAFFIC_SECRET", s->client_random, shts, hl);
    keylog_line("CLIENT_TRAFFIC_SECRET_0", s->client_random, s->client_app_traffic_secret, hl);
    keylog_line("SERVER_TRAFFIC_SECRET_0", s->client_random, s->server_app_traffic_secret, hl);
    keylog_line("EXPORTER_SECRET", s->client_random, s->exporter_master_secret, hl);
}

static void print_tuple(const struct tls_tuple *t)
{
    char a[INET6_ADDRSTRLEN] = "?", b[INET6_ADDRSTRLEN] = "?";
    int af = t->family == 10 ? AF_INET6 : AF_INET;
    if (t->family) {
        inet_ntop(af, t->saddr, a, sizeof a);
        inet_ntop(af, t->daddr, b, sizeof b);
    }
    printf("%s:%u->%s:%u", a, t->sport, b, t->dport);
}

static void on_data(const struct tls_data_rec *r, size_t size)
{
    const struct tls_data_hdr *h = &r->h;
    n_data++;
    n_bytes += h->len;
    size = sizeof(*h) + h->len; /* a reserved (one-copy) record is longer than its data */
    if (dump && fwrite(r, 1, size, dump) != size)
        perror("dump");
    if (quiet)
        return;
    printf("%llu pid %u tid %u %.16s %s ssl %#llx fd %d ", (unsigned long long)h->ts_ns, h->pid,
           h->tid, h->comm, h->dir == TLS_DIR_WRITE ? "WRITE" : "READ ",
           (unsigned long long)h->ssl, h->fd);
    print_tuple(&h->tuple);
    printf(" [%llu+%u/%llu%s] ", (unsigned long long)h->offset, h->len,
           (unsigned long long)h->total, h->lost ? " CUT" : "");
    for (unsigned i = 0; i < h->len && i < 200; i++) {
        unsigned char ch = r->data[i];
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch >= 32 && ch < 127)
            putchar(ch);
        else
            printf("\\x%02x", ch);
    }
    if (h->len > 200)
        fputs("...", stdout);
    putchar('\n');
}

static int on_record(void *ctx, void *data, size_t size)
{
    (void)ctx;
    __u32 type = *(__u32 *)data;
    if (type == TLS_REC_DATA && size >= sizeof(struct tls_data_hdr))
        on_data(data, size);
    else if (type == TLS_REC_SECRETS && size >= sizeof(struct tls_secrets_rec))
        on_secrets(data);
    return 0;
}

/* first libssl path in /proc/PID/maps, as seen through /proc/PID/root */
static int find_libssl(int pid, char *out, size_t outlen)
{
    char maps[64], line[4096];
    int rc = -ENOENT;
    snprintf(maps, sizeof maps, "/proc/%d/maps", pid);
    FILE *f = fopen(maps, "r");
    if (!f)
        return -errno;
    while (fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (!path || !strstr(path, "/libssl.so"))
            continue;
        path[strcspn(path, "\n")] = 0;
        snprintf(out, outlen, "/proc/%d/root%s", pid, path);
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

static int attach_lib(struct tls_bpf *skel, const char *path, __u32 lib, int pid)
{
    static const struct {
        const char *func;
        int ret;
    } fns[] = { { "SSL_write", 0 }, { "SSL_write_ex", 0 }, { "SSL_read", 0 },
                { "SSL_read_ex", 0 }, { "SSL_write", 1 }, { "SSL_write_ex", 1 },
                { "SSL_read", 1 },    { "SSL_read_ex", 1 } };
    struct bpf_program *enter[4] = { skel->progs.ssl_write_enter, skel->progs.ssl_write_ex_enter,
                                     skel->progs.ssl_read_enter, skel->progs.ssl_read_ex_enter };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = fns[i].func, .retprobe = fns[i].ret,
                    .bpf_cookie = lib);
        struct bpf_program *prog = fns[i].ret ? skel->progs.ssl_ret : enter[i];
        struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, pid, path, 0, &opts);
        if (!l) {
            int err = -errno;
            fprintf(stderr, "attach %s%s in %s: %s\n", fns[i].func, fns[i].ret ? " (ret)" : "",
                    path, strerror(-err));
            return err;
        }
    }
    fprintf(stderr, "attached 8 probes to %s (lib %u, pid %d)\n", path, lib, pid);
    return 0;
}

int main(int argc, char **argv)
{
    int opt, rc = 1, nlibs = 0;
    char path[4096];
    struct tls_bpf *skel = NULL;
    struct ring_buffer *rb = NULL;
    int pids[16], npids = 0;

    while ((opt = getopt(argc, argv, "qSO1PB:c:k:w:p:")) != -1) {
        switch (opt) {
        case 'q': quiet = 1; break;
        case 'S': use_sys_enter = 1; break;
        case '1': one_copy = 1; break;
        case 'P': per_pid = 1; break;
        case 'B': bench_mode = atoi(optarg); break;
        case 'c': comm_filter = optarg; break;
        case 'O': no_offsets = 1; break;
        case 'k': keylog = fopen(optarg, "a"); break;
        case 'w': dump = fopen(optarg, "w"); break;
        case 'p': if (npids < 16) pids[npids++] = atoi(optarg); break;
        default: return 2;
        }
    }
    libbpf_set_print(libbpf_print);
    skel = tls_bpf__open();
    if (!skel) {
        fprintf(stderr, "open BPF object: %s\n", strerror(errno));
        goto out;
    }
    skel->rodata->bench_mode = bench_mode;
    skel->rodata->one_copy = one_copy;
    if (comm_filter)
        strncpy((char *)skel->rodata->comm_filter, comm_filter, 15);
    int err = tls_bpf__load(skel);
    if (err) {
        fprintf(stderr, "load BPF object: %s (no BTF? no CAP_BPF/CAP_PERFMON?)\n", strerror(-err));
        goto out;
    }
    /* OpenSSL 3.0.19 (Debian 12), as found by ssl_offsets; netreel: per library, validated */
    struct tls_offsets o30 = {
        .ssl_version = 0x0, .ssl_rbio = 0x10, .ssl_session = 0x918, .ssl_client_random = 0x160,
        .bio_num = 0x38, .session_master_key_length = 0x8, .session_master_key = 0x50,
        .session_cipher = 0x2f8, .cipher_id = 0x18, .ssl_handshake_secret = 0x584,
        .ssl_handshake_traffic_hash = 0x704, .ssl_client_app_traffic_secret = 0x744,
        .ssl_server_app_traffic_secret = 0x784, .ssl_exporter_master_secret = 0x7c4,
    };
    __u32 key = 0;
    if (no_offsets)
        memset(&o30, 0, sizeof o30);
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.offsets), &key, &o30, BPF_ANY)) {
        perror("offsets");
        goto out;
    }
    if (use_sys_enter && !bpf_program__attach(skel->progs.sys_enter)) {
        fprintf(stderr, "attach raw_tracepoint sys_enter: %s\n", strerror(errno));
        goto out;
    }
    for (int i = 0; i < npids; i++) {
        if (find_libssl(pids[i], path, sizeof path) == 0 &&
            attach_lib(skel, path, 0, per_pid ? pids[i] : -1) == 0)
            nlibs++;
    }
    for (int i = optind; i < argc; i++)
        if (attach_lib(skel, argv[i], 0, -1) == 0)
            nlibs++;
    if (nlibs == 0) {
        fprintf(stderr, "no libssl attached\n");
        goto out;
    }
    rb = ring_buffer__new(bpf_map__fd(skel->maps.rb), on_record, NULL, NULL);
    if (!rb) {
        perror("ring_buffer__new");
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* records carry CLOCK_MONOTONIC (bpf_ktime_get_ns); packets need wall time */
    struct timespec mono, real;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    long long off = (real.tv_sec - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec);
    fprintf(stderr, "ready; clock_offset_ns %lld\n", off);
    while (!stop) {
        err = ring_buffer__poll(rb, bench_mode == 3 ? 20 : 200);
        if (err < 0 && err != -EINTR) {
            fprintf(stderr, "poll: %s\n", strerror(-err));
            break;
        }
        fflush(stdout);
    }
    ring_buffer__consume(rb);
    /* counters: per-CPU sums */
    int ncpu = libbpf_num_possible_cpus();
    __u64 vals[256], sums[3] = { 0 };
    for (__u32 i = 0; i < 3 && ncpu <= 256; i++) {
        if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &i, vals) == 0)
            for (int c = 0; c < ncpu; c++)
                sums[i] += vals[c];
    }
    fprintf(stderr, "records %llu, plaintext bytes %llu, secrets %llu; calls %llu, "
            "ring-full drops %llu, bytes lost %llu\n", n_data, n_bytes, n_secrets,
            (unsigned long long)sums[2], (unsigned long long)sums[0],
            (unsigned long long)sums[1]);
    rc = 0;
out:
    ring_buffer__free(rb);
    tls_bpf__destroy(skel);
    if (keylog)
        fclose(keylog);
    if (dump)
        fclose(dump);
    return rc;
}
