/* The `tls` pseudo-interface on the capture's loop (see iface.h). The ring buffer is read on the
 * loop (uv_poll on its epoll fd), not in a thread: turning a record into packets is a few
 * copies, the loop is where batches go to the spool, and no lock or hand-over is needed. */
#include "capture/tls/iface.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture/pipeline.h"
#include "capture/source.h"
#include "capture/tls/keylog.h"
#include "capture/tls/libs.h"
#include "capture/tls/offsets.h"
#include "capture/tls/probe.h"
#include "capture/tls/supervisor.h"
#include "capture/tls/synth.h"
#include "util/error.h"
#include "util/log.h"

#define RESCAN_MS 1000
/* Records taken per turn of the loop (at most 16 MiB of plaintext): the uplink, the capture
 * threads' batches and /metrics get their turn even while the ring never runs dry. */
#define RECORDS_PER_TURN 1024
/* At the stop: what the ring holds (16 MiB) is at most this many records. */
#define RECORDS_AT_STOP 65536

struct capture_tls_iface {
    struct capture *cap;
    uint32_t ifid;
    int link_type; /* of its packets: CAPTURE_TLS_LINKTYPE, or ..._ANY beside "any" */
    struct capture_tls_probe *probe;
    struct capture_tls_synth *synth;
    struct capture_tls_libs libs;
    struct capture_batch batch; /* reused: the pipeline copies it into the spool */
    int64_t clock_offset_ns;    /* CLOCK_REALTIME - CLOCK_MONOTONIC */
    uv_poll_t poll;
    uv_timer_t flush_timer, rescan_timer;
    bool started, rescan, handles;
    uint64_t attach_failures, kdf_attach_failures;
    char first_err[512];
    uint64_t records, packets, bad_records, read_errors;
    /* secrets */
    bool calibrated;
    struct capture_tls_offsets offsets;
    struct capture_tls_build build;                 /* of the calibrated libssl */
    struct capture_tls_keylog_recent keylog_recent; /* lines that went out lately */
    int keylog_fd;                                  /* --tls-keylog-file, -1 */
    uint64_t secrets, bad_secrets, keylog_lines, keylog_write_errors;
    uint64_t keylog_dropped;               /* records whose lines the pipeline had no room for */
    uint64_t kdf_secrets, kdf_bad;         /* key derivation records, those refused */
    struct capture_tls_supervisor *helper; /* NULL: it could not be forked */
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void measure_clock(struct capture_tls_iface *t)
{
    int64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME);

    t->clock_offset_ns = real - mono;
}

static void flush(struct capture_tls_iface *t)
{
    struct capture_batch *b = &t->batch;

    if (b->packets == 0) {
        if (capture_pipeline_keylog_pending(t->cap)) /* key log lines go without packets too */
            capture_pipeline_heartbeat(t->cap);
        return;
    }
    t->cap->c.packets += b->packets;
    t->cap->c.bytes += b->bytes;
    capture_pipeline_spool(t->cap, b);
    b->blocks.len = 0;
    b->packets = 0;
    b->bytes = 0;
    b->first_ts_ns = b->last_ts_ns = 0;
}

static void write_keylog_file(struct capture_tls_iface *t, const char *lines, size_t len)
{
    while (len) {
        ssize_t w = write(t->keylog_fd, lines, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (t->keylog_write_errors++ == 0)
                NR_WARN("tls: cannot write the key log file", "file=\"%s\" err=\"%s\"",
                        t->cap->cfg.tls_keylog_file, strerror(w < 0 ? errno : EIO));
            return;
        }
        lines += w;
        len -= (size_t)w;
    }
}

/* Key log lines to the pipeline (for the next batch) and the key log file, but those that went
 * out lately. */
static void emit_lines(struct capture_tls_iface *t, char *lines, size_t n)
{
    n = capture_tls_keylog_recent_fresh(&t->keylog_recent, lines, n);
    if (n == 0)
        return; /* the other end of the same connection, traced too */
    for (const char *c = lines; c < lines + n; c++)
        t->keylog_lines += *c == '\n';
    if (t->keylog_fd >= 0)
        write_keylog_file(t, lines, n);
    if (capture_pipeline_keylog_add(t->cap, lines, n) != 0 &&
        (++t->keylog_dropped == 1 || t->keylog_dropped % 1000 == 0))
        NR_WARN("tls: key log lines dropped: the store does not take them fast enough",
                "records=%llu", (unsigned long long)t->keylog_dropped);
}

