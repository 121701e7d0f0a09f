/* netreel status: the cluster from Hub.Status (docs/cli.md). By default the totals (nodes, the
 * retained window, disk, packets, drops) and one line per node that needs attention (down,
 * dropping, out of room), which reads the same at three nodes or three thousand; --all (-o wide)
 * one row per store; -o json everything for scripts. */
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "args.h"
#include "cli.h"
#include "hub.h"
#include "netreel/v1/hub.pb-c.h"
#include "rpc/status.h"
#include "util/parse.h"

#define STATUS_TIMEOUT_MS 30000
#define COLS              11

static const char usage_text[] =
    "usage: netreel status [--hub ADDR] [--all | -o wide | -o json] [options]\n"
    "The cluster's totals -- nodes, the retained window (and the part every node holds), disk\n"
    "use against the limits, packets, drops -- then one line per node that needs attention:\n"
    "unreachable, dropping packets, or out of room (data deleted for the file system's free\n"
    "space).\n"
    "\n"
    "  --all, -o wide            one row per node: its window, span, disk, segments, packets,\n"
    "                            clock and drops, and whether the hub reached its store\n"
    "  -o json                   totals, attention and every node as one JSON object\n"
    "%s"
    "  --help\n"
    "\n"
    "Exit: 0 every store reached, 1 failed, 2 bad usage, 3 a store is unreachable,\n"
    "4 no hub and no kubectl or kube context.\n";

static struct {
    struct rpc_channel *ch;
    Netreel__V1__ClusterStatus *st;
    int code;
    char message[1024];
} r;

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    if (r.st)
        netreel__v1__cluster_status__free_unpacked(r.st, NULL);
    r.st = netreel__v1__cluster_status__unpack(NULL, len, msg);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    r.code = code;
    snprintf(r.message, sizeof(r.message), "%s", message);
    rpc_channel_close(r.ch, NULL, NULL);
}

static void when(int64_t ns, char *buf, size_t len)
{
    if (ns <= 0 || nr_format_time(ns, 0, buf, len) < 0)
        snprintf(buf, len, "-");
}

/* One row's cells; an unreachable store has its reason in the 4th cell and nothing after. */
static void row(const Netreel__V1__StoreStatus *ss, char cells[COLS][64], char *reason,
                size_t reason_len)
{
    const Netreel__V1__StoreStats *st = ss->stats;
    uint64_t kd = 0, id = 0, cd = 0;
    char a[32], b[32];

    snprintf(cells[0], 64, "%s", st && st->node && st->node[0] ? st->node : "?");
    snprintf(cells[1], 64, "%s", ss->store);
    reason[0] = 0;
    if (!ss->reachable || !st) {
        snprintf(cells[2], 64, "UNREACHABLE");
        snprintf(reason, reason_len, "%s", ss->error && ss->error[0] ? ss->error : "no answer");
        for (int i = 3; i < COLS; i++)
            cells[i][0] = 0;
        return;
    }
    snprintf(cells[2], 64, "ok");
    when(st->oldest_ns, cells[3], 64);
    when(st->newest_ns, cells[4], 64);
    if (st->oldest_ns > 0 && st->newest_ns >= st->oldest_ns)
        nr_format_duration(st->newest_ns - st->oldest_ns, cells[5], 64);
    else
        snprintf(cells[5], 64, "-");
    nr_format_size(st->bytes, a, sizeof(a));
    if (st->max_bytes) {
        nr_format_size(st->max_bytes, b, sizeof(b));
        snprintf(cells[6], 64, "%s / %s", a, b);
    } else {
        snprintf(cells[6], 64, "%s", a);
    }
    snprintf(cells[7], 64, "%u", st->segments);
    snprintf(cells[8], 64, "%" PRIu64, st->packets);
    for (size_t i = 0; i < st->n_captures; i++) {
        const Netreel__V1__CaptureCounters *c = st->captures[i]->counters;
        if (c) {
            kd += c->kernel_dropped;
            id += c->interface_dropped;
            cd += c->capture_dropped;
        }
    }
    /* The clock the last snapshot measured: its offset against the reference node's. */
    if (ss->clock_known && ss->clock_reference && st->node &&
        strcmp(ss->clock_reference, st->node) != 0)
        snprintf(cells[9], 64, "%+.3fms\xc2\xb1%.3f", (double)ss->clock_offset_ns / 1e6,
                 (double)ss->clock_uncertainty_ns / 1e6);
    else if (ss->clock_known)
        snprintf(cells[9], 64, "reference");
    else
        snprintf(cells[9], 64, "-");
    snprintf(cells[10], 64, "%" PRIu64 "/%" PRIu64 "/%" PRIu64, kd, id, cd);
}

