/* store-sim: many netreel-stores in one process, to try the hub against hundreds or thousands of
 * nodes without as many processes. N gRPC servers on 127.0.0.1 (port 0 each), each serving
 * Store.Snapshot and Store.Stats for a synthetic node "sim-K" with one interface: packet i of
 * node k is stamped ts0 + (i * N + k) * step, so the nodes' streams interleave packet by packet
 * and the hub's merge takes turns among all of them. Each packet is an Ethernet/IPv4/UDP frame
 * from 10.K/16 whose payload starts with k and i (8 bytes each, little-endian), so a reader can
 * tell every packet's node and number.
 *
 *   store-sim --stores N --packets P --ports-file FILE [--size BYTES] [--ts-start NS]
 *             [--ts-step NS] [--stall K:AFTER] [--stats-delay MS]
 *             [--tls-cert F --tls-key F [--tls-ca F]]
 *
 * --stall: node K's Snapshot streams stop after AFTER packets and stay open, sending nothing more
 * (its socket still read), as a store stopped with SIGSTOP looks to the hub; Stats still answers.
 * --stats-delay: every Stats answer comes MS milliseconds after its request; at exit, stderr says
 * how many Stats calls were in flight at once at most ("stats in flight at most N").
 * --tls-cert/--tls-key: every node serves TLS with that certificate, as stores do in the chart;
 * --tls-ca: and requires client certificates signed by it (mutual TLS).
 *
 * FILE gets one "127.0.0.1:PORT" line per node once every server listens (it appears whole).
 * Snapshot honours the window (since/until), snaplen and max_chunk_bytes (1 MiB when not
 * given), and refuses a filter or a pod selection (UNIMPLEMENTED); it sends only while the call
 * is writable, as a store does, but with two messages queued at most (a store reads 1 MiB
 * ahead). SIGTERM or SIGINT stops it. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/encode.h"
#include "rpc/server.h"
#include "rpc/status.h"
#include "util/buf.h"
#include "util/parse.h"

#define CHUNK   (1u << 20)
#define MAX_N   65536u
#define SNAPLEN 65535u

struct sim_store {
    uint32_t k;
    char node[32];
    struct rpc_method methods[2];
    struct rpc_server *server;
};

static struct {
    uint32_t n;
    uint64_t packets;
    uint32_t size;
    int64_t ts0, step;
    struct sim_store *stores;
    unsigned closing;
    int64_t stall_k; /* -1: none */
    uint64_t stall_after;
    uint64_t stats_delay_ms;
    unsigned stats_now, stats_most; /* Stats calls in flight, now and at most */
} sim;

struct sim_call {
    struct sim_store *st;
    struct rpc_call *call;
    uint64_t next, end; /* packets [next, end) still to send */
    uint32_t snaplen;
    uint32_t chunk; /* a blocks message holds at most this (max_chunk_bytes), or one packet */
    uint64_t sent, bytes;
    bool started, done;
};

static int64_t ts_of(const struct sim_store *st, uint64_t i)
{
    return sim.ts0 + (int64_t)(i * sim.n + st->k) * sim.step;
}

/* The first packet at or after ts (P when none). */
static uint64_t first_at(const struct sim_store *st, int64_t ts)
{
    int64_t rel = ts - sim.ts0 - (int64_t)st->k * sim.step, per = (int64_t)sim.n * sim.step;

    if (rel <= 0)
        return 0;
    uint64_t i = (uint64_t)((rel + per - 1) / per);
    return i < sim.packets ? i : sim.packets;
}

static void frame(const struct sim_store *st, uint64_t i, uint8_t *f)
{
    uint32_t ip_len = sim.size - 14;
    uint8_t hdr[42] = {2,
                       0,
                       0,
                       0,
                       0,
                       2,
                       2,
                       0,
                       0,
                       0,
                       0,
                       1,
                       8,
                       0, /* Ethernet */
                       0x45,
                       0,
                       (uint8_t)(ip_len >> 8),
                       (uint8_t)ip_len,
                       0,
                       0,
                       0,
                       0,
                       64,
                       17,
                       0,
                       0,
                       10,
                       (uint8_t)(st->k >> 8),
                       (uint8_t)st->k,
                       1,
                       10,
                       255,
                       0,
                       1, /* IPv4 */
                       0x13,
                       0x88,
                       0x17,
                       0x70,
                       (uint8_t)((ip_len - 20) >> 8),
                       (uint8_t)(ip_len - 20),
                       0,
                       0}; /* UDP 5000 -> 6000 */
    uint64_t k = st->k;

    memcpy(f, hdr, sizeof(hdr));
    memset(f + 42, 0, sim.size - 42);
    memcpy(f + 42, &k, 8);
    memcpy(f + 50, &i, 8);
}