/* A connection's secrets (calibrated build). */
static void on_secrets(struct capture_tls_iface *t, const void *rec, size_t size)
{
    char lines[CAPTURE_TLS_KEYLOG_REC_MAX];
    int n;

    t->secrets++;
    n = capture_tls_keylog_lines(rec, size, lines, sizeof(lines));
    if (n <= 0) {
        if (t->bad_secrets++ == 0 || t->bad_secrets % 10000 == 0)
            NR_WARN("tls: secrets not usable", "err=\"%s\" count=%llu", nr_strerror(n),
                    (unsigned long long)t->bad_secrets);
        return;
    }
    emit_lines(t, lines, (size_t)n);
}

/* One secret of OpenSSL 3's key derivation (other builds). */
static void on_kdf_secret(struct capture_tls_iface *t, const void *rec, size_t size)
{
    char line[CAPTURE_TLS_KEYLOG_LINE_MAX];
    int n;

    t->kdf_secrets++;
    n = capture_tls_keylog_kdf_line(rec, size, line, sizeof(line));
    if (n <= 0) {
        if (t->kdf_bad++ == 0 || t->kdf_bad % 10000 == 0)
            NR_WARN("tls: key derivation secret not usable", "err=\"%s\" count=%llu",
                    nr_strerror(n), (unsigned long long)t->kdf_bad);
        return;
    }
    emit_lines(t, line, (size_t)n);
}

static void on_record(void *arg, const void *rec, size_t size)
{
    struct capture_tls_iface *t = arg;
    struct capture_batch *b = &t->batch;
    const struct capture_tls_hdr *h = rec;
    uint32_t type;
    int64_t ts;
    size_t before;
    int n;

    t->records++;
    if (size >= sizeof(type)) {
        memcpy(&type, rec, sizeof(type));
        if (type == CAPTURE_TLS_REC_SECRETS) {
            on_secrets(t, rec, size);
            return;
        }
        if (type == CAPTURE_TLS_REC_KDF) {
            on_kdf_secret(t, rec, size);
            return;
        }
    }
    if (size < sizeof(*h) || h->type != CAPTURE_TLS_REC_DATA) {
        t->bad_records++;
        return;
    }
    /* Batches must be in time order; the ring's order is the calls' order within a connection
     * but CPUs' stamps may cross by microseconds: never go back in time. */
    ts = (int64_t)h->ts_ns + t->clock_offset_ns;
    if (b->packets && ts < b->last_ts_ns)
        ts = b->last_ts_ns;
    before = b->blocks.len;
    n = capture_tls_synth_record(t->synth, rec, size, ts, t->ifid, &b->blocks);
    if (n == -EOVERFLOW) {
        flush(t);
        before = 0;
        n = capture_tls_synth_record(t->synth, rec, size, ts, t->ifid, &b->blocks);
    }
    if (n <= 0) {
        t->bad_records++;
        if (t->bad_records == 1 || t->bad_records % 10000 == 0)
            NR_WARN("tls: record not recorded", "err=\"%s\" count=%llu", nr_strerror(n),
                    (unsigned long long)t->bad_records);
        return;
    }
    if (b->packets == 0)
        b->first_ts_ns = ts;
    b->last_ts_ns = ts;
    b->packets += (uint32_t)n;
    b->bytes += b->blocks.len - before;
    t->packets += (uint64_t)n;
    if (b->blocks.len >= t->cap->cfg.batch_bytes)
        flush(t);
}

/* A libcrypto of OpenSSL 3: its EVP_KDF_derive gives the secrets of libssl files not of the
 * calibrated build. One that cannot be traced costs those secrets only. */
static void on_found_libcrypto(struct capture_tls_iface *t, int pid, const char *path,
                               const char *open_path)
{
    char err[512];
    int rc = capture_tls_probe_attach_kdf(t->probe, open_path, err, sizeof(err));

    if (rc == 0) {
        NR_INFO("tls: attached key derivation", "library=%s pid=%d", path, pid);
        return;
    }
    t->kdf_attach_failures++;
    if (!t->started) /* the start's one warning, if no libssl can be traced either, says why */
        NR_DEBUG("tls: cannot trace a libcrypto", "library=%s err=\"%s\"", path, err);
    else if (t->kdf_attach_failures == 1 || t->kdf_attach_failures % 100 == 0)
        NR_WARN("tls: cannot trace a libcrypto: secrets of other OpenSSL 3 builds are lost",
                "library=%s err=\"%s\" failures=%llu", path, err,
                (unsigned long long)t->kdf_attach_failures);
}

