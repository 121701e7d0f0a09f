/* Hub.Snapshot (see snapshot.h), the caller's call: its request checked, the stores resolved,
 * the clock probe run first, and the end of it all. The other parts: snapshot_parts.h. */
#include "hub/snapshot.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/snapshot_parts.h"
#include "hub/token.h"
#include "rpc/status.h"
#include "util/log.h"
#include "util/pbwire.h"
#include "util/prog.h"

/* Its field number (proto/netreel/v1/common.proto): protobuf-c hands the filter over
 * NUL-terminated, and a NUL inside it must be refused, not cut at (pbwire.h). */
#define SNAPSHOT_REQUEST_FILTER 3

static void snap_free(uv_handle_t *t)
{
    struct hub_snap *s = t->data;
    struct hub *h;

    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        if (src->header)
            netreel__v1__store_chunk__free_unpacked(src->header, NULL);
        if (src->summary)
            netreel__v1__store_chunk__free_unpacked(src->summary, NULL);
        if (src->msg)
            netreel__v1__store_chunk__free_unpacked(src->msg, NULL);
        hub_snap_src_drop_early(src);
        free(src->ids);
        free(src->iface_keys);
        if (src->addr != hub_snap_no_addr)
            free(src->addr);
        free(src->authority);
        free(src->error);
    }
    free(s->srcs);
    free(s->filter);
    pcapng_merge_free(&s->heap);
    hub_sightings_free(s->sg);
    hub_clock_free(s->clock);
    free(s->offsets);
    free(s->stores.addrs);
    free(s->stores.failed);
    for (size_t i = 0; i < s->n_namespaces; i++)
        free(s->namespaces[i]);
    free(s->namespaces);
    free(s->pod_regex);
    free(s->label_selector);
    nr_buf_free(&s->out);
    nr_buf_free(&s->keys);
    free(s->keys_seen);
    h = s->h;
    free(s);
    if (h->snapshots_active == 0)
        malloc_trim(0); /* what the snapshots held, back to the system: free() keeps it */
}

size_t hub_snap_capacity(const struct hub_snap *s, size_t n)
{
    size_t cap = s->follow && !s->is_probe ? n + HUB_FOLLOW_JOIN_MAX : n;

    return cap > HUB_MAX_STORES ? (n > HUB_MAX_STORES ? n : HUB_MAX_STORES) : cap;
}

static void parent_start(struct hub_snap *p);

/* Frees the snapshot once its caller and every store call are gone (a probe's snapshot starts
 * then). */
void hub_snap_maybe_free(struct hub_snap *s)
{
    if (!s->over || s->resolving || s->live_calls != 0 || uv_is_closing((uv_handle_t *)&s->timer))
        return;
    if (s->is_probe && s->parent)
        parent_start(s);
    uv_close((uv_handle_t *)&s->timer, snap_free);
}

void hub_snap_finish(struct hub_snap *s, int code, const char *fmt, ...)
{
    char msg[512] = "";
    va_list ap;

    if (s->finished)
        return;
    s->finished = true;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    if (code != RPC_OK && !s->is_probe) {
        s->h->snapshots_failed++;
        NR_WARN("snapshot failed", "code=%s reason=\"%s\"", rpc_code_name(code), msg);
    }
    if (s->call)
        rpc_call_finish(s->call, code, msg[0] ? msg : NULL);
    if (s->probe) { /* the snapshot is over: its probe is of no use */
        s->probe->parent = NULL;
        hub_snap_finish(s->probe, RPC_CANCELLED, NULL);
        s->probe = NULL;
    }
    if (s->is_probe)
        s->over = true; /* no caller's call to end it */
    /* Stores still streaming are of no use now. */
    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].call)
            rpc_call_cancel(s->srcs[i].call);
    if (s->is_probe)
        hub_snap_maybe_free(s);
}

