/* List + watch of one node's pods: requests built here, run by lib/kube/curl_uv on the loop, one
 * uv_timer for backoff. The state machine: LIST → WATCH → (normal end) WATCH again from the last
 * resourceVersion; 410 → LIST; 401 → the same request once more with the token read again;
 * anything else → backoff. */
#include "kube/watch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/curl_uv.h"
#include "kube/pod.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define ERROR_BODY_MAX  (64u << 10)
#define LIST_TIMEOUT_MS 60000L
#define NS_PER_MS       INT64_C(1000000)

enum phase { PHASE_IDLE, PHASE_LIST, PHASE_WATCH };

/* Why a transfer was cut short from inside a curl callback. */
enum abort_reason {
    ABORT_NONE,
    ABORT_GONE,     /* ERROR event with code 410: relist */
    ABORT_EVENT,    /* ERROR event of another kind */
    ABORT_BAD_LINE, /* an event that does not parse: events may be lost, relist */
    ABORT_OVERSIZE, /* a line or list past its cap */
    ABORT_APPLY,    /* kube_target_apply failed (memory, too many pods) */
    ABORT_CLOSING,
};

struct kube_watch {
    uv_loop_t *loop;
    const struct kube_config *cfg;
    struct kube_target target;
    struct kube_watch_options opt;
    char *node;
    struct kube_curl_uv *curl;
    CURL *easy; /* the running request, or NULL */
    struct curl_slist *headers;
    uv_timer_t retry_timer;
    enum phase phase;
    struct nr_buf body; /* the list body, an error body, or the watch line being assembled */
    long http_status;
    enum abort_reason abort;
    char abort_msg[256];
    char rv[KUBE_RV_MAX + 1]; /* "" when a list is needed */
    int64_t backoff_ns;
    bool started, failing, dirty, retried_401, closing;
    bool listed;          /* a list has succeeded: later ones are relists */
    unsigned gone_streak; /* 410s without a good event in between */
    uint64_t watch_start_ms, watch_events;
    int open_parts; /* the retry timer and the curl glue, until both are closed */
    void (*close_cb)(void *arg);
    void *close_arg;
    char errbuf[CURL_ERROR_SIZE];
    struct kube_watch_stats st;
};

static void run_request(struct kube_watch *w);

static int64_t realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- outcomes ------------------------------------------------------------------------------ */

