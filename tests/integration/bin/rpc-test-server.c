/* rpc-test-server: serves netreel.rpctest.Test on lib/rpc so that stock gRPC clients (and our own
 * client) can exercise every call shape, deferred answers, statuses and slow reading. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/rpctest.h"
#include "rpc/server.h"
#include "rpc/status.h"
#include "rpctest.pb-c.h"
#include "util/log.h"
#include "util/parse.h"

struct counters {
    uint64_t calls, cancelled, deadline_exceeded, active;
};

static struct counters counters;

/* One call's handler state; freed once its timer handle is closed. */
struct handler {
    struct rpc_call *call;
    enum { H_UNARY, H_SSTREAM, H_CSTREAM, H_BIDI, H_COUNTERS } kind;
    uv_timer_t timer;
    Netreel__Rpctest__TestRequest *req;
    uint32_t sent;
    uint8_t *payload;
    uint64_t count, bytes, checksum;
    bool done;
};

static void handler_free(uv_handle_t *h)
{
    struct handler *hd = h->data;

    if (hd->req)
        netreel__rpctest__test_request__free_unpacked(hd->req, NULL);
    free(hd->payload);
    free(hd);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct handler *hd = user;

    counters.active--;
    if (code == RPC_CANCELLED)
        counters.cancelled++;
    else if (code == RPC_DEADLINE_EXCEEDED)
        counters.deadline_exceeded++;
    hd->done = true;
    uv_timer_stop(&hd->timer);
    uv_close((uv_handle_t *)&hd->timer, handler_free);
}

static void finish_with_request_status(struct handler *hd)
{
    int code = hd->req ? hd->req->fail_code : 0;

    rpc_call_finish(hd->call, code, code ? hd->req->fail_message : NULL);
}

static void unary_answer(struct handler *hd)
{
    Netreel__Rpctest__TestResponse resp = NETREEL__RPCTEST__TEST_RESPONSE__INIT;

    if (hd->req->fail_code) {
        finish_with_request_status(hd);
        return;
    }
    resp.payload = hd->req->payload;
    rpc_call_reply(hd->call, &resp.base);
}

/* Sends ServerStream responses while the call is writable. */
static void sstream_produce(struct handler *hd)
{
    Netreel__Rpctest__TestResponse resp = NETREEL__RPCTEST__TEST_RESPONSE__INIT;

    resp.payload.data = hd->payload;
    resp.payload.len = hd->req->size;
    while (hd->sent < hd->req->count && rpc_call_writable(hd->call)) {
        rpc_call_send(hd->call, &resp.base);
        hd->sent++;
        if (hd->req->delay_ms > 0)
            break; /* one per tick */
    }
    if (hd->sent == hd->req->count)
        finish_with_request_status(hd);
}

static void timer_cb(uv_timer_t *t)
{
    struct handler *hd = t->data;

    if (hd->done)
        return;
    switch (hd->kind) {
    case H_UNARY: unary_answer(hd); break;
    case H_SSTREAM:
        sstream_produce(hd);
        if (hd->sent < hd->req->count)
            uv_timer_start(&hd->timer, timer_cb, hd->req->delay_ms, 0);
        break;
    case H_CSTREAM: rpc_call_resume_recv(hd->call); break;
    default: break;
    }
}

static void on_writable(struct rpc_call *call, void *user)
{
    struct handler *hd = user;

    if (hd->kind == H_SSTREAM && hd->req->delay_ms == 0)
        sstream_produce(hd);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct handler *hd = user;
    Netreel__Rpctest__TestRequest *req;

    if (hd->kind == H_COUNTERS)
        return;
    req = netreel__rpctest__test_request__unpack(NULL, len, msg);
    if (!req) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "cannot parse TestRequest");
        return;
    }
    switch (hd->kind) {
    case H_UNARY:
        hd->req = req;
        if (req->delay_ms)
            uv_timer_start(&hd->timer, timer_cb, req->delay_ms, 0);
        else
            unary_answer(hd);
        return;
    case H_SSTREAM:
        hd->req = req;
        hd->payload = calloc(1, req->size ? req->size : 1);
        if (!hd->payload) {
            rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        if (req->delay_ms)
            uv_timer_start(&hd->timer, timer_cb, req->delay_ms, 0);
        else
            sstream_produce(hd);
        return;
    case H_CSTREAM:
        hd->count++;
        hd->bytes += req->payload.len;
        if (!req->no_checksum)
            hd->checksum = rpctest_fnv(hd->checksum, req->payload.data, req->payload.len);
        if (req->recv_delay_ms) {
            /* A slow reader: stop reading for a while after each message. */
            rpc_call_pause_recv(call);
            uv_timer_start(&hd->timer, timer_cb, req->recv_delay_ms, 0);
        }
        break;
    case H_BIDI: {
        Netreel__Rpctest__TestResponse resp = NETREEL__RPCTEST__TEST_RESPONSE__INIT;
        resp.payload = req->payload;
        rpc_call_send(call, &resp.base);
        break;
    }
    default: break;
    }
    netreel__rpctest__test_request__free_unpacked(req, NULL);
}