static bool stalled(const struct sim_call *c)
{
    return (int64_t)c->st->k == sim.stall_k && c->sent >= sim.stall_after;
}

static void send_chunk_or_finish(struct sim_call *c)
{
    uint8_t f[SNAPLEN];
    static struct nr_buf b; /* one for all calls: the loop is single-threaded */

    if (b.max == 0)
        nr_buf_init(&b, CHUNK + 2 * SNAPLEN);
    while (!c->done && !stalled(c) && rpc_call_writable(c->call)) {
        Netreel__V1__StoreChunk ch = NETREEL__V1__STORE_CHUNK__INIT;
        if (c->next == c->end) {
            Netreel__V1__StoreSummary sum = NETREEL__V1__STORE_SUMMARY__INIT;
            sum.packets = c->sent;
            sum.bytes = c->bytes;
            if (c->sent) {
                sum.oldest_ns = ts_of(c->st, c->end - c->sent);
                sum.newest_ns = ts_of(c->st, c->end - 1);
            }
            ch.kind_case = NETREEL__V1__STORE_CHUNK__KIND_SUMMARY;
            ch.summary = &sum;
            rpc_call_send(c->call, &ch.base);
            rpc_call_finish(c->call, RPC_OK, NULL);
            c->done = true;
            break;
        }
        b.len = 0;
        while (c->next < c->end && !stalled(c) &&
               (b.len == 0 || b.len + 32 + sim.size + 3 <= c->chunk)) {
            uint32_t cap = c->snaplen && c->snaplen < sim.size ? c->snaplen : sim.size;
            size_t before = b.len;
            frame(c->st, c->next, f);
            if (pcapng_epb_append(&b, 0, ts_of(c->st, c->next), f, cap, sim.size, NULL) != 0) {
                rpc_call_finish(c->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
                c->done = true;
                break;
            }
            c->bytes += b.len - before;
            c->sent++;
            c->next++;
        }
        if (c->done)
            break;
        ch.kind_case = NETREEL__V1__STORE_CHUNK__KIND_BLOCKS;
        ch.blocks.data = b.data;
        ch.blocks.len = b.len;
        rpc_call_send(c->call, &ch.base);
    }
}

static void snapshot_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct sim_call *c = user;
    Netreel__V1__SnapshotRequest *req;
    Netreel__V1__StoreChunk ch = NETREEL__V1__STORE_CHUNK__INIT;
    Netreel__V1__WindowHeader h = NETREEL__V1__WINDOW_HEADER__INIT;
    Netreel__V1__Interface itf = NETREEL__V1__INTERFACE__INIT, *itfs[1] = {&itf};

    if (c->started)
        return;
    c->started = true;
    req = netreel__v1__snapshot_request__unpack(NULL, len, msg);
    if (!req) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "cannot parse SnapshotRequest");
        c->done = true;
        return;
    }
    if ((req->filter && req->filter[0]) || req->n_namespaces ||
        (req->pod_regex && req->pod_regex[0]) || (req->label_selector && req->label_selector[0])) {
        rpc_call_finish(call, RPC_UNIMPLEMENTED, "store-sim serves no filter or pod selection");
        c->done = true;
        netreel__v1__snapshot_request__free_unpacked(req, NULL);
        return;
    }
    c->next = first_at(c->st, req->since_ns);
    c->end = req->until_ns > 0 ? first_at(c->st, req->until_ns + 1) : sim.packets;
    if (c->end < c->next)
        c->end = c->next;
    c->snaplen = req->snaplen;
    c->chunk = req->max_chunk_bytes == 0 || req->max_chunk_bytes > CHUNK ? CHUNK
               : req->max_chunk_bytes < (2u << 10)                       ? 2u << 10
                                                                         : req->max_chunk_bytes;
    netreel__v1__snapshot_request__free_unpacked(req, NULL);
    /* Two messages ahead of what is sent, not the megabyte a store reads ahead: this one process
     * stands for many machines, and a thousand stores' read-ahead made at once here would be
     * work no hub waits for in a cluster (each store reads ahead on its own node). */
    rpc_call_set_send_high(call, 2 * (size_t)c->chunk);
    itf.id = 0;
    itf.name = "eth0";
    itf.link_type = 1;
    itf.snaplen = SNAPLEN;
    itf.node = c->st->node;
    h.node = c->st->node;
    h.n_interfaces = 1;
    h.interfaces = itfs;
    ch.kind_case = NETREEL__V1__STORE_CHUNK__KIND_HEADER;
    ch.header = &h;
    rpc_call_send(call, &ch.base);
    send_chunk_or_finish(c);
}