int hub_snap_send_out(struct hub_snap *s, Netreel__V1__SnapshotSummary *summary)
{
    Netreel__V1__FileChunk c = NETREEL__V1__FILE_CHUNK__INIT;
    int rc;

    if (!s->call) /* a probe writes no file */
        s->out.len = 0;
    if (s->out.len == 0 && !summary)
        return 0;
    c.data.data = s->out.data;
    c.data.len = s->out.len;
    c.summary = summary;
    rc = rpc_call_send(s->call, &c.base);
    s->file_bytes += s->out.len;
    s->out.len = 0;
    return rc;
}

static struct hub_snap *snap_new(struct hub *h, struct rpc_call *call);

/* The probe has read what it could: the nodes' offsets against the first store that answered
 * are the snapshot's. It starts once the probe's calls have ended (parent_start), on their
 * connections: a probe that stopped at HUB_PROBE_MAX_PACKETS still has a call open to every
 * store, and calls started beside them would each dial a connection of their own (with TLS, a
 * second handshake with every store). */
void hub_snap_probe_done(struct hub_snap *p)
{
    struct hub_snap *s = p->parent;
    size_t ref = 0;

    if (s) {
        while (ref < p->n && p->srcs[ref].state != S_DONE)
            ref++;
        s->offsets = calloc(hub_snap_capacity(s, p->n) + 1, sizeof(*s->offsets));
        if (s->offsets && ref < p->n) {
            hub_clock_solve(p->clock, ref, s->offsets);
            s->ref = ref;
            for (size_t i = 0; i < p->n; i++) {
                struct hub_store_clock hc = {.known = s->offsets[i].known,
                                             .offset_ns = s->offsets[i].offset_ns,
                                             .uncertainty_ns = s->offsets[i].uncertainty_ns,
                                             .samples = s->offsets[i].samples,
                                             .measured_ns = nr_now_ns()};
                snprintf(hc.reference, sizeof(hc.reference), "%s",
                         hub_snap_src_node(&p->srcs[ref]));
                hub_stores_remember_clock(s->h, p->srcs[i].addr, &hc);
            }
            for (size_t i = 0; i < p->n; i++)
                if (i != ref && s->offsets[i].known)
                    NR_INFO("clock offset",
                            "node=%s reference=%s offset_ns=%lld "
                            "uncertainty_ns=%lld packets=%llu",
                            hub_snap_src_node(&p->srcs[i]), hub_snap_src_node(&p->srcs[ref]),
                            (long long)s->offsets[i].offset_ns,
                            (long long)s->offsets[i].uncertainty_ns,
                            (unsigned long long)s->offsets[i].samples);
        } else if (s->offsets) {
            free(s->offsets); /* no store answered the probe: the clocks stay as they are */
            s->offsets = NULL;
        }
    }
    hub_snap_finish(p, RPC_OK, NULL); /* cancels its calls still open */
}

/* The probe p is over and its calls have ended, however it ended (a probe that failed leaves
 * the clocks as they are): its snapshot starts. */
static void parent_start(struct hub_snap *p)
{
    struct hub_snap *s = p->parent;

    s->probe = NULL;
    p->parent = NULL;
    hub_snap_start_calls(s, &s->stores);
    /* Each store's stream holds its own address now: the list kept for this goes (856 bytes a
     * store). */
    free(s->stores.addrs);
    free(s->stores.failed);
    s->stores.addrs = NULL;
    s->stores.failed = NULL;
    s->stores.n = 0;
}

/* Starts the clock probe of snapshot s over the stores r: 0, or -ENOMEM (then s goes on without
 * one). */
static int probe_start(struct hub_snap *s, const struct hub_resolved *r)
{
    struct hub_snap *p;

    s->stores.n = r->n;
    s->stores.addrs = malloc(r->n * sizeof(*r->addrs));
    s->stores.failed = malloc(r->n * sizeof(*r->failed));
    p = s->stores.addrs && s->stores.failed ? snap_new(s->h, NULL) : NULL;
    if (!p)
        return -ENOMEM;
    memcpy(s->stores.addrs, r->addrs, r->n * sizeof(*r->addrs));
    memcpy(s->stores.failed, r->failed, r->n * sizeof(*r->failed));
    p->is_probe = true;
    p->parent = s;
    hub_snap_watch_stores(p); /* a probe's shorter timeout */
    p->sightings = HUB_SIGHTINGS_PROBE;
    p->until = s->until;
    p->since = s->until - HUB_PROBE_NS > s->since ? s->until - HUB_PROBE_NS : s->since;
    s->probe = p;
    hub_snap_start_calls(p, &s->stores);
    return 0;
}

