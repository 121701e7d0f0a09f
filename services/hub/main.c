/* netreel-hub: the front door. Flags, the token, the gRPC server (Hub.Snapshot, Hub.Status,
 * health), /metrics, and a clean stop on SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "hub/budget.h"
#include "hub/hub.h"
#include "hub/snapshot.h"
#include "hub/status.h"
#include "hub/stores.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/parse.h"
#include "util/prog.h"
#include "util/version.h"

static struct hub hub;
static struct rpc_server *server;
static struct rpc_limits rpc_limits; /* the server's, with the timeouts from the flags */
static struct nr_httpd *httpd;
static uv_signal_t sigterm, sigint;

static const char usage_text[] =
    "usage: netreel-hub --stores LIST [options]\n"
    "Takes one window from every store at once and merges it into one time-ordered file.\n"
    "\n"
    "  --listen ADDR             gRPC address (default :8898)\n"
    "  --stores LIST             the stores: host:port and dns:NAME:PORT (every address of\n"
    "                            NAME, resolved for each request), separated by commas\n"
    "  --token-file F            require this bearer token on Snapshot and Status\n"
    "  --tls-cert F --tls-key F  serve TLS ...\n"
    "  --tls-ca F                ... and require client certificates signed by this CA\n"
    "  --store-tls-ca F          TLS to the stores, verified against this CA ...\n"
    "  --store-tls-cert F --store-tls-key F   ... with this client certificate (mTLS)\n"
    "  --max-snapshots N         snapshots served at once (default 4)\n"
    "  --memory-budget SIZE      what the snapshots served at once may hold of the stores'\n"
    "                            streams, all together (default 128MiB; at least 16MiB)\n"
    "  --store-timeout DUR       a store silent this long while awaited is left out (10s)\n"
    "  --store-idle-timeout DUR  close a store's idle connection after DUR (default 4m;\n"
    "                            the others a burst left: an eighth of it, at most 30s;\n"
    "                            0 = never)\n"
    "  --handshake-timeout DUR   close connections without a TLS handshake and HTTP/2\n"
    "                            preface within DUR (default 10s; 0 = never)\n"
    "  --idle-timeout DUR        close connections without calls for DUR (default 5m;\n"
    "                            0 = never)\n"
    "  --stall-timeout DUR       reset calls whose client read nothing for DUR (default 1m;\n"
    "                            0 = never)\n"
    "  --metrics-listen ADDR     Prometheus /metrics and /healthz (default :9103; \"off\")\n"
    "  --node NAME               this node's name (default $NODE_NAME, else the host name)\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  --version, --help\n";