static void snapshot_writable(struct rpc_call *call, void *user)
{
    struct sim_call *c = user;

    if (c->started && !c->done)
        send_chunk_or_finish(c);
}

static void call_done(struct rpc_call *call, int code, const char *message, void *user)
{
    free(user);
}

static const struct rpc_call_cbs snapshot_cbs = {
    .on_message = snapshot_message,
    .on_writable = snapshot_writable,
    .on_done = call_done,
};

static int snapshot_start(struct rpc_call *call, void *data)
{
    struct sim_call *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->st = data;
    c->call = call;
    rpc_call_set_cbs(call, &snapshot_cbs, c);
    return 0;
}

/* One Stats call: answered at once, or when its timer fires (--stats-delay). Freed once the call
 * is over and the timer closed. */
struct sim_stats {
    struct sim_store *st;
    struct rpc_call *call; /* NULL once over */
    uv_timer_t timer;
    bool timing;
};

static void stats_reply(struct sim_stats *c)
{
    Netreel__V1__StoreStats s = NETREEL__V1__STORE_STATS__INIT;
    uint64_t epb = 32 + ((sim.size + 3u) & ~3u);

    s.node = c->st->node;
    s.oldest_ns = ts_of(c->st, 0);
    s.newest_ns = ts_of(c->st, sim.packets - 1);
    s.bytes = sim.packets * epb;
    s.max_bytes = 500 * UINT64_C(1000000);
    s.segments = 1;
    s.packets = sim.packets;
    s.max_time_ns = 3600 * INT64_C(1000000000);
    rpc_call_reply(c->call, &s.base);
}

static void stats_timer_closed(uv_handle_t *h)
{
    struct sim_stats *c = h->data;

    c->timing = false;
    if (!c->call)
        free(c);
}

static void stats_timer(uv_timer_t *t)
{
    struct sim_stats *c = t->data;

    if (c->call)
        stats_reply(c);
    uv_close((uv_handle_t *)t, stats_timer_closed);
}

static void stats_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct sim_stats *c = user;

    if (!sim.stats_delay_ms) {
        stats_reply(c);
        return;
    }
    uv_timer_init(uv_default_loop(), &c->timer);
    c->timer.data = c;
    c->timing = true;
    uv_timer_start(&c->timer, stats_timer, sim.stats_delay_ms, 0);
}

static void stats_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct sim_stats *c = user;

    c->call = NULL;
    sim.stats_now--;
    if (!c->timing)
        free(c);
    else if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, stats_timer_closed);
}

static const struct rpc_call_cbs stats_cbs = {.on_message = stats_message, .on_done = stats_done};

static int stats_start(struct rpc_call *call, void *data)
{
    struct sim_stats *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->st = data;
    c->call = call;
    if (++sim.stats_now > sim.stats_most)
        sim.stats_most = sim.stats_now;
    rpc_call_set_cbs(call, &stats_cbs, c);
    return 0;
}

