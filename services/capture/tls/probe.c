/* libbpf glue of --tls (see probe.h). */
#include "capture/tls/probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/tls.skel.h"
#include "util/error.h"
#include "util/log.h"

#define PROBES     10 /* per libssl: 5 functions, entry and return */
#define KDF_PROBES 2  /* per libcrypto: EVP_KDF_derive, entry and return */
#define MAX_LIBS   64 /* of each kind */
#define MAX_LINKS  (2 + MAX_LIBS * (PROBES + KDF_PROBES)) /* and sys_enter, sys_exit */

struct capture_tls_probe {
    struct capture_tls_bpf *skel;
    struct ring_buffer *rb;
    capture_tls_probe_cb cb;
    void *arg;
    struct bpf_link *links[MAX_LINKS];
    unsigned n_links, n_libs, n_kdf_libs;
    unsigned budget, taken; /* records the current consume call may still hand over */
};

/* What on_record returns to make libbpf stop (after that record) once the budget is spent. */
#define BUDGET_SPENT (-EAGAIN)

/* libbpf's own messages: to the debug log, one line each. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    if (level == LIBBPF_DEBUG)
        return 0;
        /* libbpf's format, not ours: nothing to check it against */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(line, sizeof(line), fmt, ap);
#pragma GCC diagnostic pop
    n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = 0;
    NR_DEBUG("libbpf", "msg=\"%s\"", line);
    return 0;
}

static int on_record(void *ctx, void *data, size_t size)
{
    struct capture_tls_probe *p = ctx;

    p->cb(p->arg, data, size);
    return ++p->taken >= p->budget ? BUDGET_SPENT : 0;
}

struct capture_tls_probe *capture_tls_probe_open(const char *btf_path, capture_tls_probe_cb cb,
                                                 void *arg, char *err, size_t errlen)
{
    struct bpf_object_open_opts opts = {.sz = sizeof(opts), .btf_custom_path = btf_path};
    struct capture_tls_probe *p = NULL;
    const char *btf = btf_path ? btf_path : "/sys/kernel/btf/vmlinux";
    int rc;

    libbpf_set_print(libbpf_log);
    if (access(btf, R_OK) != 0) {
        snprintf(err, errlen, "kernel has no BTF (%s: %s)", btf, strerror(errno));
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cb = cb;
    p->arg = arg;
    p->skel = capture_tls_bpf__open_opts(&opts);
    if (!p->skel) {
        snprintf(err, errlen, "opening the eBPF program: %s", strerror(errno));
        goto fail;
    }
    rc = capture_tls_bpf__load(p->skel);
    if (rc != 0) {
        snprintf(err, errlen, "loading the eBPF program: %s%s", nr_strerror(rc),
                 rc == -EPERM || rc == -EACCES
                     ? " (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
                     : "");
        goto fail;
    }
    /* The fd of the socket under each SSL call: from the syscalls made inside it. */
    p->links[0] = bpf_program__attach(p->skel->progs.sys_enter);
    if (!p->links[0]) {
        snprintf(err, errlen, "attaching the raw tracepoint sys_enter: %s", strerror(errno));
        goto fail;
    }
    p->n_links = 1;
    /* The ClientHello a server reads inside an SSL call: the client random of TLS 1.3 secrets. */
    p->links[1] = bpf_program__attach(p->skel->progs.sys_exit);
    if (!p->links[1]) {
        snprintf(err, errlen, "attaching the raw tracepoint sys_exit: %s", strerror(errno));
        goto fail;
    }
    p->n_links = 2;
    p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.rb), on_record, p, NULL);
    if (!p->rb) {
        snprintf(err, errlen, "opening the ring buffer: %s", strerror(errno));
        goto fail;
    }
    return p;
fail:
    capture_tls_probe_free(p);
    return NULL;
}

int capture_tls_probe_exclude(struct capture_tls_probe *p, uint32_t tgid)
{
    uint8_t one = 1;

    if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.excluded), &tgid, &one, BPF_ANY) != 0)
        return -errno;
    return 0;
}

int capture_tls_probe_set_offsets(struct capture_tls_probe *p, const struct capture_tls_offsets *o)
{
    uint32_t zero = 0;

    if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.offsets), &zero, o, BPF_ANY) != 0)
        return -errno;
    return 0;
}

int capture_tls_probe_attach(struct capture_tls_probe *p, const char *path, bool secrets, char *err,
                             size_t errlen)
{
    static const char *const funcs[PROBES / 2] = {"SSL_write", "SSL_write_ex", "SSL_read",
                                                  "SSL_read_ex", "SSL_do_handshake"};
    struct bpf_program *enter[PROBES / 2] = {
        p->skel->progs.ssl_write_enter, p->skel->progs.ssl_write_ex_enter,
        p->skel->progs.ssl_read_enter, p->skel->progs.ssl_read_ex_enter,
        p->skel->progs.ssl_handshake_enter};
    unsigned first = p->n_links, attached = 0;
    int rc = 0;

    if (p->n_libs == MAX_LIBS) {
        snprintf(err, errlen, "%s: at most %d libssl files", path, MAX_LIBS);
        return -E2BIG;
    }
    for (int i = 0; i < PROBES; i++) {
        int f = i % (PROBES / 2), ret = i >= PROBES / 2;
        struct bpf_uprobe_opts opts = {.sz = sizeof(opts),
                                       .func_name = funcs[f],
                                       .retprobe = ret,
                                       .bpf_cookie = secrets ? 1 : 0};
        struct bpf_program *prog = !ret ? enter[f]
                                   : strcmp(funcs[f], "SSL_do_handshake") == 0
                                       ? p->skel->progs.ssl_handshake_ret
                                       : p->skel->progs.ssl_ret;
        struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, -1, path, 0, &opts);
        if (!l) {
            rc = -errno;
            if (rc == -ENOENT || rc == -ESRCH)
                continue; /* this build lacks the function */
            snprintf(err, errlen, "uprobe on %s in %s: %s%s", funcs[f], path, nr_strerror(rc),
                     rc == -EACCES || rc == -EPERM ? " (creating uprobes needs CAP_SYS_ADMIN)"
                                                   : "");
            goto fail;
        }
        p->links[p->n_links++] = l;
        attached++;
    }
    if (attached == 0) {
        snprintf(err, errlen, "%s: none of SSL_read/SSL_write found", path);
        return -ENOENT;
    }
    p->n_libs++;
    return 0;
