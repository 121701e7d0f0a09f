/* The metrics and health HTTP server (see httpd.h): the request parser first, free of I/O so it
 * can be fuzzed, then the libuv glue, one request and one response per connection. */
#include "util/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/addr.h"
#include "util/error.h"
#include "util/log.h"

#define DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"
#define LISTEN_BACKLOG       128

/* ---- the request parser ---- */

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Takes the line that starts at *pos, without its LF or CRLF. Returns false when it has no LF
 * yet. A CR anywhere else stays in the line, where the checks below refuse it. */
static bool next_line(const char *buf, size_t len, size_t *pos, struct nr_httpd_slice *line)
{
    const char *lf = memchr(buf + *pos, '\n', len - *pos);

    if (!lf)
        return false;
    line->base = buf + *pos;
    line->len = (size_t)(lf - line->base);
    if (line->len > 0 && line->base[line->len - 1] == '\r')
        line->len--;
    *pos = (size_t)(lf - buf) + 1;
    return true;
}

/* The path of an origin-form ("/p?q") or absolute-form ("http://host/p?q") target, up to its
 * query; empty for any other form. */
static struct nr_httpd_slice target_path(struct nr_httpd_slice t)
{
    struct nr_httpd_slice path = {t.base, 0};
    size_t i = 0;

    if (t.len > 0 && t.base[0] != '/') {
        /* scheme "://" authority, then the path if any */
        while (i < t.len && (is_tchar((unsigned char)t.base[i]) && t.base[i] != ':'))
            i++;
        if (i == 0 || t.len - i < 3 || memcmp(t.base + i, "://", 3) != 0)
            return path;
        for (i += 3; i < t.len && t.base[i] != '/'; i++)
            if (t.base[i] == '?' || t.base[i] == '#')
                return path;
    }
    path.base = t.base + i;
    while (i < t.len && t.base[i] != '?' && t.base[i] != '#')
        i++;
    path.len = (size_t)(t.base + i - path.base);
    return path;
}

/* method SP request-target SP HTTP-version. Returns 0 or the status to refuse it with. */
static int parse_request_line(struct nr_httpd_slice line, struct nr_httpd_request *req)
{
    const unsigned char *s = (const unsigned char *)line.base;
    size_t n = line.len, i = 0, start;

    while (i < n && is_tchar(s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ' ')
        return 400;
    req->method = (struct nr_httpd_slice){line.base, i};
    start = ++i;
    while (i < n && s[i] > ' ' && s[i] < 0x7F)
        i++;
    if (i == start || i == n || s[i] != ' ')
        return 400;
    req->target = (struct nr_httpd_slice){line.base + start, i - start};
    i++;
    if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 || s[i + 5] < '0' || s[i + 5] > '9' ||
        s[i + 6] != '.' || s[i + 7] < '0' || s[i + 7] > '9')
        return 400;
    if (s[i + 5] != '1')
        return 505;
    /* A later 1.x is answered as 1.1 (RFC 9110 §6.2). */
    req->version = s[i + 7] == '0' ? 10 : 11;
    req->path = target_path(req->target);
    return 0;
}

/* field-name ":" OWS field-value OWS. Returns 0 or 400; counts Host headers. */
static int parse_header(struct nr_httpd_slice line, unsigned *hosts)
{
    const unsigned char *s = (const unsigned char *)line.base;
    size_t i = 0;

    /* Also refuses obsolete line folding (a line starting with SP or HTAB). */
    while (i < line.len && is_tchar(s[i]))
        i++;
    if (i == 0 || i == line.len || s[i] != ':')
        return 400;
    if (i == 4 && strncasecmp(line.base, "host", 4) == 0)
        (*hosts)++;
    for (i++; i < line.len; i++)
        if ((s[i] < ' ' && s[i] != '\t') || s[i] == 0x7F)
            return 400;
    return 0;
}

static int parse_failed(struct nr_httpd_request *req, int status)
{
    req->status = status;
    return status == 431 ? NR_EOVERSIZE : NR_EPARSE;
}