static int print_table(const Netreel__V1__ClusterStatus *st)
{
    static const char *const head[COLS] = {"NODE",
                                           "STORE",
                                           "STATE",
                                           "OLDEST",
                                           "NEWEST",
                                           "SPAN",
                                           "DISK / MAX",
                                           "SEGMENTS",
                                           "PACKETS",
                                           "CLOCK",
                                           "DROPS kernel/iface/capture"};
    size_t n = st->n_stores, unreachable = 0;
    char(*cells)[COLS][64] = calloc(n ? n : 1, sizeof(*cells));
    char(*reasons)[512] = calloc(n ? n : 1, sizeof(*reasons));
    size_t width[COLS];

    if (!cells || !reasons) {
        free(cells);
        free(reasons);
        return cli_error(CLI_EXIT_FAIL, "status: out of memory");
    }
    for (int c = 0; c < COLS; c++)
        width[c] = strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        row(st->stores[i], cells[i], reasons[i], sizeof(reasons[i]));
        /* Names and reasons come from the hub and the stores: nothing that steers a terminal. */
        cli_sanitize(reasons[i]);
        for (int c = 0; c < COLS; c++)
            cli_sanitize(cells[i][c]);
        for (int c = 0; c < COLS; c++)
            if (strlen(cells[i][c]) > width[c])
                width[c] = strlen(cells[i][c]);
    }
    for (int c = 0; c < COLS - 1; c++)
        printf("%-*s  ", (int)width[c], head[c]);
    printf("%s\n", head[COLS - 1]);
    for (size_t i = 0; i < n; i++) {
        if (reasons[i][0]) {
            unreachable++;
            printf("%-*s  %-*s  %s: %s\n", (int)width[0], cells[i][0], (int)width[1], cells[i][1],
                   cells[i][2], reasons[i]);
            continue;
        }
        for (int c = 0; c < COLS - 1; c++)
            printf("%-*s  ", (int)width[c], cells[i][c]);
        printf("%s\n", cells[i][COLS - 1]);
    }
    if (n == 0)
        printf("(the hub knows no store: check its --stores)\n");
    fflush(stdout);
    free(cells);
    free(reasons);
    if (unreachable) {
        cli_warn("%zu of %zu store%s %s unreachable: a snapshot now would miss %s", unreachable, n,
                 n == 1 ? "" : "s", unreachable == 1 ? "is" : "are",
                 unreachable == 1 ? "it" : "them");
        return CLI_EXIT_INCOMPLETE;
    }
    return CLI_EXIT_OK;
}

/* ---- the totals and what needs attention ---- */

/* What one store says, summed over its captures. */
struct node_view {
    const char *node, *store;
    bool reachable;
    const char *error;
    const Netreel__V1__StoreStats *st;  /* NULL when unreachable */
    uint64_t kd, id, cd;                /* drops: kernel, interface, capture buffer */
    uint64_t room_segments, room_bytes; /* deleted for the file system's free space */
};

struct totals {
    size_t n, ok, attention;
    int64_t oldest, newest;             /* over every node */
    int64_t common_since, common_until; /* what every reachable node with data holds */
    uint64_t bytes, max_bytes, packets, kd, id, cd;
};