static void on_found(void *arg, int pid, const char *path, const char *open_path)
{
    struct capture_tls_iface *t = arg;
    char err[512];
    struct capture_tls_build build;
    bool secrets = false;
    int rc;

    if (capture_tls_libs_is_libcrypto(path)) {
        on_found_libcrypto(t, pid, path, open_path);
        return;
    }
    if (t->calibrated) {
        rc = capture_tls_offsets_build_of(open_path, &build);
        secrets = rc == 0 && capture_tls_offsets_same_build(&build, &t->build);
        if (!secrets)
            NR_INFO("tls: not the libssl build the capture calibrated: its secrets come from "
                    "OpenSSL 3's key derivation (libcrypto), none for OpenSSL 1.1",
                    "library=%s pid=%d", path, pid);
    }
    rc = capture_tls_probe_attach(t->probe, open_path, secrets, err, sizeof(err));
    if (rc == 0) {
        /* yes: read at the calibrated offsets; kdf: from OpenSSL 3's key derivation; none:
         * OpenSSL 1.x has no EVP_KDF_derive (plaintext only) */
        const char *base = strrchr(path, '/');
        bool v1 = base && strncmp(base, "/libssl.so.1", 12) == 0;
        NR_INFO("tls: attached", "library=%s pid=%d secrets=%s", path, pid,
                secrets ? "yes"
                : v1    ? "none"
                        : "kdf");
        return;
    }
    t->attach_failures++;
    if (!t->started) {
        /* Before the start the first reason is kept: it goes into the one warning when no
         * library at all could be traced. */
        if (t->attach_failures == 1)
            snprintf(t->first_err, sizeof(t->first_err), "%s", err);
        else
            NR_DEBUG("tls: cannot trace a library", "library=%s err=\"%s\"", path, err);
        return;
    }
    if (t->attach_failures == 1 || t->attach_failures % 100 == 0)
        NR_WARN("tls: cannot trace a library", "library=%s err=\"%s\" failures=%llu", path, err,
                (unsigned long long)t->attach_failures);
}

/* In the helper (its copy of t): the same scan and decisions as at the start. */
static uint64_t helper_rescan(void *arg)
{
    struct capture_tls_iface *t = arg;

    t->started = true; /* failures are logged from now on */
    capture_tls_libs_scan(&t->libs, "/proc", on_found, t);
    return t->attach_failures;
}

/* The helper, or (when it cannot be forked) the behaviour without one: every process traced, and
 * rescans only by a capture that stays root. */
static void fork_helper(struct capture_tls_iface *t)
{
    const struct capture_config *c = &t->cap->cfg;
    uint32_t mode = c->kube && !c->bpf_override ? 1 : 0;
    char err[256];
    int rc;

    rc = capture_tls_probe_set_netns_mode(t->probe, mode);
    if (rc == 0)
        t->helper =
            capture_tls_supervisor_new(t->probe, c->user, mode, helper_rescan, t, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "setting the pod filter: %s", nr_strerror(rc));
    if (t->helper)
        return;
    capture_tls_probe_set_netns_mode(t->probe, 0);
    NR_WARN("tls: no helper process: every process is traced, and libssl files first mapped "
            "later only by a capture that stays root",
            "err=\"%s\"", err);
}

/* Calibrates the offsets (a failure turns secrets off, not the plaintext) and opens the key log
 * file (a failure there is fatal to --tls: the user asked for the file). */