static void succeed(struct kube_watch *w)
{
    w->st.last_success_ns = realtime_ns();
    w->st.healthy = true;
    w->backoff_ns = w->opt.backoff_min_ns;
    if (w->failing) {
        w->failing = false;
        NR_INFO("kube: API reachable again", "node=%s", w->node);
        if (w->opt.on_health != NULL)
            w->opt.on_health(true, NULL, w->opt.arg);
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    run_request(t->data);
}

static void schedule(struct kube_watch *w, int64_t delay_ns)
{
    uv_timer_start(&w->retry_timer, on_retry_timer,
                   (uint64_t)((delay_ns + NS_PER_MS - 1) / NS_PER_MS), 0);
}

/* A failure: counted; logged and reported once per streak; retried after backoff. relist
 * forgets the resourceVersion (events may have been lost). */
static void fail(struct kube_watch *w, bool relist, const char *msg)
{
    char q[300];

    w->st.errors++;
    w->st.healthy = false;
    if (relist)
        w->rv[0] = '\0';
    if (!w->failing) {
        w->failing = true;
        NR_WARN("kube: API request failed; keeping the last pod set and retrying",
                "node=%s error=%s", w->node, nr_log_quote(q, sizeof(q), msg));
        if (w->opt.on_health != NULL)
            w->opt.on_health(false, msg, w->opt.arg);
        if (w->closing)
            return;
    } else {
        NR_DEBUG("kube: API request failed again", "error=%s", nr_log_quote(q, sizeof(q), msg));
    }
    schedule(w, w->backoff_ns);
    w->backoff_ns =
        w->backoff_ns * 2 > w->opt.backoff_max_ns ? w->opt.backoff_max_ns : w->backoff_ns * 2;
}

/* Commits the target and tells the owner when the set changed. */
static void notify(struct kube_watch *w)
{
    int rc = kube_target_commit(&w->target);

    w->dirty = false;
    w->st.addresses = w->target.set.n;
    if (rc > 0 && !w->closing) {
        w->st.changes++;
        w->opt.on_change(&w->target.set, w->opt.arg);
    }
}

/* ---- bytes from the API ----------------------------------------------------------------- */

struct list_walk {
    struct kube_target *target;
    bool cleared;
};

/* kube_target_apply, and the one line for a pod that joined the target only because the name
 * regex stopped at its limit on the pod's name. */
static int apply(struct kube_target *target, enum kube_event_type type, const struct kube_pod *pod)
{
    int rc = kube_target_apply(target, type, pod);

    if (rc == KUBE_TARGET_LIMITED) {
        NR_WARN("kube: --pod-regex stopped at its limit on a pod's name; the pod is recorded",
                "namespace=%s pod=%s match_limit=%d heap_limit_kib=%d", pod->namespace, pod->name,
                KUBE_REGEX_MATCH_LIMIT, KUBE_REGEX_HEAP_KIB);
        rc = 0;
    }
    return rc;
}

/* The target is cleared at the first pod, after kube_pod_list_parse has checked the whole
 * body: a bad body leaves it as it was. */
static int list_pod(const struct kube_pod *pod, void *arg)
{
    struct list_walk *lw = arg;

    if (!lw->cleared) {
        kube_target_clear(lw->target);
        lw->cleared = true;
    }
    return apply(lw->target, KUBE_EVENT_ADDED, pod);
}

static void watch_line(struct kube_watch *w, const char *line, size_t len)
{
    struct kube_event ev;
    char err[160] = "";
    int rc;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    rc = kube_event_parse(line, len, &ev, err, sizeof(err));
    if (rc != 0) {
        w->abort = ABORT_BAD_LINE;
        snprintf(w->abort_msg, sizeof(w->abort_msg), "bad watch event: %s", err);
        return;
    }
    w->st.events++;
    switch (ev.type) {
    case KUBE_EVENT_ERROR:
        w->abort = ev.code == 410 ? ABORT_GONE : ABORT_EVENT;
        snprintf(w->abort_msg, sizeof(w->abort_msg), "watch ERROR event %d: %s", ev.code,
                 ev.message);
        return;
    case KUBE_EVENT_BOOKMARK: break;
    default:
        rc = apply(&w->target, ev.type, &ev.pod);
        if (rc != 0) {
            w->abort = ABORT_APPLY;
            snprintf(w->abort_msg, sizeof(w->abort_msg), "pod %s/%s: %s", ev.pod.namespace,
                     ev.pod.name, nr_strerror(rc));
            return;
        }
        w->dirty = true;
        break;
    }
    if (ev.resource_version[0] != '\0')
        memcpy(w->rv, ev.resource_version, sizeof(w->rv));
    w->gone_streak = 0;
    w->watch_events++;
    w->st.last_success_ns = realtime_ns();
}

/* Splits a watch stream's bytes into lines; a partial line waits in w->body (capped). */
static void watch_bytes(struct kube_watch *w, const char *p, size_t n)
{
    while (n > 0 && w->abort == ABORT_NONE && !w->closing) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;

        if (nr_buf_append(&w->body, p, seg) != 0) {
            w->abort = ABORT_OVERSIZE;
            snprintf(w->abort_msg, sizeof(w->abort_msg), "a watch event longer than %zu bytes",
                     w->opt.max_line);
            return;
        }
        if (nl == NULL)
            break;
        watch_line(w, (const char *)w->body.data, w->body.len);
        w->body.len = 0;
        p += seg + 1;
        n -= seg + 1;
    }
    if (w->dirty && !w->closing)
        notify(w);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct kube_watch *w = arg;
    size_t n = size * nmemb;
    long code = 0;

    if (n > 0 && n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            w->http_status = code;
            /* A watch is healthy from its headers on: events may be minutes apart. */
            if (w->phase == PHASE_WATCH && code == 200 && !w->closing)
                succeed(w);
        }
    }
    return w->closing ? 0 : n;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct kube_watch *w = arg;
    size_t n = size * nmemb;

    if (w->closing)
        return 0;
    if (w->http_status != 200) {
        /* An error body (a Status): keep its start for the message. */
        size_t room = ERROR_BODY_MAX - w->body.len;

        nr_buf_append(&w->body, p, n < room ? n : room);
        return n;
    }
    if (w->phase == PHASE_LIST) {
        if (nr_buf_append(&w->body, p, n) != 0) {
            w->abort = ABORT_OVERSIZE;
            snprintf(w->abort_msg, sizeof(w->abort_msg), "a pod list longer than %zu bytes",
                     w->opt.max_list);
            return 0;
        }
        return n;
    }
    watch_bytes(w, p, n);
    return w->abort == ABORT_NONE && !w->closing ? n : 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Percent-encodes s (unreserved characters kept) onto out. */