/* The token: the file's first line without surrounding white space. */
static char *read_token(const char *path)
{
    char buf[4097];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    char *p, *end;

    if (fd < 0)
        nr_die("--token-file %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        nr_die("--token-file %s: %s", path, strerror(errno));
    if (n == (ssize_t)sizeof(buf) - 1)
        nr_die("--token-file %s: longer than 4096 bytes", path);
    buf[n] = '\0';
    for (p = buf; *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'; p++)
        ;
    end = p + strcspn(p, "\r\n");
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    if (!*p)
        nr_die("--token-file %s: empty", path);
    return strdup(p);
}

/* A server timeout in milliseconds: 0 (never) or at least 100ms. */
static uint64_t timeout_flag(const char *name, const char *v)
{
    char err[256];
    int64_t ns;

    if (nr_parse_duration(v, &ns, err, sizeof(err)) != 0)
        nr_die("--%s: %s", name, err);
    if (ns != 0 && ns < 100000000)
        nr_die("--%s: at least 100ms (or 0 for never)", name);
    return (uint64_t)ns / 1000000;
}

static void parse_flags(int argc, char **argv, struct hub_config *cfg)
{
    enum {
        O_LISTEN = 256,
        O_STORES,
        O_TOKEN,
        O_CERT,
        O_KEY,
        O_CA,
        O_SCA,
        O_SCERT,
        O_SKEY,
        O_MAX,
        O_BUDGET,
        O_TIMEOUT,
        O_STORE_IDLE,
        O_HANDSHAKE,
        O_IDLE,
        O_STALL,
        O_METRICS,
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"stores", required_argument, NULL, O_STORES},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"tls-ca", required_argument, NULL, O_CA},
        {"store-tls-ca", required_argument, NULL, O_SCA},
        {"store-tls-cert", required_argument, NULL, O_SCERT},
        {"store-tls-key", required_argument, NULL, O_SKEY},
        {"max-snapshots", required_argument, NULL, O_MAX},
        {"memory-budget", required_argument, NULL, O_BUDGET},
        {"store-timeout", required_argument, NULL, O_TIMEOUT},
        {"store-idle-timeout", required_argument, NULL, O_STORE_IDLE},
        {"handshake-timeout", required_argument, NULL, O_HANDSHAKE},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"stall-timeout", required_argument, NULL, O_STALL},
        {"metrics-listen", required_argument, NULL, O_METRICS},
        NR_PROG_OPTIONS,
    };
    const char *node = getenv("NODE_NAME");
    char err[256];
    int c;

    cfg->listen = ":8898";
    cfg->metrics_listen = ":9103";
    cfg->max_snapshots = 4;
    cfg->memory_budget = HUB_DEFAULT_BUDGET;
    cfg->store_timeout_ns = 10 * INT64_C(1000000000);
    cfg->store_idle_ms = 4 * 60 * 1000;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN: cfg->listen = optarg; break;
        case O_STORES: cfg->stores = optarg; break;
        case O_TOKEN: cfg->token_file = optarg; break;
        case O_CERT: cfg->tls_cert = optarg; break;
        case O_KEY: cfg->tls_key = optarg; break;
        case O_CA: cfg->tls_ca = optarg; break;
        case O_SCA: cfg->store_tls_ca = optarg; break;
        case O_SCERT: cfg->store_tls_cert = optarg; break;
        case O_SKEY: cfg->store_tls_key = optarg; break;
        case O_MAX: {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > 1000)
                nr_die("--max-snapshots: \"%s\" is not a number from 1 to 1000", optarg);
            cfg->max_snapshots = (unsigned)n;
            break;
        }
        case O_BUDGET:
            if (nr_parse_size(optarg, &cfg->memory_budget, err, sizeof(err)) != 0)
                nr_die("--memory-budget: %s", err);
            if (cfg->memory_budget < HUB_MIN_BUDGET)
                nr_die("--memory-budget: at least 16MiB");
            break;
        case O_TIMEOUT:
            if (nr_parse_duration(optarg, &cfg->store_timeout_ns, err, sizeof(err)) != 0)
                nr_die("--store-timeout: %s", err);
            if (cfg->store_timeout_ns < 100000000)
                nr_die("--store-timeout: at least 100ms");
            break;
        case O_STORE_IDLE: cfg->store_idle_ms = timeout_flag("store-idle-timeout", optarg); break;
        case O_HANDSHAKE:
            rpc_limits.handshake_timeout_ms = timeout_flag("handshake-timeout", optarg);
            break;
        case O_IDLE: rpc_limits.idle_timeout_ms = timeout_flag("idle-timeout", optarg); break;
        case O_STALL: rpc_limits.stall_timeout_ms = timeout_flag("stall-timeout", optarg); break;
        case O_METRICS: cfg->metrics_listen = optarg; break;
        default: nr_prog_option(c, argv, usage_text, &node); break;
        }
    }
    if (optind != argc)
        nr_die("unexpected argument \"%s\" (see --help)", argv[optind]);
    if (hub_stores_check(cfg->stores, err, sizeof(err)) != 0)
        nr_die("%s", err);
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        nr_die("--tls-cert and --tls-key go together");
    if (cfg->tls_ca && !cfg->tls_cert)
        nr_die("--tls-ca needs --tls-cert and --tls-key");
    if ((cfg->store_tls_cert == NULL) != (cfg->store_tls_key == NULL))
        nr_die("--store-tls-cert and --store-tls-key go together");
    if (!node || !node[0]) {
        static char host[256];
        node = gethostname(host, sizeof(host) - 1) == 0 ? host : "unknown";
    }
    snprintf(cfg->node, sizeof(cfg->node), "%s", node);
}