static int open_secrets(struct capture_tls_iface *t, char *err, size_t errlen)
{
    const char *file = t->cap->cfg.tls_keylog_file;
    char why[256] = "", lib[512] = "";
    int rc;

    rc = capture_tls_offsets_calibrate(&t->offsets, why, sizeof(why));
    if (rc == 0)
        rc = capture_tls_offsets_verify(&t->offsets, why, sizeof(why));
    if (rc == 0) {
        rc = capture_tls_offsets_own_build(&t->build, lib, sizeof(lib));
        if (rc != 0)
            snprintf(why, sizeof(why), "cannot identify the linked libssl: %s", nr_strerror(rc));
    }
    if (rc == 0)
        rc = capture_tls_probe_set_offsets(t->probe, &t->offsets);
    if (rc == 0) {
        t->calibrated = true;
        NR_INFO("tls: secrets calibrated",
                "library=%s session=0x%x client_random=0x%x "
                "master_key=0x%x client_app_traffic_secret=0x%x handshake_secret=0x%x",
                lib, t->offsets.ssl_session, t->offsets.ssl_client_random,
                t->offsets.session_master_key, t->offsets.ssl_client_app_traffic_secret,
                t->offsets.ssl_handshake_secret);
    } else {
        NR_WARN("tls: TLS secrets are OFF (plaintext is still recorded)", "reason=\"%s\"",
                why[0] ? why : nr_strerror(rc));
    }
    if (file) {
        t->keylog_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (t->keylog_fd < 0) {
            snprintf(err, errlen, "--tls-keylog-file %s: %s", file, strerror(errno));
            return -errno;
        }
    }
    return 0;
}

int capture_tls_iface_link_type(const struct capture_tls_iface *t)
{
    return t->link_type;
}

struct capture_tls_iface *capture_tls_iface_open(struct capture *cap, uint32_t ifid)
{
    struct capture_tls_iface *t = calloc(1, sizeof(*t));
    char err[512] = "out of memory";
    int rc;

    if (!t)
        goto fail;
    t->cap = cap;
    t->ifid = ifid;
    t->keylog_fd = -1;
    nr_buf_init(&t->batch.blocks, cap->cfg.batch_bytes + CAPTURE_TLS_SYNTH_MAX_BYTES);
    t->synth = capture_tls_synth_new(CAPTURE_TLS_MAX_CONNS);
    if (!t->synth || nr_buf_reserve(&t->batch.blocks, t->batch.blocks.max) != 0)
        goto fail;
    /* A capture recording "any" writes LINUX_SLL2: its `tls` packets too, so that one link
     * type holds for every interface of its files (libpcap-based readers refuse mixed ones). */
    for (unsigned i = 0; i < cap->n_sources; i++)
        if (capture_source_link_type(cap->sources[i]) == CAPTURE_TLS_LINKTYPE_ANY)
            t->link_type = CAPTURE_TLS_LINKTYPE_ANY;
    if (!t->link_type)
        t->link_type = CAPTURE_TLS_LINKTYPE;
    capture_tls_synth_set_sll2(t->synth, t->link_type == CAPTURE_TLS_LINKTYPE_ANY);
    t->probe = capture_tls_probe_open(getenv("NETREEL_TLS_BTF"), on_record, t, err, sizeof(err));
    if (!t->probe)
        goto fail;
    rc = capture_tls_probe_exclude(t->probe, (uint32_t)getpid());
    if (rc != 0) {
        snprintf(err, sizeof(err), "excluding the capture's own pid: %s", nr_strerror(rc));
        goto fail;
    }
    if (open_secrets(t, err, sizeof(err)) != 0)
        goto fail;
    /* Every libssl mapped now, the capture's own among them (it links OpenSSL): if not one
     * can be traced, uprobes cannot be made here. */
    rc = capture_tls_libs_scan(&t->libs, "/proc", on_found, t);
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot list /proc: %s", nr_strerror(rc));
        goto fail;
    }
    if (capture_tls_probe_libraries(t->probe) == 0) {
        snprintf(err, sizeof(err), "%s",
                 t->attach_failures ? t->first_err : "no process maps a libssl");
        goto fail;
    }
    measure_clock(t);
    fork_helper(t);
    return t;
fail:
    NR_WARN("tls: decrypted TLS is OFF; recording everything else as before", "reason=\"%s\"", err);
    capture_tls_iface_free(t);
    return NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct capture_tls_iface *t = h->data;
    int rc = capture_tls_probe_consume(t->probe, RECORDS_PER_TURN);

    if (rc < 0 && rc != -EINTR && (t->read_errors++ == 0 || t->read_errors % 1000 == 0))
        NR_WARN("tls: reading the ring buffer failed", "err=\"%s\" count=%llu", nr_strerror(rc),
                (unsigned long long)t->read_errors);
}

static void on_flush(uv_timer_t *h)
{
    flush(h->data);
}

static void on_rescan(uv_timer_t *h)
{
    struct capture_tls_iface *t = h->data;

    measure_clock(t); /* follows changes of the wall clock */
    if (t->helper)
        capture_tls_supervisor_tick(t->helper);
    if (t->rescan)
        capture_tls_libs_scan(&t->libs, "/proc", on_found, t);
}

