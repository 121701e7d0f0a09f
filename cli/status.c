/* netreel status: one row per store from Hub.Status (DESIGN §7): the retained window, disk use
 * against its limit, segments, packets, the captures' drops, and whether the hub reached it. */
#include <inttypes.h>
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
    "usage: netreel status [--hub ADDR] [options]\n"
    "Per node: the retained window (oldest and newest packet), its span, bytes on disk and the\n"
    "limit, segments, packets, drops (kernel / interface / capture buffer), and whether the hub\n"
    "reached the node's store.\n"
    "\n"
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

int cli_status(int argc, char **argv)
{
    static const struct rpc_call_cbs cbs = {.on_message = on_message, .on_done = on_done};
    Netreel__V1__StatusRequest req = NETREEL__V1__STATUS_REQUEST__INIT;
    struct cli_hub_opts ho;
    struct rpc_call_opts co = {0};
    struct cli_hub hub;
    struct rpc_call *call;
    char err[512];
    int rc = cli_status_args_parse(argc, argv, &ho);

    if (rc == CLI_ARGS_HELP) {
        printf(usage_text, cli_hub_usage);
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return rc;
    rc = cli_hub_find(&ho, &hub);
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
    else
        rc = print_table(r.st);
    if (r.st)
        netreel__v1__cluster_status__free_unpacked(r.st, NULL);
    cli_hub_release(&hub);
    return rc;
}
