/* kube-watch: pod targeting (lib/kube) run on its own against a Kubernetes API server, for the
 * tests: one JSON line on stdout per change of the target set ({"pods":[...],"filter":"..."}),
 * one per change of the API's health ({"api":"error","error":"..."} / {"api":"ok"}), and the
 * counters ({"stats":{...}}) when SIGTERM or SIGINT stops it (exit 0). */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kube/config.h"
#include "kube/filter.h"
#include "kube/target.h"
#include "kube/watch.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/parse.h"

static struct {
    const char *kubeconfig, *context, *sa_dir, *node, *regex, *namespaces, *excluded;
    struct kube_watch_options opt;
    unsigned flags;
} a;

static struct kube_watch *watch;
static uv_signal_t sigterm, sigint;

static void print(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    if (s == NULL || printf("%s\n", s) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "kube-watch: cannot write stdout\n");
        exit(1);
    }
    free(s);
    json_decref(j);
}

static void on_change(const struct kube_target_set *set, void *arg)
{
    json_t *pods = json_array();
    struct nr_buf filter;
    int rc;

    for (size_t i = 0; i < set->n; i++) {
        char ip[64];

        kube_ip_format(&set->entries[i].ip, ip, sizeof(ip));
        json_array_append_new(pods,
                              json_pack("{s:s, s:s, s:s}", "ip", ip, "namespace",
                                        set->entries[i].namespace, "name", set->entries[i].name));
    }
    nr_buf_init(&filter, 1u << 20);
    rc = kube_filter_build(set, &filter);
    print(json_pack("{s:o, s:s}", "pods", pods, "filter",
                    rc == 0 ? (const char *)filter.data : "(too many addresses)"));
    nr_buf_free(&filter);
}

static void on_health(bool healthy, const char *error, void *arg)
{
    if (healthy)
        print(json_pack("{s:s}", "api", "ok"));
    else
        print(json_pack("{s:s, s:s}", "api", "error", "error", error));
}

static void closed(void *arg)
{
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct kube_watch_stats st;

    if (watch == NULL)
        return;
    kube_watch_get_stats(watch, &st);
    print(json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I}}", "stats", "requests",
                    (json_int_t)st.requests, "errors", (json_int_t)st.errors, "relists",
                    (json_int_t)st.relists, "events", (json_int_t)st.events, "unauthorized",
                    (json_int_t)st.unauthorized, "skipped_pods", (json_int_t)st.skipped_pods,
                    "changes", (json_int_t)st.changes, "healthy", st.healthy, "addresses",
                    (json_int_t)st.addresses));
    kube_watch_close(watch, closed, NULL);
    watch = NULL;
}

static int64_t duration(const char *flag, const char *s)
{
    char err[200];
    int64_t ns;

    if (nr_parse_duration(s, &ns, err, sizeof(err)) != 0) {
        fprintf(stderr, "kube-watch: %s: %s\n", flag, err);
        exit(2);
    }
    return ns;
}

static size_t size(const char *flag, const char *s)
{
    char err[200];
    uint64_t n;

    if (nr_parse_size(s, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "kube-watch: %s: %s\n", flag, err);
        exit(2);
    }
    return (size_t)n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: kube-watch --node NAME [--kubeconfig FILE [--context NAME] | --sa-dir DIR]\n"
            "         [--pod-regex RE] [--namespaces NS,...] [--excluded-namespaces NS,...]\n"
            "         [--watch-timeout DUR] [--backoff-min DUR] [--backoff-max DUR]\n"
            "         [--max-line SIZE] [--max-list SIZE] [--allow-insecure] [--debug]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kubeconfig", required_argument, NULL, 'k'},
        {"context", required_argument, NULL, 'c'},
        {"sa-dir", required_argument, NULL, 's'},
        {"node", required_argument, NULL, 'N'},
        {"pod-regex", required_argument, NULL, 'r'},
        {"namespaces", required_argument, NULL, 'n'},
        {"excluded-namespaces", required_argument, NULL, 'e'},
        {"watch-timeout", required_argument, NULL, 't'},
        {"backoff-min", required_argument, NULL, 'b'},
        {"backoff-max", required_argument, NULL, 'B'},
        {"max-line", required_argument, NULL, 'l'},
        {"max-list", required_argument, NULL, 'L'},
        {"allow-insecure", no_argument, NULL, 'i'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    struct kube_config cfg;
    struct kube_selector sel;
    char err[512] = "";
    uv_loop_t *loop = uv_default_loop();
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': a.kubeconfig = optarg; break;
        case 'c': a.context = optarg; break;
        case 's': a.sa_dir = optarg; break;
        case 'N': a.node = optarg; break;
        case 'r': a.regex = optarg; break;
        case 'n': a.namespaces = optarg; break;
        case 'e': a.excluded = optarg; break;
        case 't': a.opt.watch_timeout_ns = duration("--watch-timeout", optarg); break;
        case 'b': a.opt.backoff_min_ns = duration("--backoff-min", optarg); break;
        case 'B': a.opt.backoff_max_ns = duration("--backoff-max", optarg); break;
        case 'l': a.opt.max_line = size("--max-line", optarg); break;
        case 'L': a.opt.max_list = size("--max-list", optarg); break;
        case 'i': a.flags |= KUBE_CONFIG_ALLOW_INSECURE; break;
        case 'd': nr_log_set_level(NR_LOG_DEBUG); break;
        default: usage();
        }
    }
    if (optind != argc || a.node == NULL)
        usage();
    kube_config_init(&cfg);
    rc = a.kubeconfig ? kube_config_load(&cfg, a.kubeconfig, a.context, a.flags, err, sizeof(err))
                      : kube_config_in_cluster(&cfg, a.sa_dir, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "kube-watch: %s\n", err);
        return 1;
    }
    if (kube_selector_init(&sel, a.regex, a.namespaces, a.excluded, err, sizeof(err)) != 0) {
        fprintf(stderr, "kube-watch: %s\n", err);
        kube_config_free(&cfg);
        return 1;
    }
    a.opt.node = a.node;
    a.opt.on_change = on_change;
    a.opt.on_health = on_health;
    watch = kube_watch_new(loop, &cfg, &sel, &a.opt, err, sizeof(err));
    if (watch == NULL) {
        fprintf(stderr, "kube-watch: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    NR_INFO("kube-watch: watching", "node=%s server=%s", a.node, cfg.server);
    kube_watch_start(watch);
    rc = uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop) == 0 && rc == 0 ? 0 : 1;
    kube_selector_free(&sel);
    kube_config_free(&cfg);
    return rc;
}
