/* Tests for lib/util/httpd.c: the server on 127.0.0.1:0 in a libuv loop on the test's thread,
 * and a plain blocking client on another — what Prometheus and the kubelet would see: the
 * answers, their headers, the limits on heads, time and connections, and a close that leaves
 * nothing behind (the ASan build checks leaks). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/metrics.h"

#define MAX_REPLIES 16

/* ---- the routes ---- */

static const char metrics_body[] = "# HELP t_requests_total Requests.\n"
                                   "# TYPE t_requests_total counter\n"
                                   "t_requests_total{path=\"/a\\\"b\"} 18446744073709551615\n";

static int serve_metrics(struct nr_buf *body, const char **content_type, void *data)
{
    struct nr_metrics m;

    nr_metrics_init(&m, body);
    nr_metrics_family(&m, "t_requests_total", NR_METRICS_COUNTER, "Requests.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"path", "/a\"b"}), UINT64_MAX);
    *content_type = NR_METRICS_CONTENT_TYPE;
    return m.err ? m.err : 200;
}

static int serve_healthz(struct nr_buf *body, const char **content_type, void *data)
{
    return nr_buf_append(body, "ok\n", 3) == 0 ? 200 : -ENOMEM;
}

static int serve_sick(struct nr_buf *body, const char **content_type, void *data)
{
    return nr_buf_append(body, "not ready\n", 10) == 0 ? 503 : -ENOMEM;
}

static int serve_fail(struct nr_buf *body, const char **content_type, void *data)
{
    nr_buf_append(body, "half", 4);
    return -EIO;
}

static int serve_bad_type(struct nr_buf *body, const char **content_type, void *data)
{
    *content_type = "text/plain\r\nX-Injected: 1";
    return 200;
}

/* data points at the number of bytes to write. */
static int serve_big(struct nr_buf *body, const char **content_type, void *data)
{
    size_t n = *(const size_t *)data;
    int rc = nr_buf_reserve(body, n);

    if (rc != 0)
        return rc;
    memset(body->data, 'x', n);
    body->len = n;
    return 200;
}

static size_t big_size = 1 << 20;
static size_t too_big_size = 2000;

static const struct nr_httpd_route routes[] = {
    {"/metrics", serve_metrics, NULL},
    {"/healthz", serve_healthz, NULL},
    {"/sick", serve_sick, NULL},
    {"/fail", serve_fail, NULL},
    {"/bad-type", serve_bad_type, NULL},
    {"/big", serve_big, &big_size},
    {"/too-big", serve_big, &too_big_size},
};

/* ---- the client thread and what it saw ---- */

struct reply {
    char raw[65536];
    size_t len;   /* bytes received (at most sizeof(raw) kept) */
    size_t total; /* bytes received in all */
    bool eof;     /* the server closed cleanly */
    int err;      /* else the recv error (ECONNRESET, EAGAIN on our own timeout) */
    int64_t ms;   /* from connect to the end */
    int status;   /* parsed from raw, 0 if none */
    const char *body;
    size_t body_len;
};

struct harness {
    uv_loop_t loop;
    struct nr_httpd *httpd;
    uv_async_t done;
    pthread_t thread;
    void (*client)(struct harness *t);
    bool done_sent; /* the client thread's */
    int port;
    int family; /* of the client's sockets; AF_INET unless a test says */
    int closes;
    struct reply replies[MAX_REPLIES];
    size_t n_replies;
    int64_t values[8]; /* anything else a client wants to report */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* A connected socket whose reads give up after 5 s, or -1. */
static int connect_to(struct harness *t, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct timeval tv = {5, 0};
    int fd = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&ss, 0, sizeof(ss));
    if (t->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)t->port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)t->port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

        if (k <= 0)
            return; /* the server may have closed: what it answered is what the test checks */
        p += k;
        n -= (size_t)k;
    }
}

