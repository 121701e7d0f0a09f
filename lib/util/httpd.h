/* A tiny HTTP/1.1 server on libuv for a service's /metrics and /healthz: GET and HEAD only, one
 * request per connection (answered with Connection: close), bounded in everything a client
 * controls: 8 KiB of request head, a deadline per connection, a cap on connections.
 *
 * Usage (a service's --metrics-listen):
 *
 *     static int serve_metrics(struct nr_buf *body, const char **content_type, void *data)
 *     {
 *         struct nr_metrics m;
 *
 *         nr_metrics_init(&m, body);
 *         ... nr_metrics_family(&m, ...); nr_metrics_u64(&m, ...); ...
 *         *content_type = NR_METRICS_CONTENT_TYPE;
 *         return m.err ? m.err : 200;
 *     }
 *
 *     static const struct nr_httpd_route routes[] = {
 *         {"/metrics", serve_metrics, &store},
 *         {"/healthz", serve_healthz, &store},
 *     };
 *     struct nr_httpd_config cfg;
 *
 *     nr_httpd_config_init(&cfg);
 *     cfg.listen = opts.metrics_listen; // ":9102"
 *     cfg.routes = routes;
 *     cfg.n_routes = 2;
 *     httpd = nr_httpd_new(loop, &cfg);
 *     if (!httpd || nr_httpd_start(httpd, err, sizeof(err)) != 0)
 *         ... log err; nr_httpd_close(httpd, NULL, NULL) if it was made ...
 *     ...
 *     nr_httpd_close(httpd, on_closed, arg); // at shutdown; on_closed runs from the loop
 */
#ifndef NR_UTIL_HTTPD_H
#define NR_UTIL_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

/* A request head (request line and headers, through the blank line) may be this long. */
#define NR_HTTPD_MAX_HEAD 8192

/* Bytes a request points at in the caller's buffer; not NUL-terminated. */
struct nr_httpd_slice {
    const char *base;
    size_t len;
};

struct nr_httpd_request {
    struct nr_httpd_slice method; /* a token: "GET" */
    struct nr_httpd_slice target; /* as sent: "/metrics?x=1", "http://host/metrics", "*" */
    struct nr_httpd_slice path;   /* the target's path without its query: "/metrics"; empty
                                   * when the target has none ("*", "host:443") */
    int version;                  /* 10 for HTTP/1.0, 11 for HTTP/1.1 */
    int status;                   /* after a failure: the status to answer with */
};

/* Parses a request head (RFC 9112) from the first len bytes received on a connection. Pure: no
 * I/O and no allocation, the slices point into buf. Empty lines before the request line are
 * skipped; lines end in CRLF or LF; HTTP/1.1 needs exactly one Host header, HTTP/1.0 at most one;
 * obsolete line folding and control bytes are refused. Only the first NR_HTTPD_MAX_HEAD bytes
 * are looked at. Returns the length of the head (> 0) when it is complete, bytes after it being
 * the body or a client's excess; 0 when buf is a valid beginning that needs more bytes;
 * NR_EPARSE with req->status 400 (malformed) or 505 (not HTTP/1.x); or NR_EOVERSIZE with
 * req->status 431 when NR_HTTPD_MAX_HEAD bytes hold no whole head. req is filled on success
 * only, except req->status. */
int nr_httpd_parse_request(const char *buf, size_t len, struct nr_httpd_request *req);

/* Answers a request for a route: appends the body to `body` (empty, capped at the server's
 * max_body) and may point *content_type at a string that outlives the response (the default is
 * "text/plain; charset=utf-8"). Returns the HTTP status, 200-599 other than 204 and 304, or a
 * negative errno: the client then gets 500 and the body is dropped (one warning logged). Runs on
 * the loop's thread for GET and HEAD alike (HEAD sends the headers only). */
typedef int (*nr_httpd_handler_fn)(struct nr_buf *body, const char **content_type, void *data);

struct nr_httpd_route {
    const char *path; /* "/metrics": matched exactly, the query string ignored */
    nr_httpd_handler_fn handler;
    void *data; /* passed to handler */
};

struct nr_httpd_config {
    const char *listen; /* ":9102" (every address, IPv6 and IPv4), "127.0.0.1:9102",
                         * "[::1]:0"; copied */
    const struct nr_httpd_route *routes; /* must outlive the server */
    size_t n_routes;
    unsigned max_connections; /* default 64; more are closed as they are accepted */
    uint64_t timeout_ms;      /* default 10000: a connection's whole life, from accept to the
                               * last byte of the response; reads do not extend it */
    size_t max_body;          /* default 4 MiB: a handler's body past it is a 500 */
};

struct nr_httpd;

/* Fills the defaults above; listen NULL and no routes. */
void nr_httpd_config_init(struct nr_httpd_config *cfg);

/* Creates a server (not listening yet). NULL on allocation failure. Sets SIGPIPE to be ignored
 * for the process: a write to a reset peer must fail with EPIPE, not kill it. */
struct nr_httpd *nr_httpd_new(uv_loop_t *loop, const struct nr_httpd_config *cfg);

/* Starts listening. Returns 0, or a negative errno with a one-line reason in err ("cannot listen
 * on :9102: address already in use", "invalid address \"x\": want host:port (IPv6 in
 * brackets)"). After a failure the server still needs nr_httpd_close. */
int nr_httpd_start(struct nr_httpd *h, char *err, size_t errlen);

/* The port bound (useful with port 0), or -1 before a successful start. */
int nr_httpd_port(const struct nr_httpd *h);

/* Stops listening, closes every connection (a response being written is cut), then frees the
 * server and calls cb (may be NULL) from the loop, never from inside this call. May be called
 * from a handler. Calling it again while it closes does nothing. */
void nr_httpd_close(struct nr_httpd *h, void (*cb)(void *arg), void *arg);

#endif