static int append_escaped(struct nr_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (; *s != '\0' && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            rc = nr_buf_append(out, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};

            rc = nr_buf_append(out, e, 3);
        }
    }
    return rc;
}

static int build_url(struct kube_watch *w, struct nr_buf *url)
{
    char tail[64];
    int rc = nr_buf_append(url, w->cfg->server, strlen(w->cfg->server));

    if (rc == 0)
        rc = nr_buf_append(url, "/api/v1/pods?fieldSelector=spec.nodeName%3D", 43);
    if (rc == 0)
        rc = append_escaped(url, w->node);
    if (rc == 0 && w->phase == PHASE_WATCH) {
        rc = nr_buf_append(url, "&watch=1&allowWatchBookmarks=true&resourceVersion=", 50);
        if (rc == 0)
            rc = append_escaped(url, w->rv);
        snprintf(tail, sizeof(tail), "&timeoutSeconds=%lld",
                 (long long)(w->opt.watch_timeout_ns / 1000000000));
        if (rc == 0)
            rc = nr_buf_append(url, tail, strlen(tail));
    }
    if (rc == 0)
        rc = nr_buf_append(url, "", 1);
    return rc;
}

static CURLcode set_tls(struct kube_watch *w, CURL *e)
{
    const struct kube_config *c = w->cfg;
    CURLcode rc = CURLE_OK;

    if (c->ca_data.len > 0) {
        struct curl_blob b = {c->ca_data.data, c->ca_data.len, CURL_BLOB_COPY};

        rc = curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    } else if (c->ca_file != NULL) {
        rc = curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    }
    if (rc == CURLE_OK && (c->ca_data.len > 0 || c->ca_file != NULL))
        rc = curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* only the cluster's CA */
    if (rc == CURLE_OK && c->cert_data.len > 0) {
        struct curl_blob b = {c->cert_data.data, c->cert_data.len, CURL_BLOB_COPY};

        rc = curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
    } else if (rc == CURLE_OK && c->cert_file != NULL) {
        rc = curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
    }
    if (rc == CURLE_OK && c->key_data.len > 0) {
        struct curl_blob b = {c->key_data.data, c->key_data.len, CURL_BLOB_COPY};

        rc = curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
    } else if (rc == CURLE_OK && c->key_file != NULL) {
        rc = curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
    }
    if (rc == CURLE_OK && c->insecure) {
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return rc;
}

/* Starts the request of w->phase (w->rv decides: none → LIST). Failures go through fail(). */
static void run_request(struct kube_watch *w)
{
    struct nr_buf url;
    char token[KUBE_TOKEN_MAX + 1], err[256] = "";
    char *auth = NULL;
    CURL *e = NULL;
    CURLcode cc = CURLE_OK;
    int rc;

    if (w->closing)
        return;
    w->phase = w->rv[0] == '\0' ? PHASE_LIST : PHASE_WATCH;
    if (w->phase == PHASE_LIST && w->listed)
        w->st.relists++;
    nr_buf_init(&url, 16384);
    rc = kube_config_token(w->cfg, token, sizeof(token), err, sizeof(err));
    if (rc != 0) {
        fail(w, false, err);
        goto out;
    }
    if (build_url(w, &url) != 0) {
        fail(w, false, "request URL too long");
        goto out;
    }
    if (token[0] != '\0' && asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
        auth = NULL;
        fail(w, false, "out of memory");
        goto out;
    }
    memset(token, 0, sizeof(token));
    e = curl_easy_init();
    if (e == NULL) {
        fail(w, false, "curl_easy_init failed");
        goto out;
    }
    w->headers = curl_slist_append(NULL, "Accept: application/json");
    if (w->headers != NULL && auth != NULL) {
        struct curl_slist *h = curl_slist_append(w->headers, auth);

        if (h == NULL) {
            curl_slist_free_all(w->headers);
            w->headers = NULL;
        } else {
            w->headers = h;
        }
    }
    if (w->headers == NULL) {
        fail(w, false, "out of memory");
        goto out;
    }
    /* Each setopt's result is folded into cc: the first failure is the one reported. */
#define SET(opt, val)                           \
    do {                                        \
        if (cc == CURLE_OK)                     \
            cc = curl_easy_setopt(e, opt, val); \
    } while (0)
    SET(CURLOPT_URL, (const char *)url.data);
    SET(CURLOPT_PROTOCOLS_STR, "https,http");
    SET(CURLOPT_HTTPHEADER, w->headers);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_ERRORBUFFER, w->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, w);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, w);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(w->opt.connect_timeout_ns / NS_PER_MS));
    /* A list is one answer; a watch ends by itself after timeoutSeconds, so a stream that
     * outlives it by a margin is a dead peer. Keepalive notices a vanished one sooner. */
    SET(CURLOPT_TIMEOUT_MS, w->phase == PHASE_LIST
                                ? LIST_TIMEOUT_MS
                                : (long)(w->opt.watch_timeout_ns / NS_PER_MS) + 30000L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 30L);
    SET(CURLOPT_TCP_KEEPINTVL, 10L);
    SET(CURLOPT_USERAGENT, "netreel-capture");
