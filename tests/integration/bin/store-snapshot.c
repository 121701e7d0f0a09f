/* store-snapshot: calls Store.Snapshot and writes what comes back as one pcapng file (SHB, an
 * IDB per interface named node/iface, an NRB of pod names, the EPBs as they came, ISBs from the
 * summary) — the store's side of what the hub will do, for the tests and the benchmarks.
 * Prints one JSON line with the summary. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/encode.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/buf.h"

static struct {
    const char *store, *out, *filter, *tls_ca, *tls_cert, *tls_key;
    int64_t since, until;
    uint32_t snaplen;
} a = {.store = "127.0.0.1:8897", .out = "-"};

static struct {
    struct rpc_channel *ch;
    FILE *f;
    struct nr_buf b;
    uint64_t chunks, packets, bytes, max_chunk, keylog_bytes, keylog_chunks, keylog_max;
    int64_t oldest, newest;
    bool header, summary;
    int status;
    char message[512];
} r;

static void put(const struct nr_buf *b)
{
    if (fwrite(b->data, 1, b->len, r.f) != b->len) {
        fprintf(stderr, "store-snapshot: cannot write %s: %s\n", a.out, strerror(errno));
        exit(1);
    }
}

static void header(const Netreel__V1__WindowHeader *h)
{
    r.b.len = 0;
    if (pcapng_shb_append(&r.b, "store-snapshot", NULL, NULL, NULL) != 0)
        exit(1);
    for (size_t i = 0; i < h->n_interfaces; i++) {
        const Netreel__V1__Interface *in = h->interfaces[i];
        char name[512];
        snprintf(name, sizeof(name), "%s/%s", in->node, in->name);
        if (pcapng_idb_append(&r.b, (uint16_t)in->link_type, in->snaplen, name, NULL) != 0)
            exit(1);
    }
    if (h->n_pods) {
        struct pcapng_name *names = calloc(h->n_pods, sizeof(*names));
        char(*text)[512] = calloc(h->n_pods, sizeof(*text));
        if (!names || !text)
            exit(1);
        for (size_t i = 0; i < h->n_pods; i++) {
            names[i].family = h->pods[i]->ip.len == 4 ? 4 : 6;
            memcpy(names[i].addr, h->pods[i]->ip.data, h->pods[i]->ip.len);
            snprintf(text[i], sizeof(text[i]), "%s/%s", h->pods[i]->namespace_, h->pods[i]->name);
            names[i].name = text[i];
        }
        if (pcapng_nrb_append(&r.b, names, h->n_pods) != 0)
            exit(1);
        free(names);
        free(text);
    }
    put(&r.b);
    r.header = true;
}

static void summary(const Netreel__V1__StoreSummary *s)
{
    r.b.len = 0;
    for (size_t i = 0; i < s->n_interface_stats; i++) {
        const Netreel__V1__InterfaceStats *is = s->interface_stats[i];
        struct pcapng_isb isb = {
            .ifid = is->interface_id,
            .ts_ns = is->end_ns,
            .start_ns = is->start_ns,
            .end_ns = is->end_ns,
            .ifrecv = is->received,
            .ifdrop = is->dropped,
            .osdrop = is->capture_dropped,
        };
        if (pcapng_isb_append(&r.b, &isb) != 0)
            exit(1);
    }
    put(&r.b);
    r.packets = s->packets;
    r.bytes = s->bytes;
    r.oldest = s->oldest_ns;
    r.newest = s->newest_ns;
    r.summary = true;
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    Netreel__V1__StoreChunk *c = netreel__v1__store_chunk__unpack(NULL, len, msg);

    if (!c) {
        rpc_call_cancel(call);
        return;
    }
    switch (c->kind_case) {
    case NETREEL__V1__STORE_CHUNK__KIND_HEADER: header(c->header); break;
    case NETREEL__V1__STORE_CHUNK__KIND_BLOCKS:
        if (fwrite(c->blocks.data, 1, c->blocks.len, r.f) != c->blocks.len)
            exit(1);
        r.chunks++;
        if (c->blocks.len > r.max_chunk)
            r.max_chunk = c->blocks.len;
        break;
    case NETREEL__V1__STORE_CHUNK__KIND_TLS_KEYLOG:
        /* As the hub does: a DSB, ahead of the packets (the store sends the lines first). */
        r.b.len = 0;
        if (pcapng_dsb_append(&r.b, PCAPNG_DSB_TLS_KEYLOG, c->tls_keylog.data, c->tls_keylog.len) !=
            0)
            exit(1);
        put(&r.b);
        r.keylog_bytes += c->tls_keylog.len;
        r.keylog_chunks++;
        if (c->tls_keylog.len > r.keylog_max)
            r.keylog_max = c->tls_keylog.len;
        break;
    case NETREEL__V1__STORE_CHUNK__KIND_SUMMARY: summary(c->summary); break;
    default: break;
    }
    netreel__v1__store_chunk__free_unpacked(c, NULL);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    r.status = code;
    snprintf(r.message, sizeof(r.message), "%s", message);
    for (char *c = r.message; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    rpc_channel_close(r.ch, NULL, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},   {"output", required_argument, NULL, 'o'},
        {"since", required_argument, NULL, 'S'},   {"until", required_argument, NULL, 'U'},
        {"filter", required_argument, NULL, 'f'},  {"snaplen", required_argument, NULL, 'n'},
        {"tls-ca", required_argument, NULL, 'a'},  {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'k'}, {NULL, 0, NULL, 0},
    };
    Netreel__V1__SnapshotRequest req = NETREEL__V1__SNAPSHOT_REQUEST__INIT;
    struct rpc_channel_config cfg;
    struct rpc_call_opts co = {0};
    struct rpc_call_cbs cbs = {.on_message = on_message, .on_done = on_done};
    struct rpc_call *call;
    char err[256];
    int c;

    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 's': a.store = optarg; break;
        case 'o': a.out = optarg; break;
        case 'S': a.since = strtoll(optarg, NULL, 10); break;
        case 'U': a.until = strtoll(optarg, NULL, 10); break;
        case 'f': a.filter = optarg; break;
        case 'n': a.snaplen = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'a': a.tls_ca = optarg; break;
        case 'C': a.tls_cert = optarg; break;
        case 'k': a.tls_key = optarg; break;
        default:
            fprintf(stderr, "usage: store-snapshot [--store ADDR] [-o FILE|-] [--since NS] "
                            "[--until NS] [--filter BPF] [--snaplen N]\n");
            return 2;
        }
    }
    r.f = strcmp(a.out, "-") == 0 ? stdout : fopen(a.out, "wb");
    if (!r.f) {
        fprintf(stderr, "store-snapshot: cannot open %s: %s\n", a.out, strerror(errno));
        return 1;
    }
    nr_buf_init(&r.b, 64u << 20);
    rpc_channel_config_init(&cfg);
    cfg.target = a.store;
    cfg.tls_ca = a.tls_ca;
    cfg.tls_cert = a.tls_cert;
    cfg.tls_key = a.tls_key;
    r.ch = rpc_channel_new(uv_default_loop(), &cfg, err, sizeof(err));
    if (!r.ch) {
        fprintf(stderr, "store-snapshot: %s\n", err);
        return 2;
    }
    req.since_ns = a.since;
    req.until_ns = a.until;
    req.filter = (char *)(a.filter ? a.filter : "");
    req.snaplen = a.snaplen;
    co.path = "/netreel.v1.Store/Snapshot";
    co.shape = RPC_SHAPE_SERVER_STREAM;
    call = rpc_channel_call(r.ch, &co, &cbs, NULL);
    if (!call || rpc_call_send(call, &req.base) != 0 || rpc_call_close_send(call) != 0)
        return 1;
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    if (r.f != stdout && fclose(r.f) != 0) {
        fprintf(stderr, "store-snapshot: cannot write %s\n", a.out);
        return 1;
    }
    fprintf(r.f == stdout ? stderr : stdout,
            "{\"status\": %d, \"message\": \"%s\", \"packets\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"chunks\": %" PRIu64 ", \"max_chunk\": %" PRIu64 ", \"oldest_ns\": %" PRId64
            ", \"newest_ns\": %" PRId64 ", \"keylog_bytes\": %" PRIu64
            ", \"keylog_chunks\": %" PRIu64 ", \"keylog_max\": %" PRIu64
            ", \"header\": %s, \"summary\": %s}\n",
            r.status, r.message, r.packets, r.bytes, r.chunks, r.max_chunk, r.oldest, r.newest,
            r.keylog_bytes, r.keylog_chunks, r.keylog_max, r.header ? "true" : "false",
            r.summary ? "true" : "false");
    nr_buf_free(&r.b);
    uv_loop_close(uv_default_loop());
    return r.status == RPC_OK && r.summary ? 0 : 1;
}