static void parse_reply(struct reply *r)
{
    const char *end;

    r->raw[r->len < sizeof(r->raw) ? r->len : sizeof(r->raw) - 1] = '\0';
    if (sscanf(r->raw, "HTTP/1.1 %3d ", &r->status) != 1)
        r->status = 0;
    end = strstr(r->raw, "\r\n\r\n");
    r->body = end ? end + 4 : r->raw + r->len;
    r->body_len = (size_t)(r->raw + r->len - r->body);
}

/* Reads until the server closes (or `max` bytes when max > 0) into the next reply. */
static struct reply *read_reply(struct harness *t, int fd, int64_t start, size_t max)
{
    struct reply *r = &t->replies[t->n_replies++];

    for (;;) {
        char chunk[16384];
        ssize_t k = recv(fd, chunk, sizeof(chunk), 0);

        if (k == 0) {
            r->eof = true;
            break;
        }
        if (k < 0) {
            r->err = errno;
            break;
        }
        if (r->len < sizeof(r->raw) - 1) {
            size_t keep = sizeof(r->raw) - 1 - r->len;

            keep = (size_t)k < keep ? (size_t)k : keep;
            memcpy(r->raw + r->len, chunk, keep);
            r->len += keep;
        }
        r->total += (size_t)k;
        if (max > 0 && r->total >= max)
            break;
    }
    r->ms = now_ms() - start;
    parse_reply(r);
    return r;
}

/* One request on its own connection, read to the end. */
static struct reply *exchange(struct harness *t, const char *req, size_t len)
{
    int64_t start = now_ms();
    int fd = connect_to(t, 0);
    struct reply *r;

    if (fd < 0) {
        r = &t->replies[t->n_replies++];
        r->err = errno;
        return r;
    }
    send_all(fd, req, len);
    r = read_reply(t, fd, start, 0);
    close(fd);
    return r;
}

static struct reply *get(struct harness *t, const char *req)
{
    return exchange(t, req, strlen(req));
}

/* Tells the loop the client is done: the server is closed. Once per test. */
static void client_done(struct harness *t)
{
    if (!t->done_sent)
        uv_async_send(&t->done);
    t->done_sent = true;
}

static void *client_main(void *arg)
{
    struct harness *t = arg;

    t->client(t);
    client_done(t);
    return NULL;
}

/* ---- the loop side ---- */

static void on_server_closed(void *arg)
{
    struct harness *t = arg;

    t->closes++;
    t->httpd = NULL;
}

static void on_client_done(uv_async_t *async)
{
    struct harness *t = async->data;

    if (t->httpd)
        nr_httpd_close(t->httpd, on_server_closed, t);
    uv_close((uv_handle_t *)async, NULL);
}

static void config(struct nr_httpd_config *cfg, const char *listen)
{
    nr_httpd_config_init(cfg);
    cfg->listen = listen;
    cfg->routes = routes;
    cfg->n_routes = sizeof(routes) / sizeof(routes[0]);
    cfg->max_body = 1 << 20;
}

/* Serves cfg until the client has run and the server has closed; asserts the server freed
 * everything it opened (the loop closes with no handle left). */