#undef SET
    if (cc == CURLE_OK)
        cc = set_tls(w, e);
    if (cc != CURLE_OK) {
        snprintf(err, sizeof(err), "libcurl option: %s", curl_easy_strerror(cc));
        fail(w, false, err);
        goto out;
    }
    nr_buf_free(&w->body);
    nr_buf_init(&w->body, w->phase == PHASE_LIST ? w->opt.max_list : w->opt.max_line);
    w->http_status = 0;
    w->abort = ABORT_NONE;
    w->abort_msg[0] = '\0';
    w->errbuf[0] = '\0';
    w->watch_events = 0;
    w->watch_start_ms = uv_now(w->loop);
    if (kube_curl_uv_start(w->curl, e) != 0) {
        fail(w, false, "curl_multi_add_handle failed");
        goto out;
    }
    w->easy = e;
    e = NULL;
    w->st.requests++;
out:
    if (e != NULL) {
        curl_easy_cleanup(e);
        curl_slist_free_all(w->headers);
        w->headers = NULL;
    }
    free(auth);
    nr_buf_free(&url);
}

static void end_list(struct kube_watch *w)
{
    char err[200] = "", rv[KUBE_RV_MAX + 1];
    size_t skipped = 0;
    int rc;

    struct list_walk lw = {&w->target, false};

    /* Only a failure of the target itself (memory, too many pods) can leave it half-filled;
     * then nothing is committed and the next list starts over. */
    rc = kube_pod_list_parse((const char *)w->body.data, w->body.len, list_pod, &lw, rv, &skipped,
                             err, sizeof(err));
    if (rc == 0 && !lw.cleared)
        kube_target_clear(&w->target);
    nr_buf_reset(&w->body, 0);
    if (rc != 0) {
        fail(w, true, err);
        return;
    }
    if (skipped > 0)
        NR_WARN("kube: pod list items that are not valid pods were skipped", "count=%zu", skipped);
    w->st.skipped_pods += skipped;
    memcpy(w->rv, rv, sizeof(w->rv));
    w->listed = true;
    succeed(w);
    if (w->closing)
        return;
    notify(w);
    if (!w->closing)
        run_request(w);
}

/* The transfer of w->easy is over (kube_curl_uv_done_fn): decide what comes next. */
static void end_request(CURL *easy, CURLcode result, void *arg)
{
    struct kube_watch *w = arg;
    enum phase phase = w->phase;
    long status = w->http_status;
    char msg[512];
    int code = 0;

    curl_easy_cleanup(easy);
    w->easy = NULL;
    curl_slist_free_all(w->headers);
    w->headers = NULL;
    w->phase = PHASE_IDLE;
    if (w->closing)
        return;
    if (w->abort == ABORT_GONE || (status == 410 && result == CURLE_OK)) {
        /* The resourceVersion is too old: relist now, but not in a loop. */
        w->rv[0] = '\0';
        if (w->gone_streak++ == 0) {
            run_request(w);
            return;
        }
        fail(w, true, "410 Gone again right after a list");
        return;
    }
    if (w->abort != ABORT_NONE) {
        fail(w, w->abort != ABORT_EVENT, w->abort_msg);
        return;
    }
    if (result == CURLE_OK && status == 401) {
        w->st.unauthorized++;
        if (!w->retried_401) {
            /* The token rotated under us: the retry reads its file again. */
            w->retried_401 = true;
            run_request(w);
            return;
        }
        fail(w, false, "401 Unauthorized: the API server refused the token");
        return;
    }
    w->retried_401 = false;
    if (result != CURLE_OK) {
        snprintf(msg, sizeof(msg), "%s: %s", curl_easy_strerror(result),
                 w->errbuf[0] ? w->errbuf : "no detail");
        fail(w, false, msg);
        return;
    }
    if (status != 200) {
        char smsg[256] = "";

        kube_status_parse((const char *)w->body.data, w->body.len, &code, smsg, sizeof(smsg));
        snprintf(msg, sizeof(msg), "HTTP %ld from %s%s%s", status,
                 phase == PHASE_LIST ? "the pod list" : "the pod watch", smsg[0] ? ": " : "", smsg);
        fail(w, false, msg);
        return;
    }
    if (phase == PHASE_LIST) {
        end_list(w);
        return;
    }
    /* A watch that ended normally (timeoutSeconds): watch again from where it stopped. One
     * that ended at once with nothing in it waits a little, so a peer cannot make us spin. */
    w->body.len = 0;
    if (w->watch_events == 0 && uv_now(w->loop) - w->watch_start_ms < 1000)
        schedule(w, w->opt.backoff_min_ns);
    else
        run_request(w);
}