static int serve_metrics(struct nr_buf *body, const char **content_type, void *data)
{
    const struct hub *h = data;
    struct nr_metrics m;
    size_t in_use, idle;
    uint64_t full, resumed;

    nr_metrics_init(&m, body);
    nr_metrics_family(&m, "netreel_hub_info", NR_METRICS_GAUGE, "The hub's version and node.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"version", NR_VERSION}, {"node", h->cfg.node}), 1);
    nr_metrics_family(&m, "netreel_hub_snapshots_active", NR_METRICS_GAUGE,
                      "Snapshots being served.");
    nr_metrics_u64(&m, NULL, h->snapshots_active);
    nr_metrics_family(&m, "netreel_hub_snapshots_total", NR_METRICS_COUNTER,
                      "Snapshots, by how they ended.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "complete"}),
                   h->snapshots_total - h->snapshots_partial);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "partial"}), h->snapshots_partial);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "failed"}), h->snapshots_failed);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "refused_busy"}), h->refused_busy);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "unauthenticated"}), h->auth_failures);
    nr_metrics_family(&m, "netreel_hub_packets_total", NR_METRICS_COUNTER,
                      "Packets written into snapshots.");
    nr_metrics_u64(&m, NULL, h->packets_total);
    nr_metrics_family(&m, "netreel_hub_bytes_total", NR_METRICS_COUNTER,
                      "Bytes of snapshot files written.");
    nr_metrics_u64(&m, NULL, h->bytes_total);
    nr_metrics_family(&m, "netreel_hub_status_total", NR_METRICS_COUNTER, "Status calls answered.");
    nr_metrics_u64(&m, NULL, h->status_total);
    rpc_client_tls_handshakes(&full, &resumed);
    nr_metrics_family(&m, "netreel_hub_store_tls_handshakes_total", NR_METRICS_COUNTER,
                      "TLS handshakes with the stores: full, and resumed (a session the store gave "
                      "before: no certificates, no signatures).");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "full"}), full);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"kind", "resumed"}), resumed);
    hub_stores_count(h, &in_use, &idle);
    nr_metrics_family(&m, "netreel_hub_store_connections", NR_METRICS_GAUGE,
                      "Connections to stores the hub keeps: in use by a call, and idle (closed "
                      "after --store-idle-timeout).");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"state", "in_use"}), in_use);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"state", "idle"}), idle);
    if (server)
        rpc_server_metrics_write(server, &m);
    *content_type = NR_METRICS_CONTENT_TYPE;
    return m.err ? m.err : 200;
}

static int serve_healthz(struct nr_buf *body, const char **content_type, void *data)
{
    nr_buf_append(body, "ok\n", 3);
    return 200;
}

static const struct nr_httpd_route routes[] = {
    {"/metrics", serve_metrics, &hub},
    {"/healthz", serve_healthz, &hub},
};

static void stores_closed(void *arg)
{
    nr_prog_close_handles(hub.loop);
}

static void server_closed(void *arg)
{
    hub_stores_close(&hub, stores_closed, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    NR_INFO("stopping", "signal=%d", signum);
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    if (httpd)
        nr_httpd_close(httpd, NULL, NULL);
    httpd = NULL;
    rpc_server_close(server, server_closed, NULL);
}

int main(int argc, char **argv)
{
    static struct rpc_method methods[] = {
        {"/netreel.v1.Hub/Snapshot", RPC_SHAPE_SERVER_STREAM, hub_snapshot_start, &hub, 0, NULL},
        {"/netreel.v1.Hub/Status", RPC_SHAPE_UNARY, hub_status_start, &hub, 0, NULL},
    };
    struct rpc_server_config scfg;
    char err[256];
    uint64_t fd_limit;

    nr_prog_set_name("netreel-hub");
    rpc_limits_init(&rpc_limits);
    parse_flags(argc, argv, &hub.cfg);
    fd_limit = nr_prog_raise_nofile();           /* a connection per store */
    rpc_client_set_max_dialing(HUB_MAX_DIALING); /* a thousand TLS handshakes take turns */
    hub.loop = uv_default_loop();
    if (hub.cfg.token_file)
        hub.token = read_token(hub.cfg.token_file);
    rpc_server_config_init(&scfg);
    scfg.limits = rpc_limits;
    scfg.listen = hub.cfg.listen;
    scfg.tls_cert = hub.cfg.tls_cert;
    scfg.tls_key = hub.cfg.tls_key;
    scfg.tls_ca = hub.cfg.tls_ca;
    server = rpc_server_new(hub.loop, &scfg, methods, sizeof(methods) / sizeof(methods[0]));
    if (!server)
        nr_die("out of memory");
    if (rpc_server_start(server, err, sizeof(err)) != 0)
        nr_die("%s", err);
    rpc_server_set_health(server, "netreel.v1.Hub", 1);
    httpd = nr_prog_metrics(hub.loop, hub.cfg.metrics_listen, routes,
                            sizeof(routes) / sizeof(routes[0]));
    uv_signal_init(hub.loop, &sigterm);
    uv_signal_init(hub.loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    NR_INFO("serving",
            "listen=%s port=%d stores=\"%.200s%s\" node=%s tls=%s token=%s "
            "max_snapshots=%u metrics_port=%d fd_limit=%llu",
            hub.cfg.listen, rpc_server_port(server), hub.cfg.stores,
            strlen(hub.cfg.stores) > 200 ? "..." : "", hub.cfg.node,
            hub.cfg.tls_ca     ? "mtls"
            : hub.cfg.tls_cert ? "tls"
                               : "off",
            hub.token ? "required" : "none", hub.cfg.max_snapshots,
            httpd ? nr_httpd_port(httpd) : -1, (unsigned long long)fd_limit);
    uv_run(hub.loop, UV_RUN_DEFAULT);
    uv_loop_close(hub.loop);
    free(hub.token);
    NR_INFO("stopped", "snapshots=%llu", (unsigned long long)hub.snapshots_total);
    return 0;
}
