/* rpc-test-client: makes one call of netreel.rpctest.Test (or Health/Check) with the lib/rpc
 * client and prints what happened as one JSON object, for tests against stock gRPC servers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/rpctest.h"
#include "grpc/health/v1/health.pb-c.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "rpctest.pb-c.h"
#include "util/log.h"
#include "util/parse.h"

static struct {
    const char *command;
    const char *payload;
    const char *service;
    const char *fail_message;
    uint32_t size, count, delay_ms, recv_delay_ms, cancel_after, seconds;
    int fail_code;
} a = {.payload = "", .service = "", .fail_message = ""};

static struct {
    struct rpc_channel *ch;
    struct rpc_call *call;
    int status;
    char *message;
    char *payload;
    uint64_t responses, bytes, count, checksum, expected, sent_bytes, sent;
    uint64_t calls, cancelled, deadline_exceeded, active;
    int health;
    uint8_t *buf;
    uint64_t started;
    uint64_t ended;
} r = {.health = -1};

static void json_str(const char *key, const char *s)
{
    printf("\"%s\": \"", key);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    printf("\", ");
}

/* This process's peak RSS: VmHWM of its own memory map. Not getrusage's ru_maxrss, which
 * starts from the parent's peak (Linux keeps it across fork and exec), so a client started by
 * a large test runner would report the runner's size. */
static long peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void print_result(void)
{
    static const char *const health_names[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                               "SERVICE_UNKNOWN"};

    printf("{\"status\": %d, ", r.status);
    json_str("message", r.message ? r.message : "");
    if (strcmp(a.command, "unary") == 0)
        json_str("payload", r.payload ? r.payload : "");
    if (strcmp(a.command, "server-stream") == 0 || strcmp(a.command, "bidi") == 0)
        printf("\"responses\": %llu, \"bytes\": %llu, ", (unsigned long long)r.responses,
               (unsigned long long)r.bytes);
    if (strcmp(a.command, "client-stream") == 0)
        printf("\"count\": %llu, \"bytes\": %llu, \"checksum\": %llu, \"expected_checksum\": "
               "%llu, \"sent_bytes\": %llu, ",
               (unsigned long long)r.count, (unsigned long long)r.bytes,
               (unsigned long long)r.checksum, (unsigned long long)r.expected,
               (unsigned long long)r.sent_bytes);
    if (strcmp(a.command, "counters") == 0)
        printf("\"calls\": %llu, \"cancelled\": %llu, \"deadline_exceeded\": %llu, \"active\": "
               "%llu, ",
               (unsigned long long)r.calls, (unsigned long long)r.cancelled,
               (unsigned long long)r.deadline_exceeded, (unsigned long long)r.active);
    if (strcmp(a.command, "health") == 0)
        json_str("health", r.health >= 0 && r.health <= 3 ? health_names[r.health] : "NONE");
    if (strcmp(a.command, "bench") == 0) {
        double secs = (double)(r.ended - r.started) / 1e3;
        printf("\"bytes\": %llu, \"seconds\": %.3f, \"gbit_per_s\": %.3f, ",
               (unsigned long long)r.sent_bytes, secs,
               secs > 0 ? (double)r.sent_bytes * 8 / secs / 1e9 : 0.0);
    }
    printf("\"max_rss_kb\": %ld}\n", peak_rss_kb());
    fflush(stdout);
}