int nr_httpd_parse_request(const char *buf, size_t len, struct nr_httpd_request *req)
{
    struct nr_httpd_request r = {.status = 0};
    struct nr_httpd_slice line;
    size_t pos = 0;
    unsigned hosts = 0;
    int status;

    if (len > NR_HTTPD_MAX_HEAD)
        len = NR_HTTPD_MAX_HEAD;
    /* RFC 9112 §2.2: empty lines before the request line are skipped. */
    do {
        if (!next_line(buf, len, &pos, &line))
            goto incomplete;
    } while (line.len == 0);
    status = parse_request_line(line, &r);
    if (status != 0)
        return parse_failed(req, status);
    for (;;) {
        if (!next_line(buf, len, &pos, &line))
            goto incomplete;
        if (line.len == 0)
            break;
        status = parse_header(line, &hosts);
        if (status != 0)
            return parse_failed(req, status);
    }
    if (hosts > 1 || (r.version == 11 && hosts == 0))
        return parse_failed(req, 400);
    *req = r;
    return (int)pos;

incomplete:
    if (len == NR_HTTPD_MAX_HEAD)
        return parse_failed(req, 431);
    return 0;
}

/* ---- the server ---- */

enum conn_state {
    CONN_READING,  /* the request head */
    CONN_WRITING,  /* the response; later bytes are read and dropped */
    CONN_DRAINING, /* response sent and our side shut: waiting for the client's EOF */
    CONN_CLOSING,
};

struct nr_httpd_conn {
    struct nr_httpd *server;
    struct nr_httpd_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t deadline;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    int handles_open;
    enum conn_state state;
    bool peer_eof;
    struct nr_buf body;  /* a handler's response; allocated only when it writes */
    char head_out[1024]; /* the response's status line and headers (and an error's body) */
    size_t in_len;
    char in[NR_HTTPD_MAX_HEAD];
};

struct nr_httpd {
    uv_loop_t *loop;
    struct nr_httpd_config cfg;
    char *listen;
    uv_tcp_t listener;
    bool listener_open; /* until its close callback */
    bool started;
    int port;
    struct nr_httpd_conn *conns;
    unsigned n_conns;
    bool warned_full;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

void nr_httpd_config_init(struct nr_httpd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_connections = 64;
    cfg->timeout_ms = 10000;
    cfg->max_body = 4u << 20;
}

struct nr_httpd *nr_httpd_new(uv_loop_t *loop, const struct nr_httpd_config *cfg)
{
    struct nr_httpd *h = calloc(1, sizeof(*h));