/* ---- life cycle ------------------------------------------------------------------------- */

struct kube_watch *kube_watch_new(uv_loop_t *loop, const struct kube_config *cfg,
                                  const struct kube_selector *sel,
                                  const struct kube_watch_options *opt, char *err, size_t errlen)
{
    struct kube_watch *w = NULL;

    if (opt->node == NULL || opt->node[0] == '\0' || strlen(opt->node) > KUBE_NAME_MAX ||
        opt->on_change == NULL || cfg->server == NULL) {
        snprintf(err, errlen, "kube watch: a node name, a server and on_change are required");
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        goto nomem;
    w->loop = loop;
    w->cfg = cfg;
    w->opt = *opt;
    w->node = strdup(opt->node);
    if (w->node == NULL)
        goto nomem;
    w->opt.node = w->node;
#define DEFAULT(field, value) \
    if (w->opt.field <= 0)    \
        w->opt.field = (value);
    DEFAULT(watch_timeout_ns, KUBE_WATCH_TIMEOUT_NS);
    DEFAULT(max_line, KUBE_WATCH_LINE_MAX);
    DEFAULT(max_list, KUBE_WATCH_LIST_MAX);
    DEFAULT(backoff_min_ns, KUBE_WATCH_BACKOFF_MIN);
    DEFAULT(backoff_max_ns, KUBE_WATCH_BACKOFF_MAX);
    DEFAULT(connect_timeout_ns, INT64_C(10) * 1000000000);
#undef DEFAULT
    if (w->opt.watch_timeout_ns < 1000000000)
        w->opt.watch_timeout_ns = 1000000000;
    if (w->opt.backoff_max_ns < w->opt.backoff_min_ns)
        w->opt.backoff_max_ns = w->opt.backoff_min_ns;
    w->backoff_ns = w->opt.backoff_min_ns;
    w->curl = kube_curl_uv_new(loop, end_request, w, err, errlen);
    if (w->curl == NULL)
        goto out_free;
    kube_target_init(&w->target, sel);
    nr_buf_init(&w->body, w->opt.max_line);
    uv_timer_init(loop, &w->retry_timer);
    w->retry_timer.data = w;
    w->open_parts = 2;
    return w;
nomem:
    snprintf(err, errlen, "out of memory");
out_free:
    if (w != NULL) {
        free(w->node);
        free(w);
    }
    return NULL;
}

int kube_watch_start(struct kube_watch *w)
{
    if (w->started || w->closing)
        return -EALREADY;
    w->started = true;
    schedule(w, 0);
    return 0;
}

void kube_watch_get_stats(const struct kube_watch *w, struct kube_watch_stats *st)
{
    *st = w->st;
}

/* Once the glue has taken a running request off its multi handle, and the retry timer is
 * closed. */
static void part_closed(struct kube_watch *w)
{
    if (--w->open_parts > 0)
        return;
    if (w->easy != NULL)
        curl_easy_cleanup(w->easy);
    curl_slist_free_all(w->headers);
    if (w->close_cb != NULL)
        w->close_cb(w->close_arg);
    kube_target_free(&w->target);
    nr_buf_free(&w->body);
    free(w->node);
    free(w);
}

static void curl_closed(void *arg)
{
    part_closed(arg);
}

static void retry_timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

/* Both closes are safe from inside a curl callback (on_change may call this from there); the
 * glue tears curl down from the loop. */
void kube_watch_close(struct kube_watch *w, void (*close_cb)(void *arg), void *arg)
{
    if (w->closing)
        return;
    w->closing = true;
    w->close_cb = close_cb;
    w->close_arg = arg;
    kube_curl_uv_close(w->curl, curl_closed, w);
    uv_close((uv_handle_t *)&w->retry_timer, retry_timer_closed);
}