void capture_tls_iface_target(struct capture_tls_iface *t, const struct kube_target_set *set)
{
    if (t && t->helper)
        capture_tls_supervisor_target(t->helper, set);
}

int capture_tls_iface_start(struct capture_tls_iface *t)
{
    bool helper_up;
    int rc;

    t->started = true;
    if (t->helper) {
        rc = capture_tls_supervisor_start(t->helper, t->cap->loop);
        if (rc != 0)
            return rc;
    }
    /* Without the helper: attaching needs CAP_SYS_ADMIN, reading other users' /proc/PID/maps
     * CAP_SYS_PTRACE; after the drop to an unprivileged user neither is left, so only a capture
     * that stayed root (--user root) rescans. */
    helper_up = t->helper && capture_tls_supervisor_up(t->helper);
    t->rescan = !helper_up && geteuid() == 0;
    if (!helper_up && !t->rescan)
        NR_INFO("tls: libssl files first mapped after the start are not traced: the capture "
                "gave up its privileges (--user root keeps them)",
                "libraries=%u", capture_tls_probe_libraries(t->probe));
    rc = uv_poll_init(t->cap->loop, &t->poll, capture_tls_probe_fd(t->probe));
    if (rc != 0)
        return rc;
    t->poll.data = t;
    uv_timer_init(t->cap->loop, &t->flush_timer);
    uv_timer_init(t->cap->loop, &t->rescan_timer);
    t->flush_timer.data = t->rescan_timer.data = t;
    uint64_t flush_ms = (uint64_t)(t->cap->cfg.batch_time_ns / 1000000);
    uv_timer_start(&t->flush_timer, on_flush, flush_ms, flush_ms);
    uv_timer_start(&t->rescan_timer, on_rescan, RESCAN_MS, RESCAN_MS);
    t->handles = true;
    return uv_poll_start(&t->poll, UV_READABLE, on_readable);
}

void capture_tls_iface_stop(struct capture_tls_iface *t)
{
    if (!t || !t->handles)
        return;
    capture_tls_probe_consume(t->probe, RECORDS_AT_STOP);
    flush(t);
    uv_poll_stop(&t->poll);
    uv_timer_stop(&t->flush_timer);
    uv_timer_stop(&t->rescan_timer);
    if (t->helper)
        capture_tls_supervisor_stop(t->helper);
}

void capture_tls_iface_stats(const struct capture_tls_iface *t, struct capture_tls_stats *st)
{
    const struct capture_tls_status_msg *hs =
        t->helper ? capture_tls_supervisor_status(t->helper) : NULL;

    memset(st, 0, sizeof(*st));
    st->records = t->records;
    st->packets = t->packets;
    st->bad_records = t->bad_records;
    struct capture_tls_probe_counts pc;

    capture_tls_probe_counters(t->probe, &pc);
    st->ring_dropped = pc.ring_dropped;
    st->bytes_lost = pc.bytes_lost;
    st->calls = pc.calls;
    st->kdf_calls = pc.kdf_calls;
    st->kdf_sent = pc.kdf_secrets;
    st->kdf_no_random = pc.kdf_no_random;
    st->kdf_secrets = t->kdf_secrets;
    st->kdf_bad = t->kdf_bad;
    st->conns = capture_tls_synth_conns(t->synth);
    st->evicted = capture_tls_synth_evicted(t->synth);
    st->libraries = hs ? hs->libraries : capture_tls_probe_libraries(t->probe);
    st->helper_up = t->helper && capture_tls_supervisor_up(t->helper);
    st->pod_namespaces = hs && hs->mode == 1 ? (int64_t)hs->pod_netns : -1;
    st->secrets = t->secrets;
    st->bad_secrets = t->bad_secrets;
    st->keylog_lines = t->keylog_lines;
    st->keylog_dropped = t->keylog_dropped;
}

void capture_tls_iface_free(struct capture_tls_iface *t)
{
    if (!t)
        return;
    capture_tls_supervisor_free(t->helper);
    capture_tls_probe_free(t->probe);
    capture_tls_synth_free(t->synth);
    nr_buf_free(&t->batch.blocks);
    if (t->keylog_fd >= 0)
        close(t->keylog_fd);
    free(t);
}