    signal(SIGPIPE, SIG_IGN);
    if (!h)
        return NULL;
    h->loop = loop;
    h->cfg = *cfg;
    h->port = -1;
    h->listen = cfg->listen ? strdup(cfg->listen) : NULL;
    h->cfg.listen = h->listen;
    /* The listener exists from here on, so closing is always asynchronous, started or not. */
    if ((cfg->listen && !h->listen) || uv_tcp_init(loop, &h->listener) != 0) {
        free(h->listen);
        free(h);
        return NULL;
    }
    h->listener.data = h;
    h->listener_open = true;
    return h;
}

int nr_httpd_port(const struct nr_httpd *h)
{
    return h->port;
}

static void maybe_free(struct nr_httpd *h)
{
    void (*cb)(void *arg) = h->close_cb;
    void *arg = h->close_arg;

    if (!h->closing || h->listener_open || h->n_conns > 0)
        return;
    free(h->listen);
    free(h);
    if (cb)
        cb(arg);
}

static void conn_handle_closed(uv_handle_t *handle)
{
    struct nr_httpd_conn *c = handle->data;
    struct nr_httpd *h = c->server;

    if (--c->handles_open > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    if (h->n_conns < h->cfg.max_connections)
        h->warned_full = false;
    nr_buf_free(&c->body);
    free(c);
    maybe_free(h);
}

static void conn_close(struct nr_httpd_conn *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    NR_DEBUG("http connection closed", "reason=\"%s\"", why);
    uv_close((uv_handle_t *)&c->deadline, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_deadline(uv_timer_t *timer)
{
    conn_close(timer->data, "timed out");
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct nr_httpd_conn *c = req->data;

    if (c->state == CONN_CLOSING)
        return;
    if (status < 0 || c->peer_eof)
        conn_close(c, status < 0 ? uv_strerror(status) : "done");
    else
        c->state = CONN_DRAINING;
}

static void on_written(uv_write_t *req, int status)
{
    struct nr_httpd_conn *c = req->data;
    int rv;

    if (c->state == CONN_CLOSING)
        return;
    if (status < 0 || c->peer_eof) {
        conn_close(c, status < 0 ? uv_strerror(status) : "done");
        return;
    }
    /* Half-close and read until the client's EOF: closing with its bytes unread would reset
     * the connection and could destroy the response before the client reads it. */
    c->shutdown_req.data = c;
    rv = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rv != 0)
        conn_close(c, uv_strerror(rv));
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* The status line and headers into c->head_out. Returns their length, or 0 when they do not fit
 * (a handler's content type that long). */
static size_t format_head(struct nr_httpd_conn *c, int status, const char *content_type,
                          size_t body_len)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    int n;

    gmtime_r(&now, &tm);
    n = snprintf(c->head_out, sizeof(c->head_out),
                 "HTTP/1.1 %d %s\r\n"
                 "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "%s"
                 "Connection: close\r\n"
                 "\r\n",
                 status, reason_phrase(status), days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, content_type, body_len,
                 status == 405 ? "Allow: GET, HEAD\r\n" : "");
    return n > 0 && (size_t)n < sizeof(c->head_out) ? (size_t)n : 0;
}

static void send_bufs(struct nr_httpd_conn *c, const uv_buf_t *bufs, unsigned n)
{
    int rv;

    c->state = CONN_WRITING;
    c->write_req.data = c;
    rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, n, on_written);
    if (rv != 0)
        conn_close(c, uv_strerror(rv));
}

/* An answer of our own: the reason phrase is the body. */
static void send_status(struct nr_httpd_conn *c, int status, bool with_body)
{
    const char *reason = reason_phrase(status);
    size_t body_len = strlen(reason) + 1;
    size_t n = format_head(c, status, DEFAULT_CONTENT_TYPE, body_len);

    if (with_body && n + body_len < sizeof(c->head_out)) {
        memcpy(c->head_out + n, reason, body_len - 1);
        c->head_out[n + body_len - 1] = '\n';
        n += body_len;
    }
    uv_buf_t buf = {.base = c->head_out, .len = n};

    send_bufs(c, &buf, 1);
}

static bool valid_content_type(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7F)
            return false;
    return s != NULL;
}

static void serve_route(struct nr_httpd_conn *c, const struct nr_httpd_route *route, bool with_body)
{
    const char *content_type = DEFAULT_CONTENT_TYPE;
    int status = route->handler(&c->body, &content_type, route->data);
    size_t n;

    if (c->state == CONN_CLOSING)
        return; /* the handler closed the server */
    if (status < 200 || status > 599 || status == 204 || status == 304 ||
        !valid_content_type(content_type)) {
        NR_WARN("http handler failed", "path=%s status=%d error=\"%s\"", route->path, status,
                status < 0 ? nr_strerror(status) : "bad status or content type");
        nr_buf_reset(&c->body, 0);
        send_status(c, 500, with_body);
        return;
    }
    n = format_head(c, status, content_type, c->body.len);
    if (n == 0) {
        NR_WARN("http handler failed", "path=%s error=\"content type too long\"", route->path);
        nr_buf_reset(&c->body, 0);
        send_status(c, 500, with_body);
        return;
    }
    uv_buf_t bufs[2] = {
        {.base = c->head_out, .len = n},
        {.base = (char *)c->body.data, .len = c->body.len},
    };
    send_bufs(c, bufs, with_body && c->body.len > 0 ? 2 : 1);
}

static bool slice_is(struct nr_httpd_slice s, const char *str)
{
    return s.len == strlen(str) && memcmp(s.base, str, s.len) == 0;
}

static void respond(struct nr_httpd_conn *c, int rc, const struct nr_httpd_request *req)
{
    const struct nr_httpd_config *cfg = &c->server->cfg;
    bool is_head;

    if (rc < 0) {
        send_status(c, req->status, true);
        return;
    }
    is_head = slice_is(req->method, "HEAD");
    if (!is_head && !slice_is(req->method, "GET")) {
        send_status(c, 405, true);
        return;
    }
    if (req->path.len == 0) {
        send_status(c, 400, !is_head);
        return;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (slice_is(req->path, cfg->routes[i].path)) {
            serve_route(c, &cfg->routes[i], !is_head);
            return;
        }
    }
    send_status(c, 404, !is_head);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct nr_httpd_conn *c = handle->data;

    /* After the head, whatever the client sends is dropped: reuse the whole buffer. */
    if (c->state == CONN_READING)
        *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len));
    else
        *buf = uv_buf_init(c->in, sizeof(c->in));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct nr_httpd_conn *c = stream->data;
    struct nr_httpd_request req;
    size_t old_len = c->in_len;
    int rc;

    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        if (c->state == CONN_READING || nread != UV_EOF)
            conn_close(c, nread == UV_EOF ? "closed by the client before a whole request"
                                          : uv_strerror((int)nread));
        else if (c->state == CONN_DRAINING)
            conn_close(c, "done");
        else
            c->peer_eof = true; /* closes when the response is written */
        return;
    }
    if (c->state != CONN_READING)
        return;
    c->in_len += (size_t)nread;
    /* Parse again only when a line may have ended, so a client sending a byte at a time costs a
     * scan per line, not per byte. */
    if (c->in_len < sizeof(c->in) && !memchr(c->in + old_len, '\n', (size_t)nread))
        return;
    rc = nr_httpd_parse_request(c->in, c->in_len, &req);
    if (rc != 0)
        respond(c, rc, &req);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct nr_httpd *h = listener->data;
    struct nr_httpd_conn *c;
    int rv;

    if (status < 0) {
        NR_WARN("http accept failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    /* Without a handle to accept into, libuv stops accepting until the next connection. */
    if (!c || uv_tcp_init(h->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->server = h;
    nr_buf_init(&c->body, h->cfg.max_body);
    uv_timer_init(h->loop, &c->deadline); /* cannot fail */
    c->tcp.data = c->deadline.data = c;
    c->handles_open = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    rv = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv));
        return;
    }
    if (h->n_conns > h->cfg.max_connections) {
        if (!h->warned_full)
            NR_WARN("too many http connections, closing new ones", "limit=%u",
                    h->cfg.max_connections);
        h->warned_full = true;
        conn_close(c, "too many connections");
        return;
    }
    rv = uv_timer_start(&c->deadline, on_deadline, h->cfg.timeout_ms, 0);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0)
        conn_close(c, uv_strerror(rv));
}