static void closed(void *arg)
{
    /* Nothing left: uv_run returns once the channel's handles are closed. */
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    r.status = code;
    r.message = strdup(message);
    r.ended = uv_now(uv_default_loop());
    r.call = NULL;
    rpc_channel_close(r.ch, closed, NULL);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    if (strcmp(a.command, "health") == 0) {
        Grpc__Health__V1__HealthCheckResponse *h =
            grpc__health__v1__health_check_response__unpack(NULL, len, msg);
        if (h) {
            r.health = h->status;
            grpc__health__v1__health_check_response__free_unpacked(h, NULL);
        }
        return;
    }
    if (strcmp(a.command, "counters") == 0) {
        Netreel__Rpctest__Counters *c = netreel__rpctest__counters__unpack(NULL, len, msg);
        if (c) {
            r.calls = c->calls;
            r.cancelled = c->cancelled;
            r.deadline_exceeded = c->deadline_exceeded;
            r.active = c->active;
            netreel__rpctest__counters__free_unpacked(c, NULL);
        }
        return;
    }
    Netreel__Rpctest__TestResponse *resp = netreel__rpctest__test_response__unpack(NULL, len, msg);
    if (!resp) {
        rpc_call_cancel(call);
        return;
    }
    r.responses++;
    r.bytes += resp->payload.len;
    if (strcmp(a.command, "unary") == 0) {
        free(r.payload);
        r.payload = strndup((const char *)resp->payload.data, resp->payload.len);
    } else if (strcmp(a.command, "client-stream") == 0) {
        r.count = resp->count;
        r.bytes = resp->bytes;
        r.checksum = resp->checksum;
    }
    netreel__rpctest__test_response__free_unpacked(resp, NULL);
    if (strcmp(a.command, "server-stream") == 0 && a.cancel_after && r.responses == a.cancel_after)
        rpc_call_cancel(call);
    if (strcmp(a.command, "bidi") == 0) {
        if (r.sent < a.count) {
            Netreel__Rpctest__TestRequest req = NETREEL__RPCTEST__TEST_REQUEST__INIT;
            req.payload.data = r.buf;
            req.payload.len = a.size;
            rpc_call_send(call, &req.base);
            r.sent++;
        } else {
            rpc_call_close_send(call);
        }
    }
}

/* client-stream and bench: send while the call is writable. */
static void produce(struct rpc_call *call)
{
    Netreel__Rpctest__TestRequest req = NETREEL__RPCTEST__TEST_REQUEST__INIT;
    bool bench = strcmp(a.command, "bench") == 0;

    req.payload.data = r.buf;
    req.payload.len = a.size;
    req.recv_delay_ms = a.recv_delay_ms;
    req.no_checksum = bench;
    while (rpc_call_writable(call)) {
        if (bench ? uv_now(uv_default_loop()) - r.started >= a.seconds * 1000ULL
                  : r.sent >= a.count) {
            rpc_call_close_send(call);
            return;
        }
        if (!bench) {
            rpctest_pattern(r.buf, a.size, r.sent);
            r.expected = rpctest_fnv(r.expected, r.buf, a.size);
        }
        if (rpc_call_send(call, &req.base) != 0)
            return;
        r.sent++;
        r.sent_bytes += a.size;
    }
}

static void on_writable(struct rpc_call *call, void *user)
{
    if (strcmp(a.command, "client-stream") == 0 || strcmp(a.command, "bench") == 0)
        produce(call);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_done = on_done,
};

static void usage(void)
{
    fprintf(stderr,
            "usage: rpc-test-client --target HOST:PORT [--tls-ca F] [--tls-cert F --tls-key F]\n"
            "       [--authority NAME] [--deadline-ms N] [--max-recv BYTES] COMMAND [options]\n"
            "commands: unary, server-stream, client-stream, bidi, counters, health, bench\n");
    exit(2);
}

static uint32_t num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v > UINT32_MAX) {
        fprintf(stderr, "rpc-test-client: not a number: %s\n", s);
        exit(2);
    }
    return (uint32_t)v;
}