static void view_of(const Netreel__V1__StoreStatus *ss, struct node_view *v)
{
    const Netreel__V1__StoreStats *st = ss->stats;

    memset(v, 0, sizeof(*v));
    v->node = st && st->node && st->node[0] ? st->node : "?";
    v->store = ss->store ? ss->store : "";
    v->reachable = ss->reachable && st;
    v->error = ss->error && ss->error[0] ? ss->error : "no answer";
    if (!v->reachable)
        return;
    v->st = st;
    for (size_t i = 0; i < st->n_captures; i++) {
        const Netreel__V1__CaptureCounters *c = st->captures[i]->counters;
        if (c) {
            v->kd += c->kernel_dropped;
            v->id += c->interface_dropped;
            v->cd += c->capture_dropped;
        }
    }
    for (size_t i = 0; i < st->n_deletions; i++) {
        const Netreel__V1__DeletionCount *d = st->deletions[i];
        if (d->reason && strcmp(d->reason, "min_free_disk") == 0) {
            v->room_segments += d->segments;
            v->room_bytes += d->bytes;
        }
    }
}

static bool dropping(const struct node_view *v)
{
    return v->kd + v->id + v->cd > 0;
}

static bool needs_attention(const struct node_view *v)
{
    return !v->reachable || dropping(v) || v->room_segments > 0;
}

static void add_up(struct totals *t, const struct node_view *v)
{
    const Netreel__V1__StoreStats *st = v->st;

    t->n++;
    t->attention += needs_attention(v);
    if (!st)
        return;
    t->ok++;
    t->bytes += st->bytes;
    t->max_bytes += st->max_bytes;
    t->packets += st->packets;
    t->kd += v->kd;
    t->id += v->id;
    t->cd += v->cd;
    if (st->oldest_ns <= 0 || st->newest_ns < st->oldest_ns)
        return; /* nothing recorded yet */
    if (!t->oldest || st->oldest_ns < t->oldest)
        t->oldest = st->oldest_ns;
    if (st->newest_ns > t->newest)
        t->newest = st->newest_ns;
    if (!t->common_since || st->oldest_ns > t->common_since)
        t->common_since = st->oldest_ns;
    if (!t->common_until || st->newest_ns < t->common_until)
        t->common_until = st->newest_ns;
}

/* "node-7  10.0.0.7:8897  UNREACHABLE: ...; DROPPING: ...": what is wrong with v, in one line. */
static void attention_line(const struct node_view *v, char *buf, size_t len)
{
    char size[32];
    size_t at = 0;

    buf[0] = 0;
    if (!v->reachable) {
        snprintf(buf, len, "UNREACHABLE: %s", v->error);
        return;
    }
    if (dropping(v))
        at += (size_t)snprintf(buf + at, len - at,
                               "DROPPING: %" PRIu64 " packets lost since its capture started "
                               "(kernel %" PRIu64 " / interface %" PRIu64 " / capture %" PRIu64 ")",
                               v->kd + v->id + v->cd, v->kd, v->id, v->cd);
    if (v->room_segments > 0 && at < len) {
        nr_format_size(v->room_bytes, size, sizeof(size));
        snprintf(buf + at, len - at,
                 "%sOUT OF ROOM: %" PRIu64 " segments (%s) deleted for the file system's free "
                 "space, its window is shorter than its limits",
                 at ? "; " : "", v->room_segments, size);
    }
}