/* A listening socket on one address, or a negative errno. */
static int listen_socket(const struct addrinfo *ai, bool any)
{
    int one = 1, zero = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rv = 0;

    if (fd < 0)
        return -errno;
    /* Restarts must not wait for the last run's connections in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        rv = -errno;
    /* ":port" on the IPv6 wildcard serves IPv4 too, whatever the system's default. */
    if (rv == 0 && any && ai->ai_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0)
        rv = -errno;
    if (rv == 0 && (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0))
        rv = -errno;
    if (rv != 0) {
        close(fd);
        return rv;
    }
    return fd;
}

/* Binds the first address of `host` that takes it; with no host the IPv6 wildcard, or the IPv4
 * one on a system without IPv6. Returns the socket or a negative errno. */
static int bind_listen(const char *host, unsigned port, char *err, size_t errlen, const char *addr)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    int rv;

    snprintf(portstr, sizeof(portstr), "%u", port);
    rv = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr,
                 rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
        return rv == EAI_MEMORY ? -ENOMEM : -EINVAL;
    }
    rv = -EADDRNOTAVAIL;
    for (int pass = 0; pass < (host[0] ? 1 : 2) && rv < 0; pass++) {
        for (const struct addrinfo *ai = res; ai && rv < 0; ai = ai->ai_next) {
            if (!host[0] && (pass == 0) != (ai->ai_family == AF_INET6))
                continue;
            rv = listen_socket(ai, !host[0]);
        }
    }
    freeaddrinfo(res);
    if (rv < 0)
        snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(rv));
    return rv;
}

int nr_httpd_start(struct nr_httpd *h, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int fd, rv;

    if (!h->listen) {
        snprintf(err, errlen, "no listen address");
        return -EINVAL;
    }
    if (h->started || h->closing) {
        snprintf(err, errlen, "cannot listen on %s: %s", h->listen,
                 h->closing ? "the server is closing" : "already started");
        return h->closing ? -ECANCELED : -EALREADY;
    }
    rv = nr_addr_split(h->listen, host, sizeof(host), &port, err, errlen);
    if (rv != 0)
        return rv;
    fd = bind_listen(host, port, err, errlen, h->listen);
    if (fd < 0)
        return fd;
    h->started = true;
    rv = uv_tcp_open(&h->listener, fd);
    if (rv != 0)
        close(fd); /* not the handle's yet */
    else
        rv = uv_listen((uv_stream_t *)&h->listener, LISTEN_BACKLOG, on_connection);
    if (rv == 0)
        rv = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", h->listen, uv_strerror(rv));
        return rv;
    }
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void listener_closed(uv_handle_t *handle)
{
    struct nr_httpd *h = handle->data;

    h->listener_open = false;
    maybe_free(h);
}

void nr_httpd_close(struct nr_httpd *h, void (*cb)(void *arg), void *arg)
{
    if (h->closing)
        return;
    h->closing = true;
    h->close_cb = cb;
    h->close_arg = arg;
    for (struct nr_httpd_conn *c = h->conns; c; c = c->next)
        conn_close(c, "server closing");
    uv_close((uv_handle_t *)&h->listener, listener_closed);
}