int main(int argc, char **argv)
{
    static const struct option gopts[] = {
        {"target", required_argument, NULL, 't'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"authority", required_argument, NULL, 'A'},
        {"deadline-ms", required_argument, NULL, 'D'},
        {"max-recv", required_argument, NULL, 'm'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    static const struct option copts[] = {
        {"payload", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"delay-ms", required_argument, NULL, 'w'},
        {"fail-code", required_argument, NULL, 'f'},
        {"fail-message", required_argument, NULL, 'M'},
        {"recv-delay-ms", required_argument, NULL, 'r'},
        {"cancel-after", required_argument, NULL, 'x'},
        {"service", required_argument, NULL, 'S'},
        {"seconds", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    struct rpc_channel_config cfg;
    struct rpc_call_opts co = {0};
    char err[256];
    int c;

    rpc_channel_config_init(&cfg);
    while ((c = getopt_long(argc, argv, "+", gopts, NULL)) != -1) {
        switch (c) {
        case 't': cfg.target = optarg; break;
        case 'a': cfg.tls_ca = optarg; break;
        case 'c': cfg.tls_cert = optarg; break;
        case 'k': cfg.tls_key = optarg; break;
        case 'A': cfg.authority = optarg; break;
        case 'D': co.timeout_ms = num(optarg); break;
        case 'd': nr_log_set_level(NR_LOG_DEBUG); break;
        case 'm': {
            uint64_t n;
            if (nr_parse_size(optarg, &n, err, sizeof(err)) != 0) {
                fprintf(stderr, "rpc-test-client: %s\n", err);
                return 2;
            }
            cfg.limits.max_recv_size = n;
            break;
        }
        default: usage();
        }
    }
    if (!cfg.target || optind >= argc)
        usage();
    a.command = argv[optind];
    optind++;
    argv += optind - 1;
    argc -= optind - 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", copts, NULL)) != -1) {
        switch (c) {
        case 'p': a.payload = optarg; break;
        case 's': a.size = num(optarg); break;
        case 'n': a.count = num(optarg); break;
        case 'w': a.delay_ms = num(optarg); break;
        case 'f': a.fail_code = (int)num(optarg); break;
        case 'M': a.fail_message = optarg; break;
        case 'r': a.recv_delay_ms = num(optarg); break;
        case 'x': a.cancel_after = num(optarg); break;
        case 'S': a.service = optarg; break;
        case 'T': a.seconds = num(optarg); break;
        default: usage();
        }
    }
    r.ch = rpc_channel_new(uv_default_loop(), &cfg, err, sizeof(err));
    if (!r.ch) {
        fprintf(stderr, "rpc-test-client: %s\n", err);
        return 1;
    }
    r.buf = calloc(1, a.size ? a.size : 1);
    r.expected = RPCTEST_FNV_INIT;
    r.started = uv_now(uv_default_loop());

    Netreel__Rpctest__TestRequest req = NETREEL__RPCTEST__TEST_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Netreel__Rpctest__CountersRequest creq = NETREEL__RPCTEST__COUNTERS_REQUEST__INIT;
    const ProtobufCMessage *first = &req.base;
    req.count = a.count;
    req.size = a.size;
    req.delay_ms = a.delay_ms;
    req.fail_code = a.fail_code;
    req.fail_message = (char *)a.fail_message;
    if (a.size > 0) {
        req.payload.data = r.buf;
        req.payload.len = a.size;
    } else {
        req.payload.data = (uint8_t *)a.payload;
        req.payload.len = strlen(a.payload);
    }
    if (strcmp(a.command, "unary") == 0) {
        co.path = "/netreel.rpctest.Test/Unary";
        co.shape = RPC_SHAPE_UNARY;
    } else if (strcmp(a.command, "server-stream") == 0) {
        co.path = "/netreel.rpctest.Test/ServerStream";
        co.shape = RPC_SHAPE_SERVER_STREAM;
        req.payload.len = 0;
    } else if (strcmp(a.command, "client-stream") == 0 || strcmp(a.command, "bench") == 0) {
        co.path = "/netreel.rpctest.Test/ClientStream";
        co.shape = RPC_SHAPE_CLIENT_STREAM;
        first = NULL;
    } else if (strcmp(a.command, "bidi") == 0) {
        co.path = "/netreel.rpctest.Test/Bidi";
        co.shape = RPC_SHAPE_BIDI;
        first = a.count > 0 ? &req.base : NULL;
        req.count = req.size = 0;
    } else if (strcmp(a.command, "counters") == 0) {
        co.path = "/netreel.rpctest.Test/GetCounters";
        co.shape = RPC_SHAPE_UNARY;
        first = &creq.base;
    } else if (strcmp(a.command, "health") == 0) {
        co.path = "/grpc.health.v1.Health/Check";
        co.shape = RPC_SHAPE_UNARY;
        hreq.service = (char *)a.service;
        first = &hreq.base;
    } else {
        usage();
    }
    r.call = rpc_channel_call(r.ch, &co, &cbs, NULL);
    if (!r.call) {
        fprintf(stderr, "rpc-test-client: out of memory\n");
        return 1;
    }
    if (first) {
        rpc_call_send(r.call, first);
        if (strcmp(a.command, "bidi") == 0)
            r.sent = 1;
        else
            rpc_call_close_send(r.call);
    } else if (strcmp(a.command, "bidi") == 0) {
        rpc_call_close_send(r.call);
    } else {
        produce(r.call);
    }
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    if (r.call) {
        fprintf(stderr, "rpc-test-client: the loop ended before the call did\n");
        return 1;
    }
    print_result();
    free(r.buf);
    free(r.payload);
    free(r.message);
    return 0;
}