static void resolved(struct hub_resolved *r, void *arg)
{
    struct hub_snap *s = arg;

    s->resolving = false;
    if (s->over || s->finished) {
        hub_snap_maybe_free(s);
        return;
    }
    /* One clock for the file: with two stores or more, measured first. */
    if (!s->raw_clock && r->n > 1 && probe_start(s, r) == 0)
        return;
    hub_snap_start_calls(s, r);
}

/* Keeps the request's pod selection for the stores' calls. 0 or -ENOMEM. */
static int keep_selection(struct hub_snap *s, const Netreel__V1__SnapshotRequest *req)
{
    if (req->n_namespaces && !(s->namespaces = calloc(req->n_namespaces, sizeof(char *))))
        return -ENOMEM;
    for (size_t i = 0; i < req->n_namespaces; i++) {
        if (!(s->namespaces[i] = strdup(req->namespaces[i])))
            return -ENOMEM;
        s->n_namespaces = i + 1;
    }
    if (req->pod_regex && req->pod_regex[0] && !(s->pod_regex = strdup(req->pod_regex)))
        return -ENOMEM;
    if (req->label_selector && req->label_selector[0] &&
        !(s->label_selector = strdup(req->label_selector)))
        return -ENOMEM;
    return 0;
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct hub_snap *s = user;
    Netreel__V1__SnapshotRequest *req;

    if (s->resolving || s->srcs || s->probe || s->finished)
        return;
    req = (Netreel__V1__SnapshotRequest *)rpc_unpack(&netreel__v1__snapshot_request__descriptor,
                                                     msg, len);
    if (!req) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "cannot parse SnapshotRequest (%zu bytes)", len);
        return;
    }
    s->since = req->since_ns;
    s->until = req->until_ns ? req->until_ns : nr_now_ns(); /* one "now" for every store */
    s->snaplen = req->snaplen;
    s->pcap = req->format == NETREEL__V1__FORMAT__FORMAT_PCAP;
    s->sightings = req->sightings == NETREEL__V1__SIGHTINGS__SIGHTINGS_ALL ? HUB_SIGHTINGS_ALL
                                                                           : HUB_SIGHTINGS_ONE;
    s->raw_clock = req->clock == NETREEL__V1__CLOCK__CLOCK_RAW;
    s->follow = req->follow;
    s->lateness_ns = req->lateness_ns ? req->lateness_ns : HUB_FOLLOW_LATENESS_NS;
    if (req->follow && req->until_ns) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT,
                        "follow goes on until the call ends: until_ns must be 0");
    } else if (req->lateness_ns < 0 || req->lateness_ns > HUB_FOLLOW_LATENESS_MAX_NS) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "lateness_ns %lld: from 0 to 60 s",
                        (long long)req->lateness_ns);
    } else if (req->format != NETREEL__V1__FORMAT__FORMAT_PCAP &&
               req->format != NETREEL__V1__FORMAT__FORMAT_PCAPNG) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "format %d is neither PCAPNG nor PCAP",
                        req->format);
    } else if (req->sightings != NETREEL__V1__SIGHTINGS__SIGHTINGS_ONE &&
               req->sightings != NETREEL__V1__SIGHTINGS__SIGHTINGS_ALL) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "sightings %d is neither ONE nor ALL",
                        req->sightings);
    } else if (req->clock != NETREEL__V1__CLOCK__CLOCK_ALIGNED &&
               req->clock != NETREEL__V1__CLOCK__CLOCK_RAW) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "clock %d is neither ALIGNED nor RAW", req->clock);
    } else if (s->since < 0 || s->until < s->since) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT,
                        "the window is reversed: since_ns %lld, until_ns %lld", (long long)s->since,
                        (long long)s->until);
    } else if (req->filter &&
               nr_pb_string_has_nul(msg, len, SNAPSHOT_REQUEST_FILTER, req->filter)) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "the filter holds a NUL byte");
    } else if (req->filter && strlen(req->filter) > HUB_MAX_FILTER) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "filter of %zu bytes: at most %u",
                        strlen(req->filter), HUB_MAX_FILTER);
    } else if (req->filter && req->filter[0] && !(s->filter = strdup(req->filter))) {
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (req->n_namespaces > 256 ||
               (req->pod_regex && strlen(req->pod_regex) > HUB_MAX_FILTER) ||
               (req->label_selector && strlen(req->label_selector) > HUB_MAX_FILTER)) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT,
                        "pod selection: at most 256 namespaces and %u bytes of "
                        "regex and of label selector",
                        HUB_MAX_FILTER);
    } else if (keep_selection(s, req) != 0) {
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (hub_stores_resolve(s->h, resolved, s) != 0) {
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        s->resolving = true;
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void on_writable(struct rpc_call *call, void *user)
{
    hub_snap_produce(user);
}

/* The caller closed its side: a follow ends (the file's end and the summary); a snapshot goes
 * on as it would (every gRPC client closes its side after the request). */
static void on_half_close(struct rpc_call *call, void *user)
{
    struct hub_snap *s = user;

    if (s->follow && !s->finished) {
        if (s->srcs)
            hub_snap_follow_stop(s);
        else
            s->stopping = true; /* before the stores are called: the window alone */
    }
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct hub_snap *s = user;

    s->over = true;
    s->finished = true;
    s->h->snapshots_active--;
    if (s->probe) { /* the caller went while the clocks were measured: the probe is of no use */
        s->probe->parent = NULL;
        hub_snap_finish(s->probe, RPC_CANCELLED, NULL);
        s->probe = NULL;
    }
    if (code != RPC_OK)
        NR_INFO("snapshot ended early", "code=%s message=\"%s\" packets=%llu", rpc_code_name(code),
                message, (unsigned long long)s->packets);
    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].call)
            rpc_call_cancel(s->srcs[i].call);
    uv_timer_stop(&s->timer);
    hub_snap_maybe_free(s);
}