static int print_summary(const Netreel__V1__ClusterStatus *cs)
{
    struct totals t = {0};
    struct node_view v;
    char a[40], b[40], d[40], line[1024];
    size_t unreachable;

    for (size_t i = 0; i < cs->n_stores; i++) {
        view_of(cs->stores[i], &v);
        add_up(&t, &v);
    }
    unreachable = t.n - t.ok;
    if (t.n == 0) {
        printf("(the hub knows no store: check its --stores)\n");
        return CLI_EXIT_OK;
    }
    printf("%zu node%s: %zu ok", t.n, t.n == 1 ? "" : "s", t.ok);
    if (unreachable)
        printf(", %zu unreachable", unreachable);
    printf("\n");
    if (t.oldest) {
        when(t.oldest, a, sizeof(a));
        when(t.newest, b, sizeof(b));
        nr_format_duration(t.newest - t.oldest, d, sizeof(d));
        printf("window    %s .. %s (%s)", a, b, d);
        if (t.common_since > t.oldest || t.common_until < t.newest) {
            if (t.common_until > t.common_since) {
                when(t.common_since, a, sizeof(a));
                when(t.common_until, b, sizeof(b));
                nr_format_duration(t.common_until - t.common_since, d, sizeof(d));
                printf("; every node holds %s .. %s (%s)", a, b, d);
            } else {
                printf("; no part of it is on every node");
            }
        }
        printf("\n");
    } else {
        printf("window    - (nothing recorded yet)\n");
    }
    nr_format_size(t.bytes, a, sizeof(a));
    nr_format_size(t.max_bytes, b, sizeof(b));
    printf("disk      %s / %s\n", a, b);
    printf("packets   %" PRIu64 ", dropped %" PRIu64 " (kernel %" PRIu64 " / interface %" PRIu64
           " / capture %" PRIu64 ")\n",
           t.packets, t.kd + t.id + t.cd, t.kd, t.id, t.cd);
    if (t.attention) {
        printf("needs attention (%zu node%s):\n", t.attention, t.attention == 1 ? "" : "s");
        for (size_t i = 0; i < cs->n_stores; i++) {
            char node[256], store[320];
            view_of(cs->stores[i], &v);
            if (!needs_attention(&v))
                continue;
            attention_line(&v, line, sizeof(line));
            snprintf(node, sizeof(node), "%s", v.node);
            snprintf(store, sizeof(store), "%s", v.store);
            /* Names and reasons come from the hub and the stores: nothing that steers a
             * terminal. */
            cli_sanitize(node);
            cli_sanitize(store);
            cli_sanitize(line);
            printf("  %s  %s  %s\n", node, store, line);
        }
    }
    printf("every node: netreel status --all\n");
    fflush(stdout);
    if (unreachable) {
        cli_warn("%zu of %zu store%s %s unreachable: a snapshot now would miss %s", unreachable,
                 t.n, t.n == 1 ? "" : "s", unreachable == 1 ? "is" : "are",
                 unreachable == 1 ? "it" : "them");
        return CLI_EXIT_INCOMPLETE;
    }
    return CLI_EXIT_OK;
}

/* ---- -o json ---- */

static json_t *json_drops(uint64_t kd, uint64_t id, uint64_t cd)
{
    return json_pack("{s:I,s:I,s:I}", "kernel", (json_int_t)kd, "interface", (json_int_t)id,
                     "capture", (json_int_t)cd);
}

static json_t *json_node(const Netreel__V1__StoreStatus *ss, const struct node_view *v)
{
    const Netreel__V1__StoreStats *st = v->st;
    char line[1024];
    json_t *o =
        json_pack("{s:s,s:s,s:b}", "node", v->node, "store", v->store, "reachable", v->reachable);

    if (!o)
        return NULL;
    attention_line(v, line, sizeof(line));
    json_object_set_new(o, "attention", line[0] ? json_string(line) : json_null());
    if (!v->reachable) {
        json_object_set_new(o, "error", json_string(v->error));
        return o;
    }
    json_object_set_new(o, "oldest_ns", json_integer(st->oldest_ns));
    json_object_set_new(o, "newest_ns", json_integer(st->newest_ns));
    json_object_set_new(o, "bytes", json_integer((json_int_t)st->bytes));
    json_object_set_new(o, "max_bytes", json_integer((json_int_t)st->max_bytes));
    json_object_set_new(o, "max_time_ns", json_integer(st->max_time_ns));
    json_object_set_new(o, "segments", json_integer(st->segments));
    json_object_set_new(o, "packets", json_integer((json_int_t)st->packets));
    json_object_set_new(o, "dropped", json_drops(v->kd, v->id, v->cd));
    json_object_set_new(o, "deleted_for_free_space",
                        json_pack("{s:I,s:I}", "segments", (json_int_t)v->room_segments, "bytes",
                                  (json_int_t)v->room_bytes));
    if (ss->clock_known)
        json_object_set_new(o, "clock",
                            json_pack("{s:s,s:I,s:I}", "reference",
                                      ss->clock_reference ? ss->clock_reference : "", "offset_ns",
                                      (json_int_t)ss->clock_offset_ns, "uncertainty_ns",
                                      (json_int_t)ss->clock_uncertainty_ns));
    return o;
}