fail:
    while (p->n_links > first)
        bpf_link__destroy(p->links[--p->n_links]);
    return rc;
}

int capture_tls_probe_attach_kdf(struct capture_tls_probe *p, const char *path, char *err,
                                 size_t errlen)
{
    unsigned first = p->n_links;
    int rc = 0;

    if (p->n_kdf_libs == MAX_LIBS) {
        snprintf(err, errlen, "%s: at most %d libcrypto files", path, MAX_LIBS);
        return -E2BIG;
    }
    for (int ret = 0; ret < KDF_PROBES; ret++) {
        struct bpf_uprobe_opts opts = {
            .sz = sizeof(opts), .func_name = "EVP_KDF_derive", .retprobe = ret};
        struct bpf_program *prog = ret ? p->skel->progs.kdf_ret : p->skel->progs.kdf_enter;
        struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, -1, path, 0, &opts);
        if (!l) {
            rc = -errno;
            snprintf(err, errlen, "uprobe on EVP_KDF_derive in %s: %s", path, nr_strerror(rc));
            goto fail;
        }
        p->links[p->n_links++] = l;
    }
    p->n_kdf_libs++;
    return 0;
fail:
    while (p->n_links > first)
        bpf_link__destroy(p->links[--p->n_links]);
    return rc;
}

int capture_tls_probe_set_netns_mode(struct capture_tls_probe *p, uint32_t mode)
{
    uint32_t zero = 0;

    if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.netns_mode), &zero, &mode, BPF_ANY) != 0)
        return -errno;
    return 0;
}

int capture_tls_probe_netns_add(struct capture_tls_probe *p, uint32_t inum)
{
    uint8_t one = 1;

    if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.pod_netns), &inum, &one, BPF_ANY) != 0)
        return -errno;
    return 0;
}

int capture_tls_probe_netns_del(struct capture_tls_probe *p, uint32_t inum)
{
    if (bpf_map_delete_elem(bpf_map__fd(p->skel->maps.pod_netns), &inum) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

size_t capture_tls_probe_netns_list(const struct capture_tls_probe *p, uint32_t *out, size_t max)
{
    int fd = bpf_map__fd(p->skel->maps.pod_netns);
    uint32_t key, next;
    size_t n = 0;
    const uint32_t *prev = NULL;

    /* The table is only changed by the caller: a plain walk sees each key once. */
    while (n < max && bpf_map_get_next_key(fd, prev, &next) == 0) {
        out[n++] = next;
        key = next;
        prev = &key;
    }
    return n;
}

unsigned capture_tls_probe_links(const struct capture_tls_probe *p)
{
    return p->n_links;
}

unsigned capture_tls_probe_link_fds(const struct capture_tls_probe *p, unsigned first, int *fds,
                                    unsigned max)
{
    unsigned n = 0;

    for (unsigned i = first; i < p->n_links && n < max; i++)
        fds[n++] = bpf_link__fd(p->links[i]);
    return n;
}

unsigned capture_tls_probe_libraries(const struct capture_tls_probe *p)
{
    return p->n_libs;
}

int capture_tls_probe_fd(const struct capture_tls_probe *p)
{
    return ring_buffer__epoll_fd(p->rb);
}

int capture_tls_probe_consume(struct capture_tls_probe *p, unsigned max_records)
{
    int rc;

    if (max_records == 0)
        return 0;
    p->budget = max_records;
    p->taken = 0;
    rc = ring_buffer__consume(p->rb);
    return rc >= 0 || rc == BUDGET_SPENT ? (int)p->taken : rc;
}

void capture_tls_probe_counters(const struct capture_tls_probe *p,
                                struct capture_tls_probe_counts *out)
{
    uint64_t *fields[] = {&out->ring_dropped, &out->bytes_lost,  &out->calls,
                          &out->kdf_calls,    &out->kdf_secrets, &out->kdf_no_random};
    int ncpu = libbpf_num_possible_cpus();
    uint64_t *vals = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*vals)) : NULL;

    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (vals && bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.counters), &i, vals) == 0)
            for (int c = 0; c < ncpu; c++)
                *fields[i] += vals[c];
    free(vals);
}

void capture_tls_probe_free(struct capture_tls_probe *p)
{
    if (!p)
        return;
    ring_buffer__free(p->rb);
    while (p->n_links)
        bpf_link__destroy(p->links[--p->n_links]);
    capture_tls_bpf__destroy(p->skel);
    free(p);
}