static const struct rpc_call_cbs snap_cbs = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_half_close = on_half_close,
    .on_done = on_done,
};

/* A snapshot for the caller's call (NULL: a probe), its timer running. */
static struct hub_snap *snap_new(struct hub *h, struct rpc_call *call)
{
    struct hub_snap *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->h = h;
    s->call = call;
    s->started_ns = nr_now_ns();
    pcapng_merge_init(&s->heap, HUB_MAX_STORES);
    nr_buf_init(&s->out, HUB_CHUNK_BYTES + PCAPNG_MAX_BLOCK + (1u << 20));
    nr_buf_init(&s->keys, HUB_KEYLOG_MAX);
    uv_timer_init(h->loop, &s->timer);
    s->timer.data = s;
    hub_snap_watch_stores(s);
    return s;
}

int hub_snapshot_start(struct rpc_call *call, void *data)
{
    struct hub *h = data;
    struct hub_snap *s = snap_new(h, call);

    if (!s)
        return -ENOMEM;
    h->snapshots_active++;
    rpc_call_set_cbs(call, &snap_cbs, s);
    if (hub_check_token(h, call) != 0) {
        h->auth_failures++;
        hub_snap_finish(s, RPC_UNAUTHENTICATED, "a valid bearer token is required (--token-file)");
    } else if (h->snapshots_active > h->cfg.max_snapshots) {
        h->refused_busy++;
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "%u snapshots are running (--max-snapshots)",
                        h->cfg.max_snapshots);
    }
    return 0;
}