static uv_signal_t sigterm, sigint;

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void server_closed(void *arg)
{
    if (--sim.closing == 0)
        uv_walk(uv_default_loop(), close_walk, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    sim.closing = sim.n;
    for (uint32_t k = 0; k < sim.n; k++)
        rpc_server_close(sim.stores[k].server, server_closed, NULL);
}

static void usage(void)
{
    fprintf(stderr, "usage: store-sim --stores N --packets P --ports-file FILE [--size BYTES] "
                    "[--ts-start NS] [--ts-step NS] [--stall K:AFTER] [--stats-delay MS]\n"
                    "                 [--tls-cert F --tls-key F [--tls-ca F]]\n");
    exit(2);
}

static uint64_t number(const char *name, const char *v, uint64_t min, uint64_t max)
{
    char *end;
    unsigned long long x = strtoull(v, &end, 10);

    if (end == v || *end || x < min || x > max) {
        fprintf(stderr, "store-sim: --%s: a number from %" PRIu64 " to %" PRIu64 "\n", name, min,
                max);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"stores", required_argument, NULL, 'n'},   {"packets", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},     {"ts-start", required_argument, NULL, 't'},
        {"ts-step", required_argument, NULL, 'd'},  {"ports-file", required_argument, NULL, 'f'},
        {"stall", required_argument, NULL, 'S'},    {"stats-delay", required_argument, NULL, 'D'},
        {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
        {"tls-ca", required_argument, NULL, 'A'},   {NULL, 0, NULL, 0},
    };
    const char *ports_file = NULL, *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
    struct rlimit rl;
    FILE *f;
    char err[256], tmp[4096];
    int c;

    sim.size = 128;
    sim.stall_k = -1;
    sim.step = 1000;
    {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        sim.ts0 = ((int64_t)now.tv_sec - 600) * INT64_C(1000000000); /* ten minutes ago */
    }
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': sim.n = (uint32_t)number("stores", optarg, 1, MAX_N); break;
        case 'p': sim.packets = number("packets", optarg, 1, UINT64_C(1) << 32); break;
        case 's': sim.size = (uint32_t)number("size", optarg, 64, SNAPLEN); break;
        case 't': sim.ts0 = (int64_t)number("ts-start", optarg, 1, INT64_MAX / 2); break;
        case 'd': sim.step = (int64_t)number("ts-step", optarg, 1, 1000000000); break;
        case 'f': ports_file = optarg; break;
        case 'S': {
            char *colon = strchr(optarg, ':');
            if (!colon)
                usage();
            *colon = '\0';
            sim.stall_k = (int64_t)number("stall", optarg, 0, MAX_N - 1);
            sim.stall_after = number("stall", colon + 1, 0, UINT64_C(1) << 32);
            break;
        }
        case 'D': sim.stats_delay_ms = number("stats-delay", optarg, 0, 600000); break;
        case 'C': tls_cert = optarg; break;
        case 'K': tls_key = optarg; break;
        case 'A': tls_ca = optarg; break;
        default: usage();
        }
    }
    if (!sim.n || !sim.packets || !ports_file || optind != argc || sim.stall_k >= (int64_t)sim.n ||
        (tls_cert == NULL) != (tls_key == NULL) || (tls_ca && !tls_cert))
        usage();
    /* Each server holds a listening socket and its connections. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sim.stores = calloc(sim.n, sizeof(*sim.stores));
    if (!sim.stores) {
        fprintf(stderr, "store-sim: out of memory\n");
        return 1;
    }
    for (uint32_t k = 0; k < sim.n; k++) {
        struct sim_store *st = &sim.stores[k];
        struct rpc_server_config scfg;
        st->k = k;
        snprintf(st->node, sizeof(st->node), "sim-%u", k);
        st->methods[0] = (struct rpc_method){
            "/netreel.v1.Store/Snapshot", RPC_SHAPE_SERVER_STREAM, snapshot_start, st, 0, NULL};
        st->methods[1] = (struct rpc_method){
            "/netreel.v1.Store/Stats", RPC_SHAPE_UNARY, stats_start, st, 0, NULL};
        rpc_server_config_init(&scfg);
        scfg.listen = "127.0.0.1:0";
        scfg.tls_cert = tls_cert; /* as a store serves the hub: TLS, mutual with a CA */
        scfg.tls_key = tls_key;
        scfg.tls_ca = tls_ca;
        st->server = rpc_server_new(uv_default_loop(), &scfg, st->methods, 2);
        if (!st->server || rpc_server_start(st->server, err, sizeof(err)) != 0) {
            fprintf(stderr, "store-sim: store %u: %s\n", k, st->server ? err : "out of memory");
            return 1;
        }
    }
    /* Whole or not at all: written aside, then renamed into place. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", ports_file);
    f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        return 1;
    }
    for (uint32_t k = 0; k < sim.n; k++)
        fprintf(f, "127.0.0.1:%d\n", rpc_server_port(sim.stores[k].server));
    if (fclose(f) != 0 || rename(tmp, ports_file) != 0) {
        perror(ports_file);
        return 1;
    }
    uv_signal_init(uv_default_loop(), &sigterm);
    uv_signal_init(uv_default_loop(), &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    fprintf(stderr, "store-sim: stats in flight at most %u\n", sim.stats_most);
    free(sim.stores);
    return 0;
}