static void on_half_close(struct rpc_call *call, void *user)
{
    struct handler *hd = user;

    if (hd->kind == H_CSTREAM) {
        Netreel__Rpctest__TestResponse resp = NETREEL__RPCTEST__TEST_RESPONSE__INIT;
        resp.count = hd->count;
        resp.bytes = hd->bytes;
        resp.checksum = hd->checksum;
        rpc_call_reply(call, &resp.base);
    } else if (hd->kind == H_BIDI) {
        rpc_call_finish(call, RPC_OK, NULL);
    } else if (hd->kind == H_COUNTERS) {
        Netreel__Rpctest__Counters c = NETREEL__RPCTEST__COUNTERS__INIT;
        c.calls = counters.calls;
        c.cancelled = counters.cancelled;
        c.deadline_exceeded = counters.deadline_exceeded;
        c.active = counters.active;
        rpc_call_reply(call, &c.base);
    }
}

static const struct rpc_call_cbs handler_cbs = {
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_writable = on_writable,
    .on_done = on_done,
};

static int start(struct rpc_call *call, void *data)
{
    struct handler *hd = calloc(1, sizeof(*hd));

    if (!hd)
        return -1;
    hd->call = call;
    hd->kind = (int)(intptr_t)data;
    hd->checksum = RPCTEST_FNV_INIT;
    uv_timer_init(uv_default_loop(), &hd->timer);
    hd->timer.data = hd;
    counters.calls++;
    counters.active++;
    rpc_call_set_cbs(call, &handler_cbs, hd);
    return 0;
}

static const struct rpc_method methods[] = {
    {"/netreel.rpctest.Test/Unary", RPC_SHAPE_UNARY, start, (void *)H_UNARY, 0, NULL},
    {"/netreel.rpctest.Test/ServerStream", RPC_SHAPE_SERVER_STREAM, start, (void *)H_SSTREAM, 0,
     NULL},
    {"/netreel.rpctest.Test/ClientStream", RPC_SHAPE_CLIENT_STREAM, start, (void *)H_CSTREAM, 0,
     NULL},
    {"/netreel.rpctest.Test/Bidi", RPC_SHAPE_BIDI, start, (void *)H_BIDI, 0, NULL},
    {"/netreel.rpctest.Test/GetCounters", RPC_SHAPE_UNARY, start, (void *)H_COUNTERS, 0, NULL},
};

static struct rpc_server *server;
static uv_signal_t sigterm, sigint;

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void server_closed(void *arg)
{
    uv_walk(uv_default_loop(), close_walk, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    rpc_server_close(server, server_closed, NULL);
}

static void usage(void)
{
    fprintf(stderr, "usage: rpc-test-server [--listen HOST:PORT] [--tls-cert F --tls-key F "
                    "[--tls-ca F]] [--max-recv BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"max-recv", required_argument, NULL, 'm'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    struct rpc_server_config cfg;
    char err[256];
    int c;

    rpc_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': cfg.listen = optarg; break;
        case 'c': cfg.tls_cert = optarg; break;
        case 'k': cfg.tls_key = optarg; break;
        case 'a': cfg.tls_ca = optarg; break;
        case 'd': nr_log_set_level(NR_LOG_DEBUG); break;
        case 'm': {
            uint64_t n;
            if (nr_parse_size(optarg, &n, err, sizeof(err)) != 0) {
                fprintf(stderr, "rpc-test-server: %s\n", err);
                return 2;
            }
            cfg.limits.max_recv_size = n;
            break;
        }
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    server = rpc_server_new(uv_default_loop(), &cfg, methods, sizeof(methods) / sizeof(methods[0]));
    if (!server || rpc_server_start(server, err, sizeof(err)) != 0) {
        fprintf(stderr, "rpc-test-server: %s\n", server ? err : "out of memory");
        return 1;
    }
    rpc_server_set_health(server, "netreel.rpctest.Test", 1);
    uv_signal_init(uv_default_loop(), &sigterm);
    uv_signal_init(uv_default_loop(), &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    {
        char host[64];
        const char *colon = strrchr(cfg.listen, ':');
        size_t hl = colon ? (size_t)(colon - cfg.listen) : 0;
        snprintf(host, sizeof(host), "%.*s", (int)hl, cfg.listen);
        printf("listening on %s:%d\n", host, rpc_server_port(server));
        fflush(stdout);
    }
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    return 0;
}