static int print_json(const Netreel__V1__ClusterStatus *cs)
{
    struct totals t = {0};
    struct node_view v;
    json_t *root = json_object(), *nodes = json_array(), *att = json_array();
    char *text;

    if (!root || !nodes || !att)
        goto oom;
    for (size_t i = 0; i < cs->n_stores; i++) {
        json_t *n;
        view_of(cs->stores[i], &v);
        add_up(&t, &v);
        n = json_node(cs->stores[i], &v);
        if (!n || json_array_append_new(nodes, n) != 0)
            goto oom;
        if (needs_attention(&v) && json_array_append(att, n) != 0)
            goto oom;
    }
    json_object_set_new(root, "nodes", json_integer((json_int_t)t.n));
    json_object_set_new(root, "ok", json_integer((json_int_t)t.ok));
    json_object_set_new(root, "unreachable", json_integer((json_int_t)(t.n - t.ok)));
    json_object_set_new(root, "oldest_ns", json_integer(t.oldest));
    json_object_set_new(root, "newest_ns", json_integer(t.newest));
    json_object_set_new(root, "every_node_since_ns",
                        json_integer(t.common_until > t.common_since ? t.common_since : 0));
    json_object_set_new(root, "every_node_until_ns",
                        json_integer(t.common_until > t.common_since ? t.common_until : 0));
    json_object_set_new(root, "bytes", json_integer((json_int_t)t.bytes));
    json_object_set_new(root, "max_bytes", json_integer((json_int_t)t.max_bytes));
    json_object_set_new(root, "packets", json_integer((json_int_t)t.packets));
    json_object_set_new(root, "dropped", json_drops(t.kd, t.id, t.cd));
    json_object_set_new(root, "attention", att);
    json_object_set_new(root, "stores", nodes);
    att = nodes = NULL;
    text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!text)
        return cli_error(CLI_EXIT_FAIL, "status: out of memory");
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    return t.n > t.ok ? CLI_EXIT_INCOMPLETE : CLI_EXIT_OK;
oom:
    json_decref(root);
    json_decref(nodes);
    json_decref(att);
    return cli_error(CLI_EXIT_FAIL, "status: out of memory");
}

int cli_status(int argc, char **argv)
{
    static const struct rpc_call_cbs cbs = {.on_message = on_message, .on_done = on_done};
    Netreel__V1__StatusRequest req = NETREEL__V1__STATUS_REQUEST__INIT;
    struct cli_status_opts so;
    struct rpc_call_opts co = {0};
    struct cli_hub hub;
    struct rpc_call *call;
    char err[512];
    int rc = cli_status_args_parse(argc, argv, &so);

    if (rc == CLI_ARGS_HELP) {
        printf(usage_text, cli_hub_usage);
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    rc = cli_hub_find(&so.hub, &hub);
    if (rc != 0)
        return rc;
    memset(&r, 0, sizeof(r));
    r.ch = cli_hub_channel(uv_default_loop(), &hub, err, sizeof(err));
    if (!r.ch) {
        cli_hub_release(&hub);
        return cli_error(CLI_EXIT_USAGE, "status: %s", err);
    }
    co.path = "/netreel.v1.Hub/Status";
    co.shape = RPC_SHAPE_UNARY;
    co.timeout_ms = STATUS_TIMEOUT_MS;
    co.metadata = cli_hub_metadata(&hub);
    call = rpc_channel_call(r.ch, &co, &cbs, NULL);
    if (!call || rpc_call_send(call, &req.base) != 0 || rpc_call_close_send(call) != 0) {
        cli_hub_release(&hub);
        return cli_error(CLI_EXIT_FAIL, "status: cannot start the call");
    }
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    if (r.code != RPC_OK)
        rc = cli_hub_failed(&hub, "status", r.code, r.message);
    else if (!r.st)
        rc = cli_error(CLI_EXIT_FAIL, "status: the hub's answer does not parse");
    else if (so.json)
        rc = print_json(r.st);
    else if (so.all)
        rc = print_table(r.st);
    else
        rc = print_summary(r.st);
    if (r.st)
        netreel__v1__cluster_status__free_unpacked(r.st, NULL);
    cli_hub_release(&hub);
    return rc;
}