static void run(struct harness *t, const struct nr_httpd_config *cfg,
                void (*client)(struct harness *t))
{
    char err[256] = "";

    memset(t, 0, sizeof(*t));
    t->client = client;
    t->family = AF_INET;
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->httpd = nr_httpd_new(&t->loop, cfg);
    assert_non_null(t->httpd);
    assert_int_equal(nr_httpd_port(t->httpd), -1);
    if (nr_httpd_start(t->httpd, err, sizeof(err)) != 0)
        fail_msg("start: %s", err);
    t->port = nr_httpd_port(t->httpd);
    assert_true(t->port > 0);
    assert_int_equal(uv_async_init(&t->loop, &t->done, on_client_done), 0);
    t->done.data = t;
    assert_int_equal(pthread_create(&t->thread, NULL, client_main, t), 0);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(pthread_join(t->thread, NULL), 0);
    assert_int_equal(t->closes, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* The value of a header in a reply ("" if absent), copied to a static buffer. */
static const char *header(const struct reply *r, const char *name)
{
    static char value[256];
    const char *line = strstr(r->raw, "\r\n");
    size_t n = strlen(name);

    value[0] = '\0';
    while (line && line + 2 < r->body) {
        line += 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1, *end = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(value, sizeof(value), "%.*s", (int)(end - v), v);
            break;
        }
        line = strstr(line, "\r\n");
    }
    return value;
}

static void assert_reply(const struct reply *r, int status, const char *body)
{
    if (r->status != status)
        fail_msg("status %d, want %d; reply: \"%s\" err=%d", r->status, status, r->raw, r->err);
    if (body) {
        assert_int_equal(r->body_len, strlen(body));
        assert_memory_equal(r->body, body, r->body_len);
        assert_int_equal(strtoul(header(r, "Content-Length"), NULL, 10), strlen(body));
    }
    assert_string_equal(header(r, "Connection"), "close");
    assert_true(r->eof); /* closed cleanly, not reset */
}

/* ---- tests ---- */

static void client_metrics(struct harness *t)
{
    get(t, "GET /metrics HTTP/1.1\r\nHost: localhost:9102\r\nUser-Agent: t\r\n"
           "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n\r\n");
}

static void test_metrics(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;
    char want[1024];
    const char *date;
    struct reply *r;

    config(&cfg, "127.0.0.1:0");
    run(&t, &cfg, client_metrics);
    r = &t.replies[0];
    assert_reply(r, 200, metrics_body);
    /* Everything but the date, byte for byte; the date as RFC 9110 spells it. */
    date = header(r, "Date");
    assert_int_equal(strlen(date), 29);
    assert_memory_equal(date + 25, " GMT", 4);
    snprintf(want, sizeof(want),
             "HTTP/1.1 200 OK\r\n"
             "Date: %s\r\n"
             "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
             "Content-Length: %zu\r\n"
             "Connection: close\r\n"
             "\r\n"
             "%s",
             date, strlen(metrics_body), metrics_body);
    assert_string_equal(r->raw, want);
}

static void client_routes(struct harness *t)
{
    get(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /metrics?name[]=up&x HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /healthz HTTP/1.0\r\n\r\n");                           /* no Host in 1.0 */
    get(t, "\r\nGET /healthz HTTP/1.1\nhost:x\n\n");                   /* LF alone, empty line */
    get(t, "GET http://x:9102/healthz?a HTTP/1.1\r\nHost: x\r\n\r\n"); /* absolute-form */
    get(t, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /sick HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /healthz HTTP/1.9\r\nHost: x\r\n\r\n"); /* a later 1.x is answered as 1.1 */
}

static void test_routes(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    run(&t, &cfg, client_routes);
    assert_int_equal(t.n_replies, 10);
    assert_reply(&t.replies[0], 200, "ok\n");
    assert_string_equal(header(&t.replies[0], "Content-Type"), "text/plain; charset=utf-8");
    assert_reply(&t.replies[1], 200, metrics_body);
    assert_reply(&t.replies[2], 200, "ok\n");
    assert_reply(&t.replies[3], 200, "ok\n");
    assert_reply(&t.replies[4], 200, "ok\n");
    assert_reply(&t.replies[5], 404, "Not Found\n");
    assert_reply(&t.replies[6], 404, "Not Found\n");
    assert_reply(&t.replies[7], 404, "Not Found\n");
    assert_reply(&t.replies[8], 503, "not ready\n");
    assert_reply(&t.replies[9], 200, "ok\n");
}

static void client_methods(struct harness *t)
{
    get(t, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    get(t, "PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    get(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "get /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); /* methods are case-sensitive */
    get(t, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
}

static void test_methods(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;
    char get_head[1024];

    config(&cfg, "127.0.0.1:0");
    run(&t, &cfg, client_methods);
    assert_int_equal(t.n_replies, 7);
    for (int i = 0; i < 4; i++) {
        assert_reply(&t.replies[i], 405, "Method Not Allowed\n");
        assert_string_equal(header(&t.replies[i], "Allow"), "GET, HEAD");
    }
    /* HEAD: GET's headers, Content-Length included, and not a byte of body. */
    assert_reply(&t.replies[4], 200, NULL);
    assert_int_equal(t.replies[4].body_len, 0);
    assert_int_equal(strtoul(header(&t.replies[4], "Content-Length"), NULL, 10),
                     strlen(metrics_body));
    snprintf(get_head, sizeof(get_head), "%.*s", (int)(t.replies[6].body - t.replies[6].raw),
             t.replies[6].raw);
    if (strcmp(header(&t.replies[4], "Date"), header(&t.replies[6], "Date")) == 0)
        assert_string_equal(t.replies[4].raw, get_head); /* unless a second ticked between */
    assert_reply(&t.replies[5], 404, NULL);
    assert_int_equal(t.replies[5].body_len, 0);
    assert_int_equal(strtoul(header(&t.replies[5], "Content-Length"), NULL, 10), 10);
}

static void client_bad(struct harness *t)
{
    static const char *const bad[] = {
        "GET /metrics\r\n\r\n",                                   /* HTTP/0.9 */
        "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",              /* two spaces */
        "GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n",              /* trailing space */
        "GET /metrics http/1.1\r\nHost: x\r\n\r\n",               /* lower-case version */
        "GET /metrics HTTP/1.1\r\n\r\n",                          /* 1.1 without Host */
        "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",    /* two Hosts */
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", /* obs-fold */
        "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",              /* space before the colon */
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",    /* a CR inside a value */
        "GET /m\x01 HTTP/1.1\r\nHost: x\r\n\r\n",                 /* a control byte in the target */
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n",                      /* no path */
    };
    static const char nul_value[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
    static const char tls_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        get(t, bad[i]);
    exchange(t, tls_hello, sizeof(tls_hello) - 1); /* with a newline in it */
    exchange(t, nul_value, sizeof(nul_value) - 1);
    get(t, "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n");
}

static void test_bad_requests(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    run(&t, &cfg, client_bad);
    assert_int_equal(t.n_replies, 14);
    for (size_t i = 0; i < 13; i++) {
        if (t.replies[i].status != 400)
            fail_msg("request %zu: status %d", i, t.replies[i].status);
        assert_reply(&t.replies[i], 400, "Bad Request\n");
    }
    assert_reply(&t.replies[13], 505, "HTTP Version Not Supported\n");
}

/* A head of exactly `size` bytes: the request line, Host, then X-Pad up to the size. */
static char *head_of_size(size_t size)
{
    static const char start[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    char *h = malloc(size + 1);

    memcpy(h, start, strlen(start));
    memset(h + strlen(start), 'p', size - strlen(start) - 4);
    memcpy(h + size - 4, "\r\n\r\n", 4);
    h[size] = '\0';
    return h;
}

static void client_large_heads(struct harness *t)
{
    char *h = head_of_size(NR_HTTPD_MAX_HEAD);
    char *line = malloc(10001);

    get(t, h); /* exactly the limit */
    free(h);
    h = head_of_size(NR_HTTPD_MAX_HEAD + 1);
    get(t, h);
    free(h);
    h = head_of_size(9000 + NR_HTTPD_MAX_HEAD);
    get(t, h);
    free(h);
    /* A request line longer than the limit, without a line end in it. */
    memcpy(line, "GET /", 5);
    memset(line + 5, 'a', 9995);
    line[10000] = '\0';
    get(t, line);
    free(line);
}

static void test_large_heads(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    run(&t, &cfg, client_large_heads);
    assert_int_equal(t.n_replies, 4);
    assert_reply(&t.replies[0], 200, "ok\n");
    for (int i = 1; i < 4; i++)
        assert_reply(&t.replies[i], 431, "Request Header Fields Too Large\n");
}

static void client_idle(struct harness *t)
{
    int64_t start = now_ms();
    int fd = connect_to(t, 0);

    if (fd >= 0) {
        read_reply(t, fd, start, 0);
        close(fd);
    }
    /* Slowloris: a byte every 20 ms never extends the deadline. */
    start = now_ms();
    fd = connect_to(t, 0);
    if (fd >= 0) {
        static const char req[] = "GET /healthz HTTP/1.1\r\nX-Slow: ";
        struct timeval tv = {0, 20000};

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (size_t i = 0; now_ms() - start < 3000; i++) {
            char c = i < sizeof(req) - 1 ? req[i] : 'z';

            if (send(fd, &c, 1, MSG_NOSIGNAL) != 1 || recv(fd, &c, 1, 0) == 0)
                break;
        }
        t->values[0] = now_ms() - start;
        close(fd);
    }
}

static void test_timeouts(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    cfg.timeout_ms = 200;
    run(&t, &cfg, client_idle);
    assert_int_equal(t.n_replies, 1);
    assert_true(t.replies[0].eof);
    assert_int_equal(t.replies[0].len, 0);
    if (t.replies[0].ms < 150 || t.replies[0].ms > 2000)
        fail_msg("idle connection closed after %lld ms, want ~200", (long long)t.replies[0].ms);
    if (t.values[0] < 150 || t.values[0] > 2000)
        fail_msg("slow client cut after %lld ms, want ~200", (long long)t.values[0]);
}

static void client_cap(struct harness *t)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int held[4], extra[6];

    for (int i = 0; i < 4; i++)
        held[i] = connect_to(t, 0);
    sleep_ms(100);
    /* Over the cap: closed at once, long before the 5 s deadline. */
    for (int i = 0; i < 6; i++)
        extra[i] = connect_to(t, 0);
    for (int i = 0; i < 6; i++) {
        read_reply(t, extra[i], now_ms(), 0);
        close(extra[i]);
    }
    /* The four held ones are still served. */
    for (int i = 0; i < 4; i++) {
        int64_t start = now_ms();

        send_all(held[i], req, strlen(req));
        read_reply(t, held[i], start, 0);
        close(held[i]);
    }
    /* With them gone there is room again. */
    get(t, req);
}

static void test_connection_cap(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    cfg.max_connections = 4;
    cfg.timeout_ms = 5000;
    run(&t, &cfg, client_cap);
    assert_int_equal(t.n_replies, 11);
    for (int i = 0; i < 6; i++) {
        struct reply *r = &t.replies[i];

        if (!(r->eof || r->err == ECONNRESET) || r->len != 0 || r->ms > 1000)
            fail_msg("extra connection %d: eof=%d err=%d len=%zu after %lld ms", i, r->eof, r->err,
                     r->len, (long long)r->ms);
    }
    for (int i = 6; i < 11; i++)
        assert_reply(&t.replies[i], 200, "ok\n");
}

static void client_close_busy(struct harness *t)
{
    static const char big[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    int idle = connect_to(t, 0);
    int partial = connect_to(t, 0);
    int slow = connect_to(t, 4096);
    struct reply *r;

    send_all(partial, "GET /metr", 9);
    send_all(slow, big, strlen(big));
    /* The response's first bytes, then stop reading: its write stays pending. */
    r = read_reply(t, slow, now_ms(), 1);
    t->values[0] = r->status;
    sleep_ms(100);
    client_done(t);
    read_reply(t, idle, now_ms(), 0);
    read_reply(t, partial, now_ms(), 0);
    r = read_reply(t, slow, now_ms(), 0);
    t->values[1] = (int64_t)r->total;
    close(idle);
    close(partial);
    close(slow);
}

static void test_close_with_connections(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    cfg.max_body = big_size;
    run(&t, &cfg, client_close_busy);
    assert_int_equal(t.values[0], 200);
    assert_int_equal(t.n_replies, 4);
    for (int i = 1; i < 4; i++)
        if (!t.replies[i].eof && t.replies[i].err != ECONNRESET)
            fail_msg("connection %d not closed: err=%d", i, t.replies[i].err);
    assert_int_equal(t.replies[1].len, 0);
    assert_int_equal(t.replies[2].len, 0);
    assert_true((size_t)t.values[1] < big_size); /* the response was cut */
}

static void client_handler_errors(struct harness *t)
{
    get(t, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /too-big HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "GET /bad-type HTTP/1.1\r\nHost: x\r\n\r\n");
    get(t, "HEAD /fail HTTP/1.1\r\nHost: x\r\n\r\n");
}

static void test_handler_errors(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    cfg.max_body = 1000; /* /too-big writes 2000 */
    run(&t, &cfg, client_handler_errors);
    assert_int_equal(t.n_replies, 4);
    for (int i = 0; i < 3; i++)
        assert_reply(&t.replies[i], 500, "Internal Server Error\n");
    assert_null(strstr(t.replies[2].raw, "X-Injected"));
    assert_reply(&t.replies[3], 500, NULL);
    assert_int_equal(t.replies[3].body_len, 0);
}

/* data is the test's harness: the handler closes the server it runs in. */
static int serve_quit(struct nr_buf *body, const char **content_type, void *data)
{
    struct harness *t = data;

    nr_httpd_close(t->httpd, on_server_closed, t);
    return 200;
}

static void client_quit(struct harness *t)
{
    get(t, "GET /quit HTTP/1.1\r\nHost: x\r\n\r\n");
}

static void test_close_from_handler(void **state)
{
    static struct nr_httpd_route quit_routes[] = {{"/quit", serve_quit, NULL}};
    struct harness t;
    struct nr_httpd_config cfg;

    config(&cfg, "127.0.0.1:0");
    cfg.routes = quit_routes;
    cfg.n_routes = 1;
    quit_routes[0].data = &t;
    run(&t, &cfg, client_quit);
    /* The connection closes with the server, unanswered. */
    assert_int_equal(t.n_replies, 1);
    assert_true(t.replies[0].eof || t.replies[0].err == ECONNRESET);
    assert_int_equal(t.replies[0].len, 0);
}

static void client_both_families(struct harness *t)
{
    t->family = AF_INET;
    get(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    t->family = AF_INET6;
    get(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
}

static void client_ipv6(struct harness *t)
{
    t->family = AF_INET6;
    get(t, "GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n");
}

/* Whether this machine can listen on ::1 (containers may have IPv6 off). */
static bool have_ipv6(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

static void test_ipv6(void **state)
{
    struct harness t;
    struct nr_httpd_config cfg;

    if (!have_ipv6())
        skip();
    config(&cfg, "[::1]:0");
    run(&t, &cfg, client_ipv6);
    assert_reply(&t.replies[0], 200, "ok\n");
    /* ":port" is every address, IPv4 and IPv6. */
    config(&cfg, ":0");
    run(&t, &cfg, client_both_families);
    assert_reply(&t.replies[0], 200, "ok\n");
    assert_reply(&t.replies[1], 200, "ok\n");
}

static void on_freed(void *arg)
{
    (*(int *)arg)++;
}

/* Starts a server on `listen` that must fail; checks the code and message, then frees it. */
static void start_fails(const char *listen, int want_rc, const char *want_err)
{
    uv_loop_t loop;
    struct nr_httpd_config cfg;
    struct nr_httpd *h;
    char err[256] = "";
    int freed = 0, rc;

    assert_int_equal(uv_loop_init(&loop), 0);
    config(&cfg, listen);
    h = nr_httpd_new(&loop, &cfg);
    assert_non_null(h);
    rc = nr_httpd_start(h, err, sizeof(err));
    if (rc != want_rc || strcmp(err, want_err) != 0)
        fail_msg("listen \"%s\": rc %d \"%s\", want %d \"%s\"", listen ? listen : "(null)", rc, err,
                 want_rc, want_err);
    assert_int_equal(nr_httpd_port(h), -1);
    nr_httpd_close(h, on_freed, &freed);
    assert_int_equal(freed, 0); /* from the loop, not from inside close */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(freed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_start_errors(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char listen_on[64], want[128];

    /* A port some other program listens on. */
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(listen_on, sizeof(listen_on), "127.0.0.1:%u", ntohs(a.sin_port));
    snprintf(want, sizeof(want), "cannot listen on %s: address already in use", listen_on);
    start_fails(listen_on, -EADDRINUSE, want);
    close(fd);

    start_fails(NULL, -EINVAL, "no listen address");
    start_fails("", -EINVAL, "empty address (want host:port)");
    start_fails("9102", -EINVAL, "invalid address \"9102\": want host:port (IPv6 in brackets)");
    start_fails("::1:9102", -EINVAL,
                "invalid address \"::1:9102\": want host:port (IPv6 in brackets)");
    start_fails("[::1]9102", -EINVAL, "invalid address \"[::1]9102\": want [ipv6]:port");
    start_fails("127.0.0.1:", -EINVAL, "invalid address \"127.0.0.1:\": missing port");
    start_fails("127.0.0.1:65536", -EINVAL,
                "invalid address \"127.0.0.1:65536\": port must be a number 0-65535");
    start_fails("127.0.0.1:99999999999999999999", -EINVAL,
                "invalid address \"127.0.0.1:99999999999999999999\": port must be a number "
                "0-65535");
    start_fails("127.0.0.1:-1", -EINVAL,
                "invalid address \"127.0.0.1:-1\": port must be a number 0-65535");
    /* Not an address of this machine. */
    start_fails("192.0.2.1:0", -EADDRNOTAVAIL,
                "cannot listen on 192.0.2.1:0: address not available");
}

static void test_start_twice(void **state)
{
    uv_loop_t loop;
    struct nr_httpd_config cfg;
    struct nr_httpd *h;
    char err[256] = "";
    int freed = 0;

    assert_int_equal(uv_loop_init(&loop), 0);
    config(&cfg, "127.0.0.1:0");
    h = nr_httpd_new(&loop, &cfg);
    assert_non_null(h);
    assert_int_equal(nr_httpd_start(h, err, sizeof(err)), 0);
    assert_true(nr_httpd_port(h) > 0);
    assert_int_equal(nr_httpd_start(h, err, sizeof(err)), -EALREADY);
    /* Closed without ever running the loop while open, and closed twice. */
    nr_httpd_close(h, on_freed, &freed);
    nr_httpd_close(h, on_freed, &freed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(freed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The parser on its own: slices, what it skips, and "need more" before the end. */
static void test_parse_request(void **state)
{
    static const char head[] = "\r\nGET http://h:1/a/b?c=d HTTP/1.0\r\nX:\t v \xff\r\n\r\nBODY";
    size_t head_len = sizeof(head) - 1 - 4;
    struct nr_httpd_request req;

    assert_int_equal(nr_httpd_parse_request(head, sizeof(head) - 1, &req), (int)head_len);
    assert_int_equal(req.method.len, 3);
    assert_memory_equal(req.method.base, "GET", 3);
    assert_int_equal(req.target.len, strlen("http://h:1/a/b?c=d"));
    assert_ptr_equal(req.target.base, head + 6);
    assert_int_equal(req.path.len, 4);
    assert_memory_equal(req.path.base, "/a/b", 4);
    assert_int_equal(req.version, 10);
    for (size_t n = 0; n < head_len; n++)
        assert_int_equal(nr_httpd_parse_request(head, n, &req), 0);
    assert_int_equal(nr_httpd_parse_request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 28, &req), 28);
    assert_int_equal(req.path.len, 2);
    assert_int_equal(req.version, 11);
    /* An error is reported as soon as its line is whole. */
    assert_int_equal(nr_httpd_parse_request("GET /x HTTP/3.0\n", 16, &req), NR_EPARSE);
    assert_int_equal(req.status, 505);
    assert_int_equal(nr_httpd_parse_request("GET /x HTTP/1.1\nBad Name: x\n", 29, &req), NR_EPARSE);
    assert_int_equal(req.status, 400);
    assert_int_equal(nr_httpd_parse_request("", 0, &req), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_methods),        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_large_heads),    cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_connection_cap), cmocka_unit_test(test_close_with_connections),
        cmocka_unit_test(test_handler_errors), cmocka_unit_test(test_close_from_handler),
        cmocka_unit_test(test_ipv6),           cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_start_twice),    cmocka_unit_test(test_parse_request),
    };

    nr_log_set_level(NR_LOG_ERROR); /* the warnings the tests provoke */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
